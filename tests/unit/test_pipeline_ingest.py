"""Ingest, the decision/outcome join, and the promotion rule.

* corrupt objects (not Parquet, or Parquet without the expected columns) and foreign keys under
  the loop's prefixes are moved under quarantine/ with a reason file beside them and counted; the
  rest is read; nothing raises;
* a day is the union of its parts: the simulated loop's, every live replica's (written by the live
  DecisionLog itself) and the legacy layouts are read together;
* a decisions part without its candidates part is read and listed as incomplete, not quarantined;
* days outside the lookback are not read (and not quarantined when well-formed);
* the join keeps decisions with an outcome, counts the others, and computes the cost;
* the promotion rule: a candidate must beat the incumbent (champion, else default) by the margin
  and not pend much more; each refusal says why.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

from neurokube.adapters.objectstore import LocalDirStore
from neurokube.live.decisions import DecisionLog
from neurokube.live.telemetry import Telemetry
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
    assert store.list("quarantine/") == sorted([keys.quarantine_key(k) for k in got.quarantined]
                                               + [keys.reason_key(k) for k in got.quarantined])
    assert store.get_bytes("quarantine/snapshots/notes.txt") == b"someone else's file"
    reasons = {k: json.loads(store.get_bytes(keys.reason_key(k))) for k in got.quarantined}
    assert [reasons[k]["reason"] for k in sorted(reasons)] == ["unreadable", "schema", "foreign_key"]
    assert reasons["snapshots/notes.txt"]["bytes"] == len(b"someone else's file")
    assert reasons["snapshots/notes.txt"]["key"] == "snapshots/notes.txt" and reasons["snapshots/notes.txt"]["time"]
    assert len(got["snapshots"]) == 1 and len(got["decisions"]) == 3 and len(got["outcomes"]) == 2
    assert store.exists(keys.sim_key("decisions", "decisions", "2024-02-01"))  # outside the lookback: left alone
    assert store.exists("other/prefix/untouched.bin")
    assert ingest.read(store, ["2024-03-02"]).quarantined == []  # a second run finds nothing new


def live_parts(tmp_path, store, replica: str, day_s: float, n: int) -> list[str]:
    """``n`` decisions of one replica, spooled and shipped by the live DecisionLog itself."""
    from tests.unit.test_live_decisions import decision

    log = DecisionLog(store, "decisions", replica, Telemetry(), spool_dir=tmp_path / f"spool-{replica}")
    records = [decision(i, ts=day_s) for i in range(n)]
    for d in records:
        log.record(d)
    assert log.flush() == n
    log.close()
    return [d.decision_id for d in records]


def test_live_and_simulated_parts_of_a_day_are_read_together(store, tmp_path):
    day_s = 1709337600.0  # 2024-03-02T00:00:00Z
    live = live_parts(tmp_path, store, "binder-a", day_s, 4) + live_parts(tmp_path, store, "sweeper-b", day_s, 2)
    legacy = "decisions/live/2024-03-02/binder-c-1709337600000-1.decisions.parquet"
    store.put_bytes(legacy, parquet(decisions(["legacy-live"])))
    store.put_bytes(legacy.replace(".decisions.", ".candidates."),
                    parquet(pd.DataFrame({c: [] for c in CANDIDATE_COLUMNS})))
    got = ingest.read(store, ["2024-03-02"])
    assert not any(k.startswith("decisions/") for k in got.quarantined)
    assert sorted(got["decisions"]["decision_id"]) == sorted(["a", "b", "c", "legacy-live", *live])
    assert set(got["candidates"]["decision_id"]) == set(live)  # the simulated fixture logged no candidates
    assert got.incomplete == []
    assert (got["decisions"]["source"] == "live").sum() == 6


def test_a_decisions_part_without_its_candidates_is_read_and_listed_incomplete(store, tmp_path):
    live_parts(tmp_path, store, "binder-a", 1709337600.0, 3)
    [candidates] = [k for k in store.list("decisions/") if k.endswith(".candidates.parquet") and "/live-" in k]
    store.delete(candidates)  # the writer died between its two puts, or the part is still on its way
    got = ingest.read(store, ["2024-03-02"])
    assert got.incomplete == [candidates.replace(".candidates.", ".decisions.")]
    assert len(got["decisions"]) == 3 + 3 and not any(k.startswith("decisions/") for k in got.quarantined)


@pytest.mark.parametrize("key", [
    "decisions/date=2024-03-02/decisions-and-more.parquet",  # no part number
    "decisions/date=2024-03-02/sim-000000.outcomes.parquet",  # an outcomes table under decisions/
    "decisions/date=2024-13-02/sim-000000.decisions.parquet",  # no such day
    "decisions/chaos/date=2024-03-02/live-r-ab-000001.decisions.parquet",  # a prefix under decisions/
    "outcomes/date=2024-03-02/notes.txt",
])
def test_keys_the_loop_cannot_parse_are_quarantined_with_a_reason(store, key):
    store.put_bytes(key, parquet(decisions(["x"])))
    got = ingest.read(store, ["2024-03-02"])
    assert key in got.quarantined and not store.exists(key)
    assert json.loads(store.get_bytes(keys.reason_key(key)))["reason"] == "foreign_key"


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
