"""The live decision log: the replay's schema (read back by decision_store.read_decisions), unique
decision ids, a record spooled to local disk before ``record`` returns and shipped as Parquet parts
under the ingest's key layout; a failing store keeps the segments on disk, a segment shipped twice
lands on the same keys (one object), a new process resumes what the previous one left, and a
spool that cannot be written never stops a decision (the records are counted as dropped)."""

import io

import numpy as np
import pandas as pd
import pytest

from neurokube.adapters.decision_store import PART_NAME, read_decisions
from neurokube.adapters.objectstore import LocalDirStore
from neurokube.errors import InputError, TemporaryError
from neurokube.features.placement import N_FEATURES
from neurokube.live.decisions import DecisionLog, LiveDecision, decode, encode, frames, new_decision_id
from neurokube.live.settings import from_env
from neurokube.live.telemetry import Telemetry
from neurokube.model.decision_log import DECISION_COLUMNS
from neurokube.policies.base import PodSpec
from pipelines import keys


def decision(i, policy="neurokube", version="v1", n=3, ts=1_800_000_000.0):
    return LiveDecision(new_decision_id("r1"), ts + i, f"ns/p{i}", f"uid-{i}", "ns/web",
                        PodSpec(100 + i, 64, 200, 128, 1), policy, version, "" if policy == "neurokube" else "no_model",
                        tuple(f"n{j}" for j in range(n)), i % n, np.full(n, 1.0 / n),
                        np.random.default_rng(i).random((n, N_FEATURES)).astype(np.float32))


class FlakyStore(LocalDirStore):
    def __init__(self, root):
        super().__init__(root)
        self.down = False
        self.puts = 0

    def put_bytes(self, key, data):
        if self.down:
            raise TemporaryError("MinIO at http://x is unreachable")
        self.puts += 1
        super().put_bytes(key, data)


def counter(telemetry, result):
    return telemetry.decision_log.labels(result=result)._value.get()


def new_log(tmp_path, store, telemetry=None, **kw):
    return DecisionLog(store, "decisions", kw.pop("replica", "replica/1"), telemetry or Telemetry(),
                       spool_dir=tmp_path / "spool", **kw)


def shipped_ids(store) -> list[str]:
    ids = []
    for key in store.list("decisions/"):
        if key.endswith(".decisions.parquet"):
            ids += pd.read_parquet(io.BytesIO(store.get_bytes(key)))["decision_id"].tolist()
    return ids


def test_frames_keep_the_schema_and_ids_across_policy_groups():
    batch = [decision(0), decision(1, policy="default", version="v1"), decision(2)]
    decisions, candidates = frames(batch)
    assert list(decisions.columns) == list(DECISION_COLUMNS)
    assert decisions["decision_id"].tolist() == [batch[0].decision_id, batch[2].decision_id, batch[1].decision_id]
    assert decisions["node"].tolist() == ["n0", "n2", "n1"] and decisions["fallback"].tolist() == ["", "", "no_model"]
    assert candidates.groupby("decision_id")["chosen"].sum().eq(1).all() and len(candidates) == 9
    assert decisions["cost"].isna().all()  # outcomes are joined later


def test_the_spool_record_format_round_trips_exactly():
    d = decision(5, n=4)
    back = decode(encode(d))
    assert (back.decision_id, back.ts_s, back.pod, back.pod_uid, back.workload, back.spec, back.policy,
            back.model_version, back.fallback, back.node_names, back.chosen) == (
        d.decision_id, d.ts_s, d.pod, d.pod_uid, d.workload, d.spec, d.policy, d.model_version, d.fallback,
        d.node_names, d.chosen)
    assert back.features.dtype == d.features.dtype and np.array_equal(back.features, d.features)
    assert back.propensity.dtype == d.propensity.dtype and np.array_equal(back.propensity, d.propensity)
    with pytest.raises(ValueError):
        decode(encode(d) + b"x")


