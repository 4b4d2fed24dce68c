"""The usage of the live loop's bound pods, as the metrics emulator's ``UsageSource``.

Each pod bound in the cluster uses what its trace profile says at its age: ``(now - bound) *
speed`` trace seconds (:func:`neurokube.trace.usage.pod_usage`, limits applied) until its run is
over (``run_for_s`` wall seconds after binding, when KWOK completes it). A node's usage is the sum
of its pods' and is not capped at its allocatable: usage beyond it is the contention the loop
measures. Thread-safe: the watch binds pods while the emulator's writer takes snapshots.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from neurokube.adapters.usage import NodeUsage, PodUsage, Snapshot
from neurokube.trace.model import Trace
from neurokube.trace.usage import pod_usage


@dataclass(frozen=True)
class Node:
    name: str
    cpu_milli: int
    memory_mib: int


class LiveUsage:
    def __init__(self, trace: Trace, nodes: list[Node], speed: float, namespace: str) -> None:
        self.trace, self.nodes, self.speed, self.namespace = trace, list(nodes), float(speed), namespace
        self._node_row = {n.name: i for i, n in enumerate(self.nodes)}
        self._lock = threading.Lock()
        self._pods: dict[str, tuple[int, int, float, float]] = {}  # name -> (trace row, node row, bound, end)

    def bind(self, name: str, trace_index: int, node: str, bound_wall_s: float, run_for_s: float) -> bool:
        """Count ``name`` on ``node`` from ``bound_wall_s``; False for a node this source does not know."""
        row = self._node_row.get(node)
        if row is None:
            return False
        with self._lock:
            self._pods.setdefault(name, (trace_index, row, bound_wall_s, bound_wall_s + run_for_s))
        return True

    def forget(self, names: set[str]) -> None:
        with self._lock:
            for name in names:
                self._pods.pop(name, None)

    def running(self, now_s: float) -> int:
        with self._lock:
            return sum(1 for _, _, bound, end in self._pods.values() if bound <= now_s < end)

    def snapshot(self, now_s: float) -> Snapshot:
        with self._lock:
            live = [(name, *v) for name, v in self._pods.items() if v[2] <= now_s < v[3]]
        count = len(self.nodes)
        node_cpu, node_mem = np.zeros(count), np.zeros(count)
        pods: list[PodUsage] = []
        if live:
            rows = np.array([v[1] for v in live], dtype=np.int64)
            where = np.array([v[2] for v in live], dtype=np.int64)
            age = (now_s - np.array([v[3] for v in live])) * self.speed
            cpu, mem = pod_usage(self.trace.pods, self.trace.profiles, rows, age)
            node_cpu = np.bincount(where, weights=cpu, minlength=count)
            node_mem = np.bincount(where, weights=mem, minlength=count)
            p = self.trace.pods
            pods = [PodUsage(self.namespace, name, self.nodes[n].name, int(p.cpu_request_milli[r]),
                             int(p.memory_request_mib[r]), float(c), float(m))
                    for (name, r, n, _, _), c, m in zip(live, cpu, mem, strict=True)]
        return Snapshot(nodes=[NodeUsage(n.name, n.cpu_milli, n.memory_mib, float(node_cpu[i]), float(node_mem[i]))
                               for i, n in enumerate(self.nodes)], pods=pods)
