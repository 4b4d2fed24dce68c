"""The metrics emulator process: an HTTP exporter serving :mod:`series` for a usage source.

``python -m neurokube.emulator --source snapshot.json --port 9100`` serves ``/metrics`` (any path
but ``/favicon.ico``, like every prometheus_client exporter) on 127.0.0.1; ``--label cluster=NAME``
(repeatable) puts a label on every series, as a cluster's scrape config would. Each scrape takes a
snapshot at the wall-clock time and advances the counters, so the exporter behaves like a set of
real exporters for Prometheus. SIGTERM stops it cleanly.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.metrics_core import Metric

from neurokube.adapters.usage import UsageSource
from neurokube.emulator.filesource import FileSource
from neurokube.emulator.openmetrics import check_labels
from neurokube.emulator.series import Counters, families
from neurokube.errors import InputError, NeuroKubeError
from neurokube.logs import configure_logging, event

log = logging.getLogger("neurokube.emulator")


class EmulatedExporters:
    """A prometheus_client collector: one snapshot and one counter step per scrape."""

    def __init__(self, source: UsageSource, clock: Callable[[], float],
                 labels: Mapping[str, str] | None = None) -> None:
        self._source = source
        self._labels = dict(check_labels(dict(labels or {})))
        self._clock = clock
        self._counters = Counters()
        self._lock = threading.Lock()  # concurrent scrapes must not advance the counters twice at once

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            now = self._clock()
            snapshot = self._source.snapshot(now)
            self._counters.advance(snapshot, now)
            computed = families(snapshot, self._counters)
        for family in computed:
            metric = Metric(family.name, family.help, family.kind)
            for labels, value in family.samples:
                metric.add_sample(family.sample_name, {**dict(labels), **self._labels}, value)
            yield metric


def registry_for(source: UsageSource, clock: Callable[[], float] = time.time,
                 labels: Mapping[str, str] | None = None) -> CollectorRegistry:
    """A registry with only the emulated series (no process or Python metrics), each with ``labels``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EmulatedExporters(source, clock, labels))
    return registry


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m neurokube.emulator", description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, required=True, help="JSON usage snapshot (see filesource.py)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, required=True, help="port to listen on")
    parser.add_argument("--label", action="append", default=[], metavar="NAME=VALUE",
                        help="a label on every series, e.g. cluster=dev (repeatable)")
    args = parser.parse_args(argv)
    configure_logging()
    try:
        labels = dict(_label(text) for text in args.label)
        source = FileSource(args.source)
        registry = registry_for(source, labels=labels)
    except NeuroKubeError as exc:
        print(f"neurokube emulator: error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server, thread = start_http_server(args.port, addr=args.host, registry=registry)
    event(log, "metrics emulator serving", url=f"http://{args.host}:{args.port}/metrics", source=str(args.source))
    stop.wait()
    server.shutdown()
    thread.join()
    event(log, "metrics emulator stopped")
    return 0


def _label(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep:
        raise InputError(f"--label {text!r} is not NAME=VALUE")
    return name, value
