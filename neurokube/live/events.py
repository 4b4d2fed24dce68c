"""Kubernetes Events about pods (core/v1): ``Scheduled`` after a binding, ``FailedScheduling``
when no node fits, as kube-scheduler reports them (``kubectl describe pod`` shows them).

Events are best-effort and never delay a binding: they are queued and posted by ``POSTERS``
background threads; a full queue or a failing apiserver drops them (counted). Why 12: each POST is a
round trip of about 60 ms while the binder places about 100 pods a second on 2 cores (the 500-node
scheduling bench). Four threads posted 68 Events a second, so only 0.64 per bound pod had been posted
when the last pod was bound. Twelve posted them all (3.02 POSTs per pod, as kube-scheduler's 3.00),
and the bench's throughput did not drop (0.95x against 0.92x with four, single runs). ``FailedScheduling`` is posted
at most once a minute per pod, since the sweeper retries pending pods every minute.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
import time
import urllib.parse

from neurokube.adapters.kube import KubeClient
from neurokube.errors import TemporaryError
from neurokube.k8s.objects import Pod
from neurokube.live.telemetry import Telemetry
from neurokube.logs import event

log = logging.getLogger("neurokube.live.events")
QUEUE_SIZE = 10_000
POSTERS = 12
FAILED_EVERY_S = 60.0


def now_rfc3339() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def pod_event(pod: Pod, reason: str, message: str, kind: str, component: str, replica: str) -> dict:
    stamp = now_rfc3339()
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"generateName": f"{pod.name}.", "namespace": pod.namespace},
        "involvedObject": {"apiVersion": "v1", "kind": "Pod", "namespace": pod.namespace, "name": pod.name,
                           "uid": pod.uid},
        "reason": reason, "message": message[:1024], "type": kind,
        "source": {"component": component},
        "reportingComponent": component, "reportingInstance": replica[:128],
        "firstTimestamp": stamp, "lastTimestamp": stamp, "eventTime": now_micro(), "count": 1,
        "action": "Scheduling" if reason == "FailedScheduling" else "Binding",
    }


class EventRecorder:
    def __init__(self, kube: KubeClient, component: str, replica: str, telemetry: Telemetry) -> None:
        self.kube = kube
        self.component = component
        self.replica = replica
        self.telemetry = telemetry
        self._queue: queue.Queue[dict] = queue.Queue(QUEUE_SIZE)
        self._failed_at: dict[str, float] = {}
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, name=f"k8s-events-{i}", daemon=True)
                         for i in range(POSTERS)]
        self._started = False

    def start(self) -> None:
        if not self._started:
            self._started = True
            for thread in self._threads:
                thread.start()

    def scheduled(self, pod: Pod, node: str) -> None:
        self._put(pod_event(pod, "Scheduled", f"Successfully assigned {pod.key} to {node}", "Normal",
                            self.component, self.replica))

    def failed(self, pod: Pod, message: str) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._failed_at.get(pod.uid or pod.key, -FAILED_EVERY_S) < FAILED_EVERY_S:
                return
            self._failed_at[pod.uid or pod.key] = now
            if len(self._failed_at) > 50_000:
                self._failed_at.clear()
        self._put(pod_event(pod, "FailedScheduling", message, "Warning", self.component, self.replica))

    def flush(self, timeout_s: float = 5.0) -> None:
        """Wait until the queue is empty (tests, shutdown)."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    def _put(self, body: dict) -> None:
        try:
            self._queue.put_nowait(body)
        except queue.Full:
            self.telemetry.k8s_events.labels(reason=body["reason"], result="dropped").inc()

    def _run(self) -> None:
        while True:
            body = self._queue.get()
            try:
                ns = urllib.parse.quote(body["metadata"]["namespace"], safe="")
                self.kube.request("POST", f"/api/v1/namespaces/{ns}/events", body)
                self.telemetry.k8s_events.labels(reason=body["reason"], result="posted").inc()
            except TemporaryError as exc:
                self.telemetry.k8s_events.labels(reason=body["reason"], result="failed").inc()
                event(log, "could not post an Event", logging.DEBUG, reason=body["reason"], error=str(exc))
            except Exception as exc:  # noqa: BLE001 - the event thread must survive
                event(log, "event thread error", logging.ERROR, error=f"{type(exc).__name__}: {exc}")
            finally:
                self._queue.task_done()
