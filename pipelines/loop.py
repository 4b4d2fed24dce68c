"""N simulated days and nights: the job behind ``neurokube nightly``.

Day ``d`` (UTC dates ending yesterday, so every window is in the past, as the Prometheus backfill
requires) is replayed with the champion of the night before; its decision logs and outcomes go to
the store, its usage to the metrics path (the stack's Prometheus through the emulator's
OpenMetrics backfill, or the simulator directly), the snapshot step writes that day's partitions,
and the night trains, evaluates, registers and maybe promotes.

Like for like: each day's pods are also replayed under kube-scheduler's default scoring (no
exploration, nothing logged), and the table and the learning curve show the served policy's ratio
to it. The days' workloads differ (one day can simply be lighter than another), so a gain is read
from the ratios, not from the absolute numbers.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from neurokube.adapters.objectstore import LocalDirStore, ObjectStore
from neurokube.logs import event
from neurokube.policies.registry import make_policy
from neurokube.registry import Registry
from neurokube.sim import SimConfig, replay
from neurokube.trace.assemble import ArrivalSettings
from neurokube.trace.model import Trace
from neurokube.trace.synth import SynthSettings, synth_trace
from pipelines import forecasts, keys, nightly, report, snapshot
from pipelines.settings import DAY_S, NightlySettings, SnapshotSettings
from pipelines.simulate import day_trace, days_in, run_day
from pipelines.spool import Spool
from pipelines.usage import SimulatorUsage, UsageReader

log = logging.getLogger("neurokube.pipelines.loop")


@dataclass(frozen=True)
class LoopSettings:
    days: int
    out: Path
    trace: Trace | None = None
    """The world; None: a synthetic trace of ``days`` days (``nightly.world``)."""
    nightly: NightlySettings = field(default_factory=NightlySettings)
    snapshot: SnapshotSettings = field(default_factory=SnapshotSettings)
    now_s: float | None = None


@dataclass
class Services:
    """Where a day's data goes and where the nights read it. :func:`local_services` keeps all of it
    under ``out``; ``neurokube nightly --stack`` passes the running local stack's (cli/nightly_cmd.py:
    this package never imports the local platform)."""

    store: ObjectStore
    registry: Registry
    reader: Callable[[object], UsageReader]
    backfill: Callable[[object, int, int], None] | None
    where: dict[str, str]


def local_services(s: LoopSettings) -> Services:
    """Everything under ``s.out``: a directory store, an embedded MLflow, the simulator's usage."""
    tracking = f"sqlite:///{(s.out / 'mlflow.db').resolve()}"
    return Services(store=LocalDirStore(s.out / "store"),
                    registry=Registry(tracking, s.nightly.model_name, s.out / "mlartifacts"),
                    reader=lambda usage: SimulatorUsage(usage), backfill=None,
                    where={"store": str(s.out / "store"), "mlflow": tracking, "metrics": "simulator"})


def world(s: LoopSettings) -> Trace:
    if s.trace is not None:
        return s.trace
    w = s.nightly.world
    return synth_trace("world", SynthSettings(
        arrivals=ArrivalSettings(hours=24 * s.days, target_load=w.target_load, warmup_hours=3, seed=w.seed),
        nodes=w.nodes, workloads=w.workloads))


def put_table(spool: Spool, store: ObjectStore, key: str, frame: pd.DataFrame) -> None:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    spool.put(store, key, buffer.getvalue())


BASELINE = "default"
"""The like-for-like reference each day is also replayed with: kube-scheduler's default scoring."""


def baseline_day(day: Trace, seed: int) -> dict[str, float]:
    """The day's pods under :data:`BASELINE`: contention, node-hours and pending time."""
    metrics = replay(day, make_policy(BASELINE, trace=day, seed=seed), SimConfig()).metrics
    return {k: float(metrics[k]) for k in ("contention_core_s", "node_hours", "pending_pod_s")}


def ratio(value: float, reference: float) -> float | None:
    """``value / reference``; 1.0 when both are 0, None when only the reference is (no ratio)."""
    if reference == 0:
        return 1.0 if value == 0 else None
    return value / reference


