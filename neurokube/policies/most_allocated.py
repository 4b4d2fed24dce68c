"""kube-scheduler with NodeResourcesFit's MostAllocated strategy (bin packing).

The profile is the default one with ``scoringStrategy.type: MostAllocated``; BalancedAllocation
stays enabled, as it does when only the strategy is changed.
"""

from __future__ import annotations

import numpy as np

from neurokube.policies.default import MOST_ALLOCATED, DefaultArgs, kube_profile
from neurokube.policies.framework import ScoredPolicy


class MostAllocatedPolicy(ScoredPolicy):
    name = "most-allocated"

    def __init__(self, rng: np.random.Generator, args: DefaultArgs = DefaultArgs()) -> None:
        self.rng = rng
        self.args = args
        self.profile = kube_profile(args, MOST_ALLOCATED)
