"""Ingest, the decision/outcome join, and the promotion rule.

* corrupt objects (not Parquet, or Parquet without the expected columns) and foreign keys under
  the loop's prefixes are moved under quarantine/ and counted; the rest is read; nothing raises;
* days outside the lookback are not read (and not quarantined when well-formed);
* the join keeps decisions with an outcome, counts the others, and computes the cost;
* the promotion rule: a candidate must beat the incumbent (champion, else default) by the margin
  and not pend much more; each refusal says why.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from neurokube.adapters.objectstore import LocalDirStore
from neurokube.model.decision_log import CANDIDATE_COLUMNS, DECISION_COLUMNS, OUTCOME_COLUMNS
from neurokube.model.reward import RewardWeights
from pipelines import dataset, ingest, keys
from pipelines.register import decide
from pipelines.settings import PromotionRule
from pipelines.simulate import OUTCOME_TABLE_COLUMNS
from pipelines.usage import COLUMNS


def parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def decisions(ids: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame({c: [0.0] * len(ids) for c in DECISION_COLUMNS})
    frame["decision_id"] = ids
    for c in ("source", "pod", "pod_uid", "workload", "qos", "policy", "model_version", "node", "fallback"):
        frame[c] = ""
    for c in OUTCOME_COLUMNS:
        frame[c] = np.nan
    return frame


def outcomes(ids: list[str], contention: float = 2.0) -> pd.DataFrame:
    frame = pd.DataFrame({c: [contention] * len(ids) for c in OUTCOME_TABLE_COLUMNS})
    frame["decision_id"] = ids
    frame["added_node_h"] = 0.5
    return frame


@pytest.fixture
def store(tmp_path):
    s = LocalDirStore(tmp_path / "store")
    day, old = "2024-03-02", "2024-02-01"
    snap = pd.DataFrame({"ts": [1709337600], "node": ["n1"], "cpu_used_milli": [5000.0],
                         "cpu_alloc_milli": [4000.0], "mem_used_mib": [1.0]})
    s.put_bytes(f"snapshots/date={day}/hour=00/part.parquet", parquet(snap[list(COLUMNS)]))
    s.put_bytes(f"snapshots/date={day}/hour=01/part.parquet", b"not parquet at all")
    s.put_bytes(f"snapshots/date={day}/hour=02/part.parquet", parquet(pd.DataFrame({"x": [1]})))
    s.put_bytes("snapshots/notes.txt", b"someone else's file")
    s.put_bytes(keys.table_key("decisions", "decisions", day), parquet(decisions(["a", "b", "c"])))
    s.put_bytes(keys.table_key("decisions", "candidates", day),
                parquet(pd.DataFrame({c: [] for c in CANDIDATE_COLUMNS})))
    s.put_bytes(keys.table_key("outcomes", "outcomes", day), parquet(outcomes(["a", "b"])))
    s.put_bytes(keys.table_key("decisions", "decisions", old), parquet(decisions(["z"])))
    s.put_bytes("other/prefix/untouched.bin", b"\x00")
    return s


def test_corrupt_and_foreign_objects_are_quarantined_and_counted(store):
    got = ingest.read(store, ["2024-03-01", "2024-03-02"])
    assert sorted(got.quarantined) == ["snapshots/date=2024-03-02/hour=01/part.parquet",
                                       "snapshots/date=2024-03-02/hour=02/part.parquet", "snapshots/notes.txt"]
    assert store.list("quarantine/") == sorted(keys.quarantine_key(k) for k in got.quarantined)
    assert store.get_bytes("quarantine/snapshots/notes.txt") == b"someone else's file"
    assert len(got["snapshots"]) == 1 and len(got["decisions"]) == 3 and len(got["outcomes"]) == 2
    assert store.exists("decisions/date=2024-02-01/decisions.parquet")  # outside the lookback: left alone
    assert store.exists("other/prefix/untouched.bin")
    assert ingest.read(store, ["2024-03-02"]).quarantined == []  # a second run finds nothing new


def test_join_keeps_decisions_with_outcomes_and_prices_them(store):
    got = ingest.read(store, ["2024-03-02"])
    data, stats = dataset.join(got["decisions"], got["outcomes"], RewardWeights(node_hour=10.0))
    assert stats == {"decisions": 3, "with_outcome": 2, "without_outcome": 1}
    assert sorted(data["decision_id"]) == ["a", "b"]
    assert data["cost"].tolist() == pytest.approx([2.0 + 5.0, 2.0 + 5.0])


def test_observed_contention_from_snapshots():
    snap = pd.DataFrame({"ts": [0, 60], "node": ["n1", "n1"], "cpu_used_milli": [5000.0, 0.0],
                         "cpu_alloc_milli": [4000.0, 4000.0], "mem_used_mib": [1.0, 1.0]})
    seen = dataset.observed(snap, 60)
    assert seen["observed_contention_core_s"] == pytest.approx(60.0)
    assert seen["observed_node_hours"] == pytest.approx(60 / 3600)


def metrics(cost: float, pending: float = 100.0) -> dict[str, float]:
    return {"cost": cost, "pending_pod_s": pending}


@pytest.mark.parametrize("replay, promote, why", [
    ({"candidate": metrics(90), "default": metrics(100)}, True, "beats the default"),
    ({"candidate": metrics(99.5), "default": metrics(100)}, False, "not better than the default by 1%"),
    ({"candidate": metrics(80), "champion": metrics(100), "default": metrics(50)}, True, "beats the champion"),
    ({"candidate": metrics(120), "champion": metrics(100), "default": metrics(500)}, False,
     "not better than the champion"),
    ({"candidate": metrics(50, pending=200), "champion": metrics(100, pending=100), "default": metrics(100)}, False,
     "pending more than 1.10x the champion"),
    ({"candidate": metrics(0), "champion": metrics(0), "default": metrics(0)}, False, "not better"),
])
def test_promotion_rule(replay, promote, why):
    verdict = decide(replay, PromotionRule(min_relative_gain=0.01, max_pending_ratio=1.10))
    assert verdict.promote is promote
    assert why in verdict.reason
