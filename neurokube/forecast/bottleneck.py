"""Bottleneck warnings: will a node's CPU use pass a threshold soon?

At each decision time (every ``decision_steps`` simulator steps) and node, "now" is the start of
step ``k + 1``: steps ``<= k`` are known (a step's usage is known once it is over). The label is
1 when CPU use / allocatable exceeds ``threshold`` (0.9) in any of the next ``lead_steps`` steps
(15 minutes). Features come from steps ``<= k`` only: current use, trailing mean/max/std over
5/15/60 minutes, the 15-minute slope, the requested share, the time of day and the node's
forecast use (its running pods scaled by their workloads' forecasts, :func:`node_forecasts`).

Two models, split by the node's use now, because the two cases differ:

* **Nodes already above the threshold** (most events: a hot node tends to stay hot) are warned by
  a LightGBM binary classifier. Its probability cut is chosen on training data only: out-of-fold
  predictions (each training trace predicted by a model fitted on the others; in-sample with a
  single trace, or when leaving one out leaves no event to learn) and the cut that maximises F1
  there.
* **Nodes at or below the threshold now** (an *onset*, a new bottleneck: rare, and the goal the
  classifier missed most) are warned by an onset model: a LightGBM quantile regression
  (``onset_alpha`` 0.9) of the node's **peak** use over the next ``lead_steps`` steps, fitted on
  those decisions only, with two more features, the cluster's mean use and mean requested share
  now (on validation: onset precision 0.23 -> 0.28 for onset recall 0.41 -> 0.38, and precision
  on real-3 0.73 -> 0.85). A warning is a predicted peak at or above ``onset_threshold``.
  Regressing the peak uses how close each decision came, not only whether it crossed 0.9: on the
  validation traces it ranked onsets better than the classifier (average precision over onset
  decisions 0.18 -> 0.22). The cut maximises F-beta (``onset_beta`` 2:
  recall weighs twice precision, since the issue's onset goal is a recall) on out-of-fold
  predictions of the onset decisions, the folds ``onset_folds`` contiguous time blocks of every
  training trace (the traces of one kind resemble each other more than the two kinds do, and a
  peak in utilisation units is on each kind's own scale: leaving a whole trace out put the cut on
  the wrong scale).

:func:`onset_leads` measures what a warning is worth: for every onset event (a node that passes
the threshold after ``lead_steps`` steps at or below it), the minutes between the first warning
in its look-ahead window and the first hot step.

:func:`known_pod_warnings` is not a model but a clairvoyant diagnostic: it warns exactly when the
pods already bound to the node at the decision would, by their true future use, pass the
threshold in the look-ahead. Every feature a node-level model could have (its pods, their ages,
their profiles' shapes, pods just bound that have not ramped up) describes those pods, so its
``onset_recall_10m`` is what such a model can reach *without false warnings*; an onset it misses
needs a pod not yet bound at the decision, and a model can only catch it by guessing that a pod
will come, which costs precision (``known_s`` moves "known" to the pod's creation: a model that
also sees the pending queue and where each pod will land).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd

from neurokube.errors import InputError
from neurokube.forecast.series import NodeSeries, PodSamples, pod_step_cpu
from neurokube.trace.model import Trace

FEATURES = ("util", "requested", "slope15", "tod_sin", "tod_cos",
            "mean5", "max5", "std5", "mean15", "max15", "std15", "mean60", "max60", "std60")
FORECAST_FEATURES = ("forecast50", "forecast95")
CLUSTER_FEATURES = ("cluster_util", "cluster_requested")
"""The onset model's extra features: mean use and mean requested share over all nodes now."""
FORMAT_VERSION = 2
"""Of ``bottleneck_manifest.json``. 2: an onset model (``bottleneck_onset.txt``) warns nodes at or
below the threshold now (1: the classifier warned every node)."""
MIN_LEAD_MIN = 10
"""The lead an onset warning must have to count in ``onset_recall_10m`` (issue 18: 10 minutes)."""
PEAK_CAP = 1.5
"""The onset model's target (peak use / allocatable) is clipped here: above it is hot anyway."""


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
    onset_model: bool = True
    """Warn nodes at or below ``threshold`` now with the onset model (else the classifier warns all)."""
    onset_alpha: float = 0.9
    """The onset model's quantile of the peak use over the look-ahead."""
    onset_beta: float = 2.0
    """The onset cut maximises F-beta on out-of-fold onset decisions."""
    onset_folds: int = 4
    """Contiguous time blocks per training trace for the onset model's out-of-fold predictions."""

    def feature_names(self) -> list[str]:
        """The classifier's features (the first columns of :func:`node_features`)."""
        return list(FEATURES) + (list(FORECAST_FEATURES) if self.use_forecasts else [])

    def onset_feature_names(self) -> list[str]:
        """The onset model's features: every column of :func:`node_features`."""
        return self.feature_names() + (list(CLUSTER_FEATURES) if self.onset_model else [])

    def __post_init__(self) -> None:
        if (not 0 < self.threshold or self.lead_steps < 1 or self.decision_steps < 1
                or not 0 < self.onset_alpha < 1 or not self.onset_beta > 0 or self.onset_folds < 2):
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


