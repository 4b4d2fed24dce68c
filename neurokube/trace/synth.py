"""A realistic trace with no input data: for the demo, and for tests on machines without data.

Workloads get container-sized requests (lognormal around 1 core, 2-8 GiB per core), lifetimes
from minutes to a day (lognormal), the same QoS and usage-level model as the real-data builder,
and generated usage shapes of four kinds seen in the Bitbrains series: flat with noise, diurnal,
bursty (spikes over a floor) and batch (on/off). See docs/TRACES.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from neurokube.trace.assemble import (
    BEST_EFFORT,
    BURSTABLE,
    DAY_S,
    GUARANTEED,
    ArrivalSettings,
    Workloads,
    assemble,
    profile_table,
    qos_limits,
)
from neurokube.trace.model import NodeTable, ProfileTable, Trace

SHAPES = ("flat", "diurnal", "bursty", "batch")


@dataclass(frozen=True)
class SynthSettings:
    arrivals: ArrivalSettings = field(default_factory=ArrivalSettings)
    nodes: int = 40
    node_shapes: tuple[tuple[int, int], ...] = ((16000, 65536), (32000, 131072), (64000, 262144))
    """(cpu_milli, memory_mib) node sizes, drawn uniformly."""
    workloads: int = 200
    zipf_exponent: float = 1.0
    qos_shares: tuple[float, float, float] = (0.3, 0.6, 0.1)
    """Guaranteed, Burstable, BestEffort shares of workloads."""
    cpu_request_median_milli: float = 1000.0
    cpu_request_sigma: float = 1.0
    max_cpu_request_milli: int = 16000
    gib_per_core: tuple[float, float] = (2.0, 8.0)
    lifetime_median_s: float = 1800.0
    lifetime_sigma: float = 1.6
    burstable_cpu_limit_ratio: float = 2.0
    burstable_memory_limit_ratio: float = 1.5
    cpu_level_median: tuple[float, float, float] = (0.40, 0.60, 0.30)
    cpu_level_sigma: float = 0.5
    memory_level_median: tuple[float, float, float] = (0.60, 0.70, 0.30)
    memory_level_sigma: float = 0.3
    profiles: int = 48
    profile_step_s: float = 300.0
    profile_days: int = 7
    peak_cap: float = 5.0


def synth_profiles(s: SynthSettings, rng: np.random.Generator) -> ProfileTable:
    n = int(s.profile_days * DAY_S / s.profile_step_s)
    t = np.arange(n) * s.profile_step_s
    names, cpus, mems = [], [], []
    for i in range(s.profiles):
        kind = SHAPES[i % len(SHAPES)]
        noise = rng.lognormal(0.0, 0.15, n)
        if kind == "flat":
            cpu = np.ones(n)
        elif kind == "diurnal":
            peak_h = rng.uniform(9, 20)
            cpu = 1.0 + rng.uniform(0.4, 0.9) * np.cos(2 * np.pi * (t / 3600.0 - peak_h) / 24.0)
        elif kind == "bursty":
            cpu = np.full(n, 0.4)
            spikes = rng.uniform(size=n) < rng.uniform(0.02, 0.08)
            cpu[spikes] += rng.lognormal(1.2, 0.5, spikes.sum())
            cpu = np.convolve(cpu, np.ones(3) / 3, mode="same")
        else:  # batch: on for a few hours, off for a few
            period = rng.integers(12, 72)
            on = (np.arange(n) // period) % 2 == 0
            cpu = np.where(on, 1.6, 0.2)
        cpu = np.maximum(cpu * noise, 0.0)
        mem = 1.0 + 0.3 * (cpu / cpu.mean() - 1.0) + rng.normal(0, 0.03, n)
        names.append(f"synth-{kind}-{i:02d}")
        cpus.append(np.clip(cpu / cpu.mean(), 0, s.peak_cap))
        mems.append(np.clip(np.maximum(mem, 0.05) / np.maximum(mem, 0.05).mean(), 0, s.peak_cap))
    return profile_table(names, [s.profile_step_s] * s.profiles, cpus, mems)


def synth_trace(name: str, s: SynthSettings = SynthSettings()) -> Trace:
    rng = np.random.default_rng(s.arrivals.seed + 7919)
    shapes = np.array(s.node_shapes, dtype=np.int64)
    pick = rng.integers(0, len(shapes), s.nodes)
    nodes = NodeTable(name=np.array([f"node-{i:04d}" for i in range(s.nodes)], dtype=object),
                      cpu_milli=shapes[pick, 0], memory_mib=shapes[pick, 1])
    w = s.workloads
    qos = rng.choice([GUARANTEED, BURSTABLE, BEST_EFFORT], size=w, p=s.qos_shares).astype(np.int8)
    cpu = np.clip(rng.lognormal(np.log(s.cpu_request_median_milli), s.cpu_request_sigma, w), 50,
                  min(s.max_cpu_request_milli, int(nodes.cpu_milli.min())))
    cpu = (np.round(cpu / 50) * 50).astype(np.int64)
    mem = (cpu / 1000.0 * 1024 * rng.uniform(*s.gib_per_core, w)).astype(np.int64)
    mem = np.minimum(np.maximum(mem, 64), int(nodes.memory_mib.min()))
    cpu_lim, mem_lim = qos_limits(qos, cpu, mem, s.burstable_cpu_limit_ratio,
                                  s.burstable_memory_limit_ratio)
    lvl_cpu = np.asarray(s.cpu_level_median)[qos] * rng.lognormal(0, s.cpu_level_sigma, w)
    lvl_mem = np.asarray(s.memory_level_median)[qos] * rng.lognormal(0, s.memory_level_sigma, w)
    profiles = synth_profiles(s, rng)
    namespaces = np.array([f"team-{i:02d}" for i in range(6)], dtype=object)
    workloads = Workloads(
        name=np.array([f"app-{i:04d}" for i in range(w)], dtype=object),
        namespace=namespaces[rng.integers(0, namespaces.size, w)],
        qos=qos, cpu_request_milli=cpu, memory_request_mib=mem,
        cpu_limit_milli=cpu_lim, memory_limit_mib=mem_lim,
        lifetime_s=rng.lognormal(np.log(s.lifetime_median_s), s.lifetime_sigma, w),
        cpu_level=np.clip(lvl_cpu, 0.01, 3.0), memory_level=np.clip(lvl_mem, 0.01, 3.0),
        profile=rng.integers(0, len(profiles), w),
        weight=1.0 / np.arange(1, w + 1) ** s.zipf_exponent,
    )
    return assemble(name, workloads, profiles, nodes, s.arrivals)
