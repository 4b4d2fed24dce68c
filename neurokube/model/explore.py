"""Exploration around a behaviour policy, with exact propensities, and decision logging.

With probability ``epsilon`` the pod goes to a uniformly random feasible node, otherwise to
the base policy's choice. The logged propensity of every candidate is therefore
``epsilon / n + (1 - epsilon) * [candidate is the base choice]``. The base's own random
tie-break is treated as part of its choice; this is the one approximation, and it only matters
for exact ties.
"""

from __future__ import annotations

import numpy as np

from neurokube.features import candidate_features
from neurokube.model.decision_log import DecisionRecorder
from neurokube.policies.base import ClusterView, Policy, PodSpec
from neurokube.policies.common import fits


class ExploringPolicy:
    def __init__(self, base: Policy, epsilon: float, rng: np.random.Generator,
                 recorder: DecisionRecorder | None = None) -> None:
        if not 0 <= epsilon <= 1:
            raise ValueError("epsilon must be in [0, 1]")
        self.base = base
        self.epsilon = epsilon
        self.rng = rng
        self.recorder = recorder
        self.name = base.name

    @property
    def fallbacks(self) -> int:
        return self.base.fallbacks

    def select(self, pod: PodSpec, view: ClusterView) -> int | None:
        choice = self.base.select(pod, view)
        if choice is None:
            return None
        candidates = np.flatnonzero(fits(pod, view))
        n = candidates.size
        chosen = int(candidates[self.rng.integers(n)]) if self.rng.random() < self.epsilon else choice
        if self.recorder is not None:
            propensity = np.full(n, self.epsilon / n)
            propensity[candidates == choice] += 1.0 - self.epsilon
            last = getattr(self.base, "last", None)
            reuse = last is not None and last[0].size == n and np.array_equal(last[0], candidates)
            features = last[1] if reuse else candidate_features(pod, view, candidates)
            fallback = "" if last is not None or not hasattr(self.base, "last") else "fallback"
            self.recorder.record(pod, view, candidates, chosen, propensity, features, fallback)
        return chosen

    def on_bind(self, pod: PodSpec, node: int, now_s: float) -> None:
        hook = getattr(self.base, "on_bind", None)
        if hook is not None:
            hook(pod, node, now_s)
