"""Helpers for tests that need the local cluster: a session handle and a CloudEvents sink.

Used by tests/e2e; usable by any test that wants a real kube-scheduler to compare against.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from neurokube.adapters.kube import KubeClient
from neurokube.cluster import control, workload
from neurokube.cluster.build import Binaries
from neurokube.cluster.state import ClusterRecord


def wait_for(what: str, probe: Callable[[], object], timeout_s: float = 20.0, interval_s: float = 0.2) -> object:
    """``probe()``'s first truthy value, polled every ``interval_s``; an AssertionError naming ``what``
    after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s:.0f}s"
        time.sleep(interval_s)


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


@dataclass(frozen=True)
class RunningCluster:
    record: ClusterRecord
    client: KubeClient

    @property
    def kubeconfig(self) -> str:
        return self.record.kubeconfig

    @property
    def state_dir(self) -> Path:
        return Path(self.record.state_dir)

    def kubectl(self, *args: str, timeout_s: float = 60.0) -> str:
        """Run the pinned kubectl against this cluster; raise AssertionError with its stderr on failure."""
        binary = Binaries(Path(self.record.bin_dir)).path("kubectl")
        proc = subprocess.run([str(binary), *args], env={**os.environ, "KUBECONFIG": self.kubeconfig},
                              capture_output=True, text=True, timeout=timeout_s, check=False)
        if proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc.stdout


@contextmanager
def running_cluster(state_dir: Path, nodes: list[workload.NodeSpec], **options: object) -> Iterator[RunningCluster]:
    """Start a cluster for the duration of the block and always take it down afterwards."""
    try:
        result = control.up(control.UpOptions(state_dir=state_dir, nodes=nodes, **options), out=sys.stderr)
        yield RunningCluster(result.record, control.admin_client(result.record))
    finally:
        control.down(state_dir, out=sys.stderr)
