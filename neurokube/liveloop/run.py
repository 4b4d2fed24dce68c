"""``neurokube loop live``: days on the local control plane and stack, nights on what they left.

One run, all of it started here and taken down afterwards (state under ``state_dir``):

1. the data stack (MinIO, Prometheus scraping every ``scrape_s``, MLflow, the metrics emulator
   serving the usage file this module rewrites) and a cluster of the trace's first ``nodes`` nodes
   (KWOK), with the binder and sweeper as functions-framework processes: decision records to
   MinIO, the champion from MLflow (none on day 1: default scoring, exploring), node metrics from
   the stack's Prometheus;
2. each day, the next slice of the trace, time-compressed, is driven through the apiserver twice,
   once with ``default-scheduler`` and once with ``neurokube`` (:mod:`.driver`); a run lasts the
   slice plus as long again for the pods still running (then they are deleted), the same for both;
   its outcomes are read back from Prometheus (:mod:`.outcomes`);
3. each night: the usage snapshot of the day's hours goes to MinIO (:mod:`pipelines.snapshot`, the
   PingSource-triggered function's code path), and :func:`pipelines.nightly.run_night` trains on
   the live records and snapshots in MinIO only (outcomes attributed from the snapshots),
   registers, and promotes by the usual rule; the binder picks the champion up on its own poll.

The JSON (``days``: per day the model that served NeuroKube, and both schedulers' contention,
node-hours and pending time, in trace seconds) is what docs/BENCHMARKS.md records.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path

from neurokube.adapters.objectstore import open_store
from neurokube.cluster import control, livekit, rbac, workload
from neurokube.cluster.broker import LocalBroker
from neurokube.cluster.functions import BINDER_THREADS, FunctionsOptions
from neurokube.cluster.session import RunningCluster
from neurokube.emulator.filesource import write_snapshot
from neurokube.errors import InputError, TemporaryError
from neurokube.liveloop import driver, outcomes, plan
from neurokube.liveloop.usage import LiveUsage, Node
from neurokube.logs import event
from neurokube.registry import Registry
from neurokube.stack import control as stack_control
from neurokube.stack.settings import StackSettings
from neurokube.trace.model import Trace
from pipelines import nightly, snapshot
from pipelines.settings import HOUR_S, NightlySettings, SnapshotSettings
from pipelines.usage import PrometheusUsage

log = logging.getLogger("neurokube.liveloop")
NAMESPACE = "default"
SCHEDULERS = (("kube_scheduler", "default-scheduler", "ks"), ("neurokube", "neurokube", "nk"))


@dataclass(frozen=True)
class LiveLoopSettings:
    state_dir: Path
    trace: Trace
    days: int = 3
    nodes: int = 30
    slice_hours: float = 1.0
    """Trace hours per day."""
    speed: float = 60.0
    """Trace seconds per wall second."""
    scrape_s: float = 1.0
    epsilon: float = 0.1
    binder_threads: int = BINDER_THREADS
    """Pod events the binder places at a time (gunicorn threads and the broker's deliveries), as deployed."""
    nightly: NightlySettings = field(default_factory=NightlySettings)

    def check(self) -> None:
        if self.days < 1 or self.nodes < 1:
            raise InputError("--days and --nodes must be positive", "loop live")
        if len(self.trace.nodes) < self.nodes:
            raise InputError(f"the trace has {len(self.trace.nodes)} nodes, --nodes asks for {self.nodes}",
                             self.trace.name)
        have = plan.slices_in(self.trace, self.slice_hours)
        if have < self.days:
            raise InputError(f"the trace has {have} slices of {self.slice_hours:g} h, --days asks for {self.days}",
                             self.trace.name, "a longer trace, shorter --slice-hours or fewer --days")

    @property
    def sweep_every_s(self) -> float:
        """The sweeper's PingSource, every trace minute, compressed. A pod that did not fit on its create
        event is placed again when the binder's watch sees room freed (neurokube/live/retry.py), as
        kube-scheduler retries on the cluster's events; the sweeper is the backstop for the rest."""
        return max(0.5, 60.0 / self.speed)

    @property
    def run_s(self) -> float:
        """Wall seconds of one run: the slice, then as long again for the pods still running."""
        return 2 * self.slice_hours * HOUR_S / self.speed


def nodes_of(trace: Trace, count: int) -> list[Node]:
    n = trace.nodes
    return [Node(str(n.name[i]), int(n.cpu_milli[i]), int(n.memory_mib[i])) for i in range(count)]


def run(s: LiveLoopSettings, say: Callable[[str], None] = lambda _m: None) -> dict:
    s.check()
    s.state_dir.mkdir(parents=True, exist_ok=True)
    nodes = nodes_of(s.trace, s.nodes)
    usage = LiveUsage(s.trace, nodes, s.speed, NAMESPACE)
    source = s.state_dir / "usage.json"
    write_snapshot(source, usage.snapshot(time.time()))
    days: list[dict] = []
    with ExitStack() as stack:
        say(f"starting the data stack in {s.state_dir / 'stack'} (Prometheus scrapes every {s.scrape_s:g} s)")
        stack_dir = s.state_dir / "stack"
        stack_control.up(StackSettings(state_dir=stack_dir, scrape_interval_s=s.scrape_s, emulator_source=source))
        stack.callback(stack_control.down, stack_dir)
        status = stack_control.status(stack_dir)
        prom, mlflow_url = status["prometheus"]["url"], status["mlflow"]["url"]
        store = open_store(status)
        registry = Registry(mlflow_url, s.nightly.model_name)
        say(f"starting a cluster of {s.nodes} KWOK nodes in {s.state_dir / 'cluster'}")
        cluster_dir = s.state_dir / "cluster"
        up = control.up(control.UpOptions(state_dir=cluster_dir, start_adapter=False, nodes=[
            workload.NodeSpec(n.name, n.cpu_milli, n.memory_mib) for n in nodes]))
        stack.callback(control.down, cluster_dir)
        cluster = RunningCluster(up.record, control.admin_client(up.record))
        minio = status["minio"]
        env = {"NEUROKUBE_MLFLOW_URI": mlflow_url, "NEUROKUBE_MODEL_NAME": s.nightly.model_name,
               "NEUROKUBE_CHAMPION_POLL_S": "3", "NEUROKUBE_EPSILON": str(s.epsilon),
               "NEUROKUBE_DECISION_LOG": f"minio://{minio['endpoint'].split('://')[-1]}/{minio['bucket']}",
               "NEUROKUBE_STORE_ACCESS_KEY": minio["access_key"], "NEUROKUBE_STORE_SECRET_KEY": minio["secret_key"],
               "NEUROKUBE_DECISION_FLUSH_S": "2", "NEUROKUBE_DECISION_SPOOL_DIR": str(s.state_dir / "spool"),
               "NEUROKUBE_SWEEP_MIN_AGE_S": f"{s.sweep_every_s:g}"}
        logs = s.state_dir / "logs"
        logs.mkdir(exist_ok=True)
        rbac.grant_adapter(cluster.client)
        live = stack.enter_context(livekit.live_functions(
            cluster, FunctionsOptions(prometheus_url=prom, threads=s.binder_threads, env=env), logs, adapter_=False))
        broker = LocalBroker(live.binder.url + "/", concurrency=s.binder_threads,
                             authorization=live.binder.auth_headers().get("Authorization"))
        stack.callback(broker.close)
        live.restart_adapter(sink=broker.url)
        stack.enter_context(livekit.sweep_timer(live.sweeper, s.sweep_every_s))
        owners = driver.ensure_owners(cluster.client, NAMESPACE, {
            plan.owner_name(str(ns), str(w)) for ns, w in zip(s.trace.pods.namespace, s.trace.pods.workload,
                                                               strict=True)})
        held_out = nightly.eval_trace(s.nightly.world)
        work = s.state_dir / "nights"
        work.mkdir(exist_ok=True)
        for d in range(s.days):
            serving = registry.load(work / "champion-cache", s.nightly.alias)
            row: dict = {"day": d + 1, "model_version": serving[0] if serving else None, "trained_on": "live"}
            say(f"day {d + 1}/{s.days}: NeuroKube serves {'v' + serving[0] if serving else 'default scoring'}")
            windows = []
            for key, scheduler, prefix in SCHEDULERS:
                run_id = f"{prefix}{d + 1}"
                pods = plan.slice_pods(s.trace, d, s.slice_hours, s.speed, run_id)
                say(f"  {key}: {len(pods)} pods over {s.run_s:.0f} s")
                placers_before = _placer_counts(live) if key == "neurokube" else None
                result = driver.drive(cluster.client, pods, namespace=NAMESPACE, scheduler_name=scheduler, run=run_id,
                                      usage=usage, owners=owners, snapshot_path=source, timeout_s=s.run_s)
                driver.delete_run(cluster.client, NAMESPACE, run_id)
                time.sleep(3 * s.scrape_s)  # the last scrape of the run is in
                row[key] = measure(prom, s, result)
                placers_after = _placer_counts(live) if placers_before is not None else None
                if placers_before is not None and placers_after is not None:
                    row[key]["bound_by"] = outcomes.bound_by(placers_before, placers_after)
                windows.append((result.started_s, result.ended_s))
                say(f"    {row[key]}")
            days.append(row)
            _wait_shipped((live.binder, live.sweeper), timeout_s=20.0)
            say(f"night {d + 1}: snapshot and training on the live records")
            night = _night(s, store, registry, prom, windows, held_out, work)
            row.update(night)
            if night["new_version"] is None:
                say(f"    no model tonight: {night['reason']}")
            else:
                say(f"    v{night['new_version']} {'PROMOTED' if night['promoted'] else 'kept out'}: "
                    f"{night['reason']}")
            if night["promoted"] and d + 1 < s.days:
                _wait_champion(live.binder.url, s.nightly.model_name, night["champion"], timeout_s=60)
    doc = {"days": days, "settings": {"nodes": s.nodes, "slice_hours": s.slice_hours, "speed": s.speed,
                                      "trace": s.trace.name, "epsilon": s.epsilon, "scrape_s": s.scrape_s,
                                      "binder_threads": s.binder_threads}}
    event(log, "live loop done", days=len(days))
    return doc


def measure(prom: str, s: LiveLoopSettings, result: driver.RunResult) -> dict:
    start, end = math.floor(result.started_s), math.ceil(result.ended_s) + 1
    frame = PrometheusUsage(prom, outcomes.queries("", s.scrape_s)).read(start, end, max(1, int(s.scrape_s)))
    found = outcomes.from_usage(frame, max(1, int(s.scrape_s)), s.speed)
    found["pending_pod_s"] = outcomes.pending(result.created, result.bound, result.ended_s, s.speed)
    found.update(outcomes.waits(result.created, result.bound, result.ended_s, s.speed))
    found["pods"], found["unbound"] = len(result.created), result.unbound
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in found.items()}


