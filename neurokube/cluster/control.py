"""Bring the local cluster up, report on it, and take it down.

`up` starts, in order: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, KWOK, then
creates the fake nodes, waits until they are Ready and schedulable, and starts the Knative receive adapter. Each
process is recorded in ``cluster.json`` as soon as it starts, so `down` can stop whatever a failed
or interrupted `up` left behind; a failed `up` stops what it started itself.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from neurokube.adapters import statedir
from neurokube.adapters.kube import KubeClient, KubeError
from neurokube.cluster import (
    adapter,
    build,
    certs,
    components,
    crds,
    functions,
    kubeconfig,
    paths,
    rbac,
    schedconfig,
    state,
    workload,
)
from neurokube.cluster.build import Binaries
from neurokube.cluster.processes import Process, exited_with, is_running, print_log_tail, start, stop
from neurokube.cluster.state import ClusterRecord, Layout
from neurokube.errors import InputError, TemporaryError
from neurokube.logs import event

log = logging.getLogger("neurokube.cluster")

STAGE_FILES = ("node-initialize", "node-heartbeat", "pod-ready", "pod-resize", "pod-complete", "pod-delete")


@dataclass(frozen=True)
class UpOptions:
    state_dir: Path
    nodes: list[workload.NodeSpec]
    extender: schedconfig.Extender | None = None
    start_adapter: bool = True
    sink: str = adapter.DEFAULT_SINK
    knative_crds: bool = False
    functions: functions.FunctionsOptions | None = None  # `up --functions` (cluster/functions.py)


@dataclass(frozen=True)
class UpResult:
    record: ClusterRecord
    already_running: bool


# -- up ----------------------------------------------------------------------------------------


def up(options: UpOptions, out: IO[str] | None = None) -> UpResult:
    out = out or sys.stderr
    layout = Layout(options.state_dir)
    with state.locked(layout):
        existing = state.load(layout)
        if existing is not None and existing.processes:
            down_now = unhealthy(existing)
            if not down_now and existing.ready:
                if options.knative_crds:
                    _install_crds(existing, out)
                return UpResult(existing, already_running=True)
            why = f"{', '.join(down_now)} not running" if down_now else "its start-up never finished"
            print(f"found a broken cluster in {layout.root} ({why}); stopping it and starting afresh", file=out)
            _stop_all(layout, existing, out)
        binaries = build.ensure_built(out)
        return UpResult(_start(layout, binaries, options, out), already_running=False)


def _start(layout: Layout, binaries: Binaries, options: UpOptions, out: IO[str]) -> ClusterRecord:
    started_at = time.monotonic()
    state.prepare_fresh(layout)
    ports = components.free_ports()
    # -- `up --functions`: ports, the adapter's sink and (optionally) the extender come from the plan.
    fn_plan = functions.plan() if options.functions else None
    if fn_plan is not None:
        options = _with_functions(options, fn_plan)
    pki = certs.generate(layout.pki, components.SERVICE_IP)
    server = components.apiserver_url(ports)
    kubeconfig.write(layout.admin_kubeconfig, server, pki.ca_cert, pki.client_cert("admin"),
                     pki.client_key("admin"), certs.CLIENTS["admin"].user)
    for identity in certs.CLIENTS.keys() - {"admin"}:
        kubeconfig.write(layout.kubeconfig(identity), server, pki.ca_cert, pki.client_cert(identity),
                         pki.client_key(identity), certs.CLIENTS[identity].user)
    scheduler_config = schedconfig.write(layout.config / "kube-scheduler.yaml", layout.kubeconfig("kube-scheduler"),
                                         options.extender)
    stages = _copy_stages(layout)
    record = ClusterRecord(
        state_dir=str(layout.root), bin_dir=str(binaries.root), apiserver=server,
        kubeconfig=str(layout.admin_kubeconfig), ports=ports, nodes=len(options.nodes),
        sink=options.sink if options.start_adapter else None,
        extender=options.extender.to_config() if options.extender else None,
        functions={name: fn_plan.url(name) for name in functions.FUNCTIONS} if fn_plan is not None else None,
    )
    state.save(layout, record)
    client = KubeClient.from_kubeconfig(layout.admin_kubeconfig, timeout_s=30.0)
    try:
        _launch(layout, record, components.etcd(binaries, layout, ports), out)
        _launch(layout, record, components.kube_apiserver(binaries, layout, pki, ports, lambda: _readyz(client)), out)
        _launch(layout, record, components.kube_controller_manager(binaries, layout, pki, ports), out)
        _launch(layout, record, components.kube_scheduler(binaries, layout, ports, scheduler_config), out)
        _step(out, "default service account", lambda: _wait_default_service_account(client, record))
        _launch(layout, record, components.kwok(binaries, layout, ports, stages), out)
        _step(out, f"{len(options.nodes)} nodes Ready and schedulable",
              lambda: _create_nodes(client, options.nodes, layout))
        if fn_plan is not None:  # before the adapter, so that its first events find the binder
            for launch in functions.launches(fn_plan, options.functions, client, layout, pki.ca_cert, server):
                _launch(layout, record, launch, out)
        if options.start_adapter:
            rbac.grant_adapter(client)
            if components.port_in_use(adapter.PROBE_PORT):
                print(f"note: port {adapter.PROBE_PORT} is in use; the receive adapter's health probes will not "
                      "be served (harmless)", file=out)
            _launch(layout, record, adapter.launch(binaries, layout.kubeconfig("receive-adapter"), options.sink,
                                                   ports["adapter_profiling"], layout.log("receive-adapter")), out)
        if options.knative_crds:
            _install_crds(record, out)
    except BaseException:
        print("start-up failed; stopping what was started (logs kept in "
              f"{layout.root / 'logs'})", file=out)
        _stop_all(layout, record, out)
        raise
    record.ready = True
    state.save(layout, record)
    elapsed = time.monotonic() - started_at
    event(log, "cluster up", logging.DEBUG, apiserver=server, nodes=len(options.nodes), seconds=round(elapsed, 1))
    print(f"cluster up in {elapsed:.1f}s: {server}, {len(options.nodes)} nodes", file=out)
    return record


def _with_functions(options: UpOptions, fn_plan: functions.Plan) -> UpOptions:
    """`up --functions`: the receive adapter delivers to the binder; maybe add the extender."""
    from dataclasses import replace

    extender = options.extender or functions.extender_config(fn_plan, options.functions)
    return replace(options, sink=fn_plan.sink, extender=extender)


def _launch(layout: Layout, record: ClusterRecord, launch: components.Launch, out: IO[str]) -> Process:
    log_path = layout.log(launch.name)
    process = start(launch.name, launch.argv, log_path, cwd=layout.root, env=_env(launch.env))
    record.processes.append(process)
    state.save(layout, record)

    def ready() -> None:
        deadline = time.monotonic() + launch.timeout_s
        while not launch.ready():
            if not is_running(process):
                code = exited_with(process)
                status = f" with status {code}" if code is not None else ""
                raise TemporaryError(f"{launch.name} exited{status} during start-up; log: {log_path}")
            if time.monotonic() > deadline:
                raise TemporaryError(f"{launch.name} not ready after {launch.timeout_s:.0f}s; log: {log_path}")
            time.sleep(0.2)

    try:
        _step(out, launch.name, ready)
    except TemporaryError:
        print_log_tail(log_path, out)
        raise
    return process


def launch_component(layout: Layout, record: ClusterRecord, launch: components.Launch, out: IO[str]) -> Process:
    """Start one process, record it in cluster.json and wait until it is ready (used by restarts)."""
    return _launch(layout, record, launch, out)


def stage_files(layout: Layout) -> list[Path]:
    """KWOK's stage files as copied into the state directory at `up`."""
    return [layout.config / "kwok" / f"{name}.yaml" for name in STAGE_FILES]


