"""A pod's usage at a given age: ``profile(profile_offset_s + age) x scale``, capped at its limit.

:func:`pod_demand` is what the pod would use without limits; :func:`pod_usage` caps it at the
limits the trace wrote (CPU above the limit is throttled; memory above it is where the container
is OOM-killed, and the replay counts that, see ``sim/acting.py``).
"""

from __future__ import annotations

import numpy as np

from neurokube.trace.model import PodTable, ProfileTable


def profile_index(profiles: ProfileTable, profile: np.ndarray, t_s: np.ndarray) -> np.ndarray:
    """Flat index of the profile sample in force at time ``t_s`` (looping)."""
    step = profiles.step_s[profile]
    length = profiles.length[profile]
    k = np.floor_divide(np.maximum(t_s, 0.0), step).astype(np.int64) % length
    return profiles.start[profile] + k


def pod_demand(
    pods: PodTable, profiles: ProfileTable, pod: np.ndarray, age_s: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """CPU (milli) and memory (MiB) each ``pod[i]`` would use at ``age_s[i]`` seconds after binding,
    without limits."""
    flat = profile_index(profiles, pods.profile[pod], pods.profile_offset_s[pod] + age_s)
    return profiles.cpu[flat] * pods.cpu_scale_milli[pod], profiles.memory[flat] * pods.memory_scale_mib[pod]


def capped(demand: np.ndarray, limit: np.ndarray) -> np.ndarray:
    """``demand`` held at ``limit`` where there is one (a limit of 0 means none)."""
    return np.where(limit > 0, np.minimum(demand, limit), demand)


def pod_usage(
    pods: PodTable, profiles: ProfileTable, pod: np.ndarray, age_s: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """CPU (milli) and memory (MiB) used by each ``pod[i]`` at ``age_s[i]`` seconds after binding."""
    cpu, mem = pod_demand(pods, profiles, pod, age_s)
    return capped(cpu, pods.cpu_limit_milli[pod]), capped(mem, pods.memory_limit_mib[pod])
