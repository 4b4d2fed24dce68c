"""The ``neurokube`` placement policy: the lowest expected cost under the value model.

Safe by construction:
- it only ever considers nodes where the requests fit (NodeResourcesFit), so it never picks an
  infeasible node;
- with no model, or a model that fails to load or predict, it falls back to kube-scheduler's
  default scoring, logs why once per reason, and counts every fallback in ``fallbacks_by_reason``.

Candidates whose expected cost is within a small tolerance of the best are broken towards the
node with the most requested CPU (packing), then at random.

In large clusters the model scores a shortlist. Features are computed for every feasible node
(vectorised, about 0.2 ms for 1,000 nodes). The ``shortlist`` best go to the model, half by
lowest projected peak CPU and half by most requested CPU among nodes projected to stay under
capacity. A LightGBM call costs about half a millisecond however few rows it gets, and its cost
per row grows with the trees, so scoring 1,000 rows would take 10-20 ms.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np

from neurokube.errors import NeuroKubeError
from neurokube.features import FEATURE_NAMES, candidate_features
from neurokube.logs import event
from neurokube.model.reward import RewardWeights
from neurokube.model.value_model import ModelError, ValueModel, load_model
from neurokube.policies.base import ClusterView, PodSpec
from neurokube.policies.common import fits
from neurokube.policies.default import DefaultPolicy

log = logging.getLogger(__name__)
REQ_CPU_COLUMN = FEATURE_NAMES.index("req_cpu_frac_after")
PROJ_PEAK_COLUMN = FEATURE_NAMES.index("proj_cpu_peak_frac")
DEFAULT_SHORTLIST = 64
RELATIVE_TIE = 1e-3
ABSOLUTE_TIE = 1e-3


class LearnedPolicy:
    name = "neurokube"

    def __init__(self, model: ValueModel | None, rng: np.random.Generator, fallback_reason: str = "no_model",
                 shortlist: int = DEFAULT_SHORTLIST) -> None:
        self.model = model
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
        return candidates[keep], features[keep], self.model.cost(features[keep])

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
        self.last = (candidates, features, cost)
        best = cost.min()
        near = np.flatnonzero(cost <= best + max(ABSOLUTE_TIE, RELATIVE_TIE * abs(best)))
        packed = features[near, REQ_CPU_COLUMN]
        top = near[packed == packed.max()]
        return int(candidates[top[self.rng.integers(top.size)] if top.size > 1 else top[0]])


def load_learned_policy(model_dir: str | Path | None, *, trace=None, seed: int = 0,
                        weights: RewardWeights | None = None) -> LearnedPolicy:
    """The learned policy for ``model_dir``; a missing or broken model gives the fallback, not an error."""
    rng = np.random.default_rng(seed)
    if model_dir is None:
        return LearnedPolicy(None, rng, "no_model")
    try:
        return LearnedPolicy(load_model(model_dir, weights), rng)
    except ModelError as exc:
        reason = "model_missing" if "missing" in str(exc) or "no model" in str(exc) else "model_corrupt"
        event(log, "cannot load model, using default scoring", level=logging.WARNING, reason=reason, error=str(exc))
        return LearnedPolicy(None, rng, reason)
    except NeuroKubeError as exc:  # pragma: no cover - defensive
        event(log, "cannot load model, using default scoring", level=logging.WARNING, error=str(exc))
        return LearnedPolicy(None, rng, "model_corrupt")
