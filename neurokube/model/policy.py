"""The ``neurokube`` placement policy: the lowest expected cost under the value model.

Safe by construction:
- it only ever considers nodes where the requests fit (NodeResourcesFit), so it never picks an
  infeasible node;
- with no model, or a model that fails to load or predict, it falls back to kube-scheduler's
  default scoring, logs why once per reason, and counts every fallback in ``fallbacks_by_reason``.

Candidates whose expected cost is within a small tolerance of the best are broken by the objective
the rate implies: towards the node with the most requested CPU (packing: fewer node-hours) when a
node-hour costs anything, towards the lowest projected CPU peak (spreading) when
``node_hour_cost=0``; then at random.

In large clusters the model scores a shortlist. Features are computed for every feasible node
(vectorised, about 0.2 ms for 1,000 nodes). The ``shortlist`` best go to the model, half by
lowest projected peak CPU and half by most requested CPU among nodes projected to stay under
capacity. A LightGBM call costs about half a millisecond however few rows it gets, and its cost
per row grows with the trees, so scoring 1,000 rows would take 10-20 ms.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from neurokube.errors import NeuroKubeError
from neurokube.features import FEATURE_NAMES, candidate_features
from neurokube.logs import event
from neurokube.model.reward import RewardWeights
from neurokube.model.value_model import ModelError, ValueModel, combine, load_model
from neurokube.policies.base import ClusterView, PodSpec
from neurokube.policies.common import fits
from neurokube.policies.default import DefaultPolicy

log = logging.getLogger(__name__)
REQ_CPU_COLUMN = FEATURE_NAMES.index("req_cpu_frac_after")
PROJ_PEAK_COLUMN = FEATURE_NAMES.index("proj_cpu_peak_frac")
DEFAULT_SHORTLIST = 64
RELATIVE_TIE = 1e-3
ABSOLUTE_TIE = 1e-3


@dataclass(frozen=True)
class LearnedArgs:
    """Arguments of the ``neurokube`` policy spec (``neurokube:model=DIR,node_hour_cost=60``).

    ``node_hour_cost`` is the exchange rate applied at decision time, in core-seconds of CPU
    contention per node-hour: the model predicts contention, node-hours (and memory overflow)
    separately, so any rate works without retraining. ``None`` keeps the rate recorded in the
    model's manifest, the one it was trained with (360 unless ``neurokube train
    --node-hour-cost`` said otherwise).
    """

    model: str | None = None
    node_hour_cost: float | None = None
    max_wait_steps: int = 0
    """The wait action: when every feasible node is predicted to add more than ``wait_above_core_s``
    of contention, leave the pod pending for a step, at most this many steps in a row; then place it
    on the best node anyway. 0 (the default) never waits."""
    wait_above_core_s: float = 60.0
    """Predicted added contention (core-seconds) above which a node counts as running hot."""

    def __post_init__(self) -> None:
        if not 0 <= self.max_wait_steps <= 1440:
            raise ValueError("max_wait_steps must be in 0..1440")
        if not 0 <= self.wait_above_core_s <= 1e9:
            raise ValueError("wait_above_core_s must be in [0, 1e9]")
        if self.node_hour_cost is not None and not 0 <= self.node_hour_cost <= 1e9:
            raise ValueError("node_hour_cost must be in [0, 1e9] core-seconds per node-hour")
        if self.model is not None and not self.model.strip():
            raise ValueError("model must name a directory")

    def weights(self, trained: RewardWeights) -> RewardWeights:
        """The decision-time weights: ``trained`` with this spec's node-hour rate, if it sets one."""
        return trained if self.node_hour_cost is None else replace(trained, node_hour=self.node_hour_cost)


