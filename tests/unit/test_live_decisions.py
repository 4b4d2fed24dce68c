"""The live decision log: the replay's schema (read back by decision_store.read_decisions),
unique decision ids, batches written by size, a failing store keeps the batch for later, and an
overflowing buffer drops the oldest records and counts them; nothing ever blocks a decision."""

import numpy as np
import pytest

from neurokube.adapters.decision_store import read_decisions
from neurokube.adapters.objectstore import LocalDirStore
from neurokube.errors import TemporaryError
from neurokube.features.placement import N_FEATURES
from neurokube.live.decisions import DecisionLog, LiveDecision, frames, new_decision_id
from neurokube.live.telemetry import Telemetry
from neurokube.model.decision_log import DECISION_COLUMNS
from neurokube.policies.base import PodSpec


def decision(i, policy="neurokube", version="v1", n=3):
    return LiveDecision(new_decision_id("r1"), 1_800_000_000.0 + i, f"ns/p{i}", f"uid-{i}", "ns/web",
                        PodSpec(100, 64), policy, version, "" if policy == "neurokube" else "no_model",
                        tuple(f"n{j}" for j in range(n)), i % n, np.full(n, 1.0 / n),
                        np.random.default_rng(i).random((n, N_FEATURES)).astype(np.float32))


class FlakyStore(LocalDirStore):
    def __init__(self, root):
        super().__init__(root)
        self.down = False

    def put_bytes(self, key, data):
        if self.down:
            raise TemporaryError("MinIO at http://x is unreachable")
        super().put_bytes(key, data)


def counter(telemetry, result):
    return telemetry.decision_log.labels(result=result)._value.get()


def test_frames_keep_the_schema_and_ids_across_policy_groups():
    batch = [decision(0), decision(1, policy="default", version="v1"), decision(2)]
    decisions, candidates = frames(batch)
    assert list(decisions.columns) == list(DECISION_COLUMNS)
    assert decisions["decision_id"].tolist() == [batch[0].decision_id, batch[2].decision_id, batch[1].decision_id]
    assert decisions["node"].tolist() == ["n0", "n2", "n1"] and decisions["fallback"].tolist() == ["", "", "no_model"]
    assert candidates.groupby("decision_id")["chosen"].sum().eq(1).all() and len(candidates) == 9
    assert decisions["cost"].isna().all()  # outcomes are joined later


def test_batches_are_written_and_read_back(tmp_path):
    store = LocalDirStore(tmp_path)
    telemetry = Telemetry()
    log = DecisionLog(store, "decisions/live", "replica/1", telemetry, batch=2)
    for i in range(5):
        log.record(decision(i))
    assert log.flush() == 5 and counter(telemetry, "written") == 5
    days = {k.split("/")[2] for k in store.list("decisions/live/")}
    assert len(store.list("decisions/live/")) == 6 and len(days) == 1  # 3 batches x 2 tables
    assert all("/replica-1-" in k for k in store.list(""))  # a safe key from the replica name
    read = read_decisions(tmp_path / "decisions" / "live" / days.pop())
    assert sorted(read["pod"]) == [f"ns/p{i}" for i in range(5)] and read["decision_id"].is_unique


def test_a_failing_store_keeps_the_batch(tmp_path):
    store = FlakyStore(tmp_path)
    telemetry = Telemetry()
    log = DecisionLog(store, "d", "r", telemetry, batch=10)
    store.down = True
    for i in range(3):
        log.record(decision(i))
    assert log.flush() == 0 and counter(telemetry, "failed_write") == 3 and len(log._pending) == 3
    store.down = False
    assert log.flush() == 3 and not log._pending


def test_overflow_drops_the_oldest_and_counts(tmp_path):
    telemetry = Telemetry()
    log = DecisionLog(LocalDirStore(tmp_path), "d", "r", telemetry, batch=100, max_buffered=4)
    for i in range(6):
        log.record(decision(i))
    assert counter(telemetry, "dropped") == 2 and [d.pod for d in log._pending] == [f"ns/p{i}" for i in range(2, 6)]


def test_disabled_log_keeps_nothing():
    log = DecisionLog(None, "d", "r", Telemetry())
    log.record(decision(0))
    assert not log.enabled and log.flush() == 0 and not log._pending


@pytest.mark.parametrize("replica", ["", "a/b c"])
def test_replica_names_become_safe_keys(replica, tmp_path):
    assert "/" not in DecisionLog(None, "d", replica, Telemetry()).replica