def decision_steps(n_steps: int, settings: BottleneckSettings) -> np.ndarray:
    """The steps ``k`` of the decisions with a full look-ahead (rows of :func:`node_features` are
    decision-major: row ``i * nodes + j`` is decision ``k[i]`` and node ``j``)."""
    return np.arange(settings.decision_steps - 1, n_steps - settings.lead_steps, settings.decision_steps)


def _ahead_max(util: np.ndarray, lead: int) -> np.ndarray:
    """(steps, nodes): the max of steps ``k+1 .. k+lead`` at row ``k`` (NaN where incomplete)."""
    ahead = np.full_like(util, np.nan)
    fut = pd.DataFrame(util)[::-1].rolling(lead, min_periods=lead).max().to_numpy()[::-1]
    ahead[:-1] = fut[1:]
    return ahead


def node_features(nodes: NodeSeries, settings: BottleneckSettings = BottleneckSettings(),
                  forecasts: tuple[np.ndarray, np.ndarray] | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(X (n, F), y (n,), now_util (n,))`` for every decision step and node with a full look-ahead.

    The columns are ``settings.onset_feature_names()``; the classifier reads the first
    ``len(settings.feature_names())``. ``forecasts`` (q50, q95 from :func:`node_forecasts`,
    (bins, nodes)) are needed when ``settings.use_forecasts``; decision ``k`` reads bin
    ``(k + 1) // decision_steps - 1``, the bin that ends at ``k`` (so ``decision_steps x step``
    must equal the bin length).
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
    cols["cluster_util"] = np.broadcast_to(util.mean(axis=1, keepdims=True), util.shape)
    cols["cluster_requested"] = np.broadcast_to(nodes.requested.mean(axis=1, keepdims=True), util.shape)
    ahead = _ahead_max(util, settings.lead_steps)
    k = decision_steps(steps, settings)
    if settings.use_forecasts and k.size:
        if forecasts is None:
            raise InputError("node forecasts missing", "bottleneck", "use_forecasts needs node_forecasts()")
        b = (k + 1) // settings.decision_steps - 1
        for name, f in zip(FORECAST_FEATURES, forecasts):
            padded = np.full((max(int(b.max()) + 1, f.shape[0]), n_nodes), np.nan)
            padded[:f.shape[0]] = f
            cols[name] = _at_steps(padded[b], k, steps)
    X = np.stack([np.asarray(cols[f])[k].reshape(-1) for f in settings.onset_feature_names()], axis=1)
    y = (ahead[k].reshape(-1) > settings.threshold).astype(np.int8)
    return X, y, util[k].reshape(-1)


def node_peaks(nodes: NodeSeries, settings: BottleneckSettings = BottleneckSettings()) -> np.ndarray:
    """The onset model's target, row for row with :func:`node_features`: the peak use over each
    decision's look-ahead, clipped to ``[0, PEAK_CAP]`` (``y`` is ``peak > threshold``)."""
    ahead = _ahead_max(nodes.util, settings.lead_steps)
    return np.clip(ahead[decision_steps(len(nodes.util), settings)].reshape(-1), 0.0, PEAK_CAP)


