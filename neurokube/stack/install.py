"""Find Prometheus and promtool, installing the Debian package when they are missing.

The stack runs its own Prometheus process (config, data and port of its own), never the Debian
``prometheus.service``; the package is only the source of the two binaries.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from neurokube.cluster import paths
from neurokube.cluster.processes import print_log_tail
from neurokube.errors import TemporaryError

PACKAGE = "prometheus"
DEBIAN_BIN = Path("/usr/bin")


@dataclass(frozen=True)
class PrometheusTools:
    prometheus: Path
    promtool: Path

    def version(self) -> str:
        """First line of ``prometheus --version``, e.g. ``prometheus, version 2.42.0+ds (...)``."""
        try:
            proc = subprocess.run([str(self.prometheus), "--version"], capture_output=True, text=True,
                                  timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise TemporaryError(f"cannot run {self.prometheus}: {exc}") from None
        text = (proc.stdout or proc.stderr).strip()
        return text.splitlines()[0] if text else "unknown"


def find_tools() -> PrometheusTools | None:
    """``prometheus`` and ``promtool`` from ``$NEUROKUBE_PROMETHEUS_DIR``, PATH or /usr/bin."""
    override = os.environ.get("NEUROKUBE_PROMETHEUS_DIR")
    found = []
    for name in ("prometheus", "promtool"):
        if override:
            candidate: str | None = str(Path(override) / name)
        else:
            candidate = shutil.which(name) or str(DEBIAN_BIN / name)
        if not (candidate and os.access(candidate, os.X_OK)):
            return None
        found.append(Path(candidate))
    return PrometheusTools(*found)


def ensure_tools(out: IO[str] | None = None, install: bool = True) -> PrometheusTools:
    """The Prometheus binaries; with ``install``, ``apt-get install prometheus`` if they are missing."""
    tools = find_tools()
    if tools is not None:
        return tools
    if not install:
        raise TemporaryError("Prometheus is not installed (no prometheus/promtool on PATH or in /usr/bin); "
                             "run `neurokube stack install` or `apt-get install prometheus`")
    install_package(out or sys.stderr)
    tools = find_tools()
    if tools is None:
        raise TemporaryError(f"`apt-get install {PACKAGE}` succeeded but prometheus/promtool are still missing "
                             "from PATH and /usr/bin")
    return tools


def install_package(out: IO[str]) -> None:
    """``apt-get update`` then ``apt-get install prometheus`` (Debian and Ubuntu; needs root)."""
    apt = shutil.which("apt-get")
    if apt is None:
        raise TemporaryError("Prometheus is not installed and apt-get is not available: install Prometheus >= 2.42 "
                             "and put prometheus and promtool on PATH (or set NEUROKUBE_PROMETHEUS_DIR)")
    if os.geteuid() != 0:
        raise TemporaryError(f"Prometheus is not installed; run `sudo apt-get update && sudo apt-get install -y "
                             f"--no-install-recommends {PACKAGE}` (installing needs root)")
    log_path = paths.cache_root() / "logs" / "apt-prometheus.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    print(f"Prometheus is not installed: installing the Debian package (log: {log_path})", file=out, flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    steps = ([apt, "update"], [apt, "install", "-y", "--no-install-recommends", PACKAGE])
    with open(log_path, "w") as log_handle:
        for argv in steps:
            print(f"  $ {' '.join(argv)}", file=out, flush=True)
            log_handle.write(f"$ {' '.join(argv)}\n")
            log_handle.flush()
            try:
                proc = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=log_handle,
                                      stderr=subprocess.STDOUT, check=False)
            except OSError as exc:
                raise TemporaryError(f"cannot run {argv[0]}: {exc}") from None
            if proc.returncode != 0:
                print_log_tail(log_path, out)
                raise TemporaryError(f"`{' '.join(argv)}` failed with status {proc.returncode}; log: {log_path}")
    print("  installed; the stack starts its own Prometheus process, not the package's service", file=out)
