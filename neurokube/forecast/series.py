"""Usage series from a replay: per-pod 5-minute samples, per-workload series, per-node utilisation.

Pure functions of the trace and the replay's placements (``node_of``, ``bind_s``); no simulator
import, so the same code can read placements that came from a live cluster.

Definitions (docs/FORECASTS.md):

* A pod runs during the simulator steps ``bind_step .. bind_step + ceil(duration / step) - 1`` and
  uses, at step ``k``, ``pod_usage(age = (k - bind_step) * step)`` -- the simulator's own rule.
* **Pod sample**: a pod's mean CPU (milli) and memory (MiB) over the steps it ran inside one
  ``bin_s`` bin (5 minutes), with the seconds it ran there. This is what a 5-minute
  ``rate()``/``avg_over_time`` per container would give.
* **Workload series**: per (namespace/workload) and bin, the *mean usage per running pod*
  (pod-seconds weighted) and the number of running pods. Per-pod usage is what requests are set
  against; the total is ``mean x pods``. A bin with no running pod is NaN.
* **Node series**: per node and simulator step, CPU usage / allocatable CPU, and the requested CPU
  share, so bottleneck features can be taken at a finer grain than 5 minutes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurokube.errors import InputError
from neurokube.trace.model import Trace
from neurokube.trace.usage import pod_usage


@dataclass(frozen=True)
class SeriesSettings:
    step_s: int = 60
    """Simulator step the placements came from (seconds); usage is evaluated once per step."""
    bin_s: int = 300
    """Resolution of pod samples and workload series (seconds): 5 minutes."""

    def __post_init__(self) -> None:
        if self.step_s <= 0 or self.bin_s <= 0 or self.bin_s % self.step_s:
            raise InputError("bin_s must be a positive multiple of step_s", "series settings",
                             f"step {self.step_s} s, bin {self.bin_s} s")


@dataclass(frozen=True)
class PodSamples:
    """One row per (pod, bin) in which the pod ran."""

    pod: np.ndarray  # int index into trace.pods
    bin: np.ndarray  # int bin index
    cpu: np.ndarray  # mean CPU milli over the steps run in the bin
    mem: np.ndarray  # mean memory MiB
    run_s: np.ndarray  # seconds run in the bin


@dataclass(frozen=True)
class WorkloadSeries:
    """Per-workload series on a common bin grid; rows follow ``keys``."""

    keys: np.ndarray  # "namespace/workload" strings
    bin_s: int
    cpu: np.ndarray  # (workloads, bins) mean CPU milli per running pod; NaN when none ran
    mem: np.ndarray  # (workloads, bins) mean MiB per running pod
    pods: np.ndarray  # (workloads, bins) pod-seconds / bin_s (mean running pods)
    cpu_request: np.ndarray  # (workloads,) median CPU request milli of its pods (as written)
    mem_request: np.ndarray  # (workloads,) median memory request MiB

    @property
    def bins(self) -> int:
        return self.cpu.shape[1]


@dataclass(frozen=True)
class NodeSeries:
    step_s: int
    util: np.ndarray  # (steps, nodes) CPU usage / allocatable
    requested: np.ndarray  # (steps, nodes) requested CPU / allocatable


def workload_keys(trace: Trace) -> tuple[np.ndarray, np.ndarray]:
    """``(keys, id per pod)``: the sorted ``namespace/workload`` names and each pod's index in them."""
    p = trace.pods
    names = np.char.add(np.char.add(p.namespace.astype(str), "/"), p.workload.astype(str))
    keys, ids = np.unique(names, return_inverse=True)
    return keys, ids.astype(np.int64)


def _pod_steps(trace: Trace, bind_s: np.ndarray, step_s: int) -> tuple[np.ndarray, np.ndarray]:
    """Every (pod, step) cell a bound pod occupies, as two flat arrays."""
    p = trace.pods
    if len(bind_s) != len(p):
        raise InputError("placements do not match the trace", "series",
                         f"{len(bind_s)} bind times for {len(p)} pods")
    bound = np.flatnonzero(np.isfinite(bind_s))
    start = np.round(bind_s[bound] / step_s).astype(np.int64)
    count = np.ceil(np.round(p.duration_s[bound] / step_s, 9)).astype(np.int64)
    pod = np.repeat(bound, count)
    offset = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    return pod, np.repeat(start, count) + offset


