"""The clairvoyant oracle: a reference for what placement alone could achieve.

It knows every pod's future usage (it reads the trace's profiles, which no live scheduler can)
and keeps, per node, the CPU and memory that already-bound pods will use at every future step.
For a pod it picks, among nodes where the requests fit, lexicographically:

1. the least *added* CPU contention over the pod's lifetime,
   ``sum_t max(0, future_t + pod_t - cap) - max(0, future_t - cap)``;
2. the least added memory overflow, computed the same way;
3. a node that already runs pods (activating an empty node costs node-hours);
4. the most allocated node (MostAllocated score), to keep packing.

It is greedy: it does not know about pods that have not arrived yet.
"""

from __future__ import annotations

import numpy as np

from neurokube.policies.base import ClusterView, PodSpec
from neurokube.policies.common import fits
from neurokube.policies.default import fit_score, most_allocated
from neurokube.trace.model import Trace
from neurokube.trace.usage import pod_usage


class OraclePolicy:
    name = "oracle"

    def __init__(self, trace: Trace, step_s: int) -> None:
        self.trace = trace
        self.step_s = step_s
        n = len(trace.nodes)
        self.cap_cpu = trace.nodes.cpu_milli.astype(np.float64)[:, None]
        self.cap_mem = trace.nodes.memory_mib.astype(np.float64)[:, None]
        columns = int(np.ceil(trace.end_s / step_s)) + 2
        self.future_cpu = np.zeros((n, columns))
        self.future_mem = np.zeros((n, columns))
        self._cache: tuple[int, int, np.ndarray, np.ndarray] | None = None

    def _ensure(self, columns: int) -> None:
        """Grow the per-node future-usage matrices (pods bound late run past the trace's end)."""
        have = self.future_cpu.shape[1]
        if columns > have:
            extra = max(columns - have, have // 2)
            pad = np.zeros((self.future_cpu.shape[0], extra))
            self.future_cpu = np.hstack([self.future_cpu, pad])
            self.future_mem = np.hstack([self.future_mem, pad])

    def _usage(self, pod: PodSpec, now_s: float) -> tuple[int, np.ndarray, np.ndarray]:
        k0 = int(round(now_s / self.step_s))
        if self._cache is not None and self._cache[:2] == (pod.index, k0):
            return k0, self._cache[2], self._cache[3]
        duration = self.trace.pods.duration_s[pod.index]
        steps = int(np.ceil(np.round(duration / self.step_s, 9)))
        self._ensure(k0 + steps)
        ages = np.arange(steps, dtype=np.float64) * self.step_s
        idx = np.full(steps, pod.index, dtype=np.int64)
        cpu, mem = pod_usage(self.trace.pods, self.trace.profiles, idx, ages)
        self._cache = (pod.index, k0, cpu, mem)
        return k0, cpu, mem

    def select(self, pod: PodSpec, view: ClusterView) -> int | None:
        feasible = np.flatnonzero(fits(pod, view))
        if feasible.size == 0:
            return None
        k0, cpu, mem = self._usage(pod, view.now_s)
        span = slice(k0, k0 + cpu.size)
        fc = self.future_cpu[feasible, span]
        fm = self.future_mem[feasible, span]
        cc, cm = self.cap_cpu[feasible], self.cap_mem[feasible]
        added_cpu = (np.maximum(fc + cpu - cc, 0) - np.maximum(fc - cc, 0)).sum(axis=1)
        added_mem = (np.maximum(fm + mem - cm, 0) - np.maximum(fm - cm, 0)).sum(axis=1)
        inactive = (view.pod_count[feasible] == 0).astype(np.int64)
        packing = fit_score(pod, view, most_allocated)[feasible]
        best = np.lexsort((-packing, inactive, np.round(added_mem, 3), np.round(added_cpu, 3)))[0]
        return int(feasible[best])

    def on_bind(self, pod: PodSpec, node: int, now_s: float) -> None:
        k0, cpu, mem = self._usage(pod, now_s)
        self.future_cpu[node, k0:k0 + cpu.size] += cpu
        self.future_mem[node, k0:k0 + mem.size] += mem
