"""Build the control-plane binaries from pinned Go wrapper modules, once per pin set.

Each component is one ``go build`` of a main package inside its wrapper module under
``deploy/local/go/<wrapper>``; the wrapper's ``go.mod`` decides every dependency version. Binaries
land in ``<cache>/bin/<pin-hash>/`` and are written atomically, so an interrupted build resumes
with the components that are still missing. Each component logs to ``<pin-hash>/logs/<name>.log``.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from neurokube.cluster import paths
from neurokube.cluster.pins import Pins, load_pins, pin_hash
from neurokube.cluster.processes import print_log_tail
from neurokube.errors import InputError, TemporaryError
from neurokube.logs import event

log = logging.getLogger("neurokube.cluster")

GO_CANDIDATES = ("/usr/local/go/bin/go",)
HEARTBEAT_S = 30.0


@dataclass(frozen=True)
class Component:
    name: str  # binary name in the cache
    wrapper: str  # directory under deploy/local/go
    package: str  # Go main package to build
    module: str  # module whose version is pinned
    pin: str  # key in versions.json
    kube_version_stamp: bool = False  # stamp k8s.io/component-base/version like upstream releases


COMPONENTS: tuple[Component, ...] = (
    Component("etcd", "etcd", "go.etcd.io/etcd/server/v3", "go.etcd.io/etcd/server/v3", "etcd"),
    *(
        Component(name, "kubernetes", f"k8s.io/kubernetes/cmd/{name}", "k8s.io/kubernetes", "kubernetes", True)
        for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
    ),
    Component("kwok", "kwok", "sigs.k8s.io/kwok/cmd/kwok", "sigs.k8s.io/kwok", "kwok"),
    Component(
        "apiserver_receive_adapter",
        "knative-adapter",
        "knative.dev/eventing/cmd/apiserver_receive_adapter",
        "knative.dev/eventing",
        "knative_eventing",
    ),
)

#: Where the CRD manifests sit inside the Knative module sources.
CRD_SOURCES = {
    "knative_serving": ("knative.dev/serving", "config/core/300-resources"),
    "knative_eventing": ("knative.dev/eventing", "config/core/resources"),
}


@dataclass(frozen=True)
class Binaries:
    """The built artefacts of one pin set."""

    root: Path

    def path(self, name: str) -> Path:
        return self.root / name

    @property
    def crds_dir(self) -> Path:
        return self.root / "crds"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    def missing(self) -> list[str]:
        names = [c.name for c in COMPONENTS if not self.path(c.name).is_file()]
        if not (self.crds_dir / ".complete").is_file():
            names.append("knative-crds")
        return names


# -- toolchain ---------------------------------------------------------------------------------


def find_go() -> str | None:
    """The Go toolchain to use: ``$NEUROKUBE_GO``, ``go`` on PATH, or /usr/local/go/bin/go."""
    explicit = os.environ.get("NEUROKUBE_GO")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    found = shutil.which("go")
    if found:
        return found
    return next((c for c in GO_CANDIDATES if os.access(c, os.X_OK)), None)


def require_go() -> str:
    go = find_go()
    if go is None:
        raise TemporaryError(
            "the Go toolchain is needed to build the local control plane and was not found "
            "(install Go >= 1.26, put `go` on PATH or set NEUROKUBE_GO)"
        )
    return go


def go_env() -> dict[str, str]:
    """Environment of every ``go`` call: local toolchain only, static, reproducible binaries."""
    env = dict(os.environ)
    env.update(
        GOTOOLCHAIN="local",  # never download another toolchain behind the user's back
        CGO_ENABLED="0",  # static binaries, like the upstream releases; no C compiler needed
        GOFLAGS="-trimpath -mod=readonly -buildvcs=false",
    )
    return env


def go_version(go: str) -> str:
    out = _run_quiet([go, "env", "GOVERSION", "GOOS", "GOARCH"], cwd=None)
    return "/".join(out.split())


def _run_quiet(argv: list[str], cwd: Path | None) -> str:
    try:
        proc = subprocess.run(argv, cwd=cwd, env=go_env(), capture_output=True, text=True, check=False)
    except OSError as exc:
        raise TemporaryError(f"cannot run {argv[0]}: {exc}") from None
    if proc.returncode != 0:
        raise TemporaryError(f"`{' '.join(argv)}` failed: {proc.stderr.strip()[-2000:]}")
    return proc.stdout


# -- cache layout ------------------------------------------------------------------------------


def current_binaries(go: str | None = None) -> Binaries:
    """Binaries for the pins in the checkout (they may not be built yet)."""
    deploy = paths.deploy_dir()
    go = go or require_go()
    wrappers = {component.wrapper for component in COMPONENTS}
    return Binaries(paths.cache_root() / "bin" / pin_hash(deploy, go_version(go), wrappers))


@contextmanager
def _build_lock(root: Path, out: IO[str]) -> Iterator[None]:
    """One build per pin set at a time (two `up`s, or pytest and a shell, may race)."""
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f"{root.name}.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another process to finish building {root} ...", file=out, flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# -- building ----------------------------------------------------------------------------------


def ensure_built(out: IO[str] | None = None, force: bool = False) -> Binaries:
    """Build whatever is missing for the current pins and return where the binaries are."""
    out = out or sys.stderr
    go = require_go()
    deploy = paths.deploy_dir()
    pins = load_pins(deploy)
    binaries = current_binaries(go)
    if not force and not binaries.missing():
        return binaries
    with _build_lock(binaries.root, out):
        if force:
            for component in COMPONENTS:
                binaries.path(component.name).unlink(missing_ok=True)
            (binaries.crds_dir / ".complete").unlink(missing_ok=True)
        todo = binaries.missing()
        if not todo:  # another process finished the build while we waited for the lock
            return binaries
        binaries.logs_dir.mkdir(parents=True, exist_ok=True)
        print(f"building the local control plane into {binaries.root} ({len(todo)} steps)", file=out)
        timings = _load_manifest(binaries).get("build_seconds", {})
        steps = [c for c in COMPONENTS if c.name in todo]
        total = len(steps) + (1 if "knative-crds" in todo else 0)
        started = time.monotonic()
        # Check every wrapper against the pins before spending minutes on the first build.
        resolved = {c.name: _resolve(go, deploy, pins, c) for c in steps}
        for index, component in enumerate(steps, start=1):
            timings[component.name] = _build_component(go, deploy, binaries, component, resolved[component.name],
                                                       index, total, out)
        if "knative-crds" in todo:
            what = f"collecting the CRDs of Knative Serving {pins.knative_serving}, Eventing {pins.knative_eventing}"
            timings["knative-crds"] = _run_step(
                "knative-crds", what, total, total, binaries.logs_dir / "knative-crds.log", out,
                lambda log_file: _collect_crds(go, pins, binaries, log_file),
            )
        _write_manifest(binaries, pins, go, timings)
        print(f"done in {_fmt(time.monotonic() - started)}: {binaries.root}", file=out)
        event(log, "cluster binaries built", logging.DEBUG, root=str(binaries.root), seconds=timings)
    return binaries


def _resolve(go: str, deploy: Path, pins: Pins, component: Component) -> dict:
    """The pinned module's version info, after checking that the wrapper requires the pin."""
    wrapper = deploy / "go" / component.wrapper
    version = getattr(pins, component.pin)
    info = _module_info(go, wrapper, component.module)
    if info.get("Version") != version:
        raise InputError(
            f"{component.module} is required at {info.get('Version')}, but versions.json pins {version}",
            where=str(wrapper / "go.mod"),
            why="update the wrapper module (go get + go mod tidy) or the pin",
        )
    return info


