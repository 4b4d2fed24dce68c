"""What a placement policy sees and returns.

A policy sees exactly what a live, Prometheus-fed scheduler sees: each node's allocatable and
bound requests, its usage as the metrics pipeline reports it (averaged over a window and
delayed), and the pods bound to it since the newest scrape. The replay simulator and the live
binder both build a :class:`ClusterView`; policies never learn where it came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

# Defaults kube-scheduler assumes for a container without requests, when *scoring*
# (pkg/scheduler/util/non_zero.go): 100 millicores and 200 MiB.
NONZERO_CPU_MILLI = 100
NONZERO_MEMORY_MIB = 200

GUARANTEED, BURSTABLE, BEST_EFFORT = 0, 1, 2


@dataclass(frozen=True, slots=True)
class PodSpec:
    """The pod being placed. A limit of 0 means none."""

    cpu_request_milli: int
    memory_request_mib: int
    cpu_limit_milli: int = 0
    memory_limit_mib: int = 0
    qos: int = BURSTABLE
    workload: int = -1
    """Dense workload id (-1 unknown); keys the learned per-workload usage statistics."""
    index: int = -1
    """Row of the pod in its trace (replay only; -1 live)."""

    @property
    def nonzero_cpu(self) -> int:
        return self.cpu_request_milli if self.cpu_request_milli > 0 else NONZERO_CPU_MILLI

    @property
    def nonzero_memory(self) -> int:
        return self.memory_request_mib if self.memory_request_mib > 0 else NONZERO_MEMORY_MIB


@dataclass(slots=True)
class NodeMetrics:
    """Per-node usage over the metrics window, in millicores and MiB, as Prometheus reports it.

    ``samples`` is how many scrapes fell in the window (0: no metrics yet) and ``age_s`` how old
    the newest one is.
    """

    cpu_mean: np.ndarray
    cpu_max: np.ndarray
    cpu_std: np.ndarray
    cpu_trend: np.ndarray  # millicores per second, least-squares slope over the window
    mem_mean: np.ndarray
    mem_max: np.ndarray
    mem_std: np.ndarray
    mem_trend: np.ndarray
    samples: np.ndarray  # int
    age_s: np.ndarray

    @classmethod
    def empty(cls, n: int) -> "NodeMetrics":
        z = np.zeros(n)
        return cls(z, z, z, z, z, z, z, z, np.zeros(n, dtype=np.int64), np.full(n, np.inf))


@dataclass(slots=True)
class WorkloadUsage:
    """What has been observed of each workload's pods so far, indexed by workload id.

    Every scrape adds one sample per running pod of the workload; a live system reads the same
    from Prometheus (cAdvisor series joined to the pods' owners). Means and maxima are in
    millicores and MiB; ``cpu_ratio_mean`` is usage / request over pods that have a request.
    """

    samples: np.ndarray  # int64
    cpu_mean: np.ndarray
    cpu_std: np.ndarray
    cpu_max: np.ndarray
    mem_mean: np.ndarray
    mem_max: np.ndarray
    cpu_ratio_mean: np.ndarray

    @classmethod
    def empty(cls, n: int) -> "WorkloadUsage":
        z = np.zeros(n)
        return cls(np.zeros(n, dtype=np.int64), z, z, z, z, z, z)


@dataclass(slots=True)
class ClusterView:
    """Everything a policy may look at. Arrays are indexed by node; policies must not mutate them."""

    now_s: float
    alloc_cpu: np.ndarray  # int64 millicores
    alloc_mem: np.ndarray  # int64 MiB
    req_cpu: np.ndarray  # int64: sum of bound pods' requests
    req_mem: np.ndarray
    nz_req_cpu: np.ndarray  # int64: the same with kube-scheduler's non-zero defaults
    nz_req_mem: np.ndarray
    pod_count: np.ndarray  # int64
    metrics: NodeMetrics
    lim_cpu: np.ndarray | None = None  # int64: sum of bound pods' CPU limits (pods with one)
    unlimited_pods: np.ndarray | None = None  # int64: bound pods without a CPU limit
    # Pods bound since the newest scrape (their usage is not in the metrics yet), one entry each.
    recent_node: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    recent_cpu_request: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    recent_mem_request: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    recent_cpu_limit: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    recent_mem_limit: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    recent_bind_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    recent_workload: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    workloads: WorkloadUsage | None = None
    """Observed usage per workload (None when the source has no such history)."""
    cluster_cpu: tuple[np.ndarray, np.ndarray] | None = None
    """Requested and allocatable CPU of every node of the cluster, when the view holds only some of
    them (the live views hold the feasible ones); None: the view's own nodes are the cluster."""
    prefiltered: bool = False
    """Every node here already passed NodeResourcesFit at the edge. The live binder and extender
    filter exactly (bytes, taints, affinity: :mod:`neurokube.k8s.feasibility`) and put only the
    passing nodes in the view, so the cycle's fit filter takes that verdict instead of checking
    again on MiB-rounded numbers: a pod is filtered once on the live path. The replay leaves it
    False and filters in the cycle."""

    @property
    def n_nodes(self) -> int:
        return len(self.alloc_cpu)

    def requested_cpu_share(self) -> float:
        """The cluster's requested CPU over its allocatable CPU (1.0 with none allocatable): over
        ``cluster_cpu`` when the source set it, else over this view's nodes (the replay's view holds
        them all). Summed when asked, so a view whose policy never asks costs nothing more."""
        requested, allocatable = self.cluster_cpu if self.cluster_cpu is not None else (self.req_cpu, self.alloc_cpu)
        total = float(allocatable.sum())
        return float(requested.sum()) / total if total > 0 else 1.0

    def per_node(self, values: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Sum ``values`` (one per recent pod) into their nodes."""
        nodes = self.recent_node if mask is None else self.recent_node[mask]
        weights = values if mask is None else values[mask]
        return np.bincount(nodes, weights=weights, minlength=self.n_nodes)


class Policy(Protocol):
    """A placement policy: picks a node index for ``pod``, or ``None`` to leave it pending."""

    name: str

    @property
    def fallbacks(self) -> int:
        """Decisions handed to a fallback (see :class:`~neurokube.policies.framework.FrameworkPolicy`)."""
        ...

    def select(self, pod: PodSpec, view: ClusterView) -> int | None: ...


class BindObserver(Protocol):
    """Optional hook: policies that keep their own state are told of every binding."""

    def on_bind(self, pod: PodSpec, node: int, now_s: float) -> None: ...
