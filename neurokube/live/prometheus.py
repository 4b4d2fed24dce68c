"""Node usage statistics from Prometheus, refreshed in the background.

Every ``prom_refresh_s`` one thread runs the configured instant queries (HTTP API
``/api/v1/query``): mean, max, standard deviation, trend and sample count of each node's CPU
usage (cores) and memory usage (bytes) over the window. Series are matched to nodes through one
label (``instance`` by default, its ``:port`` stripped); the label's value may be the node name or
one of the node's addresses, because node-exporter's ``instance`` is usually ``<ip>:9100``.

Degrade, don't fail: a refresh that fails keeps the previous values, which age. Once they are
older than ``prom_stale_after_s`` (or before the first success) :meth:`MetricsSnapshot.fresh`
is false and the decision falls back to default scoring, counted as ``prometheus_unavailable``.
Only the two mean queries are required; a failing optional query leaves its statistic at zero.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from neurokube.errors import TemporaryError
from neurokube.live.settings import STATISTICS, Settings
from neurokube.logs import event
from neurokube.policies.base import NodeMetrics

log = logging.getLogger("neurokube.live.prometheus")

REQUIRED = ("cpu_mean", "mem_mean")
MIB = 1024.0 * 1024.0


@dataclass(frozen=True)
class MetricsSnapshot:
    """The newest successful refresh: statistic -> node name -> value (cores or bytes)."""

    refreshed_at: float = 0.0  # wall-clock seconds; 0: never
    values: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    error: str = ""

    def age_s(self, now: float) -> float:
        return now - self.refreshed_at if self.refreshed_at else math.inf

    def fresh(self, now: float, stale_after_s: float) -> bool:
        return self.age_s(now) <= stale_after_s

    def node_metrics(self, names: list[str], now: float) -> NodeMetrics:
        """Per-node statistics in millicores and MiB, in ``names`` order (absent nodes: no samples)."""
        n = len(names)
        metrics = NodeMetrics.empty(n)

        def column(stat: str, scale: float) -> np.ndarray:
            values = self.values.get(stat, {})
            return np.array([values.get(name, 0.0) * scale for name in names], dtype=np.float64)

        metrics.cpu_mean, metrics.cpu_max = column("cpu_mean", 1000.0), column("cpu_max", 1000.0)
        metrics.cpu_std, metrics.cpu_trend = column("cpu_std", 1000.0), column("cpu_trend", 1000.0)
        metrics.mem_mean, metrics.mem_max = column("mem_mean", 1 / MIB), column("mem_max", 1 / MIB)
        metrics.mem_std, metrics.mem_trend = column("mem_std", 1 / MIB), column("mem_trend", 1 / MIB)
        seen = np.array([name in self.values.get("cpu_mean", {}) for name in names], dtype=bool)
        counted = column("cpu_samples", 1.0)
        metrics.samples = np.where(seen, np.maximum(counted, 1), 0).astype(np.int64)
        metrics.age_s = np.where(seen, self.age_s(now), np.inf)
        # A max below the mean (a max query that failed or lags) would confuse the features.
        metrics.cpu_max = np.maximum(metrics.cpu_max, metrics.cpu_mean)
        metrics.mem_max = np.maximum(metrics.mem_max, metrics.mem_mean)
        return metrics


def node_key(value: str, strip_port: bool) -> str:
    """``10.0.0.5:9100`` -> ``10.0.0.5``; ``[fd00::1]:9100`` -> ``fd00::1``; names unchanged."""
    if not strip_port:
        return value
    if value.startswith("["):
        return value[1:value.index("]")] if "]" in value else value
    if value.count(":") == 1:
        return value.rsplit(":", 1)[0]
    return value


class PrometheusSource:
    def __init__(self, settings: Settings, nodes: Callable[[], dict[str, str]],
                 clock: Callable[[], float] = time.time) -> None:
        """``nodes()`` maps every node name and node address to the node's name."""
        if settings.prometheus_url is None:
            raise ValueError("no Prometheus URL")
        self.settings = settings
        self.url = settings.prometheus_url.rstrip("/")
        self.nodes = nodes
        self.clock = clock
        self.queries = {stat: settings.query(stat) for stat in STATISTICS}
        self._latest = MetricsSnapshot()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="prometheus", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()

    def latest(self) -> MetricsSnapshot:
        with self._lock:
            return self._latest

    def refresh(self) -> MetricsSnapshot:
        """One round of queries; on failure the previous snapshot stays (with the error noted)."""
        started = self.clock()
        names = self.nodes()
        if not names:  # the watch cache has not listed nodes yet: nothing to match series to
            return self.latest()
        values: dict[str, dict[str, float]] = {}
        errors = []
        for stat, query in self.queries.items():
            try:
                values[stat] = self._by_node(self._query(query), names)
            except TemporaryError as exc:
                if stat in REQUIRED:
                    errors.append(str(exc))
                    break
                event(log, "optional Prometheus query failed", logging.DEBUG, statistic=stat, error=str(exc))
        with self._lock:
            if errors:
                self._latest = MetricsSnapshot(self._latest.refreshed_at, self._latest.values, errors[0])
            else:
                self._latest = MetricsSnapshot(started, values)
            latest = self._latest
        if errors and not self._failing:
            event(log, "Prometheus unavailable; decisions fall back to default scoring once metrics are stale",
                  logging.WARNING, url=self.url, error=errors[0])
        elif not errors and self._failing:
            event(log, "Prometheus is back", url=self.url, nodes=len(values.get("cpu_mean", {})))
        self._failing = bool(errors)
        return latest

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                latest = self.refresh()
            except Exception as exc:  # noqa: BLE001 - the refresher must survive anything
                event(log, "metrics refresh crashed", logging.ERROR, error=f"{type(exc).__name__}: {exc}")
                latest = self.latest()
            # Until the first success (nodes not listed yet, Prometheus down at start) retry sooner.
            period = self.settings.prom_refresh_s
            self._stop.wait(period if latest.refreshed_at else min(1.0, period))

    def _query(self, query: str) -> list[dict]:
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": query})
        try:
            with urllib.request.urlopen(url, timeout=self.settings.prom_timeout_s) as response:
                doc = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            try:
                detail = json.loads(exc.read()).get("error", "")
            except (ValueError, OSError):
                detail = ""
            raise TemporaryError(f"Prometheus {self.url}: HTTP {exc.code} {detail}".rstrip()) from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise TemporaryError(f"Prometheus {self.url} unreachable: {getattr(exc, 'reason', exc)}") from None
        if not isinstance(doc, dict) or doc.get("status") != "success":
            detail = doc.get("error") if isinstance(doc, dict) else doc
            raise TemporaryError(f"Prometheus {self.url}: query failed: {detail}")
        data = doc.get("data") or {}
        if data.get("resultType") != "vector":
            raise TemporaryError(f"Prometheus {self.url}: expected a vector, got {data.get('resultType')}")
        return data.get("result") or []

    def _by_node(self, series: list[dict], names: dict[str, str]) -> dict[str, float]:
        label, strip = self.settings.prom_node_label, self.settings.prom_strip_port
        out: dict[str, float] = {}
        for s in series:
            raw = (s.get("metric") or {}).get(label)
            if not raw:
                continue
            node = names.get(node_key(raw, strip))
            try:
                value = float((s.get("value") or [None, "nan"])[1])
            except (TypeError, ValueError, IndexError):
                continue
            if node is not None and math.isfinite(value):
                out[node] = out.get(node, 0.0) + value
        return out