def _at_steps(rows: np.ndarray, k: np.ndarray, steps: int) -> np.ndarray:
    """Place per-decision rows at their steps ``k`` of a (steps, nodes) array (NaN elsewhere)."""
    out = np.full((steps, rows.shape[1]), np.nan)
    out[k] = rows
    return out


def onset_leads(util: np.ndarray, warned: np.ndarray, settings: BottleneckSettings = BottleneckSettings(),
                step_s: int = 60) -> np.ndarray:
    """Per onset event, the warning's lead in minutes (NaN when no decision warned of it).

    An onset event is a step ``s`` of a node whose use is above ``threshold`` after ``lead_steps``
    steps at or below it. The decisions whose look-ahead holds ``s`` are made at times
    ``t = k + 1`` in ``[s - lead_steps + 1, s]`` (events whose window is not fully inside the
    decisions are left out); the lead is ``s - t`` of the earliest of them that warned: the minutes
    between the warning and the start of the first hot step. ``warned`` is row for row with
    :func:`node_features` on ``util``.
    """
    steps, n = util.shape
    k = decision_steps(steps, settings)
    lead = settings.lead_steps
    if not k.size:
        return np.zeros(0)
    grid = np.asarray(warned, bool).reshape(len(k), n)
    hot = util > settings.threshold
    before = np.vstack([np.zeros((1, n), int), np.cumsum(hot, axis=0)])  # before[s] = hot steps < s
    s_idx = np.arange(steps)[:, None]
    lo = np.maximum(s_idx - lead, 0)
    fresh = hot & (s_idx >= lead) & (before[np.arange(steps)] - np.take_along_axis(
        before, np.broadcast_to(lo, (steps, n)), axis=0) == 0)
    first_t, last_t = int(k[0]) + 1, int(k[-1]) + 1
    leads = []
    for s, j in zip(*np.nonzero(fresh)):
        if s - lead + 1 < first_t or s > last_t:
            continue
        i0 = int(np.ceil((s - lead + 1 - first_t) / settings.decision_steps))
        i1 = (s - first_t) // settings.decision_steps
        hit = np.flatnonzero(grid[i0:i1 + 1, j])
        leads.append((s - (k[i0 + hit[0]] + 1)) * step_s / 60 if hit.size else np.nan)
    return np.asarray(leads, float)


def known_pod_warnings(trace: Trace, node_of: np.ndarray, bind_s: np.ndarray,
                       settings: BottleneckSettings = BottleneckSettings(), step_s: int = 60,
                       known_s: np.ndarray | None = None) -> np.ndarray:
    """A clairvoyant bound, not a model: per row of :func:`node_features`, does the use of the pods
    *known* at the decision alone pass ``threshold`` in its look-ahead?

    A pod is known at decision ``k`` when ``known_s`` (default: its bind time) is at most the start
    of step ``k``; its future use is its true one (``pod_usage``, the rule :func:`node_series`
    uses), so these warnings are exact for everything the known pods do and blind to the pods
    placed later. ``lead_report(onset_leads(util, known_pod_warnings(...)))`` is then the share of
    onsets the pods on the node explain, what a warning built from them reaches at precision 1
    (``known_s = trace.pods.creation_s`` adds the pods created but still pending, at the node they
    will be bound to). With every pod known the warnings are the labels ``y``.
    """
    known = np.asarray(bind_s if known_s is None else known_s, float)
    if known.shape != bind_s.shape or len(node_of) != len(bind_s):
        raise InputError("placements do not match", "bottleneck",
                         f"{len(node_of)} nodes, {len(bind_s)} bind times, {known.shape} known times")
    pod, step, cpu = pod_step_cpu(trace, bind_s, step_s)
    n_nodes = len(trace.nodes)
    steps = int(step.max()) + 1 if step.size else 0
    k = decision_steps(steps, settings)
    lead = settings.lead_steps
    ahead = np.zeros((len(k), lead, n_nodes))
    known_step = np.ceil(np.round(known[pod] / step_s, 9))  # the first step whose start is at or after it
    for j in range(1, lead + 1):  # the cell at ``step`` is ``j`` steps ahead of decision ``step - j``
        kk = step - j
        i = (kk - (settings.decision_steps - 1)) // settings.decision_steps
        use = ((kk - (settings.decision_steps - 1)) % settings.decision_steps == 0) & (i >= 0) & (i < len(k)) \
            & (known_step <= kk)
        np.add.at(ahead, (i[use], j - 1, node_of[pod[use]]), cpu[use])
    peak = ahead.max(axis=1) / trace.nodes.cpu_milli.astype(float)[None, :]
    return (peak > settings.threshold).reshape(-1)


