"""One night: ingest -> dataset -> train -> evaluate -> register -> promote (or say why not).

Also the Kubernetes Job's entry point (``python -m pipelines.nightly --store URL --tracking-uri URI``).
No secret belongs on that command line (``kubectl get pod -o yaml`` and ``ps`` show it): a
``minio://`` / ``minios://`` store URL without ``ACCESS:SECRET@`` takes its keys from
``NEUROKUBE_STORE_ACCESS_KEY`` / ``NEUROKUBE_STORE_SECRET_KEY`` and its CA bundle from
``NEUROKUBE_STORE_CA_BUNDLE`` (:func:`neurokube.adapters.objectstore.open_store`); MLflow reads its
own ``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` / ``MLFLOW_TRACKING_TOKEN`` and
``MLFLOW_TRACKING_SERVER_CERT_PATH`` (CA bundle of an ``https://`` tracking server).

Failure policy: MLflow or the object store unavailable -> :class:`TemporaryError` with the
endpoint in the message, raised before the alias is touched, so nothing is promoted. Corrupt or
foreign objects are quarantined by :mod:`pipelines.ingest` and counted in the run's metrics.
"""

from __future__ import annotations

import argparse
import calendar
import dataclasses
import json
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from neurokube.adapters.objectstore import ObjectStore, open_store
from neurokube.adapters.plots import plot_replay
from neurokube.learning.rollout import RolloutEstimate
from neurokube.logs import event
from neurokube.registry import Registry
from neurokube.trace.assemble import ArrivalSettings
from neurokube.trace.model import Trace
from neurokube.trace.synth import SynthSettings, synth_trace
from pipelines import attribute, dataset, evaluate, ingest, register, report, train
from pipelines.settings import DAY_S, NightlySettings, WorldSettings

log = logging.getLogger("neurokube.pipelines.nightly")


@dataclass(frozen=True)
class NightResult:
    day: str
    run_id: str
    version: str
    promoted: bool
    reason: str
    champion: str | None
    """The alias after the night."""
    quarantined: int
    metrics: dict[str, float]


def eval_trace(world: WorldSettings) -> Trace:
    """The held-out trace: same cluster shape as the world's, arrivals from a seed no day uses."""
    return synth_trace("held-out", SynthSettings(
        arrivals=ArrivalSettings(hours=world.eval_hours, target_load=world.target_load, warmup_hours=3,
                                 seed=world.seed + 100_003), nodes=world.nodes, workloads=world.workloads))


def lookback(day: str, days: int) -> list[str]:
    end = calendar.timegm(time.strptime(day, "%Y-%m-%d"))
    return [time.strftime("%Y-%m-%d", time.gmtime(end - i * DAY_S)) for i in reversed(range(days))]


