"""The sweep: place the pods that are still pending, oldest first.

The ApiServerSource sends no event for pods that exist when it starts or after it re-lists, and
a binder that was down when an event came loses it after the retries. So once a minute a
PingSource wakes the sweeper, which lists ``spec.nodeName=`` pods of this scheduler straight from
the apiserver (not from a cache) and runs each through the same :class:`Scheduler` as the binder.
Pods younger than ``sweep_min_age_s`` are left to the binder. Races with binder replicas are
harmless: the ledger serialises placements per node and a second Binding is a 409.

A sweep stops after ``sweep_max_pods`` pods or ``sweep_budget_s`` seconds (the next ping
continues), and removes the ledger Leases of nodes that no longer exist.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import Counter
from collections.abc import Callable

from neurokube.adapters.kube import KubeClient
from neurokube.errors import InputError, TemporaryError
from neurokube.k8s.objects import Pod, parse_pod
from neurokube.live.cache import ClusterCache
from neurokube.live.ledger import Ledger
from neurokube.live.scheduler import Scheduler
from neurokube.live.telemetry import Telemetry
from neurokube.logs import event

log = logging.getLogger("neurokube.live.sweeper")


def created_s(pod: Pod) -> float:
    try:
        return dt.datetime.fromisoformat(pod.created.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


class Sweeper:
    def __init__(self, kube: KubeClient, scheduler: Scheduler, ledger: Ledger, cache: ClusterCache,
                 telemetry: Telemetry, *, scheduler_name: str, min_age_s: float = 5.0, max_pods: int = 2000,
                 budget_s: float = 50.0, clock: Callable[[], float] = time.time) -> None:
        self.kube = kube
        self.scheduler = scheduler
        self.ledger = ledger
        self.cache = cache
        self.telemetry = telemetry
        self.scheduler_name = scheduler_name
        self.min_age_s = min_age_s
        self.max_pods = max_pods
        self.budget_s = budget_s
        self.clock = clock

    def pending(self) -> list[Pod]:
        """This scheduler's unbound, live pods, oldest first (a fresh list from the apiserver)."""
        items = self.kube.get("/api/v1/pods",
                              fieldSelector=f"spec.nodeName=,spec.schedulerName={self.scheduler_name}")["items"]
        pods = []
        for doc in items:
            try:
                pod = parse_pod(doc)
            except InputError as exc:
                self.telemetry.sweeps.labels(outcome="invalid").inc()
                event(log, "pending pod cannot be read; skipped", logging.WARNING, error=str(exc))
                continue
            if pod.scheduling_gates:
                self.telemetry.sweeps.labels(outcome="gated").inc()
            elif not pod.deleting and not pod.terminal and not pod.bound:
                pods.append(pod)
        return sorted(pods, key=lambda p: (created_s(p), p.key))

    def sweep(self, request_id: str = "") -> dict:
        started = time.monotonic()
        counts: Counter[str] = Counter()
        now = self.clock()
        pods = self.pending()
        for pod in pods:
            if now - created_s(pod) < self.min_age_s:
                counts["young"] += 1
                continue
            if counts.total() - counts["young"] >= self.max_pods or time.monotonic() - started > self.budget_s:
                counts["deferred"] += 1
                continue
            try:
                outcome = self.scheduler.schedule(pod, request_id)
                counts[outcome.outcome] += 1
            except TemporaryError as exc:
                counts["failed"] += 1
                event(log, "sweep could not place a pod", logging.WARNING, pod=pod.key, error=str(exc),
                      request_id=request_id)
        for outcome, n in counts.items():
            self.telemetry.sweeps.labels(outcome=outcome).inc(n)
        try:
            counts["leases_deleted"] = self.ledger.collect_garbage({n.name for n in self.cache.snapshot().nodes})
        except TemporaryError as exc:
            event(log, "ledger garbage collection failed", logging.WARNING, error=str(exc))
        report = {"pending": len(pods), **counts, "seconds": round(time.monotonic() - started, 3)}
        event(log, "sweep done", request_id=request_id, **report)
        return report
