"""A uniformly random feasible node: the floor any policy must clear.

A framework profile with the NodeResourcesFit filter and no score plugin: every feasible node
totals 0, so the cycle's tie-break draws one uniformly.
"""

from __future__ import annotations

import numpy as np

from neurokube.policies.default import FIT_FILTER
from neurokube.policies.framework import FrameworkPolicy, Profile

RANDOM_PROFILE = Profile(filters=(FIT_FILTER,))


class RandomPolicy(FrameworkPolicy):
    name = "random"
    profile = RANDOM_PROFILE

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
