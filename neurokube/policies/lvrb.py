"""Trimaran LoadVariationRiskBalancing (scheduler-plugins, pkg/trimaran/loadvariationriskbalancing).

Per resource r (CPU, memory), from the metrics window's mean and standard deviation::

    mu     = clamp((mean + pod_request) / capacity)
    sigma  = clamp(std / capacity)
    sigma' = clamp(margin * sigma ** (1 / sensitivity))
    risk   = (mu + sigma') / 2
    score  = (1 - risk) * 100

The node's score is the minimum over CPU and memory (clamp is to [0, 1]). Defaults margin 1,
sensitivity 1. A node without metrics scores 0. It is a score plugin
(:class:`LoadVariationRiskBalancing`): feasibility is NodeResourcesFit's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurokube.policies.base import ClusterView, PodSpec
from neurokube.policies.common import go_round
from neurokube.policies.default import FIT_FILTER
from neurokube.policies.framework import Profile, ScoredPolicy, Weighted


@dataclass(frozen=True)
class LVRBArgs:
    safe_variance_margin: float = 1.0
    safe_variance_sensitivity: float = 1.0

    def __post_init__(self) -> None:
        if self.safe_variance_margin < 0 or self.safe_variance_sensitivity <= 0:
            raise ValueError("margin must be >= 0 and sensitivity > 0")


def risk_score(mean: np.ndarray, std: np.ndarray, request: float, capacity: np.ndarray,
               args: LVRBArgs = LVRBArgs()) -> np.ndarray:
    """Score 0..100 for one resource."""
    mu = np.clip((mean + request) / capacity, 0.0, 1.0)
    sigma = np.clip(std / capacity, 0.0, 1.0)
    sigma = np.clip(args.safe_variance_margin * np.power(sigma, 1.0 / args.safe_variance_sensitivity),
                    0.0, 1.0)
    risk = (mu + sigma) / 2.0
    return go_round((1.0 - risk) * 100.0).astype(np.int64)


class LoadVariationRiskBalancing:
    """Score plugin: the lower of the CPU and memory risk scores (0 without metrics)."""

    name = "LoadVariationRiskBalancing"

    def __init__(self, args: LVRBArgs = LVRBArgs()) -> None:
        self.args = args

    def node_scores(self, pod: PodSpec, view: ClusterView) -> np.ndarray:
        """The score of every view node."""
        m = view.metrics
        cpu = risk_score(m.cpu_mean, m.cpu_std, pod.cpu_request_milli, view.alloc_cpu, self.args)
        mem = risk_score(m.mem_mean, m.mem_std, pod.memory_request_mib, view.alloc_mem, self.args)
        return np.where(m.samples > 0, np.minimum(cpu, mem), 0)

    def score(self, pod: PodSpec, view: ClusterView, nodes: np.ndarray, state) -> np.ndarray:
        return self.node_scores(pod, view)[nodes]


class LoadVariationRiskBalancingPolicy(ScoredPolicy):
    name = "lvrb"

    def __init__(self, rng: np.random.Generator, args: LVRBArgs = LVRBArgs()) -> None:
        self.rng = rng
        self.args = args
        self.profile = Profile(filters=(FIT_FILTER,), scores=(Weighted(LoadVariationRiskBalancing(args)),))