def test_records_are_spooled_then_shipped_as_parts_ingest_can_parse(tmp_path):
    store = LocalDirStore(tmp_path / "store")
    telemetry = Telemetry()
    log = new_log(tmp_path, store, telemetry)
    for i in range(5):
        log.record(decision(i))
    assert counter(telemetry, "spooled") == 5 and len(log.pending()) == 5  # on disk, nothing shipped yet
    assert store.list("") == []
    assert log.flush() == 5 and counter(telemetry, "written") == 5 and log.pending() == []
    objects = store.list("")
    assert len(objects) == 2 and all(keys.parse(k).writer.startswith("live-replica-1-") for k in objects)
    assert {keys.parse(k).table for k in objects} == {"decisions", "candidates"}
    read = read_decisions(tmp_path / "store" / "decisions" / "date=2027-01-15")
    assert sorted(read["pod"]) == [f"ns/p{i}" for i in range(5)] and read["decision_id"].is_unique
    log.close()


def test_a_segment_spanning_midnight_ships_one_part_per_day(tmp_path):
    store = LocalDirStore(tmp_path / "store")
    log = new_log(tmp_path, store)
    midnight = 1_800_057_600.0  # 2027-01-16T00:00:00Z
    for i in range(4):
        log.record(decision(i, ts=midnight - 2))  # two before, two after midnight
    assert log.flush() == 4
    days = sorted({keys.parse(k).day for k in store.list("")})
    assert days == ["2027-01-15", "2027-01-16"] and len(store.list("")) == 4
    parts = {keys.parse(k).part for k in store.list("")}
    assert len(parts) == 1  # one segment, one part number on both days
    log.close()


def test_a_failing_store_keeps_the_segments_on_disk_and_counts(tmp_path):
    store = FlakyStore(tmp_path / "store")
    telemetry = Telemetry()
    log = new_log(tmp_path, store, telemetry, batch=2)
    store.down = True
    for i in range(3):
        log.record(decision(i))
    assert log.flush() == 0 and telemetry.decision_ship_failures._value.get() == 1
    assert len(log.pending()) == 3 and counter(telemetry, "dropped") == 0
    store.down = False
    assert log.flush() == 3 and log.pending() == [] and len(shipped_ids(store)) == 3
    log.close()


def test_a_segment_shipped_twice_is_one_object_pair(tmp_path, monkeypatch):
    """The process dies after the store accepted a segment but before deleting it: the next process
    re-ships it to the very same keys."""
    store = FlakyStore(tmp_path / "store")
    first = new_log(tmp_path, store)
    records = [decision(i) for i in range(6)]
    for d in records:
        first.record(d)
    monkeypatch.setattr(first.spool, "remove", lambda segment: None)  # "killed" before the delete
    assert first.flush() == 6
    keys_after_first = store.list("")
    first.spool.close()  # the process is gone: its slot is free
    second = new_log(tmp_path, store)
    assert second.spool.resumed == 6 and second.writer == first.writer
    assert second.flush() == 6 and store.puts == 4
    assert store.list("") == keys_after_first  # overwritten, not duplicated
    assert sorted(shipped_ids(store)) == sorted(d.decision_id for d in records)
    second.close()


def test_a_new_process_resumes_and_never_reuses_a_part_number(tmp_path):
    store = FlakyStore(tmp_path / "store")
    store.down = True
    first = new_log(tmp_path, store)
    for i in range(3):
        first.record(decision(i))
    first.close()  # the store is down at exit: the records stay spooled
    store.down = False
    second = new_log(tmp_path, store)
    assert second.spool.resumed == 3 and second.flush() == 3
    second.record(decision(9))
    assert second.flush() == 1
    second.close()
    third = new_log(tmp_path, store)
    third.record(decision(10))
    assert third.flush() == 1
    parts = sorted({keys.parse(k).part for k in store.list("")})
    assert len(parts) == 3  # three segments, three part numbers
    assert len(shipped_ids(store)) == 5 and len(set(shipped_ids(store))) == 5
    third.close()