def run_night(store: ObjectStore, registry: Registry, day: str, held_out: Trace, work_dir: Path,
              settings: NightlySettings = NightlySettings(), snapshot_step_s: int = 60) -> NightResult:
    s = settings
    started = time.monotonic()
    registry.check()
    days = lookback(day, s.lookback_days)
    data = ingest.read(store, days)
    outcomes, attributed = attribute.outcomes(data.tables, s.attribution, snapshot_step_s)
    joined, stats = dataset.join(data["decisions"], outcomes, s.weights)
    per_day = _per_day(data["snapshots"], snapshot_step_s)
    served = registry.load(work_dir / "champion-cache", s.alias)
    champion = served[1] if served else None
    work = Path(tempfile.mkdtemp(prefix=f"night-{day}-", dir=work_dir))
    with registry.run(s.experiment, f"nightly-{day}") as run:
        run.params({"day": day, "lookback_days": s.lookback_days, "days": ",".join(days),
                    "model_name": s.model_name, "incumbent_version": served[0] if served else "default",
                    **{f"fit.{k}": v for k, v in dataclasses.asdict(s.fit).items()},
                    **{f"weights.{k}": v for k, v in s.weights.to_dict().items()},
                    **{f"promotion.{k}": v for k, v in dataclasses.asdict(s.promotion).items()},
                    "held_out_trace": held_out.name, "held_out_pods": len(held_out.pods),
                    "attribution.replace_simulated": s.attribution.replace_simulated})
        model = train.fit(joined, s.weights, s.fit, version=f"nightly-{day}-{run.run_id[:8]}", days=days)
        judged = evaluate.evaluate(model, champion, joined, data["candidates"], held_out, s.weights,
                                   seed=s.world.seed, ope_sample=s.ope_sample,
                                   logs=logged_days(data, days, s.rollout_days, snapshot_step_s))
        estimate = judged.rollout
        verdict = register.decide(judged.replay, s.promotion, estimate.metrics if estimate is not None else None)
        metrics = {**{f"data.{k}": v for k, v in stats.items()}, **{f"data.{k}": v for k, v in attributed.items()},
                   "data.quarantined": len(data.quarantined),
                   "data.objects": data.objects, "data.snapshot_rows": len(data["snapshots"]),
                   **{f"ope.{k}": v for k, v in judged.ope.items()},
                   **{f"replay.{p}.{k}": v for p, m in judged.replay.items() for k, v in m.items()
                      if k in ("cost", "contention_core_s", "node_hours", "pending_pod_s", "hot_node_fraction")},
                   **rollout_metrics(estimate),
                   "promotion.gain": verdict.gain, "promotion.promoted": float(verdict.promote)}
        if verdict.estimated_gain is not None:
            metrics["promotion.estimated_gain"] = verdict.estimated_gain
        run.metrics(metrics)
        for step, row in enumerate(per_day):
            run.metrics({"day.observed_contention_core_s": row["contention_core_s"],
                         "day.observed_node_hours": row["node_hours"]}, step=step)
        run.model(model)
        (work / "evaluation.json").write_text(json.dumps(
            {"replay": judged.replay, "ope": judged.ope,
             "rollout": estimate.to_dict() if estimate is not None else None, "rollout_note": judged.rollout_note,
             "verdict": dataclasses.asdict(verdict), "dataset": stats, "quarantined": data.quarantined},
            indent=2, default=str) + "\n")
        run.artifact(work / "evaluation.json")
        (work / "evaluation.md").write_text(report.estimate_table(
            judged.replay, estimate.to_dict() if estimate is not None else None, verdict.incumbent, judged.ope,
            judged.rollout_note) + "\n")
        run.artifact(work / "evaluation.md")
        if per_day:
            run.artifact(report.plot_days(work / "learning_curve.png", per_day, f"observed per day, up to {day}"),
                         "plots")
        run.artifact(report.plot_importance(work / "feature_importance.png", model), "plots")
        run.artifact(plot_replay(work / "replay_comparison.png", judged.results,
                                 f"held-out replay ({held_out.name}): candidate vs {verdict.incumbent}"), "plots")
        version = registry.register(run.run_id)
        registry.tag_version(version, {"promoted": str(verdict.promote).lower(), "reason": verdict.reason,
                                       "incumbent": served[0] if served else "default", "day": day})
        run.tags({"neurokube.version": version, "neurokube.promoted": str(verdict.promote).lower(),
                  "neurokube.reason": verdict.reason})
        if verdict.promote:
            registry.set_alias(version, s.alias)
    champion_after = version if verdict.promote else (served[0] if served else None)
    event(log, "night done", day=day, version=version, promoted=verdict.promote, reason=verdict.reason,
          champion=champion_after, quarantined=len(data.quarantined), seconds=round(time.monotonic() - started, 1))
    return NightResult(day=day, run_id=run.run_id, version=version, promoted=verdict.promote, reason=verdict.reason,
                       champion=champion_after, quarantined=len(data.quarantined), metrics=metrics)


def logged_days(data: ingest.Ingested, days: list[str], rollout_days: int, step_s: int) -> evaluate.LoggedDays | None:
    """The last ``rollout_days`` of ``days`` as the rollout estimate reads them; None when 0."""
    if rollout_days <= 0:
        return None
    start = calendar.timegm(time.strptime(days[-rollout_days], "%Y-%m-%d"))
    end = calendar.timegm(time.strptime(days[-1], "%Y-%m-%d")) + DAY_S
    return evaluate.LoggedDays(decisions=data["decisions"], candidates=data["candidates"],
                               snapshots=data["snapshots"], pod_usage=data["pod_usage"], start_s=start, end_s=end,
                               step_s=step_s)


