"""Where the snapshot step reads node usage from: Prometheus, or the simulator directly.

Both give the same frame, one row per (``ts``, ``node``): ``cpu_used_milli``,
``cpu_alloc_milli``, ``mem_used_mib`` at every ``step_s`` in ``[start_s, end_s)``; and, from
:meth:`UsageReader.read_pods`, one row per (``ts``, ``pod``, ``node``) with the pod's own
``cpu_used_milli`` and ``mem_used_mib`` (``pod`` is ``namespace/name``): what attributes a live
decision's outcome (:mod:`pipelines.attribute`).

Prometheus over HTTPS is verified by default (``verify=True``: the usual trust store; a path:
that CA bundle). Turning verification off is an explicit ``verify=False`` and is logged.
A bearer token can come from a file (``token_file``), as in the live functions.

One Prometheus (or Thanos) often holds several clusters' series, with the same node names. The
queries read only this cluster's (``PrometheusQueries.selector``, e.g. ``cluster="prod-eu-1"``) and
sum per node *and source* (``source_labels``: cluster, job): two series that give a value for the
same node at the same time are refused with an :class:`InputError` naming both, never summed.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from neurokube.adapters.prometheus import connect
from neurokube.adapters.usage import UsageSource
from neurokube.errors import InputError, TemporaryError
from neurokube.logs import event
from pipelines.settings import PrometheusQueries

log = logging.getLogger("neurokube.pipelines.usage")
COLUMNS = ("ts", "node", "cpu_used_milli", "cpu_alloc_milli", "mem_used_mib")
POD_COLUMNS = ("ts", "pod", "node", "cpu_used_milli", "mem_used_mib")


class UsageReader(Protocol):
    def read(self, start_s: float, end_s: float, step_s: int) -> pd.DataFrame:
        """Node usage at ``start_s, start_s + step_s, ...`` up to (not including) ``end_s``."""
        ...

    def read_pods(self, start_s: float, end_s: float, step_s: int) -> pd.DataFrame:
        """Per-pod usage (:data:`POD_COLUMNS`) at the same times; only pods that ran then."""
        ...


def empty(columns: tuple[str, ...] = COLUMNS) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="int64" if c == "ts" else object if c in ("node", "pod") else "float64")
                         for c in columns})


class PrometheusUsage:
    """``query_range`` through prometheus-api-client; the queries and node label are settings.

    ``verify``: check Prometheus' TLS certificate (``True``, the default, against the usual trust
    store; a path: against that PEM CA bundle; ``False``: not at all, logged as a warning).
    ``token_file``: a bearer token sent with every query, re-read as it rotates. Both mean what
    the live settings NEUROKUBE_PROM_CA_FILE, NEUROKUBE_PROM_INSECURE_SKIP_VERIFY and
    NEUROKUBE_PROM_TOKEN_FILE mean (one client: :func:`neurokube.adapters.prometheus.connect`).
    """

    def __init__(self, url: str, queries: PrometheusQueries = PrometheusQueries(), timeout_s: float = 30.0,
                 client=None, verify: bool | str = True, token_file: Path | None = None) -> None:
        self.url = url
        self.queries = queries
        self.verify = verify
        self.client = client or connect(url, timeout_s, verify=verify, token_file=token_file)

    def read(self, start_s: float, end_s: float, step_s: int) -> pd.DataFrame:
        columns = {}
        for column, query in self.queries.rendered().items():
            columns[column] = self._query(query, start_s, end_s - step_s, step_s)
        alloc = columns["cpu_alloc_milli"]
        if alloc.empty:
            event(log, "no nodes in Prometheus for the window", level=logging.WARNING, start_s=start_s, end_s=end_s)
            return empty()
        frame = alloc.rename("cpu_alloc_milli").to_frame()
        for column in ("cpu_used_milli", "mem_used_mib"):
            frame[column] = columns[column].reindex(frame.index).fillna(0.0).to_numpy()
        frame = frame.reset_index()
        return frame[list(COLUMNS)].sort_values(["ts", "node"], ignore_index=True)

    def read_pods(self, start_s: float, end_s: float, step_s: int) -> pd.DataFrame:
        queries = self.queries.rendered_pods()
        cpu = self._query(queries["cpu_used_milli"], start_s, end_s - step_s, step_s, pods=True)
        mem = self._query(queries["mem_used_mib"], start_s, end_s - step_s, step_s, pods=True)
        if cpu.empty:
            return empty(POD_COLUMNS)
        # a sample is a pod's when its CPU is known: a rate needs two scrapes, so a pod seen once has none
        frame = pd.DataFrame({"cpu_used_milli": cpu.to_numpy(),
                              "mem_used_mib": mem.reindex(cpu.index).fillna(0.0).to_numpy()},
                             index=cpu.index).reset_index()
        return frame[list(POD_COLUMNS)].sort_values(["ts", "pod"], ignore_index=True)

    def _query(self, query: str, start_s: float, end_s: float, step_s: int, pods: bool = False) -> pd.Series:
        """``(ts, node)`` -> value; with ``pods``, ``(ts, pod, node)`` with ``pod`` = ``namespace/name``."""
        from prometheus_api_client.exceptions import PrometheusApiClientException

        try:
            result = self.client.custom_query_range(
                query, start_time=datetime.fromtimestamp(start_s, timezone.utc),
                end_time=datetime.fromtimestamp(end_s, timezone.utc), step=f"{step_s}s")
        except PrometheusApiClientException as exc:
            raise InputError("Prometheus refused the query", where=self.url, why=f"{query}: {exc}") from None
        except TemporaryError:  # the bearer token file could not be read
            raise
        except Exception as exc:  # noqa: BLE001 - requests raises many types for a dead server
            raise TemporaryError(f"Prometheus at {self.url} is unreachable: {type(exc).__name__}: {exc}") from None
        index, values = [], []
        source: dict[tuple[int, str], dict] = {}  # (ts, node) -> the labels of the series it came from
        for series in result:
            labels = series.get("metric", {})
            node = next((labels[k] for k in self.queries.node_labels if k in labels), None)
            if node is None:
                raise InputError("a result series has none of the node labels", where=self.url,
                                 why=f"{query}: labels {sorted(labels)}, expected one of {self.queries.node_labels}")
            pod = f"{labels.get('namespace', '')}/{labels.get('pod', '')}" if pods else None
            for ts, value in series.get("values", []):
                at = int(round(float(ts)))
                seen = source.setdefault((at, pod or node), labels)
                if seen is not labels:
                    raise duplicate_error(self.url, query, (at, pod or node), seen, labels, self.queries.selector,
                                          "pod" if pods else "node")
                index.append((at, pod, node) if pods else (at, node))
                values.append(float(value))
        if not index:
            return pd.Series(dtype="float64")
        names = ["ts", "pod", "node"] if pods else ["ts", "node"]
        return pd.Series(values, index=pd.MultiIndex.from_tuples(index, names=names))


def series_name(labels: dict) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def duplicate_error(url: str, query: str, key: tuple[int, str], first: dict, second: dict,
                    selector: str, what: str = "node") -> InputError:
    """Two result series give a value for one node (or pod) at one time: two clusters (or two scrapes)
    with the same names. Summing them would invent a node; the snapshot refuses instead."""
    ts, node = key
    when = datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    hint = (f"the series selector {selector!r} admits both: narrow it" if selector.strip() else
            'set the series selector to this cluster\'s series (e.g. cluster="<name>")')
    return InputError(f"two series for {what} {node!r} at {when}: {series_name(first)} and {series_name(second)}",
                      where=url, why=f"{query}: {hint}")


class SimulatorUsage:
    """The simulator's own per-step node usage, through the emulator's :class:`UsageSource` seam."""

    def __init__(self, source: UsageSource) -> None:
        self.source = source

    def read(self, start_s: float, end_s: float, step_s: int) -> pd.DataFrame:
        rows = []
        for ts in np.arange(int(start_s), int(end_s), step_s):
            for n in self.source.snapshot(float(ts)).nodes:
                rows.append((int(ts), n.name, float(n.cpu_milli_used), float(n.cpu_milli_alloc), float(n.mem_mib_used)))
        return pd.DataFrame(rows, columns=list(COLUMNS)) if rows else empty()

    def read_pods(self, start_s: float, end_s: float, step_s: int) -> pd.DataFrame:
        rows = []
        for ts in np.arange(int(start_s), int(end_s), step_s):
            for p in self.source.snapshot(float(ts)).pods:
                if p.node:
                    rows.append((int(ts), f"{p.namespace}/{p.name}", p.node, float(p.cpu_used_milli),
                                 float(p.mem_used_mib)))
        return pd.DataFrame(rows, columns=list(POD_COLUMNS)) if rows else empty(POD_COLUMNS)
