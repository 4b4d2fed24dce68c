"""Pieces every policy shares: the request-fit test and a seeded argmax with random ties.

The request-fit test is also the NodeResourcesFit filter plugin every framework profile starts
with (:class:`neurokube.policies.default.NodeResourcesFit`); the argmax is the framework's
:func:`~neurokube.policies.framework.select_host`, kept here under its old name for callers that
hold a full score vector and a mask.
"""

from __future__ import annotations

import numpy as np

from neurokube.policies.base import ClusterView, PodSpec
from neurokube.policies.framework import select_host


def fits(pod: PodSpec, view: ClusterView) -> np.ndarray:
    """kube-scheduler's NodeResourcesFit filter: requests fit allocatable minus bound requests
    (every node of a :attr:`~ClusterView.prefiltered` view: the edge has filtered it)."""
    if view.prefiltered:
        return np.ones(view.n_nodes, dtype=bool)
    return (view.req_cpu + pod.cpu_request_milli <= view.alloc_cpu) & (
        view.req_mem + pod.memory_request_mib <= view.alloc_mem)


def pick_best(scores: np.ndarray, feasible: np.ndarray, rng: np.random.Generator) -> int | None:
    """Index of the highest score among ``feasible`` nodes, ties broken uniformly at random.

    kube-scheduler keeps the best score with reservoir sampling (schedule_one.go selectHost),
    which is a uniform choice among the tied nodes, as here.
    """
    candidates = np.flatnonzero(feasible)
    return select_host(candidates, scores[candidates], rng)


def go_round(x: np.ndarray | float) -> np.ndarray:
    """Go's math.Round (half away from zero) for non-negative values."""
    return np.floor(np.asarray(x, dtype=np.float64) + 0.5)
