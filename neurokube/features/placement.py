"""Features of placing one pod on each candidate node.

Computed only from a :class:`~neurokube.policies.base.ClusterView`, which holds what a live
scheduler can observe:
- node allocatable and bound requests and limits;
- node usage as Prometheus reports it (window mean, max, std, trend, staleness);
- the pods bound since the newest scrape;
- the pod's requests, limits and QoS;
- what has been observed of earlier pods of the same workload;
- the time of day.

Nothing here can see the future. tests/unit/test_features.py proves it by changing a trace
after the decision time and checking that the features do not move.

Quantities are mostly fractions of the node's allocatable, so a model trained on one cluster
shape transfers to nodes of other sizes.
"""

from __future__ import annotations

import numpy as np

from neurokube.policies.base import BEST_EFFORT, ClusterView, PodSpec, WorkloadUsage

FEATURE_VERSION = 1
FEATURE_NAMES: tuple[str, ...] = (
    "node_cpu_cores", "node_mem_gib",
    "req_cpu_frac_after", "req_mem_frac_after", "nz_req_cpu_frac_after",
    "lim_cpu_frac", "unlimited_pods", "pod_count", "active",
    "cpu_mean_frac", "cpu_max_frac", "cpu_std_frac", "cpu_trend_frac_h",
    "mem_mean_frac", "mem_max_frac", "metrics_age_s", "metrics_samples",
    "recent_pods", "recent_cpu_est_frac", "recent_mem_est_frac",
    "pod_cpu_req_frac", "pod_mem_req_frac", "pod_cpu_lim_frac", "pod_qos",
    "pod_cpu_est_frac", "pod_cpu_peak_frac", "pod_mem_peak_frac",
    "wl_log_samples", "wl_cpu_ratio_mean",
    "proj_cpu_mean_frac", "proj_cpu_peak_frac", "proj_mem_peak_frac", "headroom_cpu_cores",
    "hour_sin", "hour_cos",
)
N_FEATURES = len(FEATURE_NAMES)

# With no history, a pod is assumed to use half its request on average (a fifth of its limit, or
# 100m, without a request) and to peak at its limit (1.5 x request without one).
PRIOR_MEAN_OF_REQUEST = 0.5


