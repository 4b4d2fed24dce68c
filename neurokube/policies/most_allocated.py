"""kube-scheduler with NodeResourcesFit's MostAllocated strategy (bin packing).

The profile is the default one with ``scoringStrategy.type: MostAllocated``; BalancedAllocation
stays enabled, as it does when only the strategy is changed.
"""

from __future__ import annotations

import numpy as np

from neurokube.policies.base import ClusterView, PodSpec
from neurokube.policies.common import fits, pick_best
from neurokube.policies.default import DefaultArgs, most_allocated, profile_score


class MostAllocatedPolicy:
    name = "most-allocated"

    def __init__(self, rng: np.random.Generator, args: DefaultArgs = DefaultArgs()) -> None:
        self.rng = rng
        self.args = args

    def scores(self, pod: PodSpec, view: ClusterView) -> np.ndarray:
        return profile_score(pod, view, self.args, most_allocated)

    def select(self, pod: PodSpec, view: ClusterView) -> int | None:
        return pick_best(self.scores(pod, view), fits(pod, view), self.rng)
