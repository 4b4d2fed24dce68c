"""Object keys of the learning loop in the store (one place, parsed back with the same patterns).

    snapshots/date=YYYY-MM-DD/hour=HH/part.parquet                  node usage, one row per (ts, node)
    pod_usage/date=YYYY-MM-DD/hour=HH/part.parquet                  pod usage, one row per (ts, pod, node)
    decisions/date=YYYY-MM-DD/<writer>-<part>.decisions.parquet     one row per decision
    decisions/date=YYYY-MM-DD/<writer>-<part>.candidates.parquet    one row per (decision, feasible node)
    outcomes/date=YYYY-MM-DD/<writer>-<part>.outcomes.parquet       decision_id -> added contention, node-hours
    quarantine/<original key>                                       objects ingest could not use
    quarantine/<original key>.reason.json                           why: reason, time, size

Decision logs and outcomes are *parts*: any number per day, from any number of writers, so the
simulated loop and every live replica write the same layout side by side and ingest reads a day
as the union of its parts. ``writer`` names who wrote the part (``[A-Za-z0-9][A-Za-z0-9_.-]*``):

* ``sim`` for the simulated day-loop (pipelines/loop.py), part ``000000``: one part per day,
  re-running a day overwrites it;
* ``live-<replica>-<spool id>`` for the live binder and sweeper (neurokube/live/decisions.py),
  part = the spool segment's number: a segment shipped twice overwrites its own part.

``part`` is a decimal number (6 digits or more) that a writer never reuses for other records, and
the ``decisions`` and ``candidates`` tables of one part share ``<writer>-<part>``. The formatting
lives in :mod:`neurokube.adapters.decision_store` (``part_key``), which the live code uses too.

Read but never written any more (stores from before the part layout):
``decisions/date=D/{decisions,candidates}.parquet``, ``outcomes/date=D/outcomes.parquet`` (writer
``legacy``) and the old live layout ``decisions/live/YYYY-MM-DD/<stem>.{decisions,candidates}.parquet``
(writer ``legacy-live``).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import date

from neurokube.adapters.decision_store import PART_NAME, part_key

SNAPSHOTS, DECISIONS, OUTCOMES, QUARANTINE = "snapshots/", "decisions/", "outcomes/", "quarantine/"
POD_USAGE = "pod_usage/"  # its own prefix: a night of an older version neither reads nor quarantines it
REASON_SUFFIX = ".reason.json"
SIM_WRITER = "sim"
SNAPSHOT_KEY = re.compile(r"^snapshots/date=(\d{4}-\d{2}-\d{2})/hour=(\d{2})/part\.parquet$")
POD_USAGE_KEY = re.compile(r"^pod_usage/date=(\d{4}-\d{2}-\d{2})/hour=(\d{2})/part\.parquet$")
PART_KEY = re.compile(r"^(decisions|outcomes)/date=(\d{4}-\d{2}-\d{2})/([^/]+)$")
LEGACY_DAY_KEY = re.compile(r"^(decisions|outcomes)/date=(\d{4}-\d{2}-\d{2})/(decisions|candidates|outcomes)\.parquet$")
LEGACY_LIVE_KEY = re.compile(r"^decisions/live/(\d{4}-\d{2}-\d{2})/([A-Za-z0-9][A-Za-z0-9_.-]*)"
                             r"\.(decisions|candidates)\.parquet$")
TABLES = {"decisions": ("decisions", "candidates"), "outcomes": ("outcomes",)}


@dataclass(frozen=True)
class Key:
    kind: str  # snapshots, pod_usage, decisions, outcomes
    table: str  # part (a node snapshot), pods (a pod snapshot), decisions, candidates, outcomes
    day: str
    writer: str = ""
    part: str = ""

    @property
    def stem(self) -> str:
        """What the tables of one part share (``decisions`` and ``candidates`` pair up by it)."""
        return f"{self.kind}/{self.day}/{self.writer}-{self.part}"


def day_of(epoch_s: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(epoch_s))


def snapshot_key(hour_start_s: float) -> str:
    t = time.gmtime(hour_start_s)
    return f"snapshots/date={time.strftime('%Y-%m-%d', t)}/hour={t.tm_hour:02d}/part.parquet"


def pod_usage_key(hour_start_s: float) -> str:
    t = time.gmtime(hour_start_s)
    return f"pod_usage/date={time.strftime('%Y-%m-%d', t)}/hour={t.tm_hour:02d}/part.parquet"


def table_key(kind: str, table: str, day: str, writer: str = SIM_WRITER, part: int = 0) -> str:
    """``<kind>/date=<day>/<writer>-<part>.<table>.parquet`` (by default the simulated loop's part)."""
    if table not in TABLES.get(kind, ()):
        raise ValueError(f"{kind}/ has no table {table!r}")
    return part_key(kind, day, writer, part, table)


def sim_key(kind: str, table: str, day: str) -> str:
    """The simulated loop's one part of ``day`` (re-running the day overwrites it)."""
    return table_key(kind, table, day, SIM_WRITER, 0)


def _day(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def parse(key: str) -> Key | None:
    """The parsed key, or None for a key the loop does not own."""
    if m := SNAPSHOT_KEY.match(key):
        return Key("snapshots", "part", m.group(1)) if _day(m.group(1)) else None
    if m := POD_USAGE_KEY.match(key):
        return Key("pod_usage", "pods", m.group(1)) if _day(m.group(1)) else None
    if (m := PART_KEY.match(key)) and (name := PART_NAME.match(m.group(3))):
        kind, day, table = m.group(1), m.group(2), name.group("table")
        if table in TABLES[kind] and _day(day):
            return Key(kind, table, day, name.group("writer"), name.group("part"))
        return None
    if (m := LEGACY_DAY_KEY.match(key)) and m.group(3) in TABLES[m.group(1)] and _day(m.group(2)):
        return Key(m.group(1), m.group(3), m.group(2), "legacy", "0")
    if (m := LEGACY_LIVE_KEY.match(key)) and _day(m.group(1)):
        return Key("decisions", m.group(3), m.group(1), "legacy-live", m.group(2))
    return None


def quarantine_key(key: str) -> str:
    return QUARANTINE + key


def reason_key(key: str) -> str:
    """Where the reason for quarantining ``key`` is written, beside the quarantined object."""
    return quarantine_key(key) + REASON_SUFFIX
