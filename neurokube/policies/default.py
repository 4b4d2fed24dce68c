"""kube-scheduler's default scoring (Kubernetes v1.35.4), on top of the NodeResourcesFit filter.

Of the default score plugins only two tell nodes apart in a replay: NodeResourcesFit
(LeastAllocated, cpu:1 memory:1) and NodeResourcesBalancedAllocation (weight 1 each). The others
(TaintToleration, NodeAffinity, PodTopologySpread, InterPodAffinity, ImageLocality) give every
node the same score for pods without affinities, topology constraints or images, so they cannot
change the argmax. Read from pkg/scheduler/framework/plugins/noderesources/ at v1.35.4:

* Fit scores *non-zero* requested (a container without requests counts 100m / 200 MiB) plus the
  pod's non-zero request, per resource ``(cap - req) * 100 // cap`` (0 when req > cap), combined
  as ``sum(s * w) // sum(w)`` -- int64 arithmetic throughout.
* BalancedAllocation uses the *actual* requests (``useRequested: true``):
  ``f = min(req / alloc, 1)``, ``std = |f_cpu - f_mem| / 2``, score ``int64((1 - std) * 100)``;
  it is skipped (contributes nothing) for BestEffort pods.
* Highest total wins; ties are broken uniformly at random.

As framework plugins (:mod:`neurokube.policies.framework`): :class:`NodeResourcesFit` is the
filter every profile starts with (:data:`FIT_FILTER`) and, with a strategy, a score plugin;
:class:`BalancedAllocation` is the other score plugin of the default profile.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from neurokube.policies.base import ClusterView, PodSpec
from neurokube.policies.framework import (
    Filtered,
    Profile,
    Reason,
    ScoredPolicy,
    Status,
    Weighted,
)

MAX_NODE_SCORE = 100
MAX_WEIGHT = 100
"""kube-scheduler refuses plugin and resource weights above 100."""


@dataclass(frozen=True)
class DefaultArgs:
    """The score knobs of a kube-scheduler profile that matter in a replay (upstream defaults).

    ``fit_weight`` and ``balanced_weight`` are the profile's plugin weights of NodeResourcesFit and
    NodeResourcesBalancedAllocation (0 disables the plugin); ``cpu_weight`` and ``memory_weight``
    are NodeResourcesFit's ``scoringStrategy.resources`` weights.
    """

    fit_weight: int = 1
    balanced_weight: int = 1
    cpu_weight: int = 1
    memory_weight: int = 1

    def __post_init__(self) -> None:
        for name in ("fit_weight", "balanced_weight"):
            if not 0 <= getattr(self, name) <= MAX_WEIGHT:
                raise ValueError(f"{name} must be in 0..{MAX_WEIGHT}")
        for name in ("cpu_weight", "memory_weight"):
            if not 1 <= getattr(self, name) <= MAX_WEIGHT:
                raise ValueError(f"{name} must be in 1..{MAX_WEIGHT}")
        if self.fit_weight == 0 and self.balanced_weight == 0:
            raise ValueError("fit_weight and balanced_weight cannot both be 0")


def least_allocated(requested: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    """Per-resource LeastAllocated score, int64."""
    requested = np.asarray(requested, dtype=np.int64)
    capacity = np.asarray(capacity, dtype=np.int64)
    safe = np.where(capacity == 0, 1, capacity)
    score = ((capacity - requested) * MAX_NODE_SCORE) // safe
    return np.where((capacity == 0) | (requested > capacity), 0, score)


def most_allocated(requested: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    """Per-resource MostAllocated score, int64 (requested above capacity counts as capacity)."""
    requested = np.asarray(requested, dtype=np.int64)
    capacity = np.asarray(capacity, dtype=np.int64)
    safe = np.where(capacity == 0, 1, capacity)
    score = (np.minimum(requested, capacity) * MAX_NODE_SCORE) // safe
    return np.where(capacity == 0, 0, score)


def balanced_allocation(pod: PodSpec, view: ClusterView) -> np.ndarray:
    """BalancedAllocation score per node (0 everywhere for a BestEffort pod: the plugin skips)."""
    if pod.cpu_request_milli == 0 and pod.memory_request_mib == 0:
        return np.zeros(view.n_nodes, dtype=np.int64)
    f_cpu = np.minimum((view.req_cpu + pod.cpu_request_milli) / view.alloc_cpu, 1.0)
    f_mem = np.minimum((view.req_mem + pod.memory_request_mib) / view.alloc_mem, 1.0)
    std = np.abs((f_cpu - f_mem) / 2.0)
    return ((1.0 - std) * MAX_NODE_SCORE).astype(np.int64)  # int64() truncates, as in Go


def fit_score(pod: PodSpec, view: ClusterView, per_resource=least_allocated,
              cpu_weight: int = 1, memory_weight: int = 1) -> np.ndarray:
    """NodeResourcesFit score over non-zero requests, ``(s_cpu w_cpu + s_mem w_mem) // (w_cpu + w_mem)``."""
    cpu = per_resource(view.nz_req_cpu + pod.nonzero_cpu, view.alloc_cpu)
    mem = per_resource(view.nz_req_mem + pod.nonzero_memory, view.alloc_mem)
    return (cpu * cpu_weight + mem * memory_weight) // (cpu_weight + memory_weight)


