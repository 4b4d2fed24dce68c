"""The replay's mutable state: the policy's view of the cluster, who runs where, and the queue.

The replay loop (sim/engine.py) changes the cluster only through these methods, so binding and
releasing a pod update the view's request sums, pod counts and limit sums in one place, and the
"pods bound since the newest scrape" the view publishes are rebuilt in one place. Pure: numpy only.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace

import numpy as np

from neurokube.policies.base import ClusterView, NodeMetrics, PodSpec
from neurokube.trace.model import PodTable


@dataclass
class ReplayState:
    """What changes during a replay; ``view`` is the object the policy is shown."""

    view: ClusterView
    pods: PodTable
    specs: list[PodSpec]
    workload_of: np.ndarray  # int64 dense workload id per pod
    node_of: np.ndarray  # int64 per pod, -1 until bound
    bind_step: np.ndarray  # int64 per pod: the current run's start step, -1 until bound
    running: np.ndarray  # bool per pod
    first_bind_step: np.ndarray  # int64 per pod: its first placement (the one pending time ends at), -1 until bound
    end_step: np.ndarray  # int64 per pod: the step its first run ends at, -1 until bound
    cpu_request: np.ndarray  # int64 per pod: requests and limits in force (the trace's until resized)
    memory_request: np.ndarray
    cpu_limit: np.ndarray
    memory_limit: np.ndarray
    departures: dict[int, list[int]] = field(default_factory=dict)  # step -> pods whose run ends then
    recent: list[tuple[float, int, int]] = field(default_factory=list)  # (bind time, node, pod) since the newest sample
    queue: deque[int] = field(default_factory=deque)  # pods that arrived and are not bound, FIFO
    next_arrival: int = 0  # position in the arrival order of the next pod to join the queue

    @classmethod
    def empty(cls, alloc_cpu: np.ndarray, alloc_mem: np.ndarray, pods: PodTable, specs: list[PodSpec],
              workload_of: np.ndarray) -> ReplayState:
        """Nothing bound, nothing queued, no metrics yet, at time 0."""
        n_nodes, n_pods = len(alloc_cpu), len(specs)
        view = ClusterView(
            now_s=0.0, alloc_cpu=alloc_cpu, alloc_mem=alloc_mem,
            req_cpu=np.zeros(n_nodes, np.int64), req_mem=np.zeros(n_nodes, np.int64),
            nz_req_cpu=np.zeros(n_nodes, np.int64), nz_req_mem=np.zeros(n_nodes, np.int64),
            pod_count=np.zeros(n_nodes, np.int64), metrics=NodeMetrics.empty(n_nodes),
            lim_cpu=np.zeros(n_nodes, np.int64), unlimited_pods=np.zeros(n_nodes, np.int64),
        )
        return cls(view, pods, specs, workload_of, node_of=np.full(n_pods, -1, dtype=np.int64),
                   bind_step=np.full(n_pods, -1, dtype=np.int64), running=np.zeros(n_pods, dtype=bool),
                   first_bind_step=np.full(n_pods, -1, dtype=np.int64), end_step=np.full(n_pods, -1, dtype=np.int64),
                   cpu_request=pods.cpu_request_milli.astype(np.int64),
                   memory_request=pods.memory_request_mib.astype(np.int64),
                   cpu_limit=pods.cpu_limit_milli.astype(np.int64),
                   memory_limit=pods.memory_limit_mib.astype(np.int64))

    @property
    def all_arrived(self) -> bool:
        return self.next_arrival >= len(self.specs)

    def free(self) -> tuple[int, int]:
        """The most CPU and the most memory any one node has unrequested (a pod above either fits nowhere)."""
        view = self.view
        return int((view.alloc_cpu - view.req_cpu).max()), int((view.alloc_mem - view.req_mem).max())

    def arrive(self, step: int, arrival_step: np.ndarray, order: np.ndarray) -> None:
        """Queue, in arrival order, every pod created at or before ``step``."""
        n_pods = len(self.specs)
        while self.next_arrival < n_pods and arrival_step[order[self.next_arrival]] <= step:
            self.queue.append(int(order[self.next_arrival]))
            self.next_arrival += 1

    def depart(self, step: int) -> None:
        """Release the pods whose run ends at ``step``."""
        for p in self.departures.pop(step, ()):
            self.release(p)

    def bind(self, p: int, node: int, step: int, t: float, run_steps: int) -> None:
        """Bind pod ``p`` to ``node`` at ``step`` (time ``t``); it leaves ``run_steps`` steps later
        (at once when 0: it never runs at a step start). A pod placed again after an eviction
        leaves when its first run would have ended."""
        self._charge(node, self.specs[p], 1)
        self.node_of[p] = node
        self.bind_step[p] = step
        if self.first_bind_step[p] < 0:
            self.first_bind_step[p] = step
            self.end_step[p] = step + run_steps
        else:
            run_steps = max(int(self.end_step[p]) - step, 0)
        if run_steps > 0:
            self.running[p] = True
            self.departures.setdefault(step + run_steps, []).append(p)
        else:
            self.release(p)
        self.recent.append((t, int(node), p))

    def resources(self, p: int) -> tuple[int, int, int, int]:
        """Pod ``p``'s (cpu request, memory request, cpu limit, memory limit) in force."""
        return (int(self.cpu_request[p]), int(self.memory_request[p]), int(self.cpu_limit[p]),
                int(self.memory_limit[p]))

    def resize(self, p: int, resources: tuple[int, int, int, int]) -> None:
        """Pod ``p``'s requests and limits are now ``resources``: in place on its node when it runs
        (its node's sums change), or for its next placement when it waits."""
        spec = replace(self.specs[p], cpu_request_milli=resources[0], memory_request_mib=resources[1],
                       cpu_limit_milli=resources[2], memory_limit_mib=resources[3])
        if self.running[p]:
            self._charge(self.node_of[p], self.specs[p], -1)
            self._charge(self.node_of[p], spec, 1)
        self.specs[p] = spec
        self.cpu_request[p], self.memory_request[p], self.cpu_limit[p], self.memory_limit[p] = resources

    def evict(self, p: int) -> None:
        """Take running pod ``p`` off its node before its run ends (the caller queues it again)."""
        self.release(p)
        end = int(self.end_step[p])
        self.departures[end].remove(p)
        if not self.departures[end]:
            del self.departures[end]
        self.recent = [r for r in self.recent if r[2] != p]
        self.node_of[p] = -1
        self.bind_step[p] = -1

    def release(self, p: int) -> None:
        """Take pod ``p``'s requests off its node."""
        self._charge(self.node_of[p], self.specs[p], -1)
        self.running[p] = False

    def _charge(self, n: int, s: PodSpec, sign: int) -> None:
        view = self.view
        view.req_cpu[n] += sign * s.cpu_request_milli
        view.req_mem[n] += sign * s.memory_request_mib
        view.nz_req_cpu[n] += sign * s.nonzero_cpu
        view.nz_req_mem[n] += sign * s.nonzero_memory
        view.pod_count[n] += sign
        view.lim_cpu[n] += sign * s.cpu_limit_milli
        view.unlimited_pods[n] += sign * (s.cpu_limit_milli == 0)

    def publish_recent(self, newest_sample_s: float) -> None:
        """Show the view the pods bound after the newest metrics sample (their usage is not in it yet)."""
        self.recent = [r for r in self.recent if r[0] > newest_sample_s]
        recent, view = self.recent, self.view
        idx = np.fromiter((r[2] for r in recent), dtype=np.int64, count=len(recent))
        view.recent_node = np.fromiter((r[1] for r in recent), dtype=np.int64, count=len(recent))
        view.recent_cpu_request = self.cpu_request[idx]
        view.recent_mem_request = self.memory_request[idx]
        view.recent_cpu_limit = self.cpu_limit[idx]
        view.recent_mem_limit = self.memory_limit[idx]
        view.recent_bind_s = np.fromiter((r[0] for r in recent), dtype=np.float64, count=len(recent))
        view.recent_workload = self.workload_of[idx]
