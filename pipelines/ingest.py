"""Step 2: read snapshots and decision logs for a range of days; quarantine what cannot be read.

Under the loop's prefixes (``snapshots/``, ``decisions/``, ``outcomes/``), an object whose key
the loop does not own (foreign) or that is not a readable Parquet table with the expected
columns (corrupt) is moved under ``quarantine/`` and counted. Neither stops the night.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field

import pandas as pd

from neurokube.adapters.objectstore import MissingObject, ObjectStore
from neurokube.logs import event
from neurokube.model.decision_log import CANDIDATE_COLUMNS, DECISION_COLUMNS
from pipelines import keys
from pipelines.simulate import OUTCOME_TABLE_COLUMNS
from pipelines.usage import COLUMNS as SNAPSHOT_COLUMNS

log = logging.getLogger("neurokube.pipelines.ingest")
SCHEMAS = {"part": SNAPSHOT_COLUMNS, "decisions": DECISION_COLUMNS, "candidates": CANDIDATE_COLUMNS,
           "outcomes": OUTCOME_TABLE_COLUMNS}


@dataclass
class Ingested:
    tables: dict[str, pd.DataFrame]
    """``snapshots``, ``decisions``, ``candidates``, ``outcomes`` (empty frames when absent)."""
    quarantined: list[str] = field(default_factory=list)
    objects: int = 0

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.tables[name]


def quarantine(store: ObjectStore, key: str, why: str) -> bool:
    try:
        data = store.get_bytes(key)
    except MissingObject:
        return False
    store.put_bytes(keys.quarantine_key(key), data)
    store.delete(key)
    event(log, "object quarantined", level=logging.WARNING, key=key, reason=why)
    return True


def read(store: ObjectStore, days: list[str]) -> Ingested:
    wanted = set(days)
    frames: dict[str, list[pd.DataFrame]] = {"snapshots": [], "decisions": [], "candidates": [], "outcomes": []}
    out = Ingested(tables={})
    for prefix in (keys.SNAPSHOTS, keys.DECISIONS, keys.OUTCOMES):
        for key in store.list(prefix):
            parsed = keys.parse(key)
            if parsed is None:
                if quarantine(store, key, "foreign key"):
                    out.quarantined.append(key)
                continue
            _, table, day = parsed
            if day not in wanted:
                continue
            try:
                frame = pd.read_parquet(io.BytesIO(store.get_bytes(key)))
            except MissingObject:
                continue
            except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for a bad file
                if quarantine(store, key, f"unreadable: {type(exc).__name__}"):
                    out.quarantined.append(key)
                continue
            missing = [c for c in SCHEMAS[table] if c not in frame.columns]
            if missing:
                if quarantine(store, key, f"schema: missing {missing[:3]}"):
                    out.quarantined.append(key)
                continue
            out.objects += 1
            frames["snapshots" if table == "part" else table].append(frame[list(SCHEMAS[table])])
    schemas = {"snapshots": SNAPSHOT_COLUMNS, "decisions": DECISION_COLUMNS, "candidates": CANDIDATE_COLUMNS,
               "outcomes": OUTCOME_TABLE_COLUMNS}
    for name, parts in frames.items():
        out.tables[name] = (pd.concat(parts, ignore_index=True) if parts
                            else pd.DataFrame({c: pd.Series(dtype=object) for c in schemas[name]}))
    event(log, "ingested", days=len(days), objects=out.objects, quarantined=len(out.quarantined),
          **{name: len(frame) for name, frame in out.tables.items()})
    return out