def readyz(client: KubeClient) -> bool:
    """The apiserver answers ``/readyz`` with ``ok``."""
    return _readyz(client)


def _step(out: IO[str], what: str, action: Callable[[], object]) -> None:
    print(f"  {what} ...", end="", file=out, flush=True)
    started = time.monotonic()
    try:
        action()
    except BaseException:
        print(" failed", file=out, flush=True)
        raise
    print(f" ok ({time.monotonic() - started:.1f}s)", file=out, flush=True)


def _env(extra: dict[str, str] | None) -> dict[str, str] | None:
    return {**os.environ, **extra} if extra else None


def _readyz(client: KubeClient) -> bool:
    try:
        return client.request("GET", "/readyz", raw=True).strip() == "ok"
    except TemporaryError:
        return False


def _wait_default_service_account(client: KubeClient, record: ClusterRecord, timeout_s: float = 60.0) -> None:
    """Pods cannot be created in a namespace before its `default` ServiceAccount exists."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            client.get("/api/v1/namespaces/default/serviceaccounts/default")
            return
        except KubeError as exc:
            if not exc.not_found:
                raise TemporaryError(f"checking the default service account failed: {exc}") from None
        if time.monotonic() > deadline:
            kcm = record.process("kube-controller-manager")
            raise TemporaryError("kube-controller-manager did not create the default ServiceAccount within "
                                 f"{timeout_s:.0f}s; log: {kcm.log if kcm else '?'}")
        time.sleep(0.25)


def _create_nodes(client: KubeClient, nodes: list[workload.NodeSpec], layout: Layout) -> None:
    workload.create_nodes(client, nodes)
    try:
        workload.wait_nodes_schedulable(client, len(nodes), timeout_s=60.0 + 0.2 * len(nodes))
    except TemporaryError as exc:
        raise TemporaryError(f"{exc}; KWOK plays their kubelets, its log: {layout.log('kwok')}") from None


def _copy_stages(layout: Layout) -> list[Path]:
    source = paths.deploy_dir() / "kwok" / "stages"
    target = layout.config / "kwok"
    target.mkdir(parents=True, exist_ok=True)
    copied = []
    for name in STAGE_FILES:
        shutil.copyfile(source / f"{name}.yaml", target / f"{name}.yaml")
        copied.append(target / f"{name}.yaml")
    return copied


def _install_crds(record: ClusterRecord, out: IO[str]) -> list[str]:
    binaries = Binaries(Path(record.bin_dir))
    names: list[str] = []

    def action() -> None:
        names.extend(crds.install(admin_client(record), binaries.crds_dir))

    _step(out, "Knative CRDs", action)
    return names


def install_crds(state_dir: Path, out: IO[str] | None = None) -> list[str]:
    layout = Layout(state_dir)
    with state.locked(layout):
        record = _running_record(layout)
        return _install_crds(record, out or sys.stderr)


# -- status and down ---------------------------------------------------------------------------


def unhealthy(record: ClusterRecord) -> list[str]:
    """Names of the recorded processes that are not running."""
    return [p.name for p in record.processes if not is_running(p)]


def admin_client(record: ClusterRecord, timeout_s: float = 30.0) -> KubeClient:
    return KubeClient.from_kubeconfig(record.kubeconfig, timeout_s=timeout_s)


def status(state_dir: Path, kubeconfig: str | None = None) -> dict:
    """The cluster's processes, and its nodes as the apiserver reports them to ``kubeconfig`` (default:
    the admin kubeconfig of the state directory; any kubeconfig the official client reads works,
    exec credential plugins included)."""
    layout = Layout(state_dir)
    record = state.load(layout)
    if record is None or not record.processes:
        return {"state_dir": str(layout.root), "running": False, "components": {}}
    procs = {p.name: {"pid": p.pid, "running": is_running(p), "log": p.log} for p in record.processes}
    doc = {
        "state_dir": str(layout.root),
        "running": record.ready and all(p["running"] for p in procs.values()),
        "apiserver": record.apiserver,
        "kubeconfig": record.kubeconfig,
        "components": procs,
        "ports": record.ports,
        "sink": record.sink,
        "extender": record.extender,
        "functions": record.functions,
    }
    if procs.get("kube-apiserver", {}).get("running"):
        try:
            client = KubeClient.from_kubeconfig(kubeconfig or record.kubeconfig, timeout_s=5.0)
            nodes = client.get("/api/v1/nodes")["items"]
            doc["nodes"] = {"total": len(nodes), "ready": sum(1 for n in nodes if workload.is_ready(n)),
                            "schedulable": sum(1 for n in nodes if workload.is_schedulable(n))}
        except (TemporaryError, KubeError) as exc:
            doc["apiserver_error"] = str(exc)
    return doc


def down(state_dir: Path, purge: bool = False, out: IO[str] | None = None) -> list[tuple[str, str]]:
    out = out or sys.stderr
    layout = Layout(state_dir)
    if not layout.record.exists():
        return []
    with state.locked(layout):
        record = state.load(layout)
        outcomes = _stop_all(layout, record, out) if record else []
    if purge:
        state.purge(layout)
    return outcomes


def _stop_all(layout: Layout, record: ClusterRecord, out: IO[str]) -> list[tuple[str, str]]:
    outcomes = statedir.stop_recorded(record.processes, stop, out)
    record.processes = []
    record.ready = False
    state.save(layout, record)
    return outcomes


def _running_record(layout: Layout) -> ClusterRecord:
    record = state.load(layout)
    if record is None or not record.processes:
        raise InputError("no cluster is running", where=str(layout.root), why="run `neurokube cluster up` first")
    broken = unhealthy(record)
    if broken:
        raise TemporaryError(f"the cluster in {layout.root} is broken ({', '.join(broken)} not running); "
                             "run `neurokube cluster down` and `up` again")
    return record
