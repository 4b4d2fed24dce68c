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


def candidate_features(pod: PodSpec, view: ClusterView, nodes: np.ndarray) -> np.ndarray:
    """A ``(len(nodes), N_FEATURES)`` float32 matrix, columns in :data:`FEATURE_NAMES` order."""
    nodes = np.asarray(nodes, dtype=np.int64)
    m = view.metrics
    cap_c = view.alloc_cpu[nodes].astype(np.float64)
    cap_m = view.alloc_mem[nodes].astype(np.float64)

    est_c, peak_c, peak_m = pod_usage_estimate(
        pod.cpu_request_milli, pod.cpu_limit_milli, pod.memory_request_mib, pod.memory_limit_mib,
        np.array([pod.workload]), view.workloads)
    if view.recent_node.size:
        r_mean, _, r_mem = pod_usage_estimate(
            view.recent_cpu_request, view.recent_cpu_limit, view.recent_mem_request,
            view.recent_mem_limit, view.recent_workload, view.workloads)
        recent_c = view.per_node(r_mean)[nodes]
        recent_m = view.per_node(r_mem)[nodes]
        recent_n = np.bincount(view.recent_node, minlength=view.n_nodes)[nodes]
    else:
        recent_c = recent_m = recent_n = np.zeros(nodes.size)
    hist = view.workloads
    wk = pod.workload if hist is not None and 0 <= pod.workload < hist.samples.size else -1
    wl_samples = float(hist.samples[wk]) if wk >= 0 else 0.0
    wl_ratio = float(hist.cpu_ratio_mean[wk]) if wk >= 0 and wl_samples > 0 else PRIOR_MEAN_OF_REQUEST
    lim = view.lim_cpu[nodes] if view.lim_cpu is not None else np.zeros(nodes.size)
    unlimited = view.unlimited_pods[nodes] if view.unlimited_pods is not None else np.zeros(nodes.size)
    hour = (view.now_s % 86400.0) / 3600.0

    cpu_mean = m.cpu_mean[nodes] / cap_c
    cpu_max = m.cpu_max[nodes] / cap_c
    mem_max = m.mem_max[nodes] / cap_m
    pod_est = est_c[0] / cap_c
    pod_peak = peak_c[0] / cap_c
    pod_mem_peak = peak_m[0] / cap_m
    recent_cf = recent_c / cap_c
    proj_peak = cpu_max + recent_cf + pod_peak
    age = np.where(np.isfinite(m.age_s[nodes]), m.age_s[nodes], 1e6)

    columns = (
        cap_c / 1000.0, cap_m / 1024.0,
        (view.req_cpu[nodes] + pod.cpu_request_milli) / cap_c,
        (view.req_mem[nodes] + pod.memory_request_mib) / cap_m,
        (view.nz_req_cpu[nodes] + pod.nonzero_cpu) / cap_c,
        lim / cap_c, unlimited, view.pod_count[nodes], (view.pod_count[nodes] > 0),
        cpu_mean, cpu_max, m.cpu_std[nodes] / cap_c, m.cpu_trend[nodes] * 3600.0 / cap_c,
        m.mem_mean[nodes] / cap_m, mem_max, age, m.samples[nodes],
        recent_n, recent_cf, recent_m / cap_m,
        pod.cpu_request_milli / cap_c, pod.memory_request_mib / cap_m, pod.cpu_limit_milli / cap_c,
        np.full(nodes.size, float(pod.qos)),
        pod_est, pod_peak, pod_mem_peak,
        np.full(nodes.size, np.log1p(wl_samples)), np.full(nodes.size, wl_ratio),
        cpu_mean + recent_cf + pod_est, proj_peak, mem_max + recent_m / cap_m + pod_mem_peak,
        (1.0 - proj_peak) * cap_c / 1000.0,
        np.full(nodes.size, np.sin(2 * np.pi * hour / 24)), np.full(nodes.size, np.cos(2 * np.pi * hour / 24)),
    )
    out = np.empty((nodes.size, N_FEATURES), dtype=np.float32)
    for j, col in enumerate(columns):
        out[:, j] = col
    return out


__all__ = ["BEST_EFFORT", "FEATURE_NAMES", "FEATURE_VERSION", "N_FEATURES", "candidate_features",
           "pod_usage_estimate"]
