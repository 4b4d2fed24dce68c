"""The replay loop.

Time advances in fixed steps. At the start of step ``k`` (time ``t = k * step``): pods whose
run is over leave; pods created at or before ``t`` join a FIFO queue; the policy is offered each
queued pod in turn and binds it to a feasible node or leaves it queued (later pods still get
their turn, as kube-scheduler moves an unschedulable pod aside); then every running pod's usage
at its age is summed per node, recorded as that step's usage and, at scrape times, as a metrics
sample. A pod bound at ``t`` runs for ``duration_s`` and occupies the steps that start before
``t + duration_s``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from neurokube.errors import NeuroKubeError
from neurokube.policies.base import ClusterView, NodeMetrics, Policy, PodSpec
from neurokube.policies.common import fits
from neurokube.sim.config import SimConfig
from neurokube.sim.metrics import MetricAccumulator
from neurokube.sim.observe import MetricsWindow
from neurokube.sim.workloads import WorkloadHistory
from neurokube.trace.model import Trace
from neurokube.trace.usage import pod_usage


class PolicyError(NeuroKubeError):
    """A policy chose a node that cannot take the pod: a bug in the policy, never in the input."""


@dataclass
class ReplayResult:
    policy: str
    trace: str
    node_of: np.ndarray  # int per pod, -1 when never bound
    bind_s: np.ndarray  # float per pod, nan when never bound
    end_s: float  # time the replay stopped
    metrics: dict[str, float]
    series: dict[str, np.ndarray]  # per step: t_s, active_nodes, contention_core_s, hot_nodes, pending
    node_cpu: np.ndarray | None = None  # (steps, nodes) CPU usage, when recorded
    node_pods: np.ndarray | None = None  # (steps, nodes) running pods, when recorded
    node_mem: np.ndarray | None = None  # (steps, nodes) memory usage in MiB, when recorded


def pod_specs(trace: Trace) -> list[PodSpec]:
    p = trace.pods
    workloads = p.workload_ids()
    return [
        PodSpec(int(p.cpu_request_milli[i]), int(p.memory_request_mib[i]),
                int(p.cpu_limit_milli[i]), int(p.memory_limit_mib[i]), int(p.qos[i]),
                int(workloads[i]), i)
        for i in range(len(p))
    ]


def _steps(seconds: np.ndarray, step_s: int) -> np.ndarray:
    return np.ceil(np.round(seconds / step_s, 9)).astype(np.int64)


def replay(
    trace: Trace,
    policy: Policy,
    config: SimConfig = SimConfig(),
    *,
    clock: Callable[[], int] | None = None,
    on_step: Callable[[int, int], None] | None = None,
    record: bool = False,
) -> ReplayResult:
    """Replay ``trace`` under ``policy``.

    ``clock`` (nanoseconds, e.g. ``time.perf_counter_ns``) times each decision when given;
    ``on_step(done, total)`` reports progress; ``record`` keeps per-step node usage and pod
    counts in the result (for attributing outcomes to decisions).
    """
    nodes, pods = trace.nodes, trace.pods
    n_nodes, n_pods = len(nodes), len(pods)
    step = config.step_s
    cap_cpu = nodes.cpu_milli.astype(np.int64)
    cap_mem = nodes.memory_mib.astype(np.int64)
    cap_cpu_f, cap_mem_f = cap_cpu.astype(np.float64), cap_mem.astype(np.float64)

    specs = pod_specs(trace)
    workload_of = np.fromiter((s.workload for s in specs), dtype=np.int64, count=n_pods)
    history = WorkloadHistory(int(workload_of.max()) + 1 if n_pods else 0)
    recorded_cpu: list[np.ndarray] = []
    recorded_pods: list[np.ndarray] = []
    recorded_mem: list[np.ndarray] = []
    arrival_step = _steps(pods.creation_s, step)
    run_steps = _steps(pods.duration_s, step)
    order = np.argsort(arrival_step, kind="stable")
    max_steps = int(math.ceil((trace.end_s + config.drain_limit_s) / step)) + 1

    view = ClusterView(
        now_s=0.0, alloc_cpu=cap_cpu, alloc_mem=cap_mem,
        req_cpu=np.zeros(n_nodes, np.int64), req_mem=np.zeros(n_nodes, np.int64),
        nz_req_cpu=np.zeros(n_nodes, np.int64), nz_req_mem=np.zeros(n_nodes, np.int64),
        pod_count=np.zeros(n_nodes, np.int64), metrics=NodeMetrics.empty(n_nodes),
        lim_cpu=np.zeros(n_nodes, np.int64), unlimited_pods=np.zeros(n_nodes, np.int64),
    )
    window = MetricsWindow(n_nodes, config)
    acc = MetricAccumulator(step_s=step, hot_threshold=config.hot_threshold)
    on_bind = getattr(policy, "on_bind", None)

    node_of = np.full(n_pods, -1, dtype=np.int64)
    bind_step = np.full(n_pods, -1, dtype=np.int64)
    running = np.zeros(n_pods, dtype=bool)
    departures: dict[int, list[int]] = {}
    recent: list[tuple[float, int, int]] = []  # (bind time, node, pod) since the newest sample
    queue: deque[int] = deque()
    next_arrival = 0
    idle_steps = 0
    waits = 0
    series: dict[str, list[float]] = {k: [] for k in
                                      ("t_s", "active_nodes", "contention_core_s", "hot_nodes", "pending")}

    def release(p: int) -> None:
        n = node_of[p]
        s = specs[p]
        view.req_cpu[n] -= s.cpu_request_milli
        view.req_mem[n] -= s.memory_request_mib
        view.nz_req_cpu[n] -= s.nonzero_cpu
        view.nz_req_mem[n] -= s.nonzero_memory
        view.pod_count[n] -= 1
        view.lim_cpu[n] -= s.cpu_limit_milli
        view.unlimited_pods[n] -= s.cpu_limit_milli == 0
        running[p] = False

    def publish_recent(newest_sample_s: float) -> None:
        recent[:] = [r for r in recent if r[0] > newest_sample_s]
        idx = np.fromiter((r[2] for r in recent), dtype=np.int64, count=len(recent))
        view.recent_node = np.fromiter((r[1] for r in recent), dtype=np.int64, count=len(recent))
        view.recent_cpu_request = pods.cpu_request_milli[idx]
        view.recent_mem_request = pods.memory_request_mib[idx]
        view.recent_cpu_limit = pods.cpu_limit_milli[idx]
        view.recent_mem_limit = pods.memory_limit_mib[idx]
        view.recent_bind_s = np.fromiter((r[0] for r in recent), dtype=np.float64, count=len(recent))
        view.recent_workload = workload_of[idx]

    k = 0
    for k in range(max_steps):
        t = float(k * step)
        view.now_s = t
        for p in departures.pop(k, ()):
            release(p)
        while next_arrival < n_pods and arrival_step[order[next_arrival]] <= k:
            queue.append(int(order[next_arrival]))
            next_arrival += 1

        view.metrics, newest = window.view(t)
        view.workloads = history.view()
        publish_recent(newest)
        bound_now = 0
        if queue:
            free_cpu = int((cap_cpu - view.req_cpu).max())
            free_mem = int((cap_mem - view.req_mem).max())
            waiting: deque[int] = deque()
            for p in queue:
                s = specs[p]
                if s.cpu_request_milli > free_cpu or s.memory_request_mib > free_mem:
                    waiting.append(p)  # fits nowhere: no policy could place it
                    continue
                if clock is not None:
                    t0 = clock()
                    n = policy.select(s, view)
                    acc.decision_ns.append(clock() - t0)
                else:
                    n = policy.select(s, view)
                if n is None:
                    if fits(s, view).any():
                        waits += 1  # the policy chose to leave a pod pending that it could place
                    waiting.append(p)
                    continue
                if not (0 <= n < n_nodes) or (
                        view.req_cpu[n] + s.cpu_request_milli > cap_cpu[n]
                        or view.req_mem[n] + s.memory_request_mib > cap_mem[n]):
                    raise PolicyError(f"policy {policy.name!r} chose node {n} for pod "
                                      f"{pods.name[p]!r}, which does not fit there")
                view.req_cpu[n] += s.cpu_request_milli
                view.req_mem[n] += s.memory_request_mib
                view.nz_req_cpu[n] += s.nonzero_cpu
                view.nz_req_mem[n] += s.nonzero_memory
                view.pod_count[n] += 1
                view.lim_cpu[n] += s.cpu_limit_milli
                view.unlimited_pods[n] += s.cpu_limit_milli == 0
                node_of[p] = n
                bind_step[p] = k
                bound_now += 1
                if run_steps[p] > 0:
                    running[p] = True
                    departures.setdefault(k + int(run_steps[p]), []).append(p)
                else:
                    release(p)
                recent.append((t, int(n), p))
                publish_recent(newest)
                if on_bind is not None:
                    on_bind(s, int(n), t)
                free_cpu = int((cap_cpu - view.req_cpu).max())
                free_mem = int((cap_mem - view.req_mem).max())
            queue = waiting

        run_idx = np.flatnonzero(running)
        cpu, mem = pod_usage(pods, trace.profiles, run_idx, t - bind_step[run_idx] * float(step))
        node_cpu = np.bincount(node_of[run_idx], weights=cpu, minlength=n_nodes)
        node_mem = np.bincount(node_of[run_idx], weights=mem, minlength=n_nodes)
        window.record(t, node_cpu, node_mem)
        if t % config.scrape_s == 0:
            history.add(workload_of[run_idx], cpu, mem, pods.cpu_request_milli[run_idx].astype(np.float64))
        if record:
            recorded_cpu.append(node_cpu.astype(np.float32))
            recorded_pods.append(view.pod_count.astype(np.int32))
            recorded_mem.append(node_mem.astype(np.float32))
        active = view.pod_count > 0
        contention = acc.add_step(node_cpu, node_mem, cap_cpu_f, cap_mem_f, active)
        series["t_s"].append(t)
        series["active_nodes"].append(int(active.sum()))
        series["contention_core_s"].append(contention)
        series["hot_nodes"].append(int((node_cpu[active] > config.hot_threshold * cap_cpu_f[active]).sum()))
        series["pending"].append(len(queue))
        if on_step is not None:
            on_step(k + 1, max_steps)

        all_arrived = next_arrival >= n_pods
        idle_steps = idle_steps + 1 if (run_idx.size == 0 and bound_now == 0) else 0
        # Nothing runs, nothing arrives, and the metrics window has emptied: nothing can change.
        if all_arrived and idle_steps * step > config.window_s + config.lag_s:
            break
        if all_arrived and not queue and run_idx.size == 0 and not departures:
            break

    end_s = float((k + 1) * step)
    bind_s = np.where(bind_step >= 0, bind_step * float(step), np.nan)
    waited = np.where(bind_step >= 0, bind_s, end_s) - pods.creation_s
    metrics = acc.finish(pending_pod_s=float(np.maximum(waited, 0.0).sum()),
                         unscheduled=int((bind_step < 0).sum()))
    metrics["waits"] = waits
    return ReplayResult(
        policy=policy.name, trace=trace.name, node_of=node_of, bind_s=bind_s, end_s=end_s,
        metrics=metrics, series={k2: np.asarray(v) for k2, v in series.items()},
        node_cpu=np.vstack(recorded_cpu) if record and recorded_cpu else None,
        node_pods=np.vstack(recorded_pods) if record and recorded_pods else None,
        node_mem=np.vstack(recorded_mem) if record and recorded_mem else None,
    )