def pod_usage_estimate(cpu_request: np.ndarray, cpu_limit: np.ndarray, mem_request: np.ndarray,
                       mem_limit: np.ndarray, workload: np.ndarray, history: WorkloadUsage | None
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Expected CPU, peak CPU and peak memory of pods (millicores / MiB), from their workload's
    observed usage where there is some and from their requests and limits otherwise."""
    cpu_request = np.atleast_1d(np.asarray(cpu_request, dtype=np.float64))
    cpu_limit = np.atleast_1d(np.asarray(cpu_limit, dtype=np.float64))
    mem_request = np.atleast_1d(np.asarray(mem_request, dtype=np.float64))
    mem_limit = np.atleast_1d(np.asarray(mem_limit, dtype=np.float64))
    prior_cpu = np.where(cpu_request > 0, PRIOR_MEAN_OF_REQUEST * cpu_request,
                         np.where(cpu_limit > 0, 0.2 * cpu_limit, 100.0))
    prior_peak = np.where(cpu_limit > 0, cpu_limit, np.where(cpu_request > 0, 1.5 * cpu_request, 200.0))
    prior_mem = np.where(mem_limit > 0, mem_limit, np.where(mem_request > 0, mem_request, 200.0))
    if history is None or history.samples.size == 0:
        return prior_cpu, prior_peak, prior_mem
    w = np.asarray(workload, dtype=np.int64)
    known = (w >= 0) & (w < history.samples.size)
    wk = np.where(known, w, 0)
    seen = known & (history.samples[wk] > 0)
    mean = np.where(seen, history.cpu_mean[wk], prior_cpu)
    peak = np.where(seen, np.maximum(history.cpu_mean[wk] + 2 * history.cpu_std[wk], history.cpu_mean[wk]),
                    prior_peak)
    peak = np.where(cpu_limit > 0, np.minimum(peak, cpu_limit), peak)
    mem = np.where(seen, history.mem_max[wk], prior_mem)
    return mean, peak, mem


def _own_usage_estimate(pod: PodSpec, history: WorkloadUsage | None) -> tuple[float, float, float]:
    """:func:`pod_usage_estimate` of the one pod being placed, in plain float arithmetic (the same
    float64 operations in the same order, so the same values): the array form costs a few
    microseconds per operation on one-element arrays, and this runs once per decision."""
    cpu_request, cpu_limit = float(pod.cpu_request_milli), float(pod.cpu_limit_milli)
    mem_request, mem_limit = float(pod.memory_request_mib), float(pod.memory_limit_mib)
    prior_cpu = PRIOR_MEAN_OF_REQUEST * cpu_request if cpu_request > 0 else (
        0.2 * cpu_limit if cpu_limit > 0 else 100.0)
    prior_peak = cpu_limit if cpu_limit > 0 else (1.5 * cpu_request if cpu_request > 0 else 200.0)
    prior_mem = mem_limit if mem_limit > 0 else (mem_request if mem_request > 0 else 200.0)
    w = pod.workload
    if history is None or not 0 <= w < history.samples.size or not history.samples[w] > 0:
        return prior_cpu, prior_peak, prior_mem
    mean = float(history.cpu_mean[w])
    peak = max(mean + 2 * float(history.cpu_std[w]), mean)
    if cpu_limit > 0:
        peak = min(peak, cpu_limit)
    return mean, peak, float(history.mem_max[w])


def row_index(nodes: np.ndarray, n: int) -> np.ndarray | slice:
    """Row indices ``nodes`` of arrays of length ``n`` as an index: a slice (views, no copies) when
    they are every row in order, as they are for a live view that holds only feasible nodes."""
    if nodes.size == n and (n == 0 or (nodes[0] == 0 and nodes[-1] == n - 1 and bool((np.diff(nodes) == 1).all()))):
        return slice(None)
    return nodes


def candidate_features(pod: PodSpec, view: ClusterView, nodes: np.ndarray) -> np.ndarray:
    """A ``(len(nodes), N_FEATURES)`` float32 matrix, columns in :data:`FEATURE_NAMES` order.

    One decision computes this for every candidate, so it is written for speed: the pod's own
    estimate in float arithmetic, constant columns written as scalars, and no copies of the view's
    columns when the candidates are all of its nodes (tests/unit/test_features.py checks it against
    the plain column-by-column form)."""
    nodes = np.asarray(nodes, dtype=np.int64)
    rows = row_index(nodes, view.n_nodes)
    m = view.metrics
    cap_c = view.alloc_cpu[rows].astype(np.float64)
    cap_m = view.alloc_mem[rows].astype(np.float64)
    est_c, peak_c, peak_m = _own_usage_estimate(pod, view.workloads)
    if view.recent_node.size:
        r_mean, _, r_mem = pod_usage_estimate(
            view.recent_cpu_request, view.recent_cpu_limit, view.recent_mem_request,
            view.recent_mem_limit, view.recent_workload, view.workloads)
        recent_c = view.per_node(r_mean)[rows]
        recent_m = view.per_node(r_mem)[rows]
        recent_n = np.bincount(view.recent_node, minlength=view.n_nodes)[rows]
    else:
        recent_c = recent_m = recent_n = 0.0
    hist = view.workloads
    wk = pod.workload if hist is not None and 0 <= pod.workload < hist.samples.size else -1
    wl_samples = float(hist.samples[wk]) if wk >= 0 else 0.0
    wl_ratio = float(hist.cpu_ratio_mean[wk]) if wk >= 0 and wl_samples > 0 else PRIOR_MEAN_OF_REQUEST
    hour = (view.now_s % 86400.0) / 3600.0

    out = np.empty((nodes.size, N_FEATURES), dtype=np.float32)
    cpu_mean = m.cpu_mean[rows] / cap_c
    cpu_max = m.cpu_max[rows] / cap_c
    mem_max = m.mem_max[rows] / cap_m
    pod_est = est_c / cap_c
    pod_peak = peak_c / cap_c
    pod_mem_peak = peak_m / cap_m
    recent_cf = recent_c / cap_c
    recent_mf = recent_m / cap_m
    proj_peak = cpu_max + recent_cf + pod_peak
    age = m.age_s[rows]
    columns = (
        cap_c / 1000.0, cap_m / 1024.0,
        (view.req_cpu[rows] + pod.cpu_request_milli) / cap_c,
        (view.req_mem[rows] + pod.memory_request_mib) / cap_m,
        (view.nz_req_cpu[rows] + pod.nonzero_cpu) / cap_c,
        view.lim_cpu[rows] / cap_c if view.lim_cpu is not None else 0.0,
        view.unlimited_pods[rows] if view.unlimited_pods is not None else 0.0,
        view.pod_count[rows], (view.pod_count[rows] > 0),
        cpu_mean, cpu_max, m.cpu_std[rows] / cap_c, m.cpu_trend[rows] * 3600.0 / cap_c,
        m.mem_mean[rows] / cap_m, mem_max, np.where(np.isfinite(age), age, 1e6), m.samples[rows],
        recent_n, recent_cf, recent_mf,
        pod.cpu_request_milli / cap_c, pod.memory_request_mib / cap_m, pod.cpu_limit_milli / cap_c,
        float(pod.qos),
        pod_est, pod_peak, pod_mem_peak,
        np.log1p(wl_samples), wl_ratio,
        cpu_mean + recent_cf + pod_est, proj_peak, mem_max + recent_mf + pod_mem_peak,
        (1.0 - proj_peak) * cap_c / 1000.0,
        np.sin(2 * np.pi * hour / 24), np.cos(2 * np.pi * hour / 24),
    )
    for j, col in enumerate(columns):
        out[:, j] = col
    return out


__all__ = ["BEST_EFFORT", "FEATURE_NAMES", "FEATURE_VERSION", "N_FEATURES", "candidate_features",
           "pod_usage_estimate", "row_index"]
