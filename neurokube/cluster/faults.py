"""Faults on a running local cluster: stop, start, restart and pause its control-plane processes.

The chaos suite (tests/chaos) uses these to do to the real processes what an outage does to a
real cluster: ``restart("kube-apiserver")`` is a rolling apiserver upgrade (every watch breaks,
requests fail until it is back), ``paused("etcd", 10)`` is a storage stall (SIGSTOP: the process
keeps its sockets, so every apiserver request hangs instead of failing fast).

A restarted component gets the command line it was first started with (same ports, certificates
and data), rebuilt from the recorded cluster; ``cluster.json`` is updated with the new pid, so
``cluster down`` still stops everything.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from neurokube.cluster import certs, components, control, state
from neurokube.cluster.build import Binaries
from neurokube.cluster.processes import is_running, stop
from neurokube.cluster.state import ClusterRecord, Layout
from neurokube.errors import InputError

RESTARTABLE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")


def _record(state_dir: Path) -> tuple[Layout, ClusterRecord]:
    layout = Layout(state_dir)
    record = state.load(layout)
    if record is None or not record.processes:
        raise InputError("no cluster is running", where=str(layout.root), why="run `neurokube cluster up` first")
    return layout, record


def _process(record: ClusterRecord, name: str):
    for process in record.processes:
        if process.name == name:
            return process
    raise InputError(f"the cluster has no process {name!r}", where=record.state_dir,
                     why=f"recorded: {', '.join(p.name for p in record.processes)}")


def launch_for(layout: Layout, record: ClusterRecord, name: str) -> components.Launch:
    """The component's original launch (command line and readiness probe), from the record."""
    binaries, ports = Binaries(Path(record.bin_dir)), record.ports
    pki = certs.Pki(layout.pki)
    if name == "etcd":
        return components.etcd(binaries, layout, ports)
    if name == "kube-apiserver":
        client = control.admin_client(record, timeout_s=5.0)
        return components.kube_apiserver(binaries, layout, pki, ports, lambda: control.readyz(client))
    if name == "kube-controller-manager":
        return components.kube_controller_manager(binaries, layout, pki, ports)
    if name == "kube-scheduler":
        return components.kube_scheduler(binaries, layout, ports, layout.config / "kube-scheduler.yaml")
    if name == "kwok":
        return components.kwok(binaries, layout, ports, control.stage_files(layout))
    raise InputError(f"cannot restart {name!r}", why=f"restartable: {', '.join(RESTARTABLE)}")


def stop_component(state_dir: Path, name: str) -> str:
    """Stop one recorded process (SIGTERM, then SIGKILL); returns how it went."""
    layout, record = _record(state_dir)
    with state.locked(layout):
        return stop(_process(record, name))


def start_component(state_dir: Path, name: str, out: IO[str] | None = None) -> None:
    """Start a stopped component again with its original command line; returns once it is ready."""
    layout, record = _record(state_dir)
    launch = launch_for(layout, record, name)
    with state.locked(layout):
        record = state.load(layout)
        record.processes = [p for p in record.processes if p.name != name]
        control.launch_component(layout, record, launch, out or sys.stderr)


def restart(state_dir: Path, name: str, out: IO[str] | None = None) -> float:
    """Stop and start ``name``; returns the seconds it was unavailable (stop to ready)."""
    started = time.monotonic()
    stop_component(state_dir, name)
    start_component(state_dir, name, out)
    return time.monotonic() - started


@contextmanager
def paused(state_dir: Path, name: str) -> Iterator[None]:
    """SIGSTOP the component for the duration of the block, SIGCONT afterwards (also on error)."""
    _, record = _record(state_dir)
    process = _process(record, name)
    if not is_running(process):
        raise InputError(f"{name} is not running", where=record.state_dir)
    os.kill(process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(process.pid, signal.SIGCONT)
