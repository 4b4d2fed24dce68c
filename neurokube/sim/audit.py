"""Recompute replay metrics from a trace and a placements file, independently of the engine.

The engine walks time step by step with running node totals; this module starts from the
other end: it expands every bound pod into the (node, step) cells it occupies, evaluates its
usage there with its own profile lookup (a sorted-time search rather than the engine's integer
division), and sums cells into a dense node x step matrix. Agreement between the two is the
check that the engine's bookkeeping (arrivals, binding, departures, accounting) is right.
"""

from __future__ import annotations

import numpy as np

from neurokube.trace.model import Trace


def _usage(trace: Trace, pod: np.ndarray, age_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pr, p = trace.profiles, trace.pods
    prof = p.profile[pod]
    span = pr.length[prof] * pr.step_s[prof]
    t = np.mod(p.profile_offset_s[pod] + age_s, span)
    cpu = np.empty(pod.size)
    mem = np.empty(pod.size)
    for j in np.unique(prof):
        sel = prof == j
        grid = np.arange(pr.length[j]) * pr.step_s[j]
        k = np.searchsorted(grid, t[sel], side="right") - 1
        cpu[sel] = pr.cpu[pr.start[j] + k]
        mem[sel] = pr.memory[pr.start[j] + k]
    cpu *= p.cpu_scale_milli[pod]
    mem *= p.memory_scale_mib[pod]
    lim_c, lim_m = p.cpu_limit_milli[pod], p.memory_limit_mib[pod]
    cpu = np.where(lim_c > 0, np.minimum(cpu, lim_c), cpu)
    mem = np.where(lim_m > 0, np.minimum(mem, lim_m), mem)
    return cpu, mem


def recompute(trace: Trace, node_of: np.ndarray, bind_s: np.ndarray, *, step_s: int, end_s: float,
              hot_threshold: float = 0.8) -> dict[str, float]:
    """Metrics of a placement (``node_of[i] = -1`` for pods never bound)."""
    p = trace.pods
    bound = node_of >= 0
    first = np.rint(bind_s[bound] / step_s).astype(np.int64)
    length = np.ceil(np.round(p.duration_s[bound] / step_s, 9)).astype(np.int64)
    pods = np.flatnonzero(bound)
    n_steps = int(np.ceil(end_s / step_s)) + 1
    cell_pod = np.repeat(pods, length)
    offsets = np.arange(length.sum()) - np.repeat(np.cumsum(length) - length, length)
    cell_step = np.repeat(first, length) + offsets
    inside = cell_step < n_steps
    cell_pod, cell_step, offsets = cell_pod[inside], cell_step[inside], offsets[inside]
    cpu, mem = _usage(trace, cell_pod, offsets * float(step_s))
    cell_node = node_of[cell_pod]

    n_nodes = len(trace.nodes)
    used_cpu = np.zeros((n_nodes, n_steps))
    used_mem = np.zeros((n_nodes, n_steps))
    pods_on = np.zeros((n_nodes, n_steps), dtype=np.int64)
    np.add.at(used_cpu, (cell_node, cell_step), cpu)
    np.add.at(used_mem, (cell_node, cell_step), mem)
    np.add.at(pods_on, (cell_node, cell_step), 1)

    cap_cpu = trace.nodes.cpu_milli.astype(float)[:, None]
    cap_mem = trace.nodes.memory_mib.astype(float)[:, None]
    active = pods_on > 0
    util = (used_cpu / cap_cpu)[active]
    waited = np.where(bound, bind_s, end_s) - p.creation_s
    return {
        "contention_core_s": float(np.maximum(used_cpu - cap_cpu, 0).sum() * step_s / 1000.0),
        "hot_node_fraction": float((util > hot_threshold).mean()) if util.size else 0.0,
        "node_hours": float(active.sum() * step_s / 3600.0),
        "pending_pod_s": float(np.maximum(waited, 0).sum()),
        "unscheduled_pods": int((~bound).sum()),
        "mem_overflow_mib_s": float(np.maximum(used_mem - cap_mem, 0).sum() * step_s),
        "util_mean": float(util.mean()) if util.size else 0.0,
        "util_std": float(util.std()) if util.size else 0.0,
    }


def relative_errors(expected: dict[str, float], actual: dict[str, float]) -> dict[str, float]:
    """|a - e| / max(|e|, tiny) for every metric both have (decision latencies excluded)."""
    out = {}
    for key, e in expected.items():
        if key.startswith("decision_") or key not in actual or e is None:
            continue
        a = actual[key]
        diff = abs(a - e)
        out[key] = 0.0 if diff < 1e-6 else diff / max(abs(e), abs(a))
    return out