def run(s: LoopSettings, say: Callable[[str], None] = lambda _m: None,
        services: Callable[[LoopSettings], Services] = local_services) -> list[dict]:
    s.out.mkdir(parents=True, exist_ok=True)
    svc = services(s)
    svc.registry.check()
    trace = world(s)
    if days_in(trace) < s.days:
        from neurokube.errors import InputError

        raise InputError(f"the trace has {days_in(trace)} days of arrivals, {s.days} asked", trace.name)
    held_out = nightly.eval_trace(s.nightly.world)
    spool = Spool(s.out / "spool")
    first = (int((s.now_s or time.time()) // DAY_S) - s.days) * DAY_S
    rows: list[dict] = []
    cache = s.out / "champion-cache"
    history = []  # per-day series for the forecast models (pipelines.forecasts)
    for d in range(s.days):
        start = first + d * DAY_S
        date = keys.day_of(start)
        served = svc.registry.load(cache, s.nightly.alias)
        serving = f"v{served[0]}" if served else "no model (default scoring)"
        say(f"day {d + 1}/{s.days} ({date}): replaying with {serving}")
        t0 = time.monotonic()
        pods = day_trace(trace, d)
        day = run_day(pods, served[1] if served else None, start_epoch_s=start,
                      epsilon=s.nightly.world.epsilon, seed=s.nightly.world.seed + d, weights=s.nightly.weights)
        reference = baseline_day(pods, s.nightly.world.seed + d)
        spool.deliver(svc.store)
        put_table(spool, svc.store, keys.sim_key("decisions", "decisions", date), day.decisions)
        put_table(spool, svc.store, keys.sim_key("decisions", "candidates", date), day.candidates)
        put_table(spool, svc.store, keys.sim_key("outcomes", "outcomes", date), day.outcomes)
        if svc.backfill is not None:
            say(f"  backfilling {date} into Prometheus")
            svc.backfill(day.usage, start, start + DAY_S)
        snap = snapshot.run(svc.reader(day.usage), svc.store, start, start + DAY_S, s.snapshot, s.out / "spool")
        say(f"  night of {date}: snapshot {snap.rows} rows in {len(snap.partitions)} partitions; training")
        night = nightly.run_night(svc.store, svc.registry, date, held_out, s.out, s.nightly, s.snapshot.step_s)
        history.append(forecasts.day_data(day.usage.trace, day.usage.node_of, day.usage.bind_step, day.usage.step))
        forecast = forecasts.run(svc.registry, history, date)
        row = {"day": d + 1, "date": date, "served": f"v{served[0]}" if served else "default",
               "contention_core_s": day.metrics["contention_core_s"], "node_hours": day.metrics["node_hours"],
               "pending_pod_s": day.metrics["pending_pod_s"], "cost": day.metrics["cost"],
               **{f"{BASELINE}_{k}": v for k, v in reference.items()},
               **{f"{k}_ratio": ratio(day.metrics[k], v) for k, v in reference.items()},
               "fallback_decisions": day.fallbacks, "decisions": len(day.decisions),
               "snapshot_rows": snap.rows, "sim_cpu_core_s": day.usage.day_cpu_core_s,
               "snapshot_cpu_core_s": snap.cpu_core_s, "new_version": f"v{night.version}",
               "promoted": night.promoted,
               "reason": night.reason, "champion": f"v{night.champion}" if night.champion else "none",
               "quarantined": night.quarantined, **(forecast or {}),
               "seconds": round(time.monotonic() - t0, 1)}
        event(log, "day done", **row)
        rows.append(row)
        say(f"  v{night.version} {'PROMOTED' if night.promoted else 'kept out'}: {night.reason}")
    (s.out / "days.json").write_text(json.dumps({"days": rows, "where": svc.where}, indent=2) + "\n")
    report.plot_days(s.out / "learning_curve.png", rows, "the nightly loop: metric per simulated day",
                     baseline=BASELINE)
    return rows


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def table(rows: list[dict]) -> str:
    """The day table; ``/default`` columns are the served policy's ratio to :data:`BASELINE` on the same pods."""
    head = (f"{'day':>3}  {'date':10}  {'served':>8}  {'contention core-s':>17}  {'/default':>8}  {'node-hours':>10}  "
            f"{'/default':>8}  {'pending pod-s':>13}  {'/default':>8}  {'fallbacks':>9}  {'new':>5}  promoted  "
            "champion  forecast (RMSE vs persistence)")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['day']:>3}  {r['date']:10}  {r['served']:>8}  {r['contention_core_s']:>17,.0f}  "
                     f"{_x(r.get('contention_core_s_ratio')):>8}  {r['node_hours']:>10,.1f}  "
                     f"{_x(r.get('node_hours_ratio')):>8}  {r['pending_pod_s']:>13,.0f}  "
                     f"{_x(r.get('pending_pod_s_ratio')):>8}  {r['fallback_decisions']:>9,d}  "
                     f"{r['new_version']:>5}  {'yes' if r['promoted'] else 'no':>8}  {r['champion']:>8}  "
                     + (f"{r['forecast_version']} {r['rmse_15m_vs_persistence']:.2f}x"
                        f"{' promoted' if r['forecast_promoted'] else ''}"
                        if r.get("forecast_version") and r.get("rmse_15m_vs_persistence") is not None else "-"))
    return "\n".join(lines)
