"""Build the MinIO server from its pinned Go module, once per pin.

``github.com/minio/minio`` has no ``replace`` directives, so ``go install <module>@<version>``
builds it exactly as pinned (every module checksum is verified against the Go checksum database)
and no wrapper module is needed. The binary lands in ``<cache>/bin/<pin-hash>/minio`` next to the
control-plane binaries, is written atomically, and is rebuilt only when the pin, this recipe or
the Go toolchain changes. The build log is ``<pin-hash>/logs/minio.log``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from neurokube.cluster import paths
from neurokube.cluster.build import go_env, go_version, require_go
from neurokube.cluster.processes import print_log_tail
from neurokube.errors import InputError, TemporaryError
from neurokube.logs import event

log = logging.getLogger("neurokube.stack")

MINIO_MODULE = "github.com/minio/minio"
#: Bump when the way MinIO is built changes (flags, ldflags).
RECIPE_REVISION = 1
HEARTBEAT_S = 30.0


@dataclass(frozen=True)
class MinioBuild:
    """Where the MinIO binary of one pin lives (it may not be built yet)."""

    root: Path
    version: str

    @property
    def binary(self) -> Path:
        return self.root / "minio"

    @property
    def log(self) -> Path:
        return self.root / "logs" / "minio.log"

    @property
    def built(self) -> bool:
        return self.binary.is_file()


def pins_file() -> Path:
    return paths.deploy_dir() / "stack" / "versions.json"


def load_minio_pin(path: Path | None = None) -> str:
    path = path or pins_file()
    try:
        version = json.loads(path.read_text()).get("minio")
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError("cannot read the stack pins", where=str(path), why=str(exc)) from None
    if not isinstance(version, str) or not version.startswith("v"):
        raise InputError("no MinIO module version pinned", where=str(path), why='expected "minio": "v..."')
    return version


def pin_hash(version: str, go: str) -> str:
    """A short digest of what determines the binary: module version, recipe and toolchain."""
    text = f"minio-recipe={RECIPE_REVISION}\ngo={go}\n{MINIO_MODULE}@{version}\n"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def current_build(go: str | None = None) -> MinioBuild:
    go = go or require_go()
    version = load_minio_pin()
    return MinioBuild(paths.cache_root() / "bin" / pin_hash(version, go_version(go)), version)


def ensure_minio(out: IO[str] | None = None, force: bool = False) -> MinioBuild:
    """Build MinIO if the cache has no binary for the current pin; return where it is."""
    out = out or sys.stderr
    go = require_go()
    build = current_build(go)
    if build.built and not force:
        return build
    with _locked(build.root):
        if force:
            build.binary.unlink(missing_ok=True)
        if build.built:  # another process built it while we waited for the lock
            return build
        build.log.parent.mkdir(parents=True, exist_ok=True)
        print(f"building MinIO {MINIO_MODULE}@{build.version} into {build.root}", file=out)
        print("  a cold build downloads ~240 modules and compiles ~1300 packages: about 10 minutes on 2 cores "
              f"(log: {build.log})", file=out, flush=True)
        started = time.monotonic()
        with open(build.log, "w") as log_handle, _heartbeat(build.log, started, out):
            try:
                module = _download(go, build.version, log_handle)
                _install(go, build, module, log_handle)
            except subprocess.CalledProcessError:
                print_log_tail(build.log, out)
                raise TemporaryError(f"building MinIO failed after {_fmt(time.monotonic() - started)}; "
                                     f"log: {build.log}") from None
        seconds = round(time.monotonic() - started, 1)
        _write_manifest(build, go, seconds)
        print(f"MinIO built in {_fmt(seconds)}: {build.binary}", file=out, flush=True)
        event(log, "minio built", binary=str(build.binary), seconds=seconds)
    return build


def _download(go: str, version: str, log_handle: IO[str]) -> dict:
    """``go mod download -json`` of the pinned module: fetches its sources, returns where they are."""
    argv = [go, "mod", "download", "-json", f"{MINIO_MODULE}@{version}"]
    log_handle.write(f"$ {' '.join(argv)}\n")
    log_handle.flush()
    with tempfile.TemporaryDirectory(prefix="neurokube-minio-") as outside_any_module:
        proc = subprocess.run(argv, cwd=outside_any_module, env=_env(), capture_output=True, text=True, check=False)
    log_handle.write(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, argv)
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        log_handle.write(f"unexpected output: {exc}\n")
        raise subprocess.CalledProcessError(1, argv) from None


def _install(go: str, build: MinioBuild, module: dict, log_handle: IO[str]) -> None:
    gobin = build.root / ".gobin.partial"
    gobin.mkdir(parents=True, exist_ok=True)
    argv = [go, "install", "-v", "-ldflags", " ".join(_ldflags(module)), f"{MINIO_MODULE}@{build.version}"]
    log_handle.write(f"$ GOBIN={gobin} {' '.join(argv)}\n")
    log_handle.flush()
    with tempfile.TemporaryDirectory(prefix="neurokube-minio-") as outside_any_module:
        try:
            proc = subprocess.run(
                argv, cwd=outside_any_module, env={**_env(), "GOBIN": str(gobin)}, stdout=log_handle,
                stderr=subprocess.STDOUT, preexec_fn=lambda: os.nice(10), check=False,
            )
        except OSError as exc:
            log_handle.write(f"cannot run {go}: {exc}\n")
            raise subprocess.CalledProcessError(127, argv) from None
    if proc.returncode != 0:
        log_handle.write(f"\nexit status {proc.returncode}\n")
        raise subprocess.CalledProcessError(proc.returncode, argv)
    os.replace(gobin / "minio", build.binary)
    gobin.rmdir()


def _ldflags(module: dict) -> list[str]:
    """The version stamp MinIO's own release build sets (shown by ``minio --version``).

    The module proxy reports the commit time (the ``.info`` file) but not the full commit hash; the
    12-character hash at the end of the pseudo-version is what MinIO shows as its short commit id.
    """
    info = _read_json(module.get("Info"))
    released = str(info.get("Time") or "").replace(".000", "")
    commit = str(module.get("Version", "")).rsplit("-", 1)[-1]
    values = {"CommitID": commit}
    if released:
        values.update(Version=released, ReleaseTag=f"DEVELOPMENT.{released.replace(':', '-')}",
                      CopyrightYear=released[:4])
    return ["-s", "-w", *(f"-X {MINIO_MODULE}/cmd.{name}={value}" for name, value in values.items())]


def _read_json(path: object) -> dict:
    try:
        return json.loads(Path(str(path)).read_text()) if path else {}
    except (OSError, json.JSONDecodeError):
        return {}


def _env() -> dict[str, str]:
    # `go install module@version` runs outside any module: -mod does not apply.
    return {**go_env(), "GOFLAGS": "-trimpath -buildvcs=false"}


@contextmanager
def _heartbeat(log_path: Path, started: float, out: IO[str]) -> Iterator[None]:
    """Every HEARTBEAT_S, say how long the build has run and how many packages it compiled."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_S):
            print(f"  minio: still building, {_fmt(time.monotonic() - started)} "
                  f"({_count_packages(log_path)} packages compiled so far)", file=out, flush=True)

    thread = threading.Thread(target=beat, name="minio-build-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f"{root.name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_manifest(build: MinioBuild, go: str, seconds: float) -> None:
    manifest = {"module": MINIO_MODULE, "version": build.version, "go": go_version(go),
                "recipe": RECIPE_REVISION, "build_seconds": {"minio": seconds},
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (build.root / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def _count_packages(path: Path) -> int:
    """Lines of ``go install -v`` output that name a compiled package (not downloads or JSON)."""
    try:
        with open(path, errors="replace") as handle:
            return sum(1 for line in handle
                       if line.strip() and not line.startswith(("go: ", "$ ", "{", "}", "\t", " ")))
    except OSError:
        return 0


def _fmt(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{seconds:.1f}s"