def profile_score(pod: PodSpec, view: ClusterView, args: "DefaultArgs", per_resource=least_allocated) -> np.ndarray:
    """The profile's total: ``fit_weight * Fit + balanced_weight * BalancedAllocation``."""
    total = args.fit_weight * fit_score(pod, view, per_resource, args.cpu_weight, args.memory_weight)
    if args.balanced_weight:
        total = total + args.balanced_weight * balanced_allocation(pod, view)
    return total


LEAST_ALLOCATED, MOST_ALLOCATED = "LeastAllocated", "MostAllocated"
STRATEGIES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    LEAST_ALLOCATED: least_allocated, MOST_ALLOCATED: most_allocated}


@dataclass(frozen=True)
class FitArgs:
    """NodeResourcesFit's ``scoringStrategy``: its type and its resource weights (upstream defaults)."""

    strategy: str = LEAST_ALLOCATED
    cpu_weight: int = 1
    memory_weight: int = 1

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}")
        for name in ("cpu_weight", "memory_weight"):
            if not 1 <= getattr(self, name) <= MAX_WEIGHT:
                raise ValueError(f"{name} must be in 1..{MAX_WEIGHT}")


class NodeResourcesFit:
    """Filter: the requests fit allocatable minus bound requests. Score: the Fit strategy."""

    name = "NodeResourcesFit"

    def __init__(self, args: FitArgs = FitArgs()) -> None:
        self.args = args
        self.per_resource = STRATEGIES[args.strategy]

    def filter(self, pod: PodSpec, view: ClusterView, state) -> Filtered:
        if view.prefiltered:  # the live edge's exact filter put only passing nodes in the view
            return Filtered(np.ones(view.n_nodes, dtype=bool))
        short_cpu = view.req_cpu + pod.cpu_request_milli > view.alloc_cpu
        short_mem = view.req_mem + pod.memory_request_mib > view.alloc_mem
        return Filtered(~short_cpu & ~short_mem,
                        {Reason.INSUFFICIENT_CPU: short_cpu, Reason.INSUFFICIENT_MEMORY: short_mem})

    def score(self, pod: PodSpec, view: ClusterView, nodes: np.ndarray, state) -> np.ndarray:
        return fit_score(pod, view, self.per_resource, self.args.cpu_weight, self.args.memory_weight)[nodes]


FIT_FILTER = NodeResourcesFit()
"""The feasibility filter every profile shares (its arguments only matter for scoring)."""


class BalancedAllocation:
    """Score: how evenly CPU and memory requests fill the node; BestEffort pods skip it."""

    name = "NodeResourcesBalancedAllocation"

    def score(self, pod: PodSpec, view: ClusterView, nodes: np.ndarray, state) -> np.ndarray | Status:
        if pod.cpu_request_milli == 0 and pod.memory_request_mib == 0:
            return Status.skip(Reason.BEST_EFFORT_POD, self.name)
        return balanced_allocation(pod, view)[nodes]


def kube_profile(args: DefaultArgs, strategy: str = LEAST_ALLOCATED) -> Profile:
    """A kube-scheduler profile: the Fit filter; Fit (``strategy``) and BalancedAllocation scores,
    each at its weight (0 leaves a plugin out)."""
    scores = []
    if args.fit_weight:
        fit = NodeResourcesFit(FitArgs(strategy, args.cpu_weight, args.memory_weight))
        scores.append(Weighted(fit, args.fit_weight))
    if args.balanced_weight:
        scores.append(Weighted(BalancedAllocation(), args.balanced_weight))
    return Profile(filters=(FIT_FILTER,), scores=tuple(scores))


class DefaultPolicy(ScoredPolicy):
    """kube-scheduler default profile: LeastAllocated + BalancedAllocation."""

    name = "default"

    def __init__(self, rng: np.random.Generator, args: DefaultArgs = DefaultArgs()) -> None:
        self.rng = rng
        self.args = args
        self.profile = kube_profile(args, LEAST_ALLOCATED)
