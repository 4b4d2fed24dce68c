"""Write and read decision logs as Parquet (schema: :mod:`neurokube.model.decision_log`)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from neurokube.errors import InputError
from neurokube.model.decision_log import CANDIDATE_COLUMNS, DECISION_COLUMNS, check_schema


def write_log(directory: Path, name: str, decisions: pd.DataFrame, candidates: pd.DataFrame | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    check_schema(decisions, DECISION_COLUMNS, "decisions")
    decisions[list(DECISION_COLUMNS)].to_parquet(directory / f"{name}.decisions.parquet", index=False)
    if candidates is not None and len(candidates):
        check_schema(candidates, CANDIDATE_COLUMNS, "candidates")
        candidates[list(CANDIDATE_COLUMNS)].to_parquet(directory / f"{name}.candidates.parquet", index=False)
    return directory


def read_decisions(directory: Path) -> pd.DataFrame:
    files = sorted(directory.glob("*.decisions.parquet"))
    if not files:
        raise InputError("no *.decisions.parquet files", str(directory))
    frames = []
    for f in files:
        try:
            frame = pd.read_parquet(f)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for a bad file
            raise InputError("not a readable Parquet decision log", str(f), str(exc).splitlines()[0]) from None
        check_schema(frame, DECISION_COLUMNS, str(f))
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


# -- where the parts live in an object store ------------------------------------------------------
#: Tables a decision log part carries, and the outcome table written beside them.
PART_TABLES = ("decisions", "candidates", "outcomes")
#: ``<writer>-<part>.<table>.parquet``: ``writer`` names who wrote it (``sim``, or
#: ``live-<replica>-<spool id>``), ``part`` a number that writer never reuses for other records.
PART_NAME = re.compile(r"^(?P<writer>[A-Za-z0-9][A-Za-z0-9_.-]{0,199})-(?P<part>\d{1,20})"
                       r"\.(?P<table>decisions|candidates|outcomes)\.parquet$")


def safe_writer(name: str) -> str:
    """``name`` with every character a key cannot carry replaced by ``-`` (never empty)."""
    cleaned = "".join(c if c.isalnum() and c.isascii() or c in "-_." else "-" for c in name).strip("-._")
    return cleaned[:200].rstrip("-._") or "writer"


def part_name(writer: str, part: int, table: str) -> str:
    """The file name of one table of one part: ``<writer>-<part, 6+ digits>.<table>.parquet``."""
    if table not in PART_TABLES:
        raise ValueError(f"unknown table {table!r}")
    if part < 0:
        raise ValueError(f"a part number is not negative, got {part}")
    return f"{safe_writer(writer)}-{int(part):06d}.{table}.parquet"


def part_key(prefix: str, day: str, writer: str, part: int, table: str) -> str:
    """``<prefix>/date=<YYYY-MM-DD>/<writer>-<part>.<table>.parquet`` (docs/LEARNING_LOOP.md, "Keys")."""
    return f"{prefix.strip('/')}/date={day}/{part_name(writer, part, table)}"
