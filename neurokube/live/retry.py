"""Place again, as soon as room is freed, the pods the binder found unschedulable.

kube-scheduler puts an unschedulable pod back in its active queue when a cluster event could make
it fit: an assigned pod deleted or finished, a node added (its queueing hints). The binder places a
pod on the pod's create event, and the sweeper places what is still pending once a minute, so a
pod that found no room used to wait up to a sweep period after room came free (in the live loop,
neurokube/liveloop, a trace compressed 60x, a trace minute per retry).

The retrier closes that gap. The binder's event path hands it each pod it left unschedulable
(:meth:`Retrier.hold`); the watch cache calls :meth:`Retrier.released` whenever a pod stops holding
a node's resources or a node appears. A thread of its own then places the held pods again through
the same :class:`~neurokube.live.scheduler.Scheduler`, oldest first, at most ``max_pods`` per pass
and for at most ``budget_s``; a burst of releases is one pass (it waits ``settle_s`` for the burst
to land). A held pod that the watch shows bound, deleted or no longer this scheduler's is dropped
without a decision. Every replica watches every release, so each replica retries the pods it
left pending itself; the sweeper still covers the rest (a restarted replica, a missed event).

Pods with scheduling gates are held apart (:meth:`Retrier.hold_gated`): the binder holds such a
pod instead of placing it (the apiserver refuses a Binding while a gate is left, and kube-scheduler
keeps such pods out of its queue). The watch cache calls :meth:`Retrier.ungated` with the pod's UID
when its last gate is removed, and the next pass places exactly those pods first. Gated pods are
never scanned by a pass, so any number of them (a queue of suspended jobs) cannot crowd out the
unschedulable pods behind them.

Counted in ``neurokube_release_retries_total`` by outcome.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable

from neurokube.errors import TemporaryError
from neurokube.k8s.objects import Pod
from neurokube.live.scheduler import UNSCHEDULABLE, Scheduler
from neurokube.live.telemetry import Telemetry
from neurokube.logs import event

log = logging.getLogger("neurokube.live.retry")
HELD_MAX = 10_000  # held pods beyond this are left to the sweeper, oldest first


class Retrier:
    def __init__(self, scheduler: Scheduler, pending_pod: Callable[[str], Pod | None], telemetry: Telemetry, *,
                 max_pods: int = 100, budget_s: float = 1.0, settle_s: float = 0.05) -> None:
        """``pending_pod(uid)``: the pod as the watch last saw it if it is still pending for this
        scheduler, else None (:meth:`~neurokube.live.cache.ClusterCache.pending_pod`)."""
        self.scheduler = scheduler
        self.pending_pod = pending_pod
        self.telemetry = telemetry
        self.max_pods, self.budget_s, self.settle_s = max_pods, budget_s, settle_s
        self._held: dict[str, None] = {}  # UIDs in the order they were first left unschedulable
        self._gated: dict[str, None] = {}  # UIDs of pods held for their scheduling gates
        self._ungated: dict[str, None] = {}  # of those, the ones whose last gate the watch saw removed
        self._releases = 0  # bumped by the watch thread only (under the cache's lock)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def releases(self) -> int:
        """How many times room may have been freed so far: read it before deciding, give it to :meth:`hold`."""
        return self._releases

    def hold(self, pod: Pod, releases: int) -> None:
        """``pod`` found no room: place it again when room is freed. ``releases`` is :attr:`releases`
        as read before the decision: if room was freed since, the pass comes at once."""
        if not pod.uid:
            return
        with self._lock:
            _keep(self._held, pod.uid)
        if releases != self._releases:
            self._wake.set()

    def hold_gated(self, pod: Pod) -> None:
        """``pod`` has scheduling gates: place it once the watch sees the last one removed. If the
        watch saw that already (between the caller's read and this call), the pass comes at once."""
        if not pod.uid:
            return
        with self._lock:
            _keep(self._gated, pod.uid)
        now = self.pending_pod(pod.uid)
        if now is not None and not now.scheduling_gates:
            self.ungated(pod.uid)

    def ungated(self, uid: str) -> None:
        """The watch saw the last scheduling gate of the pod with this UID removed (called by the
        watch cache under its lock: only this retrier's own lock is taken)."""
        with self._lock:
            if uid not in self._gated:
                return
            self._ungated[uid] = None
        self._wake.set()

    def released(self) -> None:
        """Room may have been freed (called by the watch cache, under its lock: only a flag is set)."""
        self._releases += 1
        if self._held:
            self._wake.set()

    @property
    def held(self) -> int:
        with self._lock:
            return len(self._held)

    @property
    def gated(self) -> int:
        with self._lock:
            return len(self._gated)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="release-retrier", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()

    def retry(self, request_id: str = "release") -> Counter[str]:
        """One pass over the held pods: each is placed again, or dropped when the watch no longer
        shows it pending; the outcomes, counted."""
        counts: Counter[str] = Counter()
        started = time.monotonic()
        with self._lock:
            ungated = list(self._ungated)
            self._ungated.clear()
            for uid in ungated:
                self._gated.pop(uid, None)
            uids = list(self._held)[:self.max_pods]
        for uid in ungated:  # pods held for their gates, now free of them: placed first, held if not placed
            pod = self.pending_pod(uid)
            if pod is None:
                counts["not_pending"] += 1
                continue
            if pod.scheduling_gates:  # the watch has since shown it gated (a re-list): back to waiting
                with self._lock:
                    _keep(self._gated, uid)
                continue
            releases = self._releases
            outcome = self._place(pod, request_id, counts)
            if outcome is None or outcome == UNSCHEDULABLE:
                self.hold(pod, releases)
        for uid in uids:
            if time.monotonic() - started > self.budget_s:
                counts["deferred"] += 1
                continue
            pod = self.pending_pod(uid)
            if pod is None:  # bound by someone, deleted, or no longer ours
                counts["not_pending"] += 1
                self._drop(uid)
                continue
            outcome = self._place(pod, request_id, counts)
            if outcome is not None and outcome != UNSCHEDULABLE:
                self._drop(uid)
        for outcome, n in counts.items():
            self.telemetry.release_retries.labels(outcome=outcome).inc(n)
        if counts:
            event(log, "held pods retried after room was freed", logging.DEBUG, request_id=request_id,
                  held=self.held, seconds=round(time.monotonic() - started, 3), **counts)
        return counts

    def _place(self, pod: Pod, request_id: str, counts: Counter[str]) -> str | None:
        """Place ``pod`` again; its outcome (counted), or None if that failed for now."""
        try:
            outcome = self.scheduler.schedule(pod, request_id).outcome
        except TemporaryError as exc:
            counts["failed"] += 1
            event(log, "retrying a held pod failed; it stays held", logging.WARNING, pod=pod.key, error=str(exc))
            return None
        counts[outcome] += 1
        return outcome

    def _drop(self, uid: str) -> None:
        with self._lock:
            self._held.pop(uid, None)

    def _run(self) -> None:
        while True:
            self._wake.wait()
            if self._stop.is_set():
                return
            self._stop.wait(self.settle_s)  # let a burst of releases land in one pass
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.retry()
            except Exception as exc:  # noqa: BLE001 - the thread must survive; the sweeper is the backstop
                event(log, "release retrier error", logging.ERROR, error=f"{type(exc).__name__}: {exc}")


def _keep(uids: dict[str, None], uid: str) -> None:
    """Add ``uid`` to an insertion-ordered set of at most HELD_MAX, dropping the oldest beyond it
    (those are left to the sweeper)."""
    uids.setdefault(uid, None)
    while len(uids) > HELD_MAX:
        del uids[next(iter(uids))]