def test_two_processes_on_one_spool_directory_take_separate_slots(tmp_path):
    store = LocalDirStore(tmp_path / "store")
    a, b = new_log(tmp_path, store), new_log(tmp_path, store)
    assert a.spool.dir != b.spool.dir and a.writer != b.writer
    a.record(decision(1))
    b.record(decision(2))
    assert a.flush() == 1 and b.flush() == 1 and len(store.list("")) == 4
    a.close()
    b.close()


def test_an_unwritable_spool_never_stops_a_decision_and_counts_drops(tmp_path):
    (tmp_path / "spool").write_text("a file where the directory should be")
    telemetry = Telemetry()
    log = new_log(tmp_path, LocalDirStore(tmp_path / "store"), telemetry)
    log.record(decision(0))
    assert log.spool is None and counter(telemetry, "dropped") == 1 and log.flush() == 0


def test_disabled_log_keeps_nothing(tmp_path):
    log = DecisionLog(None, "d", "r", Telemetry(), spool_dir=tmp_path / "spool")
    log.record(decision(0))
    assert not log.enabled and log.flush() == 0 and log.pending() == [] and not (tmp_path / "spool").exists()


@pytest.mark.parametrize("replica", ["", "a/b c", "-x_"])
def test_replica_names_become_safe_keys(replica, tmp_path):
    log = new_log(tmp_path, LocalDirStore(tmp_path / "store"), replica=replica)
    assert "/" not in log.replica and PART_NAME.match(f"{log.writer}-000001.decisions.parquet")
    log.close()


@pytest.mark.parametrize("environ, message", [
    ({"NEUROKUBE_DECISION_PREFIX": "decisions/live"}, "under decisions/"),
    ({"NEUROKUBE_DECISION_SPOOL_MAX_BYTES": "1000"}, "at least 1 MiB"),
    ({"NEUROKUBE_DECISION_SPOOL_MAX_BYTES": "lots"}, "expected an integer"),
])
def test_decision_settings_are_checked(environ, message):
    with pytest.raises(InputError, match=message):
        from_env(environ)


def test_the_default_prefix_is_where_ingest_reads(tmp_path):
    s = from_env({"NEUROKUBE_DECISION_SPOOL_DIR": str(tmp_path / "sp")})
    assert s.decision_prefix == "decisions" and s.decision_spool_dir == tmp_path / "sp"
    assert s.decision_spool_max_bytes == 256 * 1024 * 1024 and from_env({}).decision_spool_dir is None


# -- write-ahead: intents spooled before the Binding, settled by its answer ----------------------------

def test_an_intent_ships_once_bound_and_a_void_one_never(tmp_path):
    store = LocalDirStore(tmp_path / "store")
    telemetry = Telemetry()
    log = new_log(tmp_path, store, telemetry)
    bound, void, doubt = decision(0), decision(1), decision(2)
    for d in (bound, void, doubt):
        log.intend(d)
    assert len(log.pending()) == 3  # on disk before any Binding answer
    log.settle(bound.decision_id, True)
    log.settle(void.decision_id, False)
    log.settle(doubt.decision_id, None)  # the Binding call failed without an answer; no resolver: kept
    log.settle("live:r1:never-intended", True)  # ignored
    assert log.flush() == 2 and sorted(shipped_ids(store)) == sorted([bound.decision_id, doubt.decision_id])
    assert counter(telemetry, "voided") == 1 and counter(telemetry, "written") == 2
    assert log.pending() == [] and log._outcomes == {}
    log.close()


def test_an_intent_in_flight_holds_its_segment_back_until_settled(tmp_path):
    store = LocalDirStore(tmp_path / "store")
    log = new_log(tmp_path, store)
    early, late = decision(0), decision(1)
    log.intend(early)
    log.intend(late)
    log.settle(early.decision_id, True)
    assert log.flush() == 0 and shipped_ids(store) == []  # late's Binding is still out
    log.settle(late.decision_id, True)  # its mark lands in a later segment; memory knows it
    assert log.flush() == 2 and sorted(shipped_ids(store)) == sorted([early.decision_id, late.decision_id])
    log.close()


