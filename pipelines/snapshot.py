"""Step 1: node and pod usage over a window -> hourly Parquet partitions in the object store.

``snapshots/date=YYYY-MM-DD/hour=HH/part.parquet`` holds every node sample of that hour, and
``pod_usage/date=YYYY-MM-DD/hour=HH/part.parquet`` every pod sample (what attributes a live
decision's outcome: the pod's own usage and who shared its node). The window is
whole hours, and each partition is written whole: re-running a window overwrites it exactly
(idempotent). The snapshot function (functions/snapshot) also writes the current hour so far
(``until_s``); its next run rewrites that partition whole, with more rows. A partition the store
refuses with a :class:`TemporaryError` goes to the spool and is delivered, before anything new is
written, by the next run.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd

from neurokube.adapters.objectstore import ObjectStore
from neurokube.errors import InputError
from neurokube.logs import event
from pipelines import keys
from pipelines.settings import HOUR_S, SnapshotSettings
from pipelines.spool import Spool
from pipelines.usage import COLUMNS, POD_COLUMNS, UsageReader

log = logging.getLogger("neurokube.pipelines.snapshot")


@dataclass(frozen=True)
class SnapshotResult:
    partitions: list[str]
    rows: int
    spooled: list[str]
    delivered: int
    cpu_core_s: float
    """CPU used on all nodes over the window, as read (a check against the source)."""
    pod_rows: int = 0
    """Rows of the per-pod table (``pod_usage/`` partitions: what attributes live decisions)."""


def to_parquet(frame: pd.DataFrame, columns: tuple[str, ...] = COLUMNS) -> bytes:
    buffer = io.BytesIO()
    frame[list(columns)].to_parquet(buffer, index=False)
    return buffer.getvalue()


def partitions(frame: pd.DataFrame, start_s: int, end_s: int, pods: bool = False) -> dict[str, pd.DataFrame]:
    """One frame per hour of ``[start_s, end_s)``, keyed by its object key (empty hours included);
    ``pods``: the per-pod table (``pod_usage/`` keys)."""
    hour = (frame["ts"].to_numpy() // HOUR_S) * HOUR_S
    key, order = (keys.pod_usage_key, ["ts", "pod"]) if pods else (keys.snapshot_key, ["ts", "node"])
    return {key(h): frame[hour == h].sort_values(order, ignore_index=True) for h in range(start_s, end_s, HOUR_S)}


def run(reader: UsageReader, store: ObjectStore, start_s: int, end_s: int,
        settings: SnapshotSettings = SnapshotSettings(), spool_dir: Path | None = None,
        until_s: int | None = None) -> SnapshotResult:
    """Write the hours of ``[start_s, end_s)``; ``until_s`` (inside the last hour): read only the
    samples before it, so the last partition is the current hour so far, rewritten whole later."""
    if start_s % HOUR_S or end_s % HOUR_S or end_s <= start_s:
        raise InputError("the snapshot window must be whole hours", "snapshot", f"[{start_s}, {end_s})")
    read_end = end_s if until_s is None else until_s
    if not end_s - HOUR_S < read_end <= end_s or read_end % settings.step_s:
        raise InputError("the snapshot's read end must be a step inside the window's last hour", "snapshot",
                         f"until {until_s} for [{start_s}, {end_s}) at a {settings.step_s} s step")
    spool = Spool(spool_dir or settings.spool_dir or Path(".neurokube-spool"))
    delivered = spool.deliver(store)
    frame = reader.read(start_s, read_end, settings.step_s)
    pods = reader.read_pods(start_s, read_end, settings.step_s)
    written, spooled, rows = [], [], 0
    for key, part in partitions(frame, start_s, end_s).items():
        (written if spool.put(store, key, to_parquet(part)) else spooled).append(key)
        rows += len(part)
    for key, part in partitions(pods, start_s, end_s, pods=True).items():
        (written if spool.put(store, key, to_parquet(part, POD_COLUMNS)) else spooled).append(key)
    event(log, "snapshot written", start_s=start_s, end_s=end_s, rows=rows, pod_rows=len(pods),
          partitions=len(written), spooled=len(spooled), delivered=delivered)
    return SnapshotResult(partitions=written + spooled, rows=rows, spooled=spooled, delivered=delivered,
                          cpu_core_s=float(frame["cpu_used_milli"].sum()) * settings.step_s / 1000.0,
                          pod_rows=len(pods))


def tick_window(event_s: float, hours: int, step_s: int) -> tuple[int, int, int]:
    """What one run of the snapshot function writes for a tick at ``event_s``: ``(start, end,
    until)`` for :func:`run`. The hour holding the tick is read up to the tick's step (exclusive),
    the ``hours`` whole hours before it completely. A tick on an hour boundary has no current hour:
    it writes the ``hours`` hours before it (then ``until == end``)."""
    until = int(event_s // step_s) * step_s
    end = -(-until // HOUR_S) * HOUR_S  # the end of the hour holding the last sample read
    start = (until // HOUR_S - hours) * HOUR_S
    if start == end:  # a tick on the hour with hours == 0: nothing before it
        start -= HOUR_S
    return start, end, until


def tick_time(event_type: str, event_time: str | None, expected_type: str, now_s: float, max_age_s: float,
              max_skew_s: float) -> float:
    """The tick a PingSource event stands for (its ``time`` attribute, RFC 3339; absent: ``now_s``).

    InputError (400, not retried) for another event type, an unreadable time, a tick older than
    ``max_age_s`` (a late redelivery must not rewrite hours Prometheus may no longer hold), or one
    more than ``max_skew_s`` in the future."""
    if event_type != expected_type:
        raise InputError(f"unexpected event type {event_type[:100]!r}", "snapshot", f"expected {expected_type}")
    if event_time is None:
        return now_s
    try:
        when = datetime.fromisoformat(str(event_time).replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"event time {str(event_time)[:60]!r} is not an RFC 3339 time", "snapshot") from None
    if when.tzinfo is None:
        raise InputError(f"event time {event_time!r} has no time zone", "snapshot", "RFC 3339 times end in Z or +hh:mm")
    tick = when.timestamp()
    if tick < now_s - max_age_s:
        raise InputError(f"the tick of {event_time} is {now_s - tick:.0f} s old", "snapshot",
                         f"ticks older than {max_age_s:.0f} s are refused (NEUROKUBE_SNAPSHOT_MAX_EVENT_AGE_S)")
    if tick > now_s + max_skew_s:
        raise InputError(f"the tick of {event_time} is {tick - now_s:.0f} s in the future", "snapshot",
                         "the sender's clock is wrong")
    return tick
