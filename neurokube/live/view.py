"""The live :class:`~neurokube.policies.base.ClusterView`: what a policy sees, built from the cache.

Only the feasible nodes go in, and the view says so (``prefiltered``): the policies' fit filter
takes the edge's exact verdict instead of filtering again, so a pod is filtered once. Memory is
converted to MiB conservatively: requests round up and allocatable rounds down, so
anything the view says fits also fits in bytes. Pods bound after ``refreshed_at - recent_lag_s``
are the *recent* pods: their usage is not in the metrics yet, and the features add them to the
node's projected load (the burst-on-a-cold-node failure of load-aware schedulers).

The per-workload usage history is the metrics snapshot's (refreshed in the metrics thread, indexed
by the watch cache's workload ids); the recent pods carry their workload ids from the cache, and
the pod being placed gets its own from :meth:`ClusterCache.workload_id` (``scheduler.pod_spec``).
So the view holds everything the replay's does (``sim/engine.py``).

Everything is column arithmetic on the snapshot's node table, its recent pods as arrays and the
metrics' columns: no per-node Python, so a view of 1,000 nodes costs tens of microseconds. When
every node is feasible the view's request columns are the snapshot's own (read-only) arrays, not
copies; a policy that tried to write to them would fail loudly rather than corrupt the cache.
"""

from __future__ import annotations

import numpy as np

from neurokube.features.placement import row_index
from neurokube.k8s.quantity import MIB
from neurokube.live.cache import Snapshot
from neurokube.live.prometheus import MetricsSnapshot
from neurokube.policies.base import ClusterView, NodeMetrics


def _mib_up(n_bytes: np.ndarray) -> np.ndarray:
    return -(-n_bytes // MIB)


def build_view(snapshot: Snapshot, nodes: np.ndarray, metrics: MetricsSnapshot | None, now: float,
               recent_lag_s: float) -> ClusterView:
    """A view of ``snapshot``'s nodes at indices ``nodes`` (in that order), which the caller's
    exact filter passed (:mod:`neurokube.k8s.feasibility`)."""
    nodes = np.asarray(nodes, dtype=np.int64)
    table = snapshot.table
    if metrics is not None:
        node_metrics = metrics.node_metrics(table.names, now, rows=nodes)
    else:
        node_metrics = NodeMetrics.empty(nodes.size)
    # Every node feasible (the common case): the snapshot's own columns, read-only, with no copies.
    rows = row_index(nodes, len(table))
    view = ClusterView(
        now_s=now,
        alloc_cpu=table.alloc_cpu[rows],
        alloc_mem=table.alloc_memory_mib[rows],
        req_cpu=snapshot.used_cpu[rows],
        req_mem=_mib_up(snapshot.used_memory[rows]),
        nz_req_cpu=snapshot.used_nz_cpu[rows],
        nz_req_mem=_mib_up(snapshot.used_nz_memory[rows]),
        pod_count=snapshot.used_pods[rows],
        metrics=node_metrics,
        lim_cpu=snapshot.lim_cpu[rows],
        unlimited_pods=snapshot.unlimited[rows],
        workloads=metrics.workloads if metrics is not None else None,
        cluster_cpu=(snapshot.used_cpu, table.alloc_cpu),  # the whole cluster's, by reference
        prefiltered=True,
    )
    if not snapshot.recent:
        return view
    since = (metrics.refreshed_at if metrics is not None and metrics.refreshed_at else now) - recent_lag_s
    recent = snapshot.recent_columns(since)
    if recent.row.size == 0:
        return view
    position = np.full(len(table) + 1, -1, dtype=np.int64)  # table row -> view index; the last: not a row
    position[nodes] = np.arange(nodes.size)
    where = position[recent.row]  # row -1 reads the last entry
    take = where >= 0
    if take.any():
        view.recent_node = where[take]
        view.recent_cpu_request = recent.cpu[take]
        view.recent_mem_request = _mib_up(recent.memory[take])
        view.recent_cpu_limit = recent.cpu_limit[take]
        view.recent_mem_limit = _mib_up(recent.memory_limit[take])
        view.recent_bind_s = recent.bound_at[take]
        view.recent_workload = recent.workload[take]
    return view
