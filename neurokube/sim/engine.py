"""The replay loop.

Time advances in fixed steps. At the start of step ``k`` (time ``t = k * step``): pods whose
run is over leave; pods created at or before ``t`` join a FIFO queue; the policy is offered each
queued pod in turn and binds it to a feasible node or leaves it queued (later pods still get
their turn, as kube-scheduler moves an unschedulable pod aside); then every running pod's usage
at its age is summed per node, recorded as that step's usage and, at scrape times, as a metrics
sample. A pod bound at ``t`` runs for ``duration_s`` and occupies the steps that start before
``t + duration_s``.

One method per part of a step (departures and arrivals, the decisions, the measurement, the stop
test, the end-of-run summary); the view and placements they change are a
:class:`~neurokube.sim.state.ReplayState`, changed only through its methods.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from neurokube.acting.base import Actuator, NoActuator
from neurokube.errors import NeuroKubeError
from neurokube.policies.base import PodSpec, Policy
from neurokube.policies.common import fits
from neurokube.sim.acting import ACTING_METRICS, Actuation, PodRules
from neurokube.sim.config import SimConfig
from neurokube.sim.metrics import MetricAccumulator
from neurokube.sim.observe import MetricsWindow
from neurokube.sim.state import ReplayState
from neurokube.sim.workloads import WorkloadHistory
from neurokube.trace.model import Trace
from neurokube.trace.usage import pod_demand


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
    actuator: str = "none"  # what acted on running pods (--actuator); with one, node_of is the final placement
    refusals: dict[str, int] = field(default_factory=dict)  # the actuator's refused actions, by reason


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


SERIES = ("t_s", "active_nodes", "contention_core_s", "hot_nodes", "pending")
"""The per-step series a replay returns, in this order."""


@dataclass
class StepLog:
    """What the replay keeps of each step: the series, and per-node usage and pod counts if recorded."""

    record: bool
    series: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in SERIES})
    cpu: list[np.ndarray] = field(default_factory=list)
    pods: list[np.ndarray] = field(default_factory=list)
    mem: list[np.ndarray] = field(default_factory=list)

    def add(self, t: float, active: np.ndarray, contention: float, hot_nodes: int, pending: int) -> None:
        values = (t, int(active.sum()), contention, hot_nodes, pending)
        for key, value in zip(SERIES, values, strict=True):
            self.series[key].append(value)

    def add_nodes(self, node_cpu: np.ndarray, pod_count: np.ndarray, node_mem: np.ndarray) -> None:
        if self.record:
            self.cpu.append(node_cpu.astype(np.float32))
            self.pods.append(pod_count.astype(np.int32))
            self.mem.append(node_mem.astype(np.float32))

    def stacked(self, rows: list[np.ndarray]) -> np.ndarray | None:
        return np.vstack(rows) if self.record and rows else None


class _Replay:
    """One replay: the trace's fixed arrays, the mutable :class:`ReplayState`, the metrics
    collaborators, and one method per part of a step."""

    def __init__(self, trace: Trace, policy: Policy, config: SimConfig, clock: Callable[[], int] | None,
                 on_step: Callable[[int, int], None] | None, record: bool, actuator: Actuator,
                 rules: PodRules | None) -> None:
        self.trace, self.policy, self.config = trace, policy, config
        self.clock, self.on_step = clock, on_step
        self.on_bind = getattr(policy, "on_bind", None)
        pods, step = trace.pods, config.step_s
        self.step = step
        self.n_nodes, self.n_pods = len(trace.nodes), len(pods)
        self.cap_cpu_f = trace.nodes.cpu_milli.astype(np.int64).astype(np.float64)
        self.cap_mem_f = trace.nodes.memory_mib.astype(np.int64).astype(np.float64)
        specs = pod_specs(trace)
        workload_of = np.fromiter((s.workload for s in specs), dtype=np.int64, count=self.n_pods)
        self.history = WorkloadHistory(int(workload_of.max()) + 1 if self.n_pods else 0)
        self.arrival_step = _steps(pods.creation_s, step)
        self.run_steps = _steps(pods.duration_s, step)
        self.order = np.argsort(self.arrival_step, kind="stable")
        self.max_steps = int(math.ceil((trace.end_s + config.drain_limit_s) / step)) + 1
        self.state = ReplayState.empty(trace.nodes.cpu_milli.astype(np.int64), trace.nodes.memory_mib.astype(np.int64),
                                       pods, specs, workload_of)
        self.window = MetricsWindow(self.n_nodes, config)
        self.acc = MetricAccumulator(step_s=step, hot_threshold=config.hot_threshold)
        self.log = StepLog(record)
        self.acting = Actuation(actuator, self.state, rules or PodRules.of(trace.pods), step, config.scrape_s)
        self.idle_steps = 0  # steps in a row with nothing running and nothing bound
        self.waits = 0  # offers the policy declined although the pod fitted a node

    def run(self) -> ReplayResult:
        k = 0
        for k in range(self.max_steps):
            if self.advance(k):
                break
        return self.summary(k)

    def advance(self, k: int) -> bool:
        """Run step ``k``: departures, arrivals, decisions, measurement. True when the replay is over."""
        t = float(k * self.step)
        state, view = self.state, self.state.view
        view.now_s = t
        state.depart(k)
        self.acting.retry_waiting()
        state.arrive(k, self.arrival_step, self.order)
        view.metrics, newest = self.window.view(t)
        view.workloads = self.history.view()
        state.publish_recent(newest)
        bound = self.decide(k, t, newest)
        run_idx = self.measure(t)
        self.acting.after_step(t, run_idx)
        if self.on_step is not None:
            self.on_step(k + 1, self.max_steps)
        return self.finished(run_idx.size, bound)

    def decide(self, k: int, t: float, newest: float) -> int:
        """Offer each queued pod to the policy in FIFO order; bind or keep it. Returns how many were bound."""
        state = self.state
        if not state.queue:
            return 0
        free_cpu, free_mem = state.free()
        waiting: deque[int] = deque()
        bound = 0
        for p in state.queue:
            s = state.specs[p]
            if s.cpu_request_milli > free_cpu or s.memory_request_mib > free_mem:
                waiting.append(p)  # fits nowhere: no policy could place it
                continue
            n = self.choose(s)
            if n is None:
                if fits(s, state.view).any():
                    self.waits += 1  # the policy chose to leave a pod pending that it could place
                waiting.append(p)
                continue
            self.bind(p, n, k, t, newest)
            bound += 1
            free_cpu, free_mem = state.free()
        state.queue = waiting
        return bound

    def choose(self, s: PodSpec) -> int | None:
        """The policy's choice for ``s``, timed when the replay has a clock."""
        if self.clock is None:
            return self.policy.select(s, self.state.view)
        t0 = self.clock()
        n = self.policy.select(s, self.state.view)
        self.acc.decision_ns.append(self.clock() - t0)
        return n

    def bind(self, p: int, n: int, k: int, t: float, newest: float) -> None:
        """Check the policy's choice, bind, show the binding to the view and tell the policy."""
        state, s = self.state, self.state.specs[p]
        view = state.view
        if not (0 <= n < self.n_nodes) or (
                view.req_cpu[n] + s.cpu_request_milli > view.alloc_cpu[n]
                or view.req_mem[n] + s.memory_request_mib > view.alloc_mem[n]):
            raise PolicyError(f"policy {self.policy.name!r} chose node {n} for pod "
                              f"{self.trace.pods.name[p]!r}, which does not fit there")
        state.bind(p, n, k, t, int(self.run_steps[p]))
        self.acting.on_bind(p, t)
        state.publish_recent(newest)
        if self.on_bind is not None:
            self.on_bind(s, int(n), t)

    def measure(self, t: float) -> np.ndarray:
        """Sum the running pods' usage per node and account the step. Returns the running pods."""
        state, pods = self.state, self.trace.pods
        run_idx = np.flatnonzero(state.running)
        # Demand follows the time since the pod's *first* placement: an evicted pod placed again
        # meets the demand it would have met had it stayed (sim/acting.py).
        cpu, mem = self.acting.usage(
            run_idx, *pod_demand(pods, self.trace.profiles, run_idx,
                                 t - state.first_bind_step[run_idx] * float(self.step)))
        node_cpu = np.bincount(state.node_of[run_idx], weights=cpu, minlength=self.n_nodes)
        node_mem = np.bincount(state.node_of[run_idx], weights=mem, minlength=self.n_nodes)
        self.window.record(t, node_cpu, node_mem)
        if t % self.config.scrape_s == 0:
            self.history.add(state.workload_of[run_idx], cpu, mem, state.cpu_request[run_idx].astype(np.float64))
        pod_count = state.view.pod_count
        self.log.add_nodes(node_cpu, pod_count, node_mem)
        active = pod_count > 0
        contention = self.acc.add_step(node_cpu, node_mem, self.cap_cpu_f, self.cap_mem_f, active)
        hot = int((node_cpu[active] > self.config.hot_threshold * self.cap_cpu_f[active]).sum())
        self.log.add(t, active, contention, hot, len(state.queue))
        return run_idx

    def finished(self, running: int, bound: int) -> bool:
        """Whether nothing can change any more after this step."""
        state, config = self.state, self.config
        self.idle_steps = self.idle_steps + 1 if (running == 0 and bound == 0) else 0
        if not state.all_arrived:
            return False
        # Nothing runs, nothing arrives, and the metrics window has emptied: nothing can change.
        if self.idle_steps * self.step > config.window_s + config.lag_s:
            return True
        return not state.queue and running == 0 and not state.departures

    def summary(self, k: int) -> ReplayResult:
        """The result after step ``k``, the last one run: placements, metrics, series."""
        state, step, log = self.state, self.step, self.log
        end_s = float((k + 1) * step)
        first = state.first_bind_step
        bind_s = np.where(first >= 0, first * float(step), np.nan)
        waited = np.where(first >= 0, bind_s, end_s) - self.trace.pods.creation_s
        acting, repending_s = self.acting.finish(end_s)
        metrics = self.acc.finish(pending_pod_s=float(np.maximum(waited, 0.0).sum()) + repending_s,
                                  unscheduled=int((state.node_of < 0).sum()))
        metrics["waits"] = self.waits
        metrics.update(acting)
        assert tuple(acting) == ACTING_METRICS
        return ReplayResult(
            policy=self.policy.name, trace=self.trace.name, node_of=state.node_of, bind_s=bind_s, end_s=end_s,
            metrics=metrics, series={key: np.asarray(v) for key, v in log.series.items()},
            node_cpu=log.stacked(log.cpu), node_pods=log.stacked(log.pods), node_mem=log.stacked(log.mem),
            actuator=self.acting.actuator.name, refusals=dict(self.acting.counters.refusals),
        )


def replay(
    trace: Trace,
    policy: Policy,
    config: SimConfig = SimConfig(),
    *,
    clock: Callable[[], int] | None = None,
    on_step: Callable[[int, int], None] | None = None,
    record: bool = False,
    actuator: Actuator | None = None,
    rules: PodRules | None = None,
) -> ReplayResult:
    """Replay ``trace`` under ``policy``.

    ``clock`` (nanoseconds, e.g. ``time.perf_counter_ns``) times each decision when given;
    ``on_step(done, total)`` reports progress; ``record`` keeps per-step node usage and pod
    counts in the result (for attributing outcomes to decisions); ``actuator`` acts on running pods
    (none by default), under ``rules`` (priority, controller, disruption budgets; by default the
    trace's optional columns, :meth:`PodRules.of`).
    """
    return _Replay(trace, policy, config, clock, on_step, record, actuator or NoActuator(), rules).run()