def lead_report(leads: np.ndarray, min_lead_min: float = MIN_LEAD_MIN) -> dict:
    """``onset_events_lead`` (events), ``onset_recall_10m`` (share warned at least ``min_lead_min``
    minutes ahead), ``onset_recall_any_lead`` (share warned at all) and ``onset_median_lead_min``
    (over the warned ones); NaN without events."""
    caught = np.isfinite(leads)
    return {"onset_events_lead": int(leads.size),
            "onset_recall_10m": float(np.mean(caught & (np.nan_to_num(leads, nan=-1) >= min_lead_min)))
            if leads.size else float("nan"),
            "onset_recall_any_lead": float(caught.mean()) if leads.size else float("nan"),
            "onset_median_lead_min": float(np.median(leads[caught])) if caught.any() else float("nan")}


@dataclass
class BottleneckModel:
    settings: BottleneckSettings
    booster: lgb.Booster
    probability_threshold: float
    onset_booster: lgb.Booster | None = None
    """The onset model; without it the classifier warns every node."""
    onset_threshold: float = float("nan")
    """Predicted peak use at or above which a node at or below ``threshold`` now is warned."""

    def probability(self, X: np.ndarray) -> np.ndarray:
        """The classifier's probability (it reads the first ``len(feature_names())`` columns)."""
        return self.booster.predict(X[:, :len(self.settings.feature_names())])

    def onset_peak(self, X: np.ndarray) -> np.ndarray:
        """The onset model's predicted peak use over the look-ahead (all columns)."""
        return self.onset_booster.predict(X)

    def warn(self, X: np.ndarray) -> np.ndarray:
        """Per row of :func:`node_features`: the classifier's warning for nodes above the threshold
        now (column 0 is the use now), the onset model's for the others."""
        warned = self.probability(X) >= self.probability_threshold
        if self.onset_booster is not None:
            onset = X[:, 0] <= self.settings.threshold
            if onset.any():
                warned[onset] = self.onset_peak(X[onset]) >= self.onset_threshold
        return warned

    def to_texts(self) -> dict[str, str]:
        files = {"bottleneck.txt": self.booster.model_to_string()}
        if self.onset_booster is not None:
            files["bottleneck_onset.txt"] = self.onset_booster.model_to_string()
        files["bottleneck_manifest.json"] = json.dumps({
            "format_version": FORMAT_VERSION, "kind": "neurokube-bottleneck",
            "features": self.settings.feature_names(), "onset_features": self.settings.onset_feature_names(),
            "probability_threshold": self.probability_threshold,
            "onset_threshold": self.onset_threshold if self.onset_booster is not None else None,
            "lightgbm": lgb.__version__, "settings": asdict(self.settings)}, indent=2)
        return files

    @classmethod
    def from_texts(cls, files: dict[str, str]) -> "BottleneckModel":
        try:
            m = json.loads(files["bottleneck_manifest.json"])
            if m.get("format_version") != FORMAT_VERSION:
                raise InputError("bottleneck model of another format", "bottleneck_manifest.json",
                                 f"format_version {m.get('format_version')!r}, this version reads {FORMAT_VERSION}; "
                                 "retrain with --train-trace")
            onset = files.get("bottleneck_onset.txt")
            return cls(BottleneckSettings(**m["settings"]), lgb.Booster(model_str=files["bottleneck.txt"]),
                       float(m["probability_threshold"]),
                       lgb.Booster(model_str=onset) if onset is not None else None,
                       float(m["onset_threshold"]) if onset is not None else float("nan"))
        except (KeyError, ValueError, TypeError, lgb.basic.LightGBMError) as exc:
            raise InputError("not a bottleneck model bundle", "bottleneck_manifest.json", str(exc)) from None


