"""Step 2: read snapshots, decision-log parts and outcomes for a range of days; quarantine what is bad.

A day is the union of its parts (pipelines/keys.py): the simulated loop's ``sim`` parts and every
live replica's ``live-...`` parts are read together, in key order.

Only objects that really are bad are moved under ``quarantine/`` (and counted), each with a
``quarantine/<key>.reason.json`` beside it (``reason``, ``detail``, ``time``, ``bytes``):

* ``foreign_key``: under the loop's prefixes (``snapshots/``, ``pod_usage/``, ``decisions/``, ``outcomes/``) but
  not a key of its layout, so nothing can say which day or table it is;
* ``unreadable``: not a Parquet file pyarrow can read;
* ``schema``: Parquet without the table's columns.

None of these stops the night. Keys outside the lookback are neither read nor quarantined.

A part whose ``decisions`` table is there without its ``candidates`` table (a live writer ships
``candidates`` first, so this is a part still being shipped, or one whose writer died between
the two puts and will re-ship both on restart) is *incomplete*: its decisions are read, so
training sees them, and listed in :attr:`Ingested.incomplete`; off-policy evaluation already
ignores decisions without their candidate set (pipelines/evaluate.py). Nothing is quarantined
for it: once the candidates arrive, a later night's lookback reads the pair.
"""

from __future__ import annotations

import io
import json
import logging
import time
from dataclasses import dataclass, field

import pandas as pd

from neurokube.adapters.objectstore import MissingObject, ObjectStore
from neurokube.logs import event
from neurokube.model.decision_log import CANDIDATE_COLUMNS, DECISION_COLUMNS
from pipelines import keys
from pipelines.simulate import OUTCOME_TABLE_COLUMNS
from pipelines.usage import COLUMNS as SNAPSHOT_COLUMNS
from pipelines.usage import POD_COLUMNS

log = logging.getLogger("neurokube.pipelines.ingest")
SCHEMAS = {"part": SNAPSHOT_COLUMNS, "pods": POD_COLUMNS, "decisions": DECISION_COLUMNS,
           "candidates": CANDIDATE_COLUMNS, "outcomes": OUTCOME_TABLE_COLUMNS}
FRAMES = {"part": "snapshots", "pods": "pod_usage"}  # table -> the frame it is read into (else its own name)
FOREIGN_KEY, UNREADABLE, SCHEMA = "foreign_key", "unreadable", "schema"


@dataclass
class Ingested:
    tables: dict[str, pd.DataFrame]
    """``snapshots``, ``pod_usage``, ``decisions``, ``candidates``, ``outcomes`` (empty frames when absent)."""
    quarantined: list[str] = field(default_factory=list)
    objects: int = 0
    incomplete: list[str] = field(default_factory=list)
    """Decision parts (their ``decisions`` key) read without a ``candidates`` table."""

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.tables[name]


def quarantine(store: ObjectStore, key: str, reason: str, detail: str = "") -> bool:
    """Move ``key`` under quarantine/ with its reason beside it; False if it vanished meanwhile."""
    try:
        data = store.get_bytes(key)
    except MissingObject:
        return False
    why = {"key": key, "reason": reason, "detail": detail, "bytes": len(data),
           "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    store.put_bytes(keys.quarantine_key(key), data)
    store.put_bytes(keys.reason_key(key), (json.dumps(why, indent=2) + "\n").encode())
    store.delete(key)
    event(log, "object quarantined", level=logging.WARNING, key=key, reason=reason, detail=detail, bytes=len(data))
    return True


def _load(store: ObjectStore, key: str, table: str) -> tuple[pd.DataFrame | None, tuple[str, str] | None]:
    """The table, or why it must be quarantined; (None, None) if the object vanished."""
    try:
        frame = pd.read_parquet(io.BytesIO(store.get_bytes(key)))
    except MissingObject:
        return None, None
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for a bad file
        return None, (UNREADABLE, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    missing = [c for c in SCHEMAS[table] if c not in frame.columns]
    if missing:
        return None, (SCHEMA, f"missing columns {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    return frame[list(SCHEMAS[table])], None


def read(store: ObjectStore, days: list[str]) -> Ingested:
    wanted = set(days)
    frames: dict[str, list[pd.DataFrame]] = {"snapshots": [], "pod_usage": [], "decisions": [], "candidates": [],
                                             "outcomes": []}
    out = Ingested(tables={})
    stems: dict[str, dict[str, str]] = {}  # part stem -> table -> key, for decision parts
    for prefix in (keys.SNAPSHOTS, keys.POD_USAGE, keys.DECISIONS, keys.OUTCOMES):
        for key in store.list(prefix):
            parsed = keys.parse(key)
            if parsed is None:
                if quarantine(store, key, FOREIGN_KEY, "not a key of the loop's layout (pipelines/keys.py)"):
                    out.quarantined.append(key)
                continue
            if parsed.day not in wanted:
                continue
            frame, bad = _load(store, key, parsed.table)
            if bad is not None:
                if quarantine(store, key, *bad):
                    out.quarantined.append(key)
                continue
            if frame is None:
                continue
            out.objects += 1
            frames[FRAMES.get(parsed.table, parsed.table)].append(frame)
            if parsed.kind == "decisions":
                stems.setdefault(parsed.stem, {})[parsed.table] = key
    out.incomplete = sorted(tables["decisions"] for tables in stems.values()
                            if "decisions" in tables and "candidates" not in tables)
    for name, parts in frames.items():
        columns = SCHEMAS[{v: k for k, v in FRAMES.items()}.get(name, name)]
        out.tables[name] = (pd.concat(parts, ignore_index=True) if parts
                            else pd.DataFrame({c: pd.Series(dtype=object) for c in columns}))
    if out.incomplete:
        event(log, "decision parts without their candidates (read; left out of off-policy evaluation)",
              level=logging.WARNING, parts=len(out.incomplete), first=out.incomplete[0])
    event(log, "ingested", days=len(days), objects=out.objects, quarantined=len(out.quarantined),
          incomplete=len(out.incomplete), **{name: len(frame) for name, frame in out.tables.items()})
    return out