def _build_component(go: str, deploy: Path, binaries: Binaries, component: Component, info: dict,
                     index: int, total: int, out: IO[str]) -> float:
    wrapper = deploy / "go" / component.wrapper
    version = info["Version"]

    def build(log_handle: IO[str]) -> None:
        ldflags = ["-s", "-w"]
        if component.kube_version_stamp:
            ldflags += _kube_version_ldflags(version, info)
        target = binaries.path(component.name)
        partial = target.with_name(f".{target.name}.partial")
        argv = [go, "build", "-v", "-o", str(partial), "-ldflags", " ".join(ldflags), component.package]
        log_handle.write(f"$ (cd {wrapper} && {' '.join(argv)})\n")
        log_handle.flush()
        _run_logged(argv, wrapper, log_handle)
        os.replace(partial, target)

    log_file = binaries.logs_dir / f"{component.name}.log"
    return _run_step(component.name, f"building {component.package}@{version}", index, total, log_file, out, build)


def _run_step(
    name: str, what: str, index: int, total: int, log_file: Path, out: IO[str], action: Callable[[IO[str]], None]
) -> float:
    print(f"[{index}/{total}] {name}: {what} (log: {log_file})", file=out, flush=True)
    started = time.monotonic()
    stop = threading.Event()
    ticker = threading.Thread(target=_heartbeat, args=(name, started, log_file, stop, out), daemon=True)
    ticker.start()
    try:
        with open(log_file, "w") as log_handle:
            action(log_handle)
    except subprocess.CalledProcessError:
        stop.set()
        print_log_tail(log_file, out)
        elapsed = _fmt(time.monotonic() - started)
        raise TemporaryError(f"building {name} failed after {elapsed}; log: {log_file}") from None
    finally:
        stop.set()
        ticker.join()
    elapsed = time.monotonic() - started
    print(f"[{index}/{total}] {name}: done in {_fmt(elapsed)}", file=out, flush=True)
    return round(elapsed, 1)