def _night(s: LiveLoopSettings, store, registry: Registry, prom: str, windows: list[tuple[float, float]],
           held_out: Trace, work: Path) -> dict:
    first = int(min(a for a, _ in windows) // HOUR_S * HOUR_S)
    last = int(math.ceil(max(b for _, b in windows) / HOUR_S) * HOUR_S)
    step = max(1, int(s.scrape_s))
    settings = replace(SnapshotSettings(), step_s=step, queries=outcomes.queries("", s.scrape_s))
    snap = snapshot.run(PrometheusUsage(prom, settings.queries), store, first, last, settings, work / "spool")
    day = time.strftime("%Y-%m-%d", time.gmtime(last - 1))
    try:
        result = nightly.run_night(store, registry, day, held_out, work, s.nightly, step)
    except InputError as exc:  # too few decisions with outcomes yet: no model tonight, the loop goes on
        event(log, "night without a model", level=logging.WARNING, reason=str(exc))
        return {"snapshot_rows": snap.rows, "new_version": None, "promoted": False, "reason": str(exc),
                "champion": None, "decisions": None}
    finally:
        shutil.rmtree(work / "champion-cache", ignore_errors=True)
    return {"snapshot_rows": snap.rows, "new_version": result.version, "promoted": result.promoted,
            "reason": result.reason, "champion": result.champion,
            "decisions": result.metrics.get("data.decisions"),
            "with_outcome": result.metrics.get("data.with_outcome")}


def _placer_counts(live: livekit.LiveFunctions) -> dict[str, float] | None:
    """The functions' own counts of the pods they bound so far (for :func:`outcomes.bound_by`), or
    None when a function does not answer (the day then has no ``bound_by``; the run goes on)."""
    counts: dict[str, float] = {}
    for key, function, name in (("binder", live.binder, "neurokube_decisions_total"),
                                ("release_retry", live.binder, "neurokube_release_retries_total"),
                                ("sweeper", live.sweeper, "neurokube_decisions_total")):
        try:
            counts[key] = function.counter(name, outcome="bound")
        except OSError as exc:
            event(log, "a function's counters could not be read", logging.WARNING, function=function.name,
                  error=str(exc))
            return None
    return counts


def _wait_shipped(placers: tuple[livekit.Function, ...], timeout_s: float) -> None:
    """Until the decision spools of the functions that place pods are empty (their records are in
    the store, which the night reads next), at most ``timeout_s``; then a warning, and the night
    goes on with what has arrived."""
    deadline = time.monotonic() + timeout_s
    while True:
        pending = []
        for function in placers:
            try:
                if function.counter("neurokube_decision_spool_segments") > 0:
                    pending.append(function.name)
            except OSError:
                pending.append(function.name)
        if not pending:
            return
        if time.monotonic() >= deadline:
            event(log, "decision records not all shipped before the night", logging.WARNING, functions=pending,
                  waited_s=timeout_s)
            return
        time.sleep(0.5)


def _wait_champion(binder_url: str, model_name: str, version: str | None, timeout_s: float) -> None:
    """Until the binder's /metrics says it serves registry version ``version`` (its poll picks the alias up:
    ``neurokube_model_info{directory="models:/<name>/<version>"}``)."""
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(binder_url + "/metrics", timeout=5) as response:
                text = response.read().decode()
        except OSError:
            text = ""
        if version and f'directory="models:/{model_name}/{version}"' in text:
            return
        time.sleep(1.0)
    raise TemporaryError(f"the binder did not load champion v{version} within {timeout_s:.0f} s")


def write(doc: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")


def table(doc: dict) -> str:
    """Per day: both schedulers' outcomes and NeuroKube's ratio to kube-scheduler."""
    head = (f"{'day':>3}  {'model':>7}  {'scheduler':14}  {'contention core-s':>17}  {'node-hours':>10}  "
            f"{'pending pod-s':>13}  {'unbound':>7}")
    lines = [head, "-" * len(head)]
    for row in doc["days"]:
        for key, label in (("kube_scheduler", "kube-scheduler"), ("neurokube", "NeuroKube")):
            r = row[key]
            model = ("v" + row["model_version"] if row["model_version"] else "default") if key == "neurokube" else ""
            lines.append(f"{row['day']:>3}  {model:>7}  {label:14}  {r['contention_core_s']:>17,.0f}  "
                         f"{r['node_hours']:>10,.2f}  {r['pending_pod_s']:>13,.0f}  {r['unbound']:>7}")
        ks, nk = row["kube_scheduler"], row["neurokube"]
        ratio = ", ".join(f"{k} {nk[k] / ks[k]:.2f}x" for k in ("contention_core_s", "node_hours", "pending_pod_s")
                          if ks[k])
        lines.append(f"{'':>3}  {'':>7}  {'ratio':14}  {ratio}")
    return "\n".join(lines)