def test_a_segment_waiting_for_an_outcome_does_not_hold_back_later_ones(tmp_path):
    """One record nobody can settle yet (the apiserver refuses or cannot say) keeps its own
    segment on disk, not every segment sealed after it."""
    store = LocalDirStore(tmp_path / "store")
    answers = {}
    log = new_log(tmp_path, store, resolve=lambda d: answers.get(d.decision_id))
    stuck, after = decision(0), decision(1)
    log.intend(stuck)
    log.settle(stuck.decision_id, None)  # no answer from the Binding; the resolver cannot say yet
    log.spool.seal()
    log.record(after)
    assert log.flush() == 1 and shipped_ids(store) == [after.decision_id]
    assert [d.decision_id for d in log.pending()] == [stuck.decision_id] and log.spool.segments == 1
    answers[stuck.decision_id] = True
    assert log.flush() == 1 and sorted(shipped_ids(store)) == sorted([stuck.decision_id, after.decision_id])
    assert log.spool.segments == 0
    log.close()


def test_a_killed_processs_intents_follow_its_marks_and_the_rest_are_resolved(tmp_path):
    store = LocalDirStore(tmp_path / "store")
    first = new_log(tmp_path, store)
    marked_bound, marked_void, bound_unmarked, unbound_unmarked, unknown = (decision(i) for i in range(5))
    for d in (marked_bound, marked_void, bound_unmarked, unbound_unmarked, unknown):
        first.intend(d)
    first.spool.seal()  # the marks land in a later segment than their intents
    first.settle(marked_bound.decision_id, True)
    first.settle(marked_void.decision_id, False)
    first.spool.close()  # killed: the other three were never settled
    asked = []
    answers = {bound_unmarked.pod_uid: True, unbound_unmarked.pod_uid: False, unknown.pod_uid: None}

    def resolve(d):
        asked.append(d.decision_id)
        return answers[d.pod_uid]

    telemetry = Telemetry()
    second = DecisionLog(store, "decisions", "replica/1", telemetry, spool_dir=tmp_path / "spool", resolve=resolve)
    assert second.flush() == 0  # the apiserver cannot say yet for one of them: the segment waits
    answers[unknown.pod_uid] = True
    assert second.flush() == 3
    assert sorted(shipped_ids(store)) == sorted(d.decision_id for d in (marked_bound, bound_unmarked, unknown))
    assert marked_bound.decision_id not in asked and marked_void.decision_id not in asked  # marks suffice
    assert asked.count(bound_unmarked.decision_id) == 1 and asked.count(unbound_unmarked.decision_id) == 1
    assert counter(telemetry, "voided") == 2 and second.pending() == []
    second.close()


def test_marks_do_not_count_as_records_for_the_bound_or_the_batch(tmp_path):
    telemetry = Telemetry()
    log = new_log(tmp_path, LocalDirStore(tmp_path / "store"), telemetry, batch=3)
    for i in range(2):
        d = decision(i)
        log.intend(d)
        log.settle(d.decision_id, True)
    assert log.spool.pending_records == 2 and not log.spool.due(3600)  # 2 records + 2 marks: not full
    assert counter(telemetry, "spooled") == 2
    log.close()


def test_a_disabled_or_unwritable_log_keeps_no_outcomes_in_memory(tmp_path):
    disabled = DecisionLog(None, "d", "r", Telemetry(), spool_dir=tmp_path / "off")
    (tmp_path / "spool").write_text("a file where the directory should be")
    unwritable = new_log(tmp_path, LocalDirStore(tmp_path / "store"))
    for log in (disabled, unwritable):
        for i in range(3):
            d = decision(i)
            log.intend(d)
            log.settle(d.decision_id, True)
        assert log._inflight == set() and log._outcomes == {}
