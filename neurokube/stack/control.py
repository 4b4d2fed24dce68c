"""Bring the local data stack up, report on it, and take it down.

`up` makes sure Prometheus is installed and MinIO is built, then starts, in order: MinIO (and
creates the bucket), the metrics emulator, Prometheus (scraping the emulator) and the MLflow
tracking server. Each process is recorded in ``stack.json`` as soon as it starts, so `down` can
stop whatever a failed or interrupted `up` left behind; a failed `up` stops what it started. A
second `up` finds the running stack and returns it.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from neurokube.adapters import statedir
from neurokube.adapters.objectstore import MinioStore
from neurokube.cluster.components import Launch, free_ports
from neurokube.cluster.processes import Process, exited_with, is_running, print_log_tail, start
from neurokube.emulator.filesource import example_snapshot, read_snapshot, write_snapshot
from neurokube.errors import InputError, TemporaryError
from neurokube.logs import event
from neurokube.stack import build, install, promconfig, services, state
from neurokube.stack.procgroup import stop_group
from neurokube.stack.settings import StackSettings
from neurokube.stack.state import Layout, StackRecord

log = logging.getLogger("neurokube.stack")


@dataclass(frozen=True)
class UpResult:
    record: StackRecord
    already_running: bool


# -- up ----------------------------------------------------------------------------------------


def up(settings: StackSettings, out: IO[str] | None = None) -> UpResult:
    out = out or sys.stderr
    layout = Layout(settings.state_dir)
    if settings.emulator_source is not None:
        read_snapshot(settings.emulator_source)  # a bad snapshot is an input error, before anything starts
    with state.locked(layout):
        existing = state.load(layout)
        if existing is not None and existing.processes:
            broken = unhealthy(existing)
            if not broken and existing.ready:
                return UpResult(existing, already_running=True)
            print(f"found a broken stack in {layout.root} ({', '.join(broken) or 'start-up unfinished'}); "
                  "stopping it and starting afresh", file=out)
            _stop_all(layout, existing, out)
        state.prepare(layout)  # refuses a foreign directory before a long install or build
        tools = install.ensure_tools(out, install=settings.install_prometheus)
        minio = build.ensure_minio(out)
        return UpResult(_start(layout, settings, tools, minio, out), already_running=False)


def _start(layout: Layout, settings: StackSettings, tools: install.PrometheusTools, minio: build.MinioBuild,
           out: IO[str]) -> StackRecord:
    started_at = time.monotonic()
    creds = state.credentials(layout)
    snapshot = settings.emulator_source or _default_snapshot(layout)
    ports = free_ports(services.PORT_NAMES)
    record = StackRecord(
        state_dir=str(layout.root), ports=ports, bucket=settings.bucket, emulator_source=str(snapshot),
        scrape_interval=settings.scrape_interval, scrape_targets=list(settings.scrape_targets),
        retention=settings.retention, prometheus_version=tools.version(), minio_binary=str(minio.binary),
    )
    promconfig.write(layout.prometheus_config, promconfig.render(
        settings.scrape_interval, f"{services.LOCALHOST}:{ports['emulator']}", record.scrape_targets))
    state.save(layout, record)
    timeout = settings.start_timeout_s
    print(f"starting the data stack in {layout.root}", file=out, flush=True)
    try:
        _launch(layout, record, services.minio(minio.binary, layout, ports, creds, timeout), out)
        store = MinioStore(record.minio_endpoint, creds.access_key, creds.secret_key, settings.bucket)
        _step(out, f"bucket {settings.bucket}", store.ensure_bucket)
        _launch(layout, record, services.emulator(snapshot, ports, timeout), out)
        _launch(layout, record, services.prometheus(tools.prometheus, layout, ports, record.retention, timeout), out)
        _launch(layout, record, services.mlflow(layout, ports, settings.mlflow_workers, timeout), out)
    except BaseException:
        print(f"start-up failed; stopping what was started (logs kept in {layout.logs})", file=out)
        _stop_all(layout, record, out)
        raise
    record.ready = True
    state.save(layout, record)
    seconds = round(time.monotonic() - started_at, 1)
    event(log, "stack up", state_dir=str(layout.root), ports=ports, seconds=seconds)
    print(f"stack up in {seconds:.1f}s: MinIO {record.minio_endpoint}, Prometheus {record.prometheus_url}, "
          f"MLflow {record.mlflow_url}", file=out, flush=True)
    return record


def _default_snapshot(layout: Layout) -> Path:
    if not layout.default_snapshot.exists():
        write_snapshot(layout.default_snapshot, example_snapshot())
    return layout.default_snapshot


def _launch(layout: Layout, record: StackRecord, launch: Launch, out: IO[str]) -> Process:
    log_path = layout.log(launch.name)
    env = {**os.environ, **launch.env} if launch.env else None
    process = start(launch.name, launch.argv, log_path, cwd=layout.root, env=env)
    _replace_process(record, process)
    state.save(layout, record)

    def ready() -> None:
        deadline = time.monotonic() + launch.timeout_s
        while not launch.ready():
            if not is_running(process):
                code = exited_with(process)
                status = f" with status {code}" if code is not None else ""
                raise TemporaryError(f"{launch.name} exited{status} during start-up; log: {log_path}")
            if time.monotonic() > deadline:
                raise TemporaryError(f"{launch.name} did not pass its health check within "
                                     f"{launch.timeout_s:.0f}s; log: {log_path}")
            time.sleep(0.2)

    try:
        _step(out, launch.name, ready)
    except TemporaryError:
        print_log_tail(log_path, out)
        raise
    return process


def _replace_process(record: StackRecord, process: Process) -> None:
    """Record ``process``, in place of an earlier one of the same name (a restart keeps the order)."""
    names = [p.name for p in record.processes]
    if process.name in names:
        record.processes[names.index(process.name)] = process
    else:
        record.processes.append(process)


def _step(out: IO[str], what: str, action) -> None:
    print(f"  {what} ...", end="", file=out, flush=True)
    started = time.monotonic()
    try:
        action()
    except BaseException:
        print(" failed", file=out, flush=True)
        raise
    print(f" ok ({time.monotonic() - started:.1f}s)", file=out, flush=True)


def restart_prometheus(layout: Layout, record: StackRecord, out: IO[str], timeout_s: float = 120.0) -> None:
    """Stop and start Prometheus on the same port and data (it then loads every block on disk)."""
    old = record.process("prometheus")
    if old is not None:
        stop_group(old)
    tools = install.ensure_tools(out, install=False)
    launch = services.prometheus(tools.prometheus, layout, record.ports, record.retention, timeout_s)
    _launch(layout, record, launch, out)


def service_launch(layout: Layout, record: StackRecord, name: str, timeout_s: float = 120.0) -> Launch:
    """The launch of one recorded service, as `up` started it (same ports, data and credentials)."""
    if name == "minio":
        return services.minio(Path(record.minio_binary), layout, record.ports, state.credentials(layout), timeout_s)
    if name == "emulator":
        return services.emulator(Path(record.emulator_source), record.ports, timeout_s)
    if name == "prometheus":
        tools = install.ensure_tools(sys.stderr, install=False)
        return services.prometheus(tools.prometheus, layout, record.ports, record.retention, timeout_s)
    if name == "mlflow":
        return services.mlflow(layout, record.ports, 1, timeout_s)
    raise InputError(f"the stack has no service {name!r}", why=f"one of {', '.join(services.ORDER)}")


def stop_service(state_dir: Path, name: str) -> str:
    """Stop one service of a running stack (its whole process group); `start_service` brings it back.
    Used to take a dependency away on purpose (tests/chaos); returns how the stop went."""
    layout = Layout(state_dir)
    with state.locked(layout):
        record = state.load(layout)
        process = record.process(name) if record else None
        if process is None:
            raise InputError(f"the stack has no running {name!r}", where=str(layout.root))
        return stop_group(process)


def start_service(state_dir: Path, name: str, out: IO[str] | None = None, timeout_s: float = 120.0) -> None:
    """Start a stopped service again on its recorded port and data; returns once it is healthy."""
    layout = Layout(state_dir)
    with state.locked(layout):
        record = state.load(layout)
        if record is None:
            raise InputError("no data stack is running", where=str(layout.root))
        _launch(layout, record, service_launch(layout, record, name, timeout_s), out or sys.stderr)


# -- status and down ---------------------------------------------------------------------------


def unhealthy(record: StackRecord) -> list[str]:
    """Names of the recorded processes that are not running."""
    return [p.name for p in record.processes if not is_running(p)]


def running_record(layout: Layout) -> StackRecord:
    record = state.load(layout)
    if record is None or not record.processes:
        raise InputError("no data stack is running", where=str(layout.root), why="run `neurokube stack up` first")
    broken = unhealthy(record)
    if broken or not record.ready:
        raise TemporaryError(f"the data stack in {layout.root} is broken ({', '.join(broken) or 'start-up unfinished'}"
                             " not running); run `neurokube stack down` and `up` again")
    return record


def endpoints(layout: Layout, record: StackRecord) -> dict:
    """What clients need: the document `neurokube stack status --json` prints."""
    creds = state.credentials(layout)
    return {
        "minio": {"endpoint": record.minio_endpoint, "access_key": creds.access_key,
                  "secret_key": creds.secret_key, "bucket": record.bucket},
        "prometheus": {"url": record.prometheus_url},
        "mlflow": {"url": record.mlflow_url},
    }


def status(state_dir: Path) -> dict:
    """Endpoints, whether every process runs, and each process' pid and log."""
    layout = Layout(state_dir)
    record = state.load(layout)
    if record is None or not record.processes:
        return {"state_dir": str(layout.root), "running": False, "components": {}}
    procs = {p.name: {"pid": p.pid, "running": is_running(p), "log": p.log} for p in record.processes}
    return {
        "state_dir": str(layout.root),
        "running": record.ready and all(p["running"] for p in procs.values()),
        **endpoints(layout, record),
        "emulator": {"url": record.emulator_url, "source": record.emulator_source},
        "scrape_interval": record.scrape_interval,
        "scrape_targets": record.scrape_targets,
        "prometheus_version": record.prometheus_version,
        "minio_binary": record.minio_binary,
        "components": procs,
    }


def down(state_dir: Path, purge: bool = False, out: IO[str] | None = None) -> list[tuple[str, str]]:
    out = out or sys.stderr
    layout = Layout(state_dir)
    if not layout.root.is_dir():
        return []
    with state.locked(layout):
        record = state.load(layout)
        outcomes = _stop_all(layout, record, out) if record else []
    if purge:
        state.purge(layout)
    return outcomes


def _stop_all(layout: Layout, record: StackRecord, out: IO[str]) -> list[tuple[str, str]]:
    outcomes = statedir.stop_recorded(record.processes, stop_group, out)
    record.processes = []
    record.ready = False
    state.save(layout, record)
    return outcomes
