"""A uniformly random feasible node: the floor any policy must clear."""

from __future__ import annotations

import numpy as np

from neurokube.policies.base import ClusterView, PodSpec
from neurokube.policies.common import fits, pick_best


class RandomPolicy:
    name = "random"

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def select(self, pod: PodSpec, view: ClusterView) -> int | None:
        return pick_best(np.zeros(view.n_nodes), fits(pod, view), self.rng)