class LearnedPolicy:
    name = "neurokube"

    def __init__(self, model: ValueModel | None, rng: np.random.Generator, fallback_reason: str = "no_model",
                 shortlist: int = DEFAULT_SHORTLIST, max_wait_steps: int = 0, wait_above_core_s: float = 60.0) -> None:
        self.model = model
        self.max_wait_steps = max_wait_steps
        self.wait_above_core_s = wait_above_core_s
        self.waits = 0
        """Decisions that left a fitting pod pending (the wait action)."""
        self._waited: dict[int, int] = {}  # pod index -> steps waited in a row
        self.shortlist = max(2, shortlist)
        self.rng = rng
        self.fallback = DefaultPolicy(rng)
        self.fallbacks_by_reason: Counter[str] = Counter()
        self._model_missing_reason = fallback_reason if model is None else ""
        self.last: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # candidates, features, cost

    @property
    def fallbacks(self) -> int:
        return sum(self.fallbacks_by_reason.values())

    @property
    def version(self) -> str:
        return self.model.version if self.model is not None else "none"

    def _fall_back(self, reason: str, pod: PodSpec, view: ClusterView, detail: str = "") -> int | None:
        if reason not in self.fallbacks_by_reason:
            event(log, "learned policy falling back to default scoring", level=logging.WARNING,
                  reason=reason, detail=detail)
        self.fallbacks_by_reason[reason] += 1
        self.last = None
        return self.fallback.select(pod, view)

    def shortlisted(self, features: np.ndarray) -> np.ndarray:
        """Rows of ``features`` the model should score (all of them in small clusters)."""
        n = features.shape[0]
        if n <= self.shortlist:
            return np.arange(n)
        half = self.shortlist // 2
        peak = features[:, PROJ_PEAK_COLUMN]
        packed = features[:, REQ_CPU_COLUMN]
        safest = np.argpartition(peak, half)[:half]
        fuller = np.lexsort((-packed, peak > 1.0))[:half]
        return np.union1d(safest, fuller)

    def costs(self, pod: PodSpec, view: ClusterView, candidates: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Shortlisted candidates, their features and expected costs."""
        features = candidate_features(pod, view, candidates)
        keep = self.shortlisted(features)
        self.last_components = self.model.components(features[keep])
        return candidates[keep], features[keep], combine(self.last_components, self.model.weights)

    def _wait(self, pod: PodSpec) -> bool:
        """The bounded wait action: True to leave ``pod`` pending this step."""
        if self.max_wait_steps <= 0 or pod.index < 0:
            return False
        hot = float(self.last_components["contention"].min()) > self.wait_above_core_s
        waited = self._waited.get(pod.index, 0)
        if hot and waited < self.max_wait_steps:
            self._waited[pod.index] = waited + 1
            self.waits += 1
            return True
        self._waited.pop(pod.index, None)
        return False

    def select(self, pod: PodSpec, view: ClusterView) -> int | None:
        if self.model is None:
            return self._fall_back(self._model_missing_reason, pod, view)
        candidates = np.flatnonzero(fits(pod, view))
        if candidates.size == 0:
            self.last = None
            return None
        try:
            candidates, features, cost = self.costs(pod, view, candidates)
        except Exception as exc:  # noqa: BLE001 - the AI layer may fail; scheduling may not
            return self._fall_back("predict_error", pod, view, f"{type(exc).__name__}: {exc}")
        if not np.isfinite(cost).all():
            return self._fall_back("non_finite_score", pod, view)
        if self._wait(pod):
            self.last = None
            return None
        self.last = (candidates, features, cost)
        best = cost.min()
        near = np.flatnonzero(cost <= best + max(ABSOLUTE_TIE, RELATIVE_TIE * abs(best)))
        if self.model.weights.node_hour > 0:  # ties go to fewer node-hours: the most requested node
            packed = features[near, REQ_CPU_COLUMN]
            top = near[packed == packed.max()]
        else:  # node-hours are free: ties go to the least risk, the lowest projected CPU peak
            peak = features[near, PROJ_PEAK_COLUMN]
            top = near[peak == peak.min()]
        return int(candidates[top[self.rng.integers(top.size)] if top.size > 1 else top[0]])


def load_learned_policy(model_dir: str | Path | None, *, trace=None, seed: int = 0,
                        weights: RewardWeights | None = None, node_hour_cost: float | None = None,
                        max_wait_steps: int = 0, wait_above_core_s: float = 60.0) -> LearnedPolicy:
    """The learned policy for ``model_dir``; a missing or broken model gives the fallback, not an error.

    ``node_hour_cost`` (core-seconds of contention per node-hour) replaces the model's trained
    rate at decision time; ``weights`` replaces all of its weights.
    """
    rng = np.random.default_rng(seed)
    if model_dir is None:
        return LearnedPolicy(None, rng, "no_model")
    try:
        model = load_model(model_dir, weights)
        if node_hour_cost is not None:
            model.weights = replace(model.weights, node_hour=float(node_hour_cost))
        return LearnedPolicy(model, rng, max_wait_steps=max_wait_steps, wait_above_core_s=wait_above_core_s)
    except ModelError as exc:
        reason = "model_missing" if "missing" in str(exc) or "no model" in str(exc) else "model_corrupt"
        event(log, "cannot load model, using default scoring", level=logging.WARNING, reason=reason, error=str(exc))
        return LearnedPolicy(None, rng, reason)
    except NeuroKubeError as exc:  # pragma: no cover - defensive
        event(log, "cannot load model, using default scoring", level=logging.WARNING, error=str(exc))
        return LearnedPolicy(None, rng, "model_corrupt")
