"""Nightly step: the forecast and right-sizing models (neurokube.forecast).

Each night they are trained on every earlier simulated day and evaluated on the newest one, which
they did not train on, against the baselines of docs/FORECASTS.md (persistence for forecasts, the
VPA-style recommender for right-sizing). They are registered as ``neurokube-forecast`` in the same
MLflow, as LightGBM text and a manifest (no pickle). The ``champion`` alias moves to the new
version only when its 15-minute CPU forecast beats persistence on that day; otherwise the version
is tagged with the reason and the alias stays.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neurokube.errors import PermanentError
from neurokube.forecast.evaluation import TraceData, evaluate, json_report, prepare, train
from neurokube.logs import event
from neurokube.registry import Registry
from neurokube.trace.model import Trace

log = logging.getLogger("neurokube.pipelines.forecasts")


@dataclass(frozen=True)
class ForecastStepSettings:
    model_name: str = "neurokube-forecast"
    experiment: str = "neurokube-forecast"
    alias: str = "champion"
    min_days: int = 2
    """Days needed before the first fit: at least one to train on and one to evaluate on."""


def day_data(trace: Trace, node_of: np.ndarray, bind_step: np.ndarray, step_s: int) -> TraceData:
    """The series of one replayed day (``bind_step`` -1 for pods never bound)."""
    bind_s = np.where(bind_step >= 0, bind_step * float(step_s), np.nan)
    return prepare(trace, node_of, bind_s)


def run(registry: Registry, history: list[TraceData], date: str,
        settings: ForecastStepSettings = ForecastStepSettings()) -> dict | None:
    """Train on ``history[:-1]``, evaluate on ``history[-1]``, register; None before ``min_days``."""
    if len(history) < settings.min_days:
        return None
    try:
        recommender = train(history[:-1])
        report = json_report(evaluate(recommender, history[-1]))
    except PermanentError as exc:  # e.g. no node ever ran hot: nothing to learn warnings from yet
        event(log, "forecast models not trained tonight", level=logging.WARNING, day=date, reason=str(exc))
        return {"forecast_version": None, "forecast_promoted": False, "forecast_reason": f"not trained: {exc}"}
    fc, rs, bn = report["forecast"], report["rightsizing"], report["bottleneck"]
    beats = fc["rmse_15m"] is not None and fc["rmse_15m"] < fc["persistence_rmse_15m"]
    reason = (f"15-min CPU RMSE {fc['rmse_15m']:.3f} vs persistence {fc['persistence_rmse_15m']:.3f}"
              if fc["rmse_15m"] is not None else "no forecastable series on the evaluation day")
    models = registry.for_model(settings.model_name)
    with models.run(settings.experiment, f"forecast-{date}") as mlrun:
        mlrun.params({"day": date, "train_days": len(history) - 1, "evaluated_on": history[-1].trace.name})
        mlrun.metrics({f"{section}.{k}": float(v) for section in ("forecast", "rightsizing", "bottleneck")
                       for k, v in report[section].items() if v is not None})
        with tempfile.TemporaryDirectory() as tmp:
            for name, text in recommender.to_texts().items():
                (Path(tmp) / name).write_text(text)
            mlrun.files(Path(tmp))
    version = models.register(mlrun.run_id)
    models.tag_version(version, {"promoted": str(beats).lower(), "reason": reason, "day": date})
    if beats:
        models.set_alias(version, settings.alias)
    result = {"forecast_version": f"v{version}", "forecast_promoted": beats, "forecast_reason": reason,
              "rmse_15m_vs_persistence": (fc["rmse_15m"] / fc["persistence_rmse_15m"])
              if beats or fc["rmse_15m"] is not None else None,
              "slack_core_h": rs["slack_core_h"], "vpa_slack_core_h": rs["vpa_slack_core_h"],
              "bottleneck_precision": bn["precision"], "bottleneck_recall": bn["recall"]}
    event(log, "forecast models registered", day=date, **result)
    return result
