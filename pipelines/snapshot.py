"""Step 1: node usage over a window -> hourly Parquet partitions in the object store.

``snapshots/date=YYYY-MM-DD/hour=HH/part.parquet`` holds every sample of that hour. The window is
whole hours, and each partition is written whole: re-running a window overwrites it exactly
(idempotent). A partition the store refuses with a :class:`TemporaryError` goes to the spool and
is delivered, before anything new is written, by the next run.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from neurokube.adapters.objectstore import ObjectStore
from neurokube.errors import InputError
from neurokube.logs import event
from pipelines import keys
from pipelines.settings import HOUR_S, SnapshotSettings
from pipelines.spool import Spool
from pipelines.usage import COLUMNS, UsageReader

log = logging.getLogger("neurokube.pipelines.snapshot")


@dataclass(frozen=True)
class SnapshotResult:
    partitions: list[str]
    rows: int
    spooled: list[str]
    delivered: int
    cpu_core_s: float
    """CPU used on all nodes over the window, as read (a check against the source)."""


def to_parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame[list(COLUMNS)].to_parquet(buffer, index=False)
    return buffer.getvalue()


def partitions(frame: pd.DataFrame, start_s: int, end_s: int) -> dict[str, pd.DataFrame]:
    """One frame per hour of ``[start_s, end_s)``, keyed by its object key (empty hours included)."""
    hour = (frame["ts"].to_numpy() // HOUR_S) * HOUR_S
    out = {}
    for h in range(start_s, end_s, HOUR_S):
        out[keys.snapshot_key(h)] = frame[hour == h].sort_values(["ts", "node"], ignore_index=True)
    return out


def run(reader: UsageReader, store: ObjectStore, start_s: int, end_s: int,
        settings: SnapshotSettings = SnapshotSettings(), spool_dir: Path | None = None) -> SnapshotResult:
    if start_s % HOUR_S or end_s % HOUR_S or end_s <= start_s:
        raise InputError("the snapshot window must be whole hours", "snapshot", f"[{start_s}, {end_s})")
    spool = Spool(spool_dir or settings.spool_dir or Path(".neurokube-spool"))
    delivered = spool.deliver(store)
    frame = reader.read(start_s, end_s, settings.step_s)
    written, spooled, rows = [], [], 0
    for key, part in partitions(frame, start_s, end_s).items():
        (written if spool.put(store, key, to_parquet(part)) else spooled).append(key)
        rows += len(part)
    event(log, "snapshot written", start_s=start_s, end_s=end_s, rows=rows, partitions=len(written),
          spooled=len(spooled), delivered=delivered)
    return SnapshotResult(partitions=written + spooled, rows=rows, spooled=spooled, delivered=delivered,
                          cpu_core_s=float(frame["cpu_used_milli"].sum()) * settings.step_s / 1000.0)
