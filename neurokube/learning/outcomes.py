"""Attribute outcomes to decisions from a recorded replay (see :mod:`neurokube.model.reward`)."""

from __future__ import annotations

import numpy as np

from neurokube.sim.engine import ReplayResult
from neurokube.trace.model import Trace
from neurokube.trace.usage import pod_usage


def attribute(trace: Trace, result: ReplayResult, pod_index: np.ndarray, node_index: np.ndarray,
              step_s: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Added contention (core-seconds), added node-hours and experienced contention of each decision.

    *Experienced* contention is the node's whole overflow while the pod ran there: what the pod
    suffered, whoever caused it. It is a denser signal of a node going hot than the marginal
    share, which is zero for most placements.

    A decision placed pod ``pod_index[i]`` on ``node_index[i]``; the replay must have been run
    with ``record=True``.
    """
    if result.node_cpu is None or result.node_pods is None:
        raise ValueError("the replay was not recorded (record=True)")
    pods = trace.pods
    decision, offset, step, node = _lifetime_steps(trace, result, pod_index, node_index, step_s,
                                                   result.node_cpu.shape[0])
    own, _ = pod_usage(pods, trace.profiles, pod_index[decision], offset * float(step_s))
    used = result.node_cpu[step, node].astype(np.float64)
    cap = trace.nodes.cpu_milli[node].astype(np.float64)
    added = np.maximum(used - cap, 0.0) - np.maximum(used - own - cap, 0.0)
    contention = np.bincount(decision, weights=added, minlength=pod_index.size) * step_s / 1000.0
    experienced = np.bincount(decision, weights=np.maximum(used - cap, 0.0), minlength=pod_index.size) * step_s / 1000.0
    alone = (result.node_pods[step, node] == 1).astype(np.float64)
    node_hours = np.bincount(decision, weights=alone, minlength=pod_index.size) * step_s / 3600.0
    return contention, node_hours, experienced


def added_memory_overflow(trace: Trace, result: ReplayResult, pod_index: np.ndarray, node_index: np.ndarray,
                          step_s: int) -> np.ndarray:
    """Added memory overflow (GiB-seconds) of each decision: ``sum_t max(0, M_t - cap) - max(0, M_t - m_t - cap)``
    over the pod's lifetime, the memory counterpart of added contention (the OOM risk it brought).

    The replay must have been run with ``record=True``.
    """
    if result.node_mem is None:
        raise ValueError("the replay was not recorded (record=True)")
    pods = trace.pods
    decision, offset, step, node = _lifetime_steps(trace, result, pod_index, node_index, step_s,
                                                   result.node_mem.shape[0])
    _, own = pod_usage(pods, trace.profiles, pod_index[decision], offset * float(step_s))
    used = result.node_mem[step, node].astype(np.float64)
    cap = trace.nodes.memory_mib[node].astype(np.float64)
    added = np.maximum(used - cap, 0.0) - np.maximum(used - own - cap, 0.0)
    return np.bincount(decision, weights=added, minlength=pod_index.size) * step_s / 1024.0


def _lifetime_steps(trace: Trace, result: ReplayResult, pod_index: np.ndarray, node_index: np.ndarray, step_s: int,
                    n_steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every (decision, step of its pod's life) pair, flattened: the decision's index, the step's
    offset from the pod's bind, the replay step, and the node; lives are cut at the replay's end."""
    first = np.rint(result.bind_s[pod_index] / step_s).astype(np.int64)
    length = np.ceil(np.round(trace.pods.duration_s[pod_index] / step_s, 9)).astype(np.int64)
    length = np.clip(length, 0, np.maximum(n_steps - first, 0))
    decision = np.repeat(np.arange(pod_index.size), length)
    offset = np.arange(length.sum()) - np.repeat(np.cumsum(length) - length, length)
    step = np.repeat(first, length) + offset
    return decision, offset, step, node_index[decision]