def pod_samples(trace: Trace, bind_s: np.ndarray, settings: SeriesSettings = SeriesSettings()) -> PodSamples:
    """Per-pod 5-minute usage samples from the bind times of a replay."""
    pod, step = _pod_steps(trace, bind_s, settings.step_s)
    age = step * float(settings.step_s) - np.round(bind_s[pod] / settings.step_s) * settings.step_s
    cpu, mem = pod_usage(trace.pods, trace.profiles, pod, age)
    per_bin = settings.bin_s // settings.step_s
    b = step // per_bin
    nbins = int(b.max()) + 1 if b.size else 0
    cell = pod * max(nbins, 1) + b
    uniq, inv, counts = np.unique(cell, return_inverse=True, return_counts=True)
    return PodSamples(
        pod=uniq // max(nbins, 1), bin=uniq % max(nbins, 1),
        cpu=np.bincount(inv, weights=cpu) / counts, mem=np.bincount(inv, weights=mem) / counts,
        run_s=counts * float(settings.step_s))


def workload_series(trace: Trace, samples: PodSamples, settings: SeriesSettings = SeriesSettings(),
                    bins: int | None = None) -> WorkloadSeries:
    """Mean usage per running pod (pod-seconds weighted) per workload and bin."""
    keys, wid = workload_keys(trace)
    nb = bins if bins is not None else (int(samples.bin.max()) + 1 if samples.bin.size else 0)
    shape = (len(keys), nb)
    keep = samples.bin < nb
    w = wid[samples.pod[keep]]
    flat = w * nb + samples.bin[keep]
    run = samples.run_s[keep]
    pod_s = np.bincount(flat, weights=run, minlength=shape[0] * nb).reshape(shape)
    cpu_s = np.bincount(flat, weights=samples.cpu[keep] * run, minlength=shape[0] * nb).reshape(shape)
    mem_s = np.bincount(flat, weights=samples.mem[keep] * run, minlength=shape[0] * nb).reshape(shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        cpu = np.where(pod_s > 0, cpu_s / pod_s, np.nan)
        mem = np.where(pod_s > 0, mem_s / pod_s, np.nan)
    p = trace.pods
    cpu_req = np.array([np.median(p.cpu_request_milli[wid == i]) for i in range(len(keys))], dtype=float)
    mem_req = np.array([np.median(p.memory_request_mib[wid == i]) for i in range(len(keys))], dtype=float)
    return WorkloadSeries(keys, settings.bin_s, cpu, mem, pod_s / settings.bin_s, cpu_req, mem_req)


def pod_step_cpu(trace: Trace, bind_s: np.ndarray, step_s: int = 60) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (pod, step) cell a bound pod occupies and its CPU use there (milli-CPU, the simulator's
    rule: ``pod_usage`` at the pod's age), as three flat arrays."""
    pod, step = _pod_steps(trace, bind_s, step_s)
    age = step * float(step_s) - np.round(bind_s[pod] / step_s) * step_s
    cpu, _ = pod_usage(trace.pods, trace.profiles, pod, age)
    return pod, step, cpu


def node_series(trace: Trace, node_of: np.ndarray, bind_s: np.ndarray, step_s: int = 60) -> NodeSeries:
    """Per-node CPU utilisation and requested share per simulator step (recomputed from placements)."""
    pod, step, cpu = pod_step_cpu(trace, bind_s, step_s)
    n_nodes = len(trace.nodes)
    steps = int(step.max()) + 1 if step.size else 0
    cell = step * n_nodes + node_of[pod]
    used = np.bincount(cell, weights=cpu, minlength=steps * n_nodes).reshape(steps, n_nodes)
    req = np.bincount(cell, weights=trace.pods.cpu_request_milli[pod].astype(float),
                      minlength=steps * n_nodes).reshape(steps, n_nodes)
    cap = trace.nodes.cpu_milli.astype(float)[None, :]
    return NodeSeries(step_s, used / cap, req / cap)
