"""Build a v1 trace from real data: the Alibaba openb pod mix and Bitbrains usage shapes.

Pure: the raw files are read by :mod:`neurokube.adapters.rawdata`; this module turns their
contents into workloads and hands them to :func:`~neurokube.trace.assemble.assemble`. Every
modelling choice is a field of :class:`BuildSettings`; docs/TRACES.md explains each.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from neurokube.errors import InputError
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
from neurokube.trace.model import NodeTable, Trace

@dataclass(frozen=True)
class VmSeries:
    """One Bitbrains VM's usage series (read by :mod:`neurokube.adapters.rawdata`)."""

    name: str
    t_s: np.ndarray  # Unix seconds
    cpu_mhz: np.ndarray
    memory_kb: np.ndarray


QOS_INDEX = {"Guaranteed": GUARANTEED, "Burstable": BURSTABLE, "BestEffort": BEST_EFFORT}


@dataclass(frozen=True)
class UsageLevel:
    """Lognormal distribution of a workload's mean usage as a share of its request."""

    median: float
    sigma: float


@dataclass(frozen=True)
class BuildSettings:
    arrivals: ArrivalSettings = field(default_factory=ArrivalSettings)
    nodes: int = 60
    """How many nodes to sample (without replacement) from the openb node list."""
    node_min_cpu_milli: int = 0
    """Only sample nodes with at least this much CPU (0: any)."""
    workloads: int = 400
    """Distinct workloads; each is an openb pod used as a template."""
    zipf_exponent: float = 1.0
    """Workload popularity ~ 1 / rank ** exponent."""
    qos_map: dict[str, str] = field(default_factory=lambda: {
        "LS": "Guaranteed", "Guaranteed": "Guaranteed", "Burstable": "Burstable", "BE": "Burstable"})
    """openb QoS label -> Kubernetes QoS class."""
    best_effort_share: float = 0.05
    """Share of workloads turned into BestEffort pods (no requests, no limits)."""
    burstable_cpu_limit_ratio: float = 2.0
    burstable_memory_limit_ratio: float = 1.5
    cpu_level: dict[str, UsageLevel] = field(default_factory=lambda: {
        "Guaranteed": UsageLevel(0.40, 0.5), "Burstable": UsageLevel(0.60, 0.6),
        "BestEffort": UsageLevel(0.30, 0.7)})
    memory_level: dict[str, UsageLevel] = field(default_factory=lambda: {
        "Guaranteed": UsageLevel(0.60, 0.3), "Burstable": UsageLevel(0.70, 0.3),
        "BestEffort": UsageLevel(0.30, 0.5)})
    max_level: float = 3.0
    profile_days: float = 7.0
    """Keep this many days of each VM series (the shape loops after)."""
    peak_cap: float = 5.0
    """A profile is its series divided by its mean, clipped at this multiple of the mean."""


def vm_profiles(series: list[VmSeries], s: BuildSettings):
    """Usage shapes (mean 1) from Bitbrains VMs, each starting at a midnight (UTC)."""
    names, steps, cpus, mems = [], [], [], []
    for vm in series:
        if vm.t_s.size < 24:
            continue
        step = float(np.median(np.diff(vm.t_s)))
        if step <= 0:
            continue
        first_midnight = np.flatnonzero(np.mod(vm.t_s, DAY_S) < step)
        start = int(first_midnight[0]) if first_midnight.size else 0
        keep = int(s.profile_days * DAY_S / step)
        cpu = vm.cpu_mhz[start:start + keep]
        mem = vm.memory_kb[start:start + keep]
        if cpu.size < 24 or not (cpu.mean() > 0 and mem.mean() > 0):
            continue
        names.append(f"bitbrains-{vm.name}")
        steps.append(step)
        cpus.append(np.clip(cpu / cpu.mean(), 0, s.peak_cap))
        mems.append(np.clip(mem / mem.mean(), 0, s.peak_cap))
    if not names:
        raise InputError("no usable VM series", "--bitbrains", "every series is empty or all zero")
    return profile_table(names, steps, cpus, mems)


def _levels(qos_names: np.ndarray, table: dict[str, UsageLevel], cap: float,
            rng: np.random.Generator) -> np.ndarray:
    med = np.array([table[q].median for q in qos_names])
    sig = np.array([table[q].sigma for q in qos_names])
    return np.clip(med * np.exp(sig * rng.standard_normal(qos_names.size)), 0.01, cap)


def build_trace(name: str, pods: pd.DataFrame, nodes: pd.DataFrame, series: list[VmSeries],
                s: BuildSettings = BuildSettings()) -> Trace:
    """``pods``/``nodes`` as read by :mod:`neurokube.adapters.rawdata`."""
    rng = np.random.default_rng(s.arrivals.seed)
    pool = nodes[nodes.cpu_milli >= s.node_min_cpu_milli]
    if len(pool) < s.nodes:
        raise InputError(f"only {len(pool)} nodes qualify, {s.nodes} asked for", "--nodes")
    chosen = pool.iloc[np.sort(rng.choice(len(pool), s.nodes, replace=False))]
    node_table = NodeTable(name=chosen.name.to_numpy(dtype=object),
                           cpu_milli=chosen.cpu_milli.to_numpy(dtype=np.int64),
                           memory_mib=chosen.memory_mib.to_numpy(dtype=np.int64))
    # A template must fit on some chosen node, or its pods could never run.
    fit = (pods.cpu_milli <= node_table.cpu_milli.max()) & (pods.memory_mib <= node_table.memory_mib.max())
    unknown = set(pods.qos.unique()) - set(s.qos_map)
    if unknown:
        raise InputError(f"openb QoS {sorted(unknown)[0]!r} has no mapping", "--qos-map")
    templates = pods[fit]
    if templates.empty:
        raise InputError("no openb pod fits the chosen nodes", "--nodes")
    rows = templates.iloc[rng.choice(len(templates), s.workloads, replace=len(templates) < s.workloads)]

    qos_names = rows.qos.map(s.qos_map).to_numpy(dtype=object)
    qos_names[rng.uniform(size=qos_names.size) < s.best_effort_share] = "BestEffort"
    qos = np.array([QOS_INDEX[q] for q in qos_names], dtype=np.int8)
    cpu_req = rows.cpu_milli.to_numpy(dtype=np.int64)
    mem_req = np.maximum(rows.memory_mib.to_numpy(dtype=np.int64), 0)
    cpu_lim, mem_lim = qos_limits(qos, cpu_req, mem_req, s.burstable_cpu_limit_ratio,
                                  s.burstable_memory_limit_ratio)
    profiles = vm_profiles(series, s)
    namespaces = np.array([f"team-{i:02d}" for i in range(10)], dtype=object)
    workloads = Workloads(
        name=np.array([f"wl-{i:04d}" for i in range(s.workloads)], dtype=object),
        namespace=namespaces[rng.integers(0, namespaces.size, s.workloads)],
        qos=qos, cpu_request_milli=cpu_req, memory_request_mib=mem_req,
        cpu_limit_milli=cpu_lim, memory_limit_mib=mem_lim,
        lifetime_s=np.maximum(rows.lifetime_s.to_numpy(dtype=np.float64), 60.0),
        cpu_level=_levels(qos_names, s.cpu_level, s.max_level, rng),
        memory_level=_levels(qos_names, s.memory_level, s.max_level, rng),
        profile=rng.integers(0, len(profiles), s.workloads),
        weight=1.0 / np.arange(1, s.workloads + 1) ** s.zipf_exponent,
    )
    return assemble(name, workloads, profiles, node_table, s.arrivals)