ROLLOUT_KEYS = ("cost", "contention_core_s", "node_hours", "pending_pod_s")


def rollout_metrics(estimate: RolloutEstimate | None) -> dict[str, float]:
    """MLflow metrics of the rollout estimate: ``rollout.<policy>.<metric>``, the reconstruction
    check ``rollout.logged.*`` and size ``rollout.pods`` / ``rollout.hours``; ``rollout.available``."""
    if estimate is None:
        return {"rollout.available": 0.0}
    return {"rollout.available": 1.0,
            **{f"rollout.{p}.{k}": v for p, m in estimate.metrics.items() for k, v in m.items() if k in ROLLOUT_KEYS},
            **{f"rollout.logged.{k}": v for k, v in estimate.logged.items()},
            "rollout.pods": estimate.reconstruction["pods"], "rollout.hours": estimate.reconstruction["hours"]}


def _per_day(snapshots, step_s: int) -> list[dict]:
    if snapshots.empty:
        return []
    dates = snapshots["ts"].astype("int64").map(lambda t: time.strftime("%Y-%m-%d", time.gmtime(t)))
    rows = []
    for date, part in snapshots.groupby(dates, sort=True):
        seen = dataset.observed(part, step_s)
        rows.append({"date": date, "served": "", "contention_core_s": seen["observed_contention_core_s"],
                     "node_hours": seen["observed_node_hours"]})
    return rows


def day_arg(text: str) -> str:
    """An argparse type: a UTC day ``YYYY-MM-DD``, or ``yesterday`` (the day before now, UTC)."""
    if text == "yesterday":
        return time.strftime("%Y-%m-%d", time.gmtime(time.time() - DAY_S))
    try:
        return time.strftime("%Y-%m-%d", time.strptime(text, "%Y-%m-%d"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day (YYYY-MM-DD or yesterday)") from None


def main(argv: list[str] | None = None) -> int:
    """The Job: one night for ``--day`` (default: yesterday, UTC)."""
    from neurokube.errors import PermanentError, TemporaryError
    from neurokube.logs import configure_logging

    p = argparse.ArgumentParser(prog="python -m pipelines.nightly", description=__doc__.splitlines()[0])
    p.add_argument("--store", required=True,
                   help="object store: path, file://, or minio[s]://host:port/bucket[?ca=CA.pem] with the keys in "
                        "$NEUROKUBE_STORE_ACCESS_KEY and $NEUROKUBE_STORE_SECRET_KEY (minios:// = TLS, verified)")
    p.add_argument("--tracking-uri", required=True,
                   help="MLflow server URL (https://...; CA bundle in $MLFLOW_TRACKING_SERVER_CERT_PATH) "
                        "or sqlite:///path")
    p.add_argument("--artifact-root", type=Path, help="artifact directory for an embedded (sqlite) MLflow")
    p.add_argument("--day", type=day_arg, default="yesterday", help="the night, UTC: YYYY-MM-DD or yesterday (default)")
    p.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "neurokube-nightly")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model-name", default=NightlySettings.model_name,
                   help=f"registered model to train, register and promote (default {NightlySettings.model_name})")
    args = p.parse_args(argv)
    configure_logging()
    settings = NightlySettings(world=WorldSettings(seed=args.seed), model_name=args.model_name)
    try:
        args.work_dir.mkdir(parents=True, exist_ok=True)
        result = run_night(open_store(args.store, os.environ), Registry(args.tracking_uri, settings.model_name,
                                                            args.artifact_root), args.day,
                           eval_trace(settings.world), args.work_dir, settings)
    except PermanentError as exc:
        print(f"nightly: error: {exc}", file=sys.stderr)
        return 2
    except TemporaryError as exc:
        print(f"nightly: unavailable: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(dataclasses.asdict(result), default=str))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