def _fit(X: np.ndarray, y: np.ndarray, s: BottleneckSettings) -> lgb.Booster:
    params = {"objective": "binary", "learning_rate": s.learning_rate, "num_leaves": s.num_leaves,
              "min_data_in_leaf": s.min_data_in_leaf, "seed": s.seed, "deterministic": True,
              "num_threads": 1, "verbose": -1}
    n = len(s.feature_names())
    return lgb.train(params, lgb.Dataset(X[:, :n], y, feature_name=s.feature_names()), s.num_boost_round)


def _fit_onset(X: np.ndarray, peak: np.ndarray, s: BottleneckSettings) -> lgb.Booster:
    params = {"objective": "quantile", "alpha": s.onset_alpha, "learning_rate": s.learning_rate,
              "num_leaves": s.num_leaves, "min_data_in_leaf": s.min_data_in_leaf, "seed": s.seed,
              "deterministic": True, "num_threads": 1, "verbose": -1}
    return lgb.train(params, lgb.Dataset(X, peak, feature_name=s.onset_feature_names()), s.num_boost_round)


def best_fbeta_threshold(p: np.ndarray, y: np.ndarray, beta: float = 1.0) -> float:
    """The score cut with the highest F-beta on ``(p, y)`` (0.5 when there are no positives)."""
    if y.sum() == 0:
        return 0.5
    order = np.argsort(-p)
    tp = np.cumsum(y[order])
    k = np.arange(1, len(p) + 1)
    f = (1 + beta ** 2) * tp / (k + beta ** 2 * y.sum())
    return float(p[order][int(np.argmax(f))])


def best_f1_threshold(p: np.ndarray, y: np.ndarray) -> float:
    """The probability cut with the highest F1 on ``(p, y)`` (0.5 when there are no positives)."""
    return best_fbeta_threshold(p, y, 1.0)


def _fit_onset_model(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]],
                     s: BottleneckSettings) -> tuple[lgb.Booster | None, float]:
    """The onset model on the decisions at or below the threshold now, and its cut from
    out-of-fold predictions (folds: ``onset_folds`` contiguous time blocks of every trace).
    ``(None, nan)`` when no such decision is followed by a bottleneck."""
    X = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    now = np.concatenate([p[2] for p in parts])
    peak = np.concatenate([p[3] for p in parts])
    onset = now <= s.threshold
    if y[onset].sum() == 0:
        return None, float("nan")
    fold = np.concatenate([t * s.onset_folds + np.minimum(np.arange(len(p[1])) // p[4] * s.onset_folds
                                                          // max(len(p[1]) // p[4], 1), s.onset_folds - 1)
                           for t, p in enumerate(parts)])
    oof = np.full(len(y), np.nan)
    for f in np.unique(fold[onset]):
        test, fit_rows = onset & (fold == f), onset & (fold != f)
        if fit_rows.sum() >= 2 * s.min_data_in_leaf:
            oof[test] = _fit_onset(X[fit_rows], peak[fit_rows], s).predict(X[test])
    booster = _fit_onset(X[onset], peak[onset], s)
    scored = onset & np.isfinite(oof)
    if y[scored].sum() == 0:  # too little data for folds: in-sample
        scored, oof = onset, booster.predict(X)
    return booster, best_fbeta_threshold(oof[scored], y[scored], s.onset_beta)


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
            oof_p.append(booster.predict(Xi[:, :len(settings.feature_names())]))
            oof_y.append(yi)
        cut = best_f1_threshold(np.concatenate(oof_p), np.concatenate(oof_y))
    else:
        booster = _fit(X, y, settings)
        cut = best_f1_threshold(booster.predict(X[:, :len(settings.feature_names())]), y)
    onset_booster, onset_cut = None, float("nan")
    if settings.onset_model:
        onset_booster, onset_cut = _fit_onset_model(
            [(p[0], p[1], p[0][:, 0], node_peaks(n, settings), n.util.shape[1]) for p, n in zip(parts, train)],
            settings)
    return BottleneckModel(settings, _fit(X, y, settings), cut, onset_booster, onset_cut)
