"""The clairvoyant oracle: a reference for what placement alone could achieve.

It knows every pod's future usage (it reads the trace's profiles, which no live scheduler can)
and keeps, per node, the CPU and memory that already-bound pods will use at every future step.
For a pod it picks, among nodes where the requests fit, lexicographically:

1. the least *added* CPU contention over the pod's lifetime,
   ``sum_t max(0, future_t + pod_t - cap) - max(0, future_t - cap)``;
2. the least added memory overflow, computed the same way;
3. a node that already runs pods (activating an empty node costs node-hours);
4. the most allocated node (MostAllocated score), to keep packing;

and, among nodes equal on all four, the lowest node index.

It is greedy: it does not know about pods that have not arrived yet.

It runs through the framework cycle like every other policy: the NodeResourcesFit filter, one score
plugin (:class:`FutureContention`) and a host selector (:class:`FirstBest`). A weighted sum of
per-criterion scores cannot express a lexicographic order exactly, so the plugin scores each
feasible node by the *dense rank* of its tuple (equal tuples, equal scores; a better tuple, a
strictly higher score), and the selector takes the lowest-indexed node of the highest score
instead of the cycle's random draw: the oracle is deterministic and draws nothing.
"""

from __future__ import annotations

import numpy as np

from neurokube.policies.base import ClusterView, PodSpec
from neurokube.policies.default import FIT_FILTER, fit_score, most_allocated
from neurokube.policies.framework import CycleState, FrameworkPolicy, Profile, Weighted
from neurokube.trace.model import Trace
from neurokube.trace.usage import pod_usage


def dense_rank(keys: tuple[np.ndarray, ...]) -> np.ndarray:
    """Per row, how many distinct key tuples sort before its own (``np.lexsort`` order: the last
    key is the primary one, ascending). Equal tuples get equal ranks."""
    order = np.lexsort(keys)
    new = np.zeros(order.size, dtype=np.int64)  # 1 where a row's tuple differs from the one before
    for key in keys:
        ranked = key[order]
        new[1:] |= ranked[1:] != ranked[:-1]
    rank = np.empty(order.size, dtype=np.int64)
    rank[order] = np.cumsum(new)
    return rank


class FutureUsage:
    """The CPU and memory already-bound pods will use on each node at every future step."""

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

    def usage(self, pod: PodSpec, now_s: float) -> tuple[int, np.ndarray, np.ndarray]:
        """The step ``pod`` starts at if bound at ``now_s``, and its CPU and memory at every step of its run."""
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

    def added(self, pod: PodSpec, now_s: float, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per node of ``nodes``, the CPU contention and memory overflow ``pod`` would add over its run."""
        k0, cpu, mem = self.usage(pod, now_s)
        span = slice(k0, k0 + cpu.size)
        fc = self.future_cpu[nodes, span]
        fm = self.future_mem[nodes, span]
        cc, cm = self.cap_cpu[nodes], self.cap_mem[nodes]
        added_cpu = (np.maximum(fc + cpu - cc, 0) - np.maximum(fc - cc, 0)).sum(axis=1)
        added_mem = (np.maximum(fm + mem - cm, 0) - np.maximum(fm - cm, 0)).sum(axis=1)
        return added_cpu, added_mem

    def book(self, pod: PodSpec, node: int, now_s: float) -> None:
        k0, cpu, mem = self.usage(pod, now_s)
        self.future_cpu[node, k0:k0 + cpu.size] += cpu
        self.future_mem[node, k0:k0 + mem.size] += mem


class FutureContention:
    """Score plugin: the oracle's lexicographic order over ``nodes`` as a dense rank, best highest.

    The tuple per node is (added CPU contention, added memory overflow, both rounded to 3 decimals;
    the node is empty; minus its MostAllocated score), smaller first; the score is the number of
    distinct tuples worse than the node's.
    """

    name = "OracleFutureContention"

    def __init__(self, future: FutureUsage) -> None:
        self.future = future

    def score(self, pod: PodSpec, view: ClusterView, nodes: np.ndarray, state: CycleState) -> np.ndarray:
        added_cpu, added_mem = self.future.added(pod, view.now_s, nodes)
        inactive = (view.pod_count[nodes] == 0).astype(np.int64)
        packing = fit_score(pod, view, most_allocated)[nodes]
        rank = dense_rank((-packing, inactive, np.round(added_mem, 3), np.round(added_cpu, 3)))
        return rank.max() - rank if rank.size else rank


class FirstBest:
    """Host selector: the lowest-indexed candidate with the highest total (no random draw)."""

    def select_host(self, candidates: np.ndarray, totals: np.ndarray, state: CycleState,
                    rng: np.random.Generator) -> int | None:
        if candidates.size == 0:
            return None
        return int(candidates[np.argmax(totals)])


def oracle_profile(future: FutureUsage) -> Profile:
    """The NodeResourcesFit filter, :class:`FutureContention` over ``future``, :class:`FirstBest`."""
    return Profile(filters=(FIT_FILTER,), scores=(Weighted(FutureContention(future)),), selector=FirstBest())


class OraclePolicy(FrameworkPolicy):
    """:func:`oracle_profile` over the trace's future usage; told of every binding (``on_bind``) to
    book the pod's future usage on its node."""

    name = "oracle"

    def __init__(self, trace: Trace, step_s: int, rng: np.random.Generator | None = None) -> None:
        self.future = FutureUsage(trace, step_s)
        self.rng = rng if rng is not None else np.random.default_rng(0)  # the selector never draws
        self.profile = oracle_profile(self.future)

    def on_bind(self, pod: PodSpec, node: int, now_s: float) -> None:
        self.future.book(pod, node, now_s)
