"""A pod's usage at a given age: ``profile(profile_offset_s + age) x scale``, capped at its limit."""

from __future__ import annotations

import numpy as np

from neurokube.trace.model import PodTable, ProfileTable


def profile_index(profiles: ProfileTable, profile: np.ndarray, t_s: np.ndarray) -> np.ndarray:
    """Flat index of the profile sample in force at time ``t_s`` (looping)."""
    step = profiles.step_s[profile]
    length = profiles.length[profile]
    k = np.floor_divide(np.maximum(t_s, 0.0), step).astype(np.int64) % length
    return profiles.start[profile] + k


def pod_usage(
    pods: PodTable, profiles: ProfileTable, pod: np.ndarray, age_s: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """CPU (milli) and memory (MiB) used by each ``pod[i]`` at ``age_s[i]`` seconds after binding."""
    flat = profile_index(profiles, pods.profile[pod], pods.profile_offset_s[pod] + age_s)
    cpu = profiles.cpu[flat] * pods.cpu_scale_milli[pod]
    mem = profiles.memory[flat] * pods.memory_scale_mib[pod]
    cpu_lim = pods.cpu_limit_milli[pod]
    mem_lim = pods.memory_limit_mib[pod]
    cpu = np.where(cpu_lim > 0, np.minimum(cpu, cpu_lim), cpu)
    mem = np.where(mem_lim > 0, np.minimum(mem, mem_lim), mem)
    return cpu, mem
