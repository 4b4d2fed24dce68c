"""Place one pod: filter, decide, reserve and bind, and try the next best node when that fails.

:meth:`Scheduler.schedule` is what the binder runs per event and the sweeper per pending pod::

    snapshot (watch cache)  ->  filter (taints, affinity, requests)  ->  ClusterView of feasible nodes
      ->  decide (learned policy, counted fallback)  ->  assume in the cache
      ->  ledger.place (check against the node's Lease and the cache, one Lease write per batch,
          the decision record spooled, Binding) -> the record settled by the Binding's answer
      ->  bound: Scheduled event, metrics
          the node vanished / is full / was rejected / is contended: exclude it and decide again
          no node fits: FailedScheduling event, the pod stays Pending (the sweeper retries)

A pod is attempted on at most ``bind_attempts`` nodes per call; if every attempt was contended it
raises a TemporaryError (HTTP 503), so the event is redelivered.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from functools import partial
from operator import itemgetter

import numpy as np

from neurokube.errors import TemporaryError
from neurokube.k8s.feasibility import explain, failure_message, fit_mask
from neurokube.k8s.objects import Pod
from neurokube.k8s.quantity import mib_up
from neurokube.live import binding, ledger
from neurokube.live.cache import ClusterCache, Snapshot
from neurokube.live.decide import Choice, Decider
from neurokube.live.decisions import DecisionLog, LiveDecision, new_decision_id
from neurokube.live.events import EventRecorder
from neurokube.live.ledger import Ledger
from neurokube.live.prometheus import PrometheusSource
from neurokube.live.telemetry import Telemetry
from neurokube.live.view import build_view
from neurokube.logs import event
from neurokube.policies.base import PodSpec

log = logging.getLogger("neurokube.live.scheduler")

BOUND, ALREADY_BOUND, UNSCHEDULABLE, GONE, IGNORED = "bound", "already_bound", "unschedulable", "gone", "ignored"
_EXCLUDED_REASON = {
    ledger.NODE_GONE: "node(s) were removed",
    ledger.CONTENDED: "node(s) were contended by other replicas",
    ledger.TOO_SLOW: "node(s) were contended by other replicas",
}


@dataclass(frozen=True)
class Outcome:
    outcome: str
    pod: str
    node: str = ""
    policy: str = ""
    fallback: str = ""
    model_version: str = ""
    reason: str = ""
    attempts: int = 0
    missing_namespace: str = ""  # GONE because the pod's whole namespace does not exist

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v not in ("", 0) or k == "outcome"}


def ignore_reason(pod: Pod, scheduler_name: str, gates: bool = True) -> str:
    """Why this scheduler leaves the pod alone ("" if it should place it); ``gates=False`` lets a
    pod through that only its scheduling gates hold back."""
    if pod.scheduler_name != scheduler_name:
        return f"schedulerName is {pod.scheduler_name!r}"
    if pod.bound:
        return f"already bound to {pod.node_name}"
    if pod.deleting:
        return "being deleted"
    if pod.terminal:
        return f"phase {pod.phase}"
    if gates and pod.scheduling_gates:  # kube-scheduler keeps such a pod out of its queue (SchedulingGated)
        return f"scheduling gates: {', '.join(pod.scheduling_gates[:5])}"
    return ""


def pod_spec(pod: Pod, workload: int = -1) -> PodSpec:
    """The policy's view of a pod (MiB rounded up, as the ClusterView's requests are); ``workload``:
    its workload's id in the view's usage history (ClusterCache.workload_id)."""
    r = pod.resources
    return PodSpec(cpu_request_milli=r.cpu, memory_request_mib=mib_up(r.memory), cpu_limit_milli=r.cpu_limit,
                   memory_limit_mib=mib_up(r.memory_limit), qos=pod.qos, workload=workload)


@dataclass(frozen=True)
class _Decided:
    """One decision of the cycle: the choice and what its record needs, or why nothing fits."""

    choice: Choice | None = None
    node: str = ""
    now: float = 0.0
    spec: PodSpec | None = None
    candidates: tuple[str, ...] = ()  # node names of choice.candidates
    failure: str = ""


class Scheduler:
    def __init__(self, cache: ClusterCache, metrics: PrometheusSource | None, decider: Decider, ledger_: Ledger,
                 events: EventRecorder, decisions: DecisionLog, telemetry: Telemetry, *, replica: str,
                 bind_attempts: int = 6, stale_after_s: float = 120.0, recent_lag_s: float = 60.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.cache = cache
        self.metrics = metrics
        self.decider = decider
        self.ledger = ledger_
        self.events = events
        self.decisions = decisions
        self.telemetry = telemetry
        self.replica = replica
        self.bind_attempts = bind_attempts
        self.stale_after_s = stale_after_s
        self.recent_lag_s = recent_lag_s
        self.clock = clock
        self._cycle = threading.Lock()

    def schedule(self, pod: Pod, request_id: str = "") -> Outcome:
        started = time.perf_counter()
        known = self.cache.bound_node(pod.uid) if pod.uid else None
        if known:
            self.telemetry.bind_conflicts.labels(kind="already_assigned").inc()
            return self._done(Outcome(ALREADY_BOUND, pod.key, known, reason="the watch cache has it bound"),
                              request_id, started)
        excluded: dict[str, str] = {}
        contended = False
        policy = ""
        for attempt in range(1, self.bind_attempts + 1):
            cpu_started = time.thread_time()
            decided = self._decide(pod, excluded)
            cpu_decided = time.thread_time()
            self.telemetry.cpu_seconds.labels(part="decide").inc(cpu_decided - cpu_started)
            if decided.choice is None:
                if contended:
                    break
                return self._unschedulable(pod, decided.failure, attempt, request_id, started)
            policy = decided.choice.policy
            placement = self._place(pod, decided)
            self.telemetry.cpu_seconds.labels(part="place").inc(time.thread_time() - cpu_decided)
            if placement.outcome == binding.BOUND:
                self.events.scheduled(pod, decided.node)
                choice = decided.choice
                return self._done(Outcome(BOUND, pod.key, decided.node, choice.policy, choice.fallback,
                                          choice.model_version, attempts=attempt), request_id, started)
            self.cache.forget(pod)
            final = self._final(pod, placement, policy, attempt)
            if final is not None:
                return self._done(final, request_id, started)
            contended |= placement.outcome in (ledger.CONTENDED, ledger.TOO_SLOW)
            excluded[decided.node] = _EXCLUDED_REASON.get(placement.outcome, placement.detail)
            event(log, "node did not take the pod, trying the next best", logging.DEBUG, pod=pod.key,
                  node=decided.node, outcome=placement.outcome, detail=placement.detail, request_id=request_id)
        self.telemetry.decisions.labels(policy=policy or "none", outcome="failed").inc()
        raise TemporaryError(f"could not place {pod.key}: {len(excluded)} nodes tried "
                             f"({'; '.join(f'{n}: {w}' for n, w in list(excluded.items())[:3])})", delay_s=1.0)

    def _decide(self, pod: Pod, excluded: dict[str, str]) -> _Decided:
        """Filter and decide against the cache, and assume the pod on the chosen node.

        The scheduling cycle: one decision at a time per replica, as in kube-scheduler, so that
        each decision sees the pods the previous ones assumed. Concurrent decisions from one
        snapshot would all pick the same best node and then lose to each other at the ledger
        (no_room). Reservations and Bindings still run in parallel."""
        with self._cycle:
            decide_started = time.perf_counter()
            snapshot = self.cache.snapshot()
            fits = fit_mask(pod, snapshot.table, snapshot.used_cpu, snapshot.used_memory, snapshot.used_pods)
            mask = fits.copy() if excluded else fits
            for name in excluded:  # nodes that did not take the pod in this call
                row = snapshot.table.index.get(name)
                if row is not None:
                    mask[row] = False
            feasible = np.flatnonzero(mask)
            if feasible.size == 0:
                return _Decided(failure=_failure(pod, snapshot, fits, excluded))
            now = self.clock()
            latest = self.metrics.latest() if self.metrics is not None else None
            fresh = latest is not None and latest.fresh(now, self.stale_after_s)
            view = build_view(snapshot, feasible, latest, now, self.recent_lag_s)
            spec = pod_spec(pod, self.cache.workload_id(pod.workload))
            choice = self.decider.choose(spec, view, fresh)
            if choice is None:  # cannot happen with a non-empty feasible set; be explicit anyway
                return _Decided(failure=_failure(pod, snapshot, fits, excluded))
            node = snapshot.nodes[feasible[choice.index]].name
            self.cache.assume(pod, node)
        rows = feasible[choice.candidates].tolist()
        table_names = snapshot.table.names
        names = itemgetter(*rows)(table_names) if len(rows) > 1 else tuple(table_names[r] for r in rows)
        self.telemetry.decision_seconds.labels(stage="decide").observe(time.perf_counter() - decide_started)
        return _Decided(choice, node, now, spec, names)

    def _place(self, pod: Pod, decided: _Decided) -> ledger.Placement:
        """Reserve and bind through the ledger, the decision record written ahead of the Binding
        and settled by its answer (:mod:`neurokube.live.decisions`); the assumption is dropped if
        that raises, and the record is then left for the shipper to resolve. A 409 "already
        assigned" to the very node this attempt chose is asked about (the pod's decision
        annotation): when this attempt's own Binding did it, the placement is BOUND."""
        bind_started = time.perf_counter()
        record = self._record(pod, decided)
        try:
            placement = self.ledger.place(pod, decided.node, partial(self.decisions.intend, record),
                                          record.decision_id)
        except BaseException:
            self.cache.forget(pod)
            self.decisions.settle(record.decision_id, None)
            raise
        bound: bool | None = placement.outcome == binding.BOUND
        if placement.outcome == binding.ALREADY_BOUND and placement.node == decided.node:
            # This attempt's own Binding may be what bound it, its answer lost: a POST that timed out
            # while etcd stalled, re-sent by the client and answered 409. The pod names the decision
            # that placed it; None (cannot say yet) leaves the record for the shipper to resolve.
            bound = self.decisions.placed_by(record)
            if bound:
                placement = replace(placement, outcome=binding.BOUND,
                                    detail="its own Binding, whose first answer was lost")
        self.decisions.settle(record.decision_id, bound)
        self.telemetry.decision_seconds.labels(stage="bind").observe(time.perf_counter() - bind_started)
        if placement.reserve_s:
            self.telemetry.decision_seconds.labels(stage="reserve").observe(placement.reserve_s)
        if placement.conflicts:
            self.telemetry.bind_conflicts.labels(kind="reservation").inc(placement.conflicts)
        if placement.reserved:
            self.telemetry.ledger_reservations.labels(how=placement.reserved).inc()
        return placement

    def _record(self, pod: Pod, decided: _Decided) -> LiveDecision:
        """The decision record of one placement attempt."""
        choice = decided.choice
        chosen = int(np.flatnonzero(choice.candidates == choice.index)[0])
        return LiveDecision(
            new_decision_id(self.replica), decided.now, pod.key, pod.uid, pod.workload, decided.spec, choice.policy,
            choice.model_version, choice.fallback, decided.candidates, chosen, choice.propensity, choice.features)

    def _final(self, pod: Pod, placement: ledger.Placement, policy: str, attempt: int) -> Outcome | None:
        """The outcome of a placement that did not bind, if it ends the call (else try the next node)."""
        if placement.outcome == binding.ALREADY_BOUND:
            self.telemetry.bind_conflicts.labels(kind="already_assigned").inc()
            return Outcome(ALREADY_BOUND, pod.key, placement.node, policy,
                           reason="another delivery or replica bound it first", attempts=attempt)
        if placement.outcome == binding.POD_GONE:
            return Outcome(GONE, pod.key, reason=placement.detail, attempts=attempt)
        if placement.outcome == binding.NAMESPACE_GONE:
            return Outcome(GONE, pod.key, reason=f"namespace {placement.detail!r} does not exist", attempts=attempt,
                           missing_namespace=placement.detail)
        if placement.outcome == ledger.NODE_GONE:
            self.cache.forget_node(placement.node)
        self.telemetry.bind_conflicts.labels(kind=placement.outcome).inc()
        return None

    def pending(self) -> int:
        return self.cache.pending_count()

    def _unschedulable(self, pod: Pod, message: str, attempts: int, request_id: str, started: float) -> Outcome:
        self.events.failed(pod, message)
        return self._done(Outcome(UNSCHEDULABLE, pod.key, reason=message, attempts=attempts), request_id, started)

    def _done(self, outcome: Outcome, request_id: str, started: float) -> Outcome:
        elapsed = time.perf_counter() - started
        self.telemetry.decision_seconds.labels(stage="total").observe(elapsed)
        self.telemetry.decisions.labels(policy=outcome.policy or "none", outcome=outcome.outcome).inc()
        level = logging.INFO if outcome.outcome in (BOUND, UNSCHEDULABLE) else logging.DEBUG
        event(log, f"pod {outcome.outcome}", level, pod=outcome.pod, node=outcome.node or None,
              policy=outcome.policy or None, fallback=outcome.fallback or None,
              model_version=outcome.model_version or None, reason=outcome.reason or None,
              attempts=outcome.attempts, ms=round(elapsed * 1000, 2), request_id=request_id, replica=self.replica)
        return outcome


def _failure(pod: Pod, snapshot: Snapshot, fits: np.ndarray, excluded: dict[str, str]) -> str:
    """kube-scheduler's FitError text for a pod no node takes: each node that does not fit with
    its reasons, and the nodes that refused it in this call with theirs. Computed only then: the
    reasons are a Python loop over the failing nodes, and on a cluster of full nodes that loop
    would otherwise run in every decision."""
    table = snapshot.table
    reasons = explain(pod, table, snapshot.used_cpu, snapshot.used_memory, snapshot.used_pods,
                      np.flatnonzero(~fits))
    for name, why in excluded.items():
        if name in table.index:
            reasons[name] = [why]
    return failure_message(len(snapshot.nodes), reasons)
