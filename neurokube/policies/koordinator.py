"""Koordinator LoadAwareScheduling (koordinator-sh/koordinator, pkg/scheduler/plugins/loadaware).

Estimated node usage = reported usage + estimates of pods bound since the report + the incoming
pod's estimate. A pod's estimate is ``max(limit, request) * factor`` (CPU 85 %, memory 70 %),
capped at its limit when it has one; a pod without a request counts 250m / 200 MB.

* Filter: a node is unschedulable when estimated / allocatable exceeds 65 % CPU or 95 % memory,
  or when its metrics are older than 180 s. A node that has never reported is let through.
* Score: ``sum_r w_r * (alloc - est) * 100 / alloc / sum_r w_r`` (int64, weights cpu 1, memory 1).

Feasibility by requests (NodeResourcesFit) applies as well.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurokube.policies.base import ClusterView, PodSpec
from neurokube.policies.common import fits, pick_best

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


class KoordinatorPolicy:
    name = "koordinator"

    def __init__(self, rng: np.random.Generator, args: KoordinatorArgs = KoordinatorArgs()) -> None:
        self.rng = rng
        self.args = args

    def estimated_usage(self, pod: PodSpec, view: ClusterView) -> tuple[np.ndarray, np.ndarray]:
        a = self.args
        cpu = view.metrics.cpu_mean + view.per_node(
            estimate(view.recent_cpu_request, view.recent_cpu_limit, a.cpu_factor, a.default_cpu_milli))
        mem = view.metrics.mem_mean + view.per_node(
            estimate(view.recent_mem_request, view.recent_mem_limit, a.memory_factor, a.default_memory_mib))
        cpu = cpu + float(estimate(pod.cpu_request_milli, pod.cpu_limit_milli, a.cpu_factor, a.default_cpu_milli))
        mem = mem + float(estimate(pod.memory_request_mib, pod.memory_limit_mib, a.memory_factor,
                                   a.default_memory_mib))
        return cpu, mem

    def feasible(self, pod: PodSpec, view: ClusterView, cpu: np.ndarray, mem: np.ndarray) -> np.ndarray:
        a = self.args
        reported = view.metrics.samples > 0
        fresh = ~reported | (view.metrics.age_s <= a.metric_expiry_s)
        under = (cpu <= a.cpu_threshold * view.alloc_cpu) & (mem <= a.memory_threshold * view.alloc_mem)
        return fits(pod, view) & fresh & (under | ~reported)

    def scores(self, pod: PodSpec, view: ClusterView) -> np.ndarray:
        cpu, mem = self.estimated_usage(pod, view)
        a = self.args
        total = a.cpu_weight * _score(view.alloc_cpu, cpu) + a.memory_weight * _score(view.alloc_mem, mem)
        return total // (a.cpu_weight + a.memory_weight)

    def select(self, pod: PodSpec, view: ClusterView) -> int | None:
        cpu, mem = self.estimated_usage(pod, view)
        a = self.args
        total = a.cpu_weight * _score(view.alloc_cpu, cpu) + a.memory_weight * _score(view.alloc_mem, mem)
        score = total // (a.cpu_weight + a.memory_weight)
        return pick_best(score, self.feasible(pod, view, cpu, mem), self.rng)
