"""Trimaran TargetLoadPacking (kubernetes-sigs/scheduler-plugins, pkg/trimaran/targetloadpacking).

CPU only. The pod's predicted CPU is its limit if set, else 1.5 x its request, else 1000m; pods
bound since the newest scrape are added to their node with the same prediction. With
``U = 100 * (used + predicted) / capacity`` and target ``X`` (default 40)::

    score = round((100 - X) * U / X + X)        if U <= X
          = round(X * (100 - U) / (100 - X))     if X < U <= 100
          = 0                                    if U > 100

A node without metrics scores 0. It is a score plugin (:class:`TargetLoadPacking`): feasibility is
NodeResourcesFit's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurokube.policies.base import ClusterView, PodSpec
from neurokube.policies.common import go_round
from neurokube.policies.default import FIT_FILTER
from neurokube.policies.framework import Profile, ScoredPolicy, Weighted

DEFAULT_REQUEST_MULTIPLIER = 1.5
DEFAULT_CPU_MILLI = 1000


@dataclass(frozen=True)
class TLPArgs:
    target_utilization: float = 40.0
    default_request_multiplier: float = DEFAULT_REQUEST_MULTIPLIER
    default_cpu_milli: int = DEFAULT_CPU_MILLI

    def __post_init__(self) -> None:
        if not 0 < self.target_utilization < 100:
            raise ValueError("target_utilization must be in (0, 100)")
        if self.default_request_multiplier <= 0 or self.default_cpu_milli <= 0:
            raise ValueError("default_request_multiplier and default_cpu_milli must be positive")


def predicted_cpu(request: np.ndarray, limit: np.ndarray, args: TLPArgs = TLPArgs()) -> np.ndarray:
    request = np.asarray(request, dtype=np.float64)
    limit = np.asarray(limit, dtype=np.float64)
    return np.where(limit > 0, limit,
                    np.where(request > 0, request * args.default_request_multiplier,
                             float(args.default_cpu_milli)))


def target_load_score(utilization: np.ndarray, target: float) -> np.ndarray:
    """The TLP curve: rises from X at U=0 to 100 at U=X, falls to 0 at U=100."""
    u = np.asarray(utilization, dtype=np.float64)
    rising = (100.0 - target) * u / target + target
    falling = target * (100.0 - u) / (100.0 - target)
    score = np.where(u <= target, rising, falling)
    return np.where(u > 100.0, 0.0, go_round(score)).astype(np.int64)


class TargetLoadPacking:
    """Score plugin: the TLP curve of each node's predicted CPU utilisation (0 without metrics)."""

    name = "TargetLoadPacking"

    def __init__(self, args: TLPArgs = TLPArgs()) -> None:
        self.args = args

    def node_scores(self, pod: PodSpec, view: ClusterView) -> np.ndarray:
        """The score of every view node."""
        recent = view.per_node(predicted_cpu(view.recent_cpu_request, view.recent_cpu_limit, self.args))
        mine = float(predicted_cpu(pod.cpu_request_milli, pod.cpu_limit_milli, self.args))
        used = view.metrics.cpu_mean + recent + mine
        u = 100.0 * used / view.alloc_cpu
        score = target_load_score(u, self.args.target_utilization)
        return np.where(view.metrics.samples > 0, score, 0)

    def score(self, pod: PodSpec, view: ClusterView, nodes: np.ndarray, state) -> np.ndarray:
        return self.node_scores(pod, view)[nodes]


class TargetLoadPackingPolicy(ScoredPolicy):
    name = "tlp"

    def __init__(self, rng: np.random.Generator, args: TLPArgs = TLPArgs()) -> None:
        self.rng = rng
        self.args = args
        self.profile = Profile(filters=(FIT_FILTER,), scores=(Weighted(TargetLoadPacking(args)),))
