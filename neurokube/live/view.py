"""The live :class:`~neurokube.policies.base.ClusterView`: what a policy sees, built from the cache.

Only the feasible nodes go in (the policies' own request check then agrees with the full filter).
Memory is converted to MiB conservatively: requests round up and allocatable rounds down, so
anything the view says fits also fits in bytes. Pods bound after ``refreshed_at - recent_lag_s``
are the *recent* pods: their usage is not in the metrics yet, and the features add them to the
node's projected load (the burst-on-a-cold-node failure of load-aware schedulers).
"""

from __future__ import annotations

import numpy as np

from neurokube.live.cache import Snapshot
from neurokube.live.prometheus import MetricsSnapshot
from neurokube.live.quantity import mib_down, mib_up
from neurokube.policies.base import ClusterView, NodeMetrics


def build_view(snapshot: Snapshot, nodes: np.ndarray, metrics: MetricsSnapshot | None, now: float,
               recent_lag_s: float) -> ClusterView:
    """A view of ``snapshot``'s nodes at indices ``nodes`` (in that order)."""
    nodes = np.asarray(nodes, dtype=np.int64)
    chosen = [snapshot.nodes[i] for i in nodes]
    names = [n.name for n in chosen]
    alloc_mem = np.array([mib_down(n.alloc_memory) for n in chosen], dtype=np.int64)
    mib = np.vectorize(mib_up, otypes=[np.int64])
    req_mem = mib(snapshot.used_memory[nodes]) if nodes.size else np.zeros(0, dtype=np.int64)
    nz_mem = mib(snapshot.used_nz_memory[nodes]) if nodes.size else np.zeros(0, dtype=np.int64)
    node_metrics = metrics.node_metrics(names, now) if metrics is not None else NodeMetrics.empty(len(names))
    view = ClusterView(
        now_s=now,
        alloc_cpu=np.array([n.alloc_cpu for n in chosen], dtype=np.int64),
        alloc_mem=alloc_mem,
        req_cpu=snapshot.used_cpu[nodes].astype(np.int64),
        req_mem=req_mem,
        nz_req_cpu=snapshot.used_nz_cpu[nodes].astype(np.int64),
        nz_req_mem=nz_mem,
        pod_count=snapshot.used_pods[nodes].astype(np.int64),
        metrics=node_metrics,
        lim_cpu=snapshot.lim_cpu[nodes].astype(np.int64),
        unlimited_pods=snapshot.unlimited[nodes].astype(np.int64),
    )
    since = (metrics.refreshed_at if metrics is not None and metrics.refreshed_at else now) - recent_lag_s
    position = {name: i for i, name in enumerate(names)}
    recent = [p for p in snapshot.recent if p.bound_at > since and p.node in position]
    if recent:
        view.recent_node = np.array([position[p.node] for p in recent], dtype=np.int64)
        view.recent_cpu_request = np.array([p.cpu for p in recent], dtype=np.int64)
        view.recent_mem_request = np.array([mib_up(p.memory) for p in recent], dtype=np.int64)
        view.recent_cpu_limit = np.array([p.cpu_limit for p in recent], dtype=np.int64)
        view.recent_mem_limit = np.array([mib_up(p.memory_limit) for p in recent], dtype=np.int64)
        view.recent_bind_s = np.array([p.bound_at for p in recent], dtype=np.float64)
        view.recent_workload = np.full(len(recent), -1, dtype=np.int64)
    return view
