"""Koordinator LoadAwareScheduling (koordinator-sh/koordinator, pkg/scheduler/plugins/loadaware).

Estimated node usage = reported usage + estimates of pods bound since the report + the incoming
pod's estimate. A pod's estimate is ``max(limit, request) * factor`` (CPU 85 %, memory 70 %),
capped at its limit when it has one; a pod without a request counts 250m / 200 MB.

* Filter: a node is unschedulable when estimated / allocatable exceeds 65 % CPU or 95 % memory,
  or when its metrics are older than 180 s. A node that has never reported is let through.
* Score: ``sum_r w_r * (alloc - est) * 100 / alloc / sum_r w_r`` (int64, weights cpu 1, memory 1).

Feasibility by requests (NodeResourcesFit) applies as well. As a framework plugin
(:class:`LoadAware`) the filter and the score share one estimate per cycle, and every node the
filter rejects is charged to a named reason (cpu or memory threshold, expired metrics), as
upstream's ``ErrReason...`` constants do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurokube.policies.base import ClusterView, PodSpec
from neurokube.policies.default import FIT_FILTER
from neurokube.policies.framework import CycleState, Filtered, Profile, Reason, ScoredPolicy, Weighted

MB_IN_MIB = 1e6 / 2**20


@dataclass(frozen=True)
class KoordinatorArgs:
    cpu_factor: float = 0.85
    memory_factor: float = 0.70
    default_cpu_milli: float = 250.0
    default_memory_mib: float = 200 * MB_IN_MIB
    cpu_threshold: float = 0.65
    memory_threshold: float = 0.95
    metric_expiry_s: float = 180.0
    cpu_weight: int = 1
    memory_weight: int = 1

    def __post_init__(self) -> None:
        for name in ("cpu_factor", "memory_factor", "cpu_threshold", "memory_threshold"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in (0, 1]")
        for name in ("default_cpu_milli", "default_memory_mib", "metric_expiry_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        if self.cpu_weight < 0 or self.memory_weight < 0 or self.cpu_weight + self.memory_weight == 0:
            raise ValueError("cpu_weight and memory_weight must not be negative, and not both 0")


def estimate(request: np.ndarray, limit: np.ndarray, factor: float, default: float) -> np.ndarray:
    """Koordinator's per-pod usage estimate for one resource."""
    request = np.asarray(request, dtype=np.float64)
    limit = np.asarray(limit, dtype=np.float64)
    est = np.maximum(limit, request) * factor
    est = np.where(limit > 0, np.minimum(est, limit), est)
    return np.where((request == 0) & (limit == 0), default, est)


def _score(alloc: np.ndarray, est: np.ndarray) -> np.ndarray:
    alloc = alloc.astype(np.int64)
    used = np.minimum(est.astype(np.int64), alloc)
    return (alloc - used) * 100 // np.maximum(alloc, 1)


class LoadAware:
    """Koordinator LoadAwareScheduling: a filter (load thresholds, metric expiry) and a score."""

    name = "LoadAwareScheduling"

    def __init__(self, args: KoordinatorArgs = KoordinatorArgs()) -> None:
        self.args = args

    def estimated_usage(self, pod: PodSpec, view: ClusterView) -> tuple[np.ndarray, np.ndarray]:
        """Estimated CPU (millicores) and memory (MiB) per node with the pod placed there."""
        a = self.args
        cpu = view.metrics.cpu_mean + view.per_node(
            estimate(view.recent_cpu_request, view.recent_cpu_limit, a.cpu_factor, a.default_cpu_milli))
        mem = view.metrics.mem_mean + view.per_node(
            estimate(view.recent_mem_request, view.recent_mem_limit, a.memory_factor, a.default_memory_mib))
        cpu = cpu + float(estimate(pod.cpu_request_milli, pod.cpu_limit_milli, a.cpu_factor, a.default_cpu_milli))
        mem = mem + float(estimate(pod.memory_request_mib, pod.memory_limit_mib, a.memory_factor,
                                   a.default_memory_mib))
        return cpu, mem

    def _estimate(self, pod: PodSpec, view: ClusterView, state: CycleState) -> tuple[np.ndarray, np.ndarray]:
        """The estimate, computed once per cycle and shared by filter and score."""
        if self.name not in state:
            state[self.name] = self.estimated_usage(pod, view)
        return state[self.name]

    def load_feasible(self, view: ClusterView, cpu: np.ndarray, mem: np.ndarray) -> Filtered:
        a = self.args
        reported = view.metrics.samples > 0
        within = view.metrics.age_s <= a.metric_expiry_s
        cpu_under = cpu <= a.cpu_threshold * view.alloc_cpu
        mem_under = mem <= a.memory_threshold * view.alloc_mem
        fresh = ~reported | within
        under = cpu_under & mem_under
        return Filtered(fresh & (under | ~reported), {
            Reason.METRICS_EXPIRED: reported & ~within,
            Reason.CPU_LOAD_THRESHOLD_EXCEEDED: reported & ~cpu_under,
            Reason.MEMORY_LOAD_THRESHOLD_EXCEEDED: reported & ~mem_under,
        })

    def filter(self, pod: PodSpec, view: ClusterView, state: CycleState) -> Filtered:
        return self.load_feasible(view, *self._estimate(pod, view, state))

    def node_scores(self, view: ClusterView, cpu: np.ndarray, mem: np.ndarray) -> np.ndarray:
        a = self.args
        total = a.cpu_weight * _score(view.alloc_cpu, cpu) + a.memory_weight * _score(view.alloc_mem, mem)
        return total // (a.cpu_weight + a.memory_weight)

    def score(self, pod: PodSpec, view: ClusterView, nodes: np.ndarray, state: CycleState) -> np.ndarray:
        return self.node_scores(view, *self._estimate(pod, view, state))[nodes]


class KoordinatorPolicy(ScoredPolicy):
    name = "koordinator"

    def __init__(self, rng: np.random.Generator, args: KoordinatorArgs = KoordinatorArgs()) -> None:
        self.rng = rng
        self.args = args
        self.plugin = LoadAware(args)
        self.profile = Profile(filters=(FIT_FILTER, self.plugin), scores=(Weighted(self.plugin),))

    def estimated_usage(self, pod: PodSpec, view: ClusterView) -> tuple[np.ndarray, np.ndarray]:
        return self.plugin.estimated_usage(pod, view)

    def feasible(self, pod: PodSpec, view: ClusterView, cpu: np.ndarray, mem: np.ndarray) -> np.ndarray:
        """NodeResourcesFit and LoadAware's filter together, for a given estimate."""
        return FIT_FILTER.filter(pod, view, CycleState()).feasible & self.plugin.load_feasible(view, cpu, mem).feasible
