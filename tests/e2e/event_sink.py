"""A CloudEvents sink for tests/e2e: the session cluster's receive adapter posts to it, so a test
can check what the adapter delivers (tests/e2e/test_cluster.py). A test helper, not production
code: the live functions parse CloudEvents with the cloudevents SDK (neurokube/live/web.py)."""

from __future__ import annotations

import json
import queue
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class CloudEvent:
    headers: dict[str, str]  # lower-case names
    data: dict

    def attr(self, name: str) -> str | None:
        """A binary-content-mode attribute or extension (the ``ce-<name>`` header)."""
        return self.headers.get(f"ce-{name}")


class EventSink:
    """A small HTTP server on 127.0.0.1 that accepts CloudEvents and queues them in ``events``."""

    def __init__(self) -> None:
        self.events: queue.Queue[CloudEvent] = queue.Queue()
        events = self.events

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    data = json.loads(body) if body else {}
                except ValueError:
                    data = {"_raw": body.decode(errors="replace")}
                events.put(CloudEvent({k.lower(): v for k, v in self.headers.items()}, data))
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="event-sink", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
