"""Pieces every policy shares: the request-fit filter and a seeded argmax with random ties."""

from __future__ import annotations

import numpy as np

from neurokube.policies.base import ClusterView, PodSpec


def fits(pod: PodSpec, view: ClusterView) -> np.ndarray:
    """kube-scheduler's NodeResourcesFit filter: requests fit allocatable minus bound requests."""
    return (view.req_cpu + pod.cpu_request_milli <= view.alloc_cpu) & (
        view.req_mem + pod.memory_request_mib <= view.alloc_mem)


def pick_best(scores: np.ndarray, feasible: np.ndarray, rng: np.random.Generator) -> int | None:
    """Index of the highest score among ``feasible`` nodes, ties broken uniformly at random.

    kube-scheduler keeps the best score with reservoir sampling (schedule_one.go selectHost),
    which is a uniform choice among the tied nodes, as here.
    """
    candidates = np.flatnonzero(feasible)
    if candidates.size == 0:
        return None
    s = scores[candidates]
    best = candidates[s == s.max()]
    if best.size == 1:
        return int(best[0])
    return int(best[rng.integers(best.size)])


def go_round(x: np.ndarray | float) -> np.ndarray:
    """Go's math.Round (half away from zero) for non-negative values."""
    return np.floor(np.asarray(x, dtype=np.float64) + 0.5)
