"""A Prometheus HTTP API double: a loopback server that answers ``/api/v1/query`` with one sample
per node from a fixed table of usage.

The live Prometheus source (:mod:`neurokube.live.prometheus`) is tested against it over real HTTP,
so its request building, JSON parsing and error handling run as in production. The synthetic
scheduling bench (:mod:`neurokube.bench.scheduling`) and the local platform's live kit
(:mod:`neurokube.cluster.livekit`) use it on purpose as their source of node metrics, because a
KWOK cluster has no node exporter to scrape.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakePrometheus:
    """Answers ``/api/v1/query`` with one sample per node: CPU cores and memory bytes per node,
    recognising the statistic by the PromQL function and the resource by the metric name.

    With ``pods`` (``namespace/name`` -> CPU cores, memory bytes), a query of cAdvisor's series
    (``container_...``) is answered with one sample per pod, labelled ``namespace`` and ``pod``
    (the actuator's per-pod usage); the table may be changed between queries."""

    def __init__(self, usage: dict[str, tuple[float, float]], label: str = "instance", suffix: str = ":9100",
                 pods: dict[str, tuple[float, float]] | None = None) -> None:
        self.usage = usage
        self.pods = pods if pods is not None else {}
        self.label = label
        self.suffix = suffix
        self.up = True
        self.queries: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                parts = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(parts.query).get("query", [""])[0]
                owner.queries.append(query)
                if not owner.up:
                    self._send(503, {"status": "error", "error": "down for the test"})
                elif parts.path != "/api/v1/query":
                    self._send(404, {"status": "error", "error": "not found"})
                else:
                    self._send(200, owner.answer(query))

            def _send(self, code: int, doc: dict) -> None:
                body = json.dumps(doc).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-prometheus", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def answer(self, query: str) -> dict:
        memory = "memory" in query
        result = []
        if self.pods and "container_" in query:
            for key, (cpu_cores, mem_bytes) in dict(self.pods).items():
                namespace, _, pod = key.partition("/")
                result.append({"metric": {"namespace": namespace, "pod": pod},
                               "value": [0, str(mem_bytes if memory else cpu_cores)]})
            return {"status": "success", "data": {"resultType": "vector", "result": result}}
        for node, (cpu_cores, mem_bytes) in self.usage.items():
            value = mem_bytes if memory else cpu_cores
            if query.startswith("stddev_over_time") or query.startswith("deriv"):
                value = 0.0
            elif query.startswith("count_over_time"):
                value = 10.0
            result.append({"metric": {self.label: f"{node}{self.suffix}"}, "value": [0, str(value)]})
        return {"status": "success", "data": {"resultType": "vector", "result": result}}

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
