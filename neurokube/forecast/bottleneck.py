"""Bottleneck warnings: the probability that a node's CPU use passes a threshold soon.

At each decision time (every ``decision_steps`` simulator steps) and node, "now" is the start of
step ``k + 1``: steps ``<= k`` are known (a step's usage is known once it is over). The label is
1 when CPU use / allocatable exceeds ``threshold`` (0.9) in any of the next ``lead_steps`` steps
(15 minutes). Features come from steps ``<= k`` only: current use, trailing mean/max/std over
5/15/60 minutes, the 15-minute slope, the requested share and the time of day.

A LightGBM binary classifier gives the probability. The warning threshold on it is chosen on
training data only: out-of-fold predictions (each training trace predicted by a model fitted on
the others; in-sample with a single trace, or when leaving one out leaves no event to
learn) and the probability cut that maximises F1 there.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd

from neurokube.errors import InputError
from neurokube.forecast.series import NodeSeries, PodSamples

FEATURES = ("util", "requested", "slope15", "tod_sin", "tod_cos",
            "mean5", "max5", "std5", "mean15", "max15", "std15", "mean60", "max60", "std60")
FORECAST_FEATURES = ("forecast50", "forecast95")


@dataclass(frozen=True)
class BottleneckSettings:
    threshold: float = 0.9
    """CPU use / allocatable that counts as a bottleneck."""
    lead_steps: int = 15
    """Look-ahead in simulator steps (15 x 60 s = 15 minutes)."""
    decision_steps: int = 5
    """A decision (one sample per node) every this many steps (5 minutes)."""
    num_boost_round: int = 100
    learning_rate: float = 0.05
    num_leaves: int = 15
    min_data_in_leaf: int = 40
    use_forecasts: bool = True
    """Add the node's forecast use (its running pods' current use scaled by their workloads'
    15-minute q50 and q95 forecast growth, :func:`node_forecasts`) as two features."""
    seed: int = 0

    def feature_names(self) -> list[str]:
        return list(FEATURES) + (list(FORECAST_FEATURES) if self.use_forecasts else [])

    def __post_init__(self) -> None:
        if not 0 < self.threshold or self.lead_steps < 1 or self.decision_steps < 1:
            raise InputError("bad bottleneck settings", "bottleneck", f"{self}")


def node_forecasts(samples: PodSamples, node_of: np.ndarray, workload_of_pod: np.ndarray, level: np.ndarray,
                   forecast: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    """(bins, nodes) forecast CPU use / allocatable, made at the end of each bin.

    Each pod running in bin ``b`` contributes its own use in ``b`` times its workload's forecast
    growth ``forecast[w, b] / level[w, b]`` (both (W, B): the forecast made at ``b`` and the
    workload's per-pod mean in ``b``). Pods that will arrive are unknown and not counted.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        growth = np.where(level > 0, forecast / level, 1.0)
    growth = np.nan_to_num(growth, nan=1.0)
    w = workload_of_pod[samples.pod]
    bins, n_nodes = level.shape[1], len(capacity)
    cell = samples.bin * n_nodes + node_of[samples.pod]
    use = np.bincount(cell, weights=samples.cpu * growth[w, samples.bin], minlength=bins * n_nodes)
    return use[:bins * n_nodes].reshape(bins, n_nodes) / capacity[None, :]


def node_features(nodes: NodeSeries, settings: BottleneckSettings = BottleneckSettings(),
                  forecasts: tuple[np.ndarray, np.ndarray] | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(X (n, F), y (n,), now_util (n,))`` for every decision step and node with a full look-ahead.

    ``forecasts`` (q50, q95 from :func:`node_forecasts`, (bins, nodes)) are needed when
    ``settings.use_forecasts``; decision ``k`` reads bin ``(k + 1) // decision_steps - 1``, the
    bin that ends at ``k`` (so ``decision_steps x step`` must equal the bin length).
    """
    util = nodes.util
    steps, n_nodes = util.shape
    frame = pd.DataFrame(util)
    cols = {"util": util, "requested": nodes.requested}
    lag15 = np.full_like(util, np.nan)
    lag15[15:] = util[:-15]
    cols["slope15"] = (util - lag15) / 15
    tod = ((np.arange(steps) + 1) * nodes.step_s % 86400) / 86400 * 2 * np.pi
    cols["tod_sin"] = np.broadcast_to(np.sin(tod)[:, None], util.shape)
    cols["tod_cos"] = np.broadcast_to(np.cos(tod)[:, None], util.shape)
    for w in (5, 15, 60):
        roll = frame.rolling(w, min_periods=1)
        cols[f"mean{w}"], cols[f"max{w}"], cols[f"std{w}"] = (
            roll.mean().to_numpy(), roll.max().to_numpy(), roll.std().to_numpy())
    ahead = np.full_like(util, np.nan)
    fut = frame[::-1].rolling(settings.lead_steps, min_periods=settings.lead_steps).max().to_numpy()[::-1]
    ahead[:-1] = fut[1:]  # max over steps k+1 .. k+lead
    k = np.arange(settings.decision_steps - 1, steps - settings.lead_steps, settings.decision_steps)
    if settings.use_forecasts and k.size:
        if forecasts is None:
            raise InputError("node forecasts missing", "bottleneck", "use_forecasts needs node_forecasts()")
        b = (k + 1) // settings.decision_steps - 1
        for name, f in zip(FORECAST_FEATURES, forecasts):
            padded = np.full((max(int(b.max()) + 1, f.shape[0]), n_nodes), np.nan)
            padded[:f.shape[0]] = f
            cols[name] = _at_steps(padded[b], k, steps)
    X = np.stack([np.asarray(cols[f])[k].reshape(-1) for f in settings.feature_names()], axis=1)
    y = (ahead[k].reshape(-1) > settings.threshold).astype(np.int8)
    return X, y, util[k].reshape(-1)


def _at_steps(rows: np.ndarray, k: np.ndarray, steps: int) -> np.ndarray:
    """Place per-decision rows at their steps ``k`` of a (steps, nodes) array (NaN elsewhere)."""
    out = np.full((steps, rows.shape[1]), np.nan)
    out[k] = rows
    return out


@dataclass
class BottleneckModel:
    settings: BottleneckSettings
    booster: lgb.Booster
    probability_threshold: float

    def probability(self, X: np.ndarray) -> np.ndarray:
        return self.booster.predict(X)

    def warn(self, X: np.ndarray) -> np.ndarray:
        return self.probability(X) >= self.probability_threshold

    def to_texts(self) -> dict[str, str]:
        return {"bottleneck.txt": self.booster.model_to_string(),
                "bottleneck_manifest.json": json.dumps({
                    "format_version": 1, "kind": "neurokube-bottleneck", "features": self.settings.feature_names(),
                    "probability_threshold": self.probability_threshold, "lightgbm": lgb.__version__,
                    "settings": asdict(self.settings)}, indent=2)}

    @classmethod
    def from_texts(cls, files: dict[str, str]) -> "BottleneckModel":
        try:
            m = json.loads(files["bottleneck_manifest.json"])
            return cls(BottleneckSettings(**m["settings"]), lgb.Booster(model_str=files["bottleneck.txt"]),
                       float(m["probability_threshold"]))
        except (KeyError, ValueError, TypeError) as exc:
            raise InputError("not a bottleneck model bundle", "bottleneck_manifest.json", str(exc)) from None


def _fit(X: np.ndarray, y: np.ndarray, s: BottleneckSettings) -> lgb.Booster:
    params = {"objective": "binary", "learning_rate": s.learning_rate, "num_leaves": s.num_leaves,
              "min_data_in_leaf": s.min_data_in_leaf, "seed": s.seed, "deterministic": True,
              "num_threads": 1, "verbose": -1}
    return lgb.train(params, lgb.Dataset(X, y, feature_name=s.feature_names()), s.num_boost_round)


def best_f1_threshold(p: np.ndarray, y: np.ndarray) -> float:
    """The probability cut with the highest F1 on ``(p, y)`` (0.5 when there are no positives)."""
    if y.sum() == 0:
        return 0.5
    order = np.argsort(-p)
    tp = np.cumsum(y[order])
    k = np.arange(1, len(p) + 1)
    f1 = 2 * tp / (k + y.sum())
    i = int(np.argmax(f1))
    return float(p[order][i])


def fit_bottleneck(train: list[NodeSeries], settings: BottleneckSettings = BottleneckSettings(),
                   forecasts: list[tuple[np.ndarray, np.ndarray]] | None = None) -> BottleneckModel:
    if not train:
        raise InputError("no training series", "bottleneck", "pass at least one training trace")
    fcs = forecasts if forecasts is not None else [None] * len(train)
    parts = [node_features(n, settings, f)[:2] for n, f in zip(train, fcs)]
    X = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    if y.sum() == 0:
        raise InputError("no bottleneck in the training traces", "bottleneck",
                         f"no node passed {settings.threshold:.0%} CPU; use busier training traces")
    if len(parts) > 1 and all(sum(q[1].sum() for j, q in enumerate(parts) if j != i) > 0
                              for i in range(len(parts))):
        oof_p, oof_y = [], []
        for i, (Xi, yi) in enumerate(parts):
            rest = [p for j, p in enumerate(parts) if j != i]
            booster = _fit(np.concatenate([p[0] for p in rest]), np.concatenate([p[1] for p in rest]), settings)
            oof_p.append(booster.predict(Xi))
            oof_y.append(yi)
        cut = best_f1_threshold(np.concatenate(oof_p), np.concatenate(oof_y))
    else:
        booster = _fit(X, y, settings)
        cut = best_f1_threshold(booster.predict(X), y)
    return BottleneckModel(settings, _fit(X, y, settings), cut)
