"""Write and read decision logs as Parquet (schema: :mod:`neurokube.model.decision_log`)."""

from __future__ import annotations

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
