"""Turn workloads into a v1 trace: a daily-wave arrival process sized to a target requested load.

Both builders (:mod:`.build` from real data, :mod:`.synth` from parametric distributions) describe
*workloads* -- a request template, a QoS class, a typical lifetime, a usage shape and a usage
level -- and hand them here. Every pod is an instance of a workload. See docs/TRACES.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurokube.errors import InputError
from neurokube.trace.model import NodeTable, PodTable, ProfileTable, Trace

GUARANTEED, BURSTABLE, BEST_EFFORT = 0, 1, 2
DAY_S = 86400.0


@dataclass(frozen=True)
class ArrivalSettings:
    hours: float = 24.0
    """Length of the trace; pods are created in ``[0, hours)`` and their lifetimes end by then."""
    target_load: float = 0.65
    """Time-averaged requested CPU over allocatable CPU, if every pod were bound on arrival."""
    wave_amplitude: float = 0.35
    """Relative amplitude of the daily wave in the arrival rate (0: flat)."""
    wave_peak_hour: float = 14.0
    """Hour of day (trace time 0 is midnight) of the peak arrival rate."""
    warmup_hours: float = 12.0
    """Pods created this long before 0 that still run at 0 are in the trace, created at 0."""
    lifetime_jitter: float = 0.5
    """Lognormal sigma of a pod's lifetime around its workload's."""
    level_jitter: float = 0.15
    """Lognormal sigma of a pod's usage level around its workload's."""
    min_lifetime_s: float = 60.0
    seed: int = 0

    def __post_init__(self) -> None:
        checks = {
            "hours": self.hours > 0, "target_load": 0 < self.target_load <= 2,
            "wave_amplitude": 0 <= self.wave_amplitude < 1, "warmup_hours": self.warmup_hours >= 0,
            "wave_peak_hour": 0 <= self.wave_peak_hour < 24,
        }
        for name, ok in checks.items():
            if not ok:
                raise InputError(f"--{name.replace('_', '-')} out of range", "trace settings",
                                 f"got {getattr(self, name)}")


@dataclass(frozen=True)
class Workloads:
    """One entry per workload (a Deployment, a Job template...)."""

    name: np.ndarray
    namespace: np.ndarray
    qos: np.ndarray  # int
    cpu_request_milli: np.ndarray  # the template request (BestEffort pods drop it)
    memory_request_mib: np.ndarray
    cpu_limit_milli: np.ndarray  # 0 = none
    memory_limit_mib: np.ndarray
    lifetime_s: np.ndarray  # typical lifetime
    cpu_level: np.ndarray  # mean usage / template request
    memory_level: np.ndarray
    profile: np.ndarray  # index into the ProfileTable
    weight: np.ndarray  # relative popularity (arrival share)

    def __len__(self) -> int:
        return len(self.name)


def _rate(t: np.ndarray, s: ArrivalSettings) -> np.ndarray:
    phase = 2 * np.pi * (t / 3600.0 - s.wave_peak_hour) / 24.0
    return 1.0 + s.wave_amplitude * np.cos(phase)


def _arrivals(rate: float, s: ArrivalSettings, rng: np.random.Generator) -> np.ndarray:
    """Non-homogeneous Poisson arrivals on ``[-warmup, hours)`` (thinning), sorted."""
    start, end = -s.warmup_hours * 3600.0, s.hours * 3600.0
    peak = rate * (1.0 + s.wave_amplitude)
    n = rng.poisson(peak * (end - start))
    t = np.sort(rng.uniform(start, end, n))
    keep = rng.uniform(0, 1, n) * (1.0 + s.wave_amplitude) < _rate(t, s)
    return t[keep]


def _draw(workloads: Workloads, arrivals: np.ndarray, s: ArrivalSettings, rng: np.random.Generator):
    p = workloads.weight / workloads.weight.sum()
    w = rng.choice(len(workloads), size=arrivals.size, p=p)
    life = workloads.lifetime_s[w] * rng.lognormal(0.0, s.lifetime_jitter, arrivals.size)
    life = np.maximum(life, s.min_lifetime_s)
    end = np.minimum(arrivals + life, s.hours * 3600.0)
    alive = end > np.maximum(arrivals, 0.0)
    return w[alive], arrivals[alive], end[alive]


def _mean_requested(cpu: np.ndarray, start: np.ndarray, end: np.ndarray, horizon_s: float) -> float:
    overlap = np.clip(end, 0, horizon_s) - np.clip(start, 0, horizon_s)
    return float((cpu * overlap).sum() / horizon_s)


def assemble(name: str, workloads: Workloads, profiles: ProfileTable, nodes: NodeTable,
             s: ArrivalSettings) -> Trace:
    """Draw pods from ``workloads`` so the mean requested CPU is ``target_load`` of the nodes'."""
    if len(workloads) == 0:
        raise InputError("no workloads to draw pods from", name)
    horizon = s.hours * 3600.0
    capacity = float(nodes.cpu_milli.sum())
    # Size the base rate: one draw at a guessed rate, then rescale (the load is linear in it).
    # BestEffort pods request nothing, so they do not count towards the requested load.
    effective_cpu = np.where(workloads.qos == BEST_EFFORT, 0, workloads.cpu_request_milli).astype(float)
    mean_cpu = float(np.average(effective_cpu, weights=workloads.weight))
    mean_life = float(np.average(np.minimum(workloads.lifetime_s, horizon), weights=workloads.weight))
    rate = s.target_load * capacity / max(mean_cpu * mean_life, 1.0)
    for _ in range(3):
        rng = np.random.default_rng(s.seed)
        w, start, end = _draw(workloads, _arrivals(rate, s, rng), s, rng)
        load = _mean_requested(effective_cpu[w], start, end, horizon)
        if load <= 0:
            raise InputError("the workloads produce no load", name, "check lifetimes and requests")
        ratio = s.target_load * capacity / load
        rate *= ratio
        if abs(ratio - 1.0) < 0.02:
            break
    rng = np.random.default_rng(s.seed)
    w, start, end = _draw(workloads, _arrivals(rate, s, rng), s, rng)

    creation = np.maximum(start, 0.0)
    duration = end - creation
    qos = workloads.qos[w].astype(np.int8)
    best_effort = qos == BEST_EFFORT
    cpu_req = np.where(best_effort, 0, workloads.cpu_request_milli[w]).astype(np.int64)
    mem_req = np.where(best_effort, 0, workloads.memory_request_mib[w]).astype(np.int64)
    cpu_lim = np.where(best_effort, 0, workloads.cpu_limit_milli[w]).astype(np.int64)
    mem_lim = np.where(best_effort, 0, workloads.memory_limit_mib[w]).astype(np.int64)
    jitter = rng.lognormal(0.0, s.level_jitter, (2, w.size))
    cpu_scale = workloads.cpu_request_milli[w] * workloads.cpu_level[w] * jitter[0]
    mem_scale = workloads.memory_request_mib[w] * workloads.memory_level[w] * jitter[1]

    # Profiles start at midnight: a pod's offset follows the time of day (plus whole days), so
    # pods of one workload share its daily rhythm.
    prof = workloads.profile[w]
    days = np.maximum(np.floor(profiles.length[prof] * profiles.step_s[prof] / DAY_S), 1)
    day_shift = rng.integers(0, days.astype(np.int64)) * DAY_S
    offset = np.mod(creation, DAY_S) + day_shift

    ids = np.array([f"{i:06d}" for i in range(w.size)], dtype=object)
    pods = PodTable(
        name=workloads.name[w] + "-" + ids, namespace=workloads.namespace[w], workload=workloads.name[w],
        qos=qos, cpu_request_milli=cpu_req, memory_request_mib=mem_req,
        cpu_limit_milli=cpu_lim, memory_limit_mib=mem_lim,
        creation_s=np.round(creation, 3), duration_s=np.round(duration, 3),
        profile=prof.astype(np.int32), profile_offset_s=np.round(offset, 3),
        cpu_scale_milli=np.round(cpu_scale, 3), memory_scale_mib=np.round(mem_scale, 3),
    )
    return Trace(name=name, nodes=nodes, pods=pods, profiles=profiles)


def qos_limits(qos: np.ndarray, cpu_request: np.ndarray, mem_request: np.ndarray,
               burstable_cpu_limit_ratio: float, burstable_memory_limit_ratio: float
               ) -> tuple[np.ndarray, np.ndarray]:
    """Limits per QoS: Guaranteed = request, Burstable = ratio x request (0: none), BestEffort none."""
    cpu = np.select([qos == GUARANTEED, qos == BURSTABLE],
                    [cpu_request, np.rint(cpu_request * burstable_cpu_limit_ratio)], 0)
    mem = np.select([qos == GUARANTEED, qos == BURSTABLE],
                    [mem_request, np.rint(mem_request * burstable_memory_limit_ratio)], 0)
    return cpu.astype(np.int64), mem.astype(np.int64)


def profile_table(names: list[str], step_s: list[float], cpu: list[np.ndarray],
                  memory: list[np.ndarray]) -> ProfileTable:
    lengths = np.array([len(c) for c in cpu], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    return ProfileTable(names=np.asarray(names, dtype=object), step_s=np.asarray(step_s, float),
                        start=starts, length=lengths, cpu=np.concatenate(cpu),
                        memory=np.concatenate(memory))