def _heartbeat(name: str, started: float, log_file: Path, stop: threading.Event, out: IO[str]) -> None:
    while not stop.wait(HEARTBEAT_S):
        packages = _count_lines(log_file)
        print(f"      {name}: still building, {_fmt(time.monotonic() - started)} ({packages} lines of log)",
              file=out, flush=True)


def _run_logged(argv: list[str], cwd: Path, log_handle: IO[str]) -> None:
    """Run ``argv`` at low priority with its output in the log; raise CalledProcessError on failure."""
    try:
        proc = subprocess.run(
            argv, cwd=cwd, env=go_env(), stdout=log_handle, stderr=subprocess.STDOUT,
            preexec_fn=lambda: os.nice(10), check=False,
        )
    except OSError as exc:
        log_handle.write(f"cannot run {argv[0]}: {exc}\n")
        raise subprocess.CalledProcessError(127, argv) from None
    if proc.returncode != 0:
        log_handle.write(f"\nexit status {proc.returncode}\n")
        raise subprocess.CalledProcessError(proc.returncode, argv)


def _module_info(go: str, wrapper: Path, module: str) -> dict:
    """Version, commit and release time of the module version the wrapper requires.

    ``go mod download -json`` resolves the version from the wrapper's go.mod; the proxy's
    ``.info`` file next to the download records the tag's commit and time.
    """
    try:
        download = json.loads(_run_quiet([go, "mod", "download", "-json", module], cwd=wrapper))
        info = json.loads(Path(download["Info"]).read_text()) if download.get("Info") else {}
    except (json.JSONDecodeError, OSError, KeyError) as exc:
        raise TemporaryError(f"cannot resolve {module} in {wrapper}: {exc}") from None
    return {**info, "Version": download.get("Version")}


def _kube_version_ldflags(version: str, info: dict) -> list[str]:
    """The version stamp hack/lib/version.sh puts into release binaries (kubectl version etc.)."""
    major, minor = version.lstrip("v").split(".")[:2]
    values = {
        "gitVersion": version,
        "gitMajor": major,
        "gitMinor": minor,
        "gitCommit": (info.get("Origin") or {}).get("Hash", ""),
        "gitTreeState": "clean",
        "buildDate": info.get("Time", ""),
    }
    flags = []
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [f"-X {package}.{key}={value}" for key, value in values.items() if value]
    return flags


def _collect_crds(go: str, pins: Pins, binaries: Binaries, log_handle: IO[str]) -> None:
    """Copy the CRD manifests of the pinned Knative releases out of the Go module cache."""
    staging = binaries.crds_dir.with_name("crds.partial")
    shutil.rmtree(staging, ignore_errors=True)
    for pin, (module, folder) in CRD_SOURCES.items():
        ref = f"{module}@{getattr(pins, pin)}"
        argv = [go, "mod", "download", "-json", ref]
        log_handle.write(f"$ {' '.join(argv)}\n")
        log_handle.flush()
        # Run outside any module so the download cannot touch a wrapper's go.sum.
        proc = subprocess.run(argv, cwd=binaries.logs_dir, env={**go_env(), "GOFLAGS": ""},
                              capture_output=True, text=True, check=False)
        log_handle.write(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            raise subprocess.CalledProcessError(proc.returncode, argv)
        source = Path(json.loads(proc.stdout)["Dir"]) / folder
        target = staging / module.split("/")[-1]
        target.mkdir(parents=True)
        for manifest in sorted(source.glob("*.yaml")):
            if "kind: CustomResourceDefinition" in manifest.read_text():
                shutil.copyfile(manifest, target / manifest.name)
                log_handle.write(f"copied {manifest}\n")
    (staging / ".complete").write_text("")
    shutil.rmtree(binaries.crds_dir, ignore_errors=True)
    os.replace(staging, binaries.crds_dir)


# -- manifest and formatting ---------------------------------------------------------------------


def _load_manifest(binaries: Binaries) -> dict:
    try:
        return json.loads((binaries.root / "manifest.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _write_manifest(binaries: Binaries, pins: Pins, go: str, timings: dict[str, float]) -> None:
    manifest = {"pins": pins.as_dict(), "go": go_version(go), "build_seconds": timings,
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (binaries.root / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def _count_lines(path: Path) -> int:
    try:
        with open(path, "rb") as handle:
            return sum(1 for _ in handle)
    except OSError:
        return 0


def _fmt(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{seconds:.1f}s"
