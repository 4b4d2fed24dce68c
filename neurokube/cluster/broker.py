"""A loopback stand-in for the Knative Broker and the binder's Triggers (deploy/knative/eventing.yaml).

Deployed, the ApiServerSource's receive adapter sends each pod event to a Broker, whose ingress
acknowledges it at once; the Trigger ``neurokube-binder-add`` then delivers the add events of pods
to the binder, several at a time (up to the Service's ``containerConcurrency``), retrying a 5xx
answer or an unreachable subscriber 5 times with exponential back-off from 0.2 s. Update and
delete events match no Trigger and are dropped (deploy/knative/eventing.yaml says why).

The receive adapter itself sends one event at a time and waits for each answer. Pointed straight
at the binder (as ``cluster up --functions`` does), every event waits for the previous pod's whole
placement: a local bottleneck that the deployed topology does not have. ``LocalBroker`` restores
that topology on 127.0.0.1: it answers the adapter with 202 as soon as an event is queued and
delivers the matching events with ``concurrency`` threads, each on a kept-alive connection.
Like the in-memory channel, it keeps nothing across a restart. As Knative's Broker filter does
with OIDC on, it does not forward the sender's credential: it authenticates to the subscriber with
its own (``authorization``, here the binder's static event token).
"""

from __future__ import annotations

import http.client
import queue
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

POD_TYPES = ("dev.knative.apiserver.resource.add",)  # the types the binder's Trigger delivers


@dataclass
class BrokerStats:
    received: int = 0
    filtered: int = 0  # matched no Trigger (update and delete events)
    delivered: int = 0  # the subscriber answered 2xx
    rejected: int = 0  # 4xx: not retried (a dead-letter sink would get them)
    retries: int = 0
    failed: int = 0  # still 5xx or unreachable after every retry
    max_in_flight: int = 0
    queue_wait_s: list[float] = field(default_factory=list)  # received -> first delivery attempt


class LocalBroker:
    def __init__(self, subscriber: str, types: tuple[str, ...] = POD_TYPES, concurrency: int = 8,
                 retries: int = 5, backoff_s: float = 0.2, timeout_s: float = 60.0,
                 authorization: str | None = None) -> None:
        parts = urllib.parse.urlsplit(subscriber)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"subscriber must be an http URL, got {subscriber!r}")
        self.subscriber = subscriber
        self.authorization = authorization
        self._host, self._port, self._path = parts.hostname, parts.port or 80, parts.path or "/"
        self.types = types
        self.retries = retries
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.stats = BrokerStats()
        self._lock = threading.Lock()
        self._in_flight = 0
        self._queue: queue.Queue[tuple[float, dict[str, str], bytes] | None] = queue.Queue()
        broker = self

        class Ingress(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the adapter's Go client expects

            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                broker._accept({k.lower(): v for k, v in self.headers.items()}, body)
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Ingress)
        self._server.daemon_threads = True
        self._threads = [threading.Thread(target=self._server.serve_forever, name="broker-ingress", daemon=True)]
        self._threads += [threading.Thread(target=self._deliver_loop, name=f"broker-delivery-{i}", daemon=True)
                          for i in range(concurrency)]
        for thread in self._threads:
            thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/"

    def idle(self) -> bool:
        """Nothing queued and nothing being delivered."""
        with self._lock:
            return self._queue.unfinished_tasks == 0

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        for _ in self._threads[1:]:
            self._queue.put(None)
        for thread in self._threads[1:]:
            thread.join(timeout=self.timeout_s)

    # -- ingress -----------------------------------------------------------------------------------

    def _accept(self, headers: dict[str, str], body: bytes) -> None:
        with self._lock:
            self.stats.received += 1
            if headers.get("ce-type") not in self.types:
                self.stats.filtered += 1
                return
            self._queue.put((time.monotonic(), headers, body))

    # -- delivery ----------------------------------------------------------------------------------

    def _deliver_loop(self) -> None:
        conn: http.client.HTTPConnection | None = None
        while True:
            item = self._queue.get()
            if item is None:
                if conn is not None:
                    conn.close()
                return
            queued_at, headers, body = item
            with self._lock:
                self.stats.queue_wait_s.append(time.monotonic() - queued_at)
                self._in_flight += 1
                self.stats.max_in_flight = max(self.stats.max_in_flight, self._in_flight)
            try:
                conn = self._deliver(conn, headers, body)
            finally:
                with self._lock:
                    self._in_flight -= 1
                self._queue.task_done()

    def _deliver(self, conn: http.client.HTTPConnection | None, headers: dict[str, str],
                 body: bytes) -> http.client.HTTPConnection | None:
        forward = {k: v for k, v in headers.items() if k.startswith("ce-") or k == "content-type"}
        if self.authorization:
            forward["authorization"] = self.authorization
        delay = self.backoff_s
        for attempt in range(self.retries + 1):
            status = 0
            for fresh in (conn is None, True):  # a kept-alive connection the server closed: once more, at once
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout_s)
                    conn.request("POST", self._path, body=body, headers=forward)
                    response = conn.getresponse()
                    response.read()
                    status = response.status
                    break
                except (OSError, http.client.HTTPException):
                    if conn is not None:
                        conn.close()
                    conn = None
                    if fresh:
                        break
            if 200 <= status < 300:
                with self._lock:
                    self.stats.delivered += 1
                return conn
            if 400 <= status < 500:
                with self._lock:
                    self.stats.rejected += 1
                return conn
            if attempt < self.retries:
                with self._lock:
                    self.stats.retries += 1
                time.sleep(delay)
                delay *= 2
        with self._lock:
            self.stats.failed += 1
        return conn
