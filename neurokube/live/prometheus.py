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

The same thread refreshes the per-workload usage history every ``prom_history_refresh_s``: what
the replay's :class:`~neurokube.sim.workloads.WorkloadHistory` holds (one sample per running pod
per scrape, summed per workload), read as six instant queries over the pods' usage series
(``prom_pod_cpu_usage``, ``prom_pod_memory_usage``; cAdvisor's by default): per pod, the number of
samples (one per ``prom_history_step`` while the pod ran, counted on the memory series), the mean,
mean square and maximum of its CPU and the mean and maximum of its memory over
``prom_history_window``. The CPU is ``irate`` (the last scrape interval, as the replay's sample is
the usage at that scrape; ``rate`` under-reports where a series starts or ends, by 4 % over a
dozen scrapes in tests/e2e/test_feature_parity.py), kept only where the memory series is. Series are matched to pods by their ``namespace`` and ``pod`` labels and
pods to workloads by the watch cache (deleted pods included: ``ClusterCache.workload_pods``);
:func:`neurokube.features.history.workload_usage` adds them up as the replay does. A failing
history query degrades to no history (every workload unseen, as the replay's prior), counted in
``neurokube_workload_history_refreshes_total{result="failed"}``.

The HTTP client is prometheus-api-client's (:func:`neurokube.adapters.prometheus.connect`):
certificates are checked by default (``NEUROKUBE_PROM_CA_FILE`` names a CA bundle,
``NEUROKUBE_PROM_INSECURE_SKIP_VERIFY`` turns the check off, warned), and
``NEUROKUBE_PROM_TOKEN_FILE`` sends a bearer token re-read as it rotates. A certificate that does
not verify, or a token file that cannot be read, is one more way of being unavailable.
"""

from __future__ import annotations

import ast
import json
import logging
import math
import re
import string
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from prometheus_api_client import PrometheusApiClientException

from neurokube.adapters.prometheus import connect
from neurokube.errors import TemporaryError
from neurokube.features.history import PodSummaries, workload_usage
from neurokube.live.settings import STATISTICS, Settings
from neurokube.logs import event
from neurokube.policies.base import NodeMetrics, WorkloadUsage

log = logging.getLogger("neurokube.live.prometheus")

REQUIRED = ("cpu_mean", "mem_mean")
MIB = 1024.0 * 1024.0
# NodeMetrics field <- statistic, scale to millicores / MiB (cpu_samples is a count)
_COLUMNS = (("cpu_mean", 1000.0), ("cpu_max", 1000.0), ("cpu_std", 1000.0), ("cpu_trend", 1000.0),
            ("mem_mean", 1 / MIB), ("mem_max", 1 / MIB), ("mem_std", 1 / MIB), ("mem_trend", 1 / MIB),
            ("cpu_samples", 1.0))
_MEMO_ENTRIES = 4
# per-pod history statistic <- (usage expression, PromQL function over the window, scale)
_HISTORY = (("samples", "memory", "count_over_time", 1.0), ("cpu_mean", "cpu", "avg_over_time", 1000.0),
            ("cpu_sq_mean", "cpu_sq", "avg_over_time", 1e6), ("cpu_max", "cpu", "max_over_time", 1000.0),
            ("mem_mean", "memory", "avg_over_time", 1 / MIB), ("mem_max", "memory", "max_over_time", 1 / MIB))


def history_queries(settings: Settings) -> dict[str, str]:
    """The six per-pod queries of the usage history (statistic -> PromQL)."""
    values = {"window": settings.prom_window, "step": settings.prom_step}
    cpu = string.Template(settings.prom_pod_cpu_usage).safe_substitute(values)
    memory = string.Template(settings.prom_pod_memory_usage).safe_substitute(values)
    # CPU only where the pod's memory series is (staleness-aware: a range selector such as irate's
    # would go on returning a pod that ended for the length of its range).
    cpu = f"({cpu}) and on (namespace, pod) ({memory})"
    exprs = {"cpu": cpu, "cpu_sq": f"({cpu}) ^ 2", "memory": memory}
    span = f"[{settings.prom_history_window}:{settings.prom_history_step}]"
    return {stat: f"{function}(({exprs[expr]}){span})" for stat, expr, function, _ in _HISTORY}


@dataclass(frozen=True)
class MetricsSnapshot:
    """The newest successful refresh: statistic -> node name -> value (cores or bytes).

    Immutable; the per-node columns of :meth:`node_metrics` are computed once per snapshot and
    node list (the watch cache hands out the same tuple of names until its nodes change), because
    one dictionary lookup per node and statistic costs milliseconds on every extender call.
    """

    refreshed_at: float = 0.0  # wall-clock seconds; 0: never
    values: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    error: str = ""
    workloads: WorkloadUsage | None = None
    """Per-workload usage history, indexed by the watch cache's workload ids (None: none)."""
    _memo: dict = field(default_factory=dict, init=False, compare=False, repr=False)

    def age_s(self, now: float) -> float:
        return now - self.refreshed_at if self.refreshed_at else math.inf

    def fresh(self, now: float, stale_after_s: float) -> bool:
        return self.age_s(now) <= stale_after_s

    def node_metrics(self, names: Sequence[str], now: float, rows: np.ndarray | None = None) -> NodeMetrics:
        """Per-node statistics in millicores and MiB, in ``names`` order (absent nodes: no samples);
        with ``rows``, only those positions of ``names``."""
        columns, seen = self._columns(names)
        if rows is not None:
            columns, seen = columns[:, rows], seen[rows]
        return NodeMetrics(cpu_mean=columns[0], cpu_max=columns[1], cpu_std=columns[2], cpu_trend=columns[3],
                           mem_mean=columns[4], mem_max=columns[5], mem_std=columns[6], mem_trend=columns[7],
                           samples=columns[8].astype(np.int64), age_s=np.where(seen, self.age_s(now), np.inf))

    def _columns(self, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``_COLUMNS`` x ``names`` (samples as floats), and which names have metrics; memoised for tuples."""
        hit = self._memo.get(id(names))
        if hit is not None and hit[0] is names:  # the memo holds ``names``, so its id is not reused
            return hit[1], hit[2]
        index = self._memo.get("index")
        if index is None:  # once per snapshot: every node with any statistic -> a column
            known = list(dict.fromkeys(name for stat, _ in _COLUMNS for name in self.values.get(stat, {})))
            matrix = np.zeros((len(_COLUMNS), len(known) + 1))  # the last column: a node without metrics
            position = {name: j for j, name in enumerate(known)}
            for i, (stat, scale) in enumerate(_COLUMNS):
                for name, value in self.values.get(stat, {}).items():
                    matrix[i, position[name]] = value * scale
            seen = np.zeros(len(known) + 1, dtype=bool)
            seen[[position[name] for name in self.values.get("cpu_mean", {})]] = True
            matrix[8] = np.where(seen, np.maximum(matrix[8], 1), 0)
            # A max below the mean (a max query that failed or lags) would confuse the features.
            matrix[1] = np.maximum(matrix[1], matrix[0])
            matrix[5] = np.maximum(matrix[5], matrix[4])
            index = self._memo["index"] = (position, matrix, seen)
        position, matrix, seen = index
        missing = len(position)
        rows = np.fromiter((position.get(name, missing) for name in names), dtype=np.int64, count=len(names))
        columns, seen = matrix[:, rows], seen[rows]
        if isinstance(names, tuple):
            if len(self._memo) > _MEMO_ENTRIES:
                self._memo.clear()
                self._memo["index"] = index
            self._memo[id(names)] = (names, columns, seen)
        return columns, seen


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
                 clock: Callable[[], float] = time.time,
                 pods: Callable[[], tuple[dict[str, tuple[int, int]], int]] | None = None,
                 telemetry=None) -> None:
        """``nodes()`` maps every node name and node address to the node's name; ``pods()`` maps
        ``namespace/name`` to (workload id, CPU request) and gives the number of workload ids
        (:meth:`ClusterCache.workload_pods`; None: no usage history)."""
        if settings.prometheus_url is None:
            raise ValueError("no Prometheus URL")
        self.settings = settings
        self.url = settings.prometheus_url.rstrip("/")
        self.nodes = nodes
        self.clock = clock
        self.queries = {stat: settings.query(stat) for stat in STATISTICS}
        self.pods = pods
        self.telemetry = telemetry
        self.history_queries = history_queries(settings)
        self._history: WorkloadUsage | None = None
        self._history_at = -math.inf  # clock() of the last history attempt
        verify = False if settings.prom_insecure_skip_verify else settings.prom_ca_file or True
        # No retries: the next refresh is the retry, and stale metrics are already handled.
        self.client = connect(self.url, settings.prom_timeout_s, verify=verify,
                              token_file=settings.prom_token_file, retry=0)
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
        self.client.close()

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
        if self.pods is not None and started - self._history_at >= self.settings.prom_history_refresh_s:
            self._refresh_history(started)
        with self._lock:
            if errors:
                self._latest = MetricsSnapshot(self._latest.refreshed_at, self._latest.values, errors[0],
                                               self._history)
            else:
                self._latest = MetricsSnapshot(started, values, workloads=self._history)
            latest = self._latest
        if errors and not self._failing:
            event(log, "Prometheus unavailable; decisions fall back to default scoring once metrics are stale",
                  logging.WARNING, url=self.url, error=errors[0])
        elif not errors and self._failing:
            event(log, "Prometheus is back", url=self.url, nodes=len(values.get("cpu_mean", {})))
        self._failing = bool(errors)
        return latest

    def _refresh_history(self, started: float) -> None:
        """Replace the per-workload usage history; a failing query leaves none (every workload
        unseen) until the next attempt, one node refresh later."""
        pods, n_workloads = self.pods()
        if not n_workloads:  # the watch cache has not listed pods yet: try again next round
            return
        try:
            by_pod = {stat: self._by_pod(self._query(query)) for stat, query in self.history_queries.items()}
        except TemporaryError as exc:
            self._history = None
            self._count_history("failed")
            event(log, "workload usage history unavailable; every workload counts as unseen", logging.WARNING,
                  url=self.url, error=str(exc))
            return
        self._history = workload_usage(summaries(by_pod, pods), n_workloads)
        self._history_at = started
        self._count_history("refreshed")
        event(log, "workload usage history refreshed", logging.DEBUG, pods=len(by_pod["samples"]),
              workloads=int((self._history.samples > 0).sum()))

    def _count_history(self, result: str) -> None:
        if self.telemetry is not None:
            self.telemetry.workload_history.labels(result=result).inc()

    def pod_usage(self) -> dict[str, tuple[float, float]]:
        """``namespace/name`` -> (CPU in cores, memory in bytes) of every pod with both series now
        (``prom_pod_cpu_usage``, ``prom_pod_memory_usage``: the actuator's observation). A failing
        query is a TemporaryError."""
        values = {"window": self.settings.prom_window, "step": self.settings.prom_step}
        cpu = self._by_pod(self._query(string.Template(self.settings.prom_pod_cpu_usage).safe_substitute(values)))
        memory = self._by_pod(self._query(string.Template(self.settings.prom_pod_memory_usage)
                                          .safe_substitute(values)))
        return {key: (cpu[key], memory[key]) for key in cpu.keys() & memory.keys()}

    @staticmethod
    def _by_pod(series: list[dict]) -> dict[str, float]:
        out: dict[str, float] = {}
        for s in series:
            labels = s.get("metric") or {}
            namespace, pod = labels.get("namespace"), labels.get("pod")
            try:
                value = float((s.get("value") or [None, "nan"])[1])
            except (TypeError, ValueError, IndexError):
                continue
            if namespace and pod and math.isfinite(value):
                out[f"{namespace}/{pod}"] = value
        return out

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
        """One instant query's vector; every failure is a TemporaryError naming the server."""
        try:
            result = self.client.custom_query(query)
        except PrometheusApiClientException as exc:
            raise TemporaryError(f"Prometheus {self.url}: {_refusal(exc)}") from None
        except TemporaryError:  # the bearer token file could not be read
            raise
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # requests' connection, TLS and timeout errors are OSErrors; a 200 that is not a
            # Prometheus answer fails to decode (ValueError) or lacks data.result (KeyError, TypeError)
            raise TemporaryError(f"Prometheus {self.url} unreachable: {_root(exc)}") from None
        if not isinstance(result, list) or not all(isinstance(s, dict) and "value" in s for s in result):
            raise TemporaryError(f"Prometheus {self.url}: expected a vector, got {str(result)[:200]}")
        return result

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


def summaries(by_pod: Mapping[str, Mapping[str, float]], pods: Mapping[str, tuple[int, int]]) -> PodSummaries:
    """Per-pod history statistics (statistic -> ``namespace/name`` -> value in cores, bytes or a
    count) as :class:`PodSummaries` in millicores and MiB, for the pods of known workloads that
    have every statistic."""
    keys = [key for key in by_pod.get("samples", {}) if key in pods and all(key in by_pod[s] for s, *_ in _HISTORY)]
    n = len(keys)
    columns = {stat: np.fromiter((by_pod[stat][k] for k in keys), dtype=np.float64, count=n) * scale
               for stat, _, _, scale in _HISTORY}
    return PodSummaries(workload=np.fromiter((pods[k][0] for k in keys), dtype=np.int64, count=n),
                        cpu_request=np.fromiter((pods[k][1] for k in keys), dtype=np.float64, count=n),
                        **columns)


def _root(exc: BaseException) -> str:
    """The innermost cause ("[Errno 111] Connection refused", "[SSL: CERTIFICATE_VERIFY_FAILED] ..."),
    not requests' wrapper with the whole query URL."""
    seen = {id(exc)}
    while (inner := exc.__cause__ or exc.__context__) is not None and id(inner) not in seen:
        seen.add(id(inner))
        exc = inner
    return f"{type(exc).__name__}: {exc}"


_STATUS = re.compile(r"^HTTP Status Code (\d+) \((b['\"].*['\"])\)$", re.S)


def _refusal(exc: PrometheusApiClientException) -> str:
    """``HTTP 400 <Prometheus' error>`` from the client's ``HTTP Status Code 400 (b'{...}')``."""
    match = _STATUS.match(str(exc))
    if match is None:
        return str(exc)
    try:
        detail = json.loads(ast.literal_eval(match.group(2))).get("error", "")
    except (ValueError, SyntaxError, AttributeError):
        detail = ""
    return f"HTTP {match.group(1)} {detail}".rstrip()
