"""Object keys of the learning loop in the store (one place, parsed back with the same patterns).

    snapshots/date=YYYY-MM-DD/hour=HH/part.parquet   node usage, one row per (ts, node)
    decisions/date=YYYY-MM-DD/decisions.parquet     one row per decision (neurokube.model.decision_log)
    decisions/date=YYYY-MM-DD/candidates.parquet    one row per (decision, feasible node)
    outcomes/date=YYYY-MM-DD/outcomes.parquet       decision_id -> added contention, added node-hours
    quarantine/<original key>                       objects that could not be read
"""

from __future__ import annotations

import re
import time
from datetime import date

SNAPSHOTS, DECISIONS, OUTCOMES, QUARANTINE = "snapshots/", "decisions/", "outcomes/", "quarantine/"
SNAPSHOT_KEY = re.compile(r"^snapshots/date=(\d{4}-\d{2}-\d{2})/hour=(\d{2})/part\.parquet$")
DAY_KEY = re.compile(r"^(decisions|outcomes)/date=(\d{4}-\d{2}-\d{2})/(decisions|candidates|outcomes)\.parquet$")
TABLES = {"decisions": ("decisions", "candidates"), "outcomes": ("outcomes",)}


def day_of(epoch_s: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(epoch_s))


def snapshot_key(hour_start_s: float) -> str:
    t = time.gmtime(hour_start_s)
    return f"snapshots/date={time.strftime('%Y-%m-%d', t)}/hour={t.tm_hour:02d}/part.parquet"


def table_key(kind: str, table: str, day: str) -> str:
    return f"{kind}/date={day}/{table}.parquet"


def parse(key: str) -> tuple[str, str, str] | None:
    """(kind, table, day) of a key of the loop, or None for a key it does not own."""
    if m := SNAPSHOT_KEY.match(key):
        return "snapshots", "part", m.group(1)
    if (m := DAY_KEY.match(key)) and m.group(3) in TABLES[m.group(1)]:
        try:
            date.fromisoformat(m.group(2))
        except ValueError:
            return None
        return m.group(1), m.group(3), m.group(2)
    return None


def quarantine_key(key: str) -> str:
    return QUARANTINE + key
