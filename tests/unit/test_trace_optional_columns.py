"""Trace format v1, the optional pods.csv columns ``priority``, ``controlled`` and ``max_unavailable``
(issue 18): absent they read as None and change nothing; present they are parsed, validated with
file:line messages (a budget must agree within a workload), written back, and kept by
:meth:`PodTable.take`."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from neurokube.adapters.trace_files import read_columns, read_trace, write_trace
from neurokube.errors import InputError
from neurokube.policies import make_policy
from neurokube.sim import SimConfig, replay
from neurokube.sim.acting import PodRules
from neurokube.trace.model import OPTIONAL_POD_COLUMNS, POD_COLUMNS
from tests.unit.test_trace_io import NODES, PODS_HEADER, PROFILES

HEADER = PODS_HEADER.rstrip("\n") + ",priority,controlled,max_unavailable\n"
ROW = "{name},default,{workload},Burstable,500,512,1000,0,0,600,flat,0,400,300,{priority},{controlled},{budget}\n"


def pod(name="p1", workload="web", priority="0", controlled="true", budget="1"):
    return ROW.format(name=name, workload=workload, priority=priority, controlled=controlled, budget=budget)


def write(tmp_path, pods):
    d = tmp_path / "t"
    d.mkdir(exist_ok=True)
    (d / "nodes.csv").write_text(NODES)
    (d / "pods.csv").write_text(pods)
    (d / "profiles.csv").write_text(PROFILES)
    return d


def with_columns(trace):
    """``trace`` with every optional column set, to values that differ between pods."""
    p = trace.pods
    ids = p.workload_ids()
    pods = dataclasses.replace(p, priority=(np.arange(len(p)) % 7 - 3).astype(np.int64) * 1000,
                               controlled=np.arange(len(p)) % 5 != 0, max_unavailable=(ids % 3).astype(np.int64))
    return dataclasses.replace(trace, pods=pods)


def test_absent_columns_read_as_none(small_trace_dir):
    pods = read_trace(small_trace_dir).pods
    assert pods.priority is None and pods.controlled is None and pods.max_unavailable is None
    rules = PodRules.of(pods)
    assert (rules.priority == 0).all() and rules.controlled.all() and (rules.max_unavailable == 1).all()


def test_present_columns_are_parsed(tmp_path):
    pods = HEADER + "".join([
        pod("a", priority="-5", controlled="TRUE", budget="2"),
        pod("b", priority="2000001000", controlled="0", budget="2"),
        pod("c", workload="db", priority="1e3", controlled="False", budget="0"),
        pod("d", workload="db", controlled="1", budget="0"),
    ])
    p = read_trace(write(tmp_path, pods)).pods
    assert p.priority.dtype == np.int64 and p.priority.tolist() == [-5, 2000001000, 1000, 0]
    assert p.controlled.dtype == bool and p.controlled.tolist() == [True, False, False, True]
    assert p.max_unavailable.dtype == np.int64 and p.max_unavailable.tolist() == [2, 2, 0, 0]
    rules = PodRules.of(p)
    assert rules.max_unavailable[p.workload_ids()].tolist() == [2, 2, 0, 0]


def test_each_column_is_optional_alone(tmp_path):
    pods = PODS_HEADER.rstrip("\n") + ",controlled\n" + pod().rsplit(",", 3)[0] + ",false\n"
    p = read_trace(write(tmp_path, pods)).pods
    assert p.controlled.tolist() == [False] and p.priority is None and p.max_unavailable is None


@pytest.mark.parametrize("kind, pods, needle", [
    ("non-integer priority", HEADER + pod(priority="1.5"),
     "pods.csv:2: column 'priority': '1.5' is not a whole number"),
    ("non-numeric priority", HEADER + pod() + pod("p2", priority="high"),
     "pods.csv:3: column 'priority': 'high' is not a number"),
    ("priority too large", HEADER + pod(priority="2000001001"),
     "pods.csv:2: column 'priority': '2000001001' is too large (at most 2,000,001,000;"),
    ("priority too small", HEADER + pod(priority="-2147483649"),
     "pods.csv:2: column 'priority': '-2147483649' is too small (at least -2,147,483,648;"),
    ("empty priority", HEADER + pod(priority=""),
     "pods.csv:2: column 'priority': '' is not a number"),
    ("negative budget", HEADER + pod(budget="-1"),
     "pods.csv:2: column 'max_unavailable': -1 is negative"),
    ("fractional budget", HEADER + pod(budget="0.5"),
     "pods.csv:2: column 'max_unavailable': '0.5' is not a whole number"),
    ("maybe", HEADER + pod() + pod("p2", controlled="maybe"),
     "pods.csv:3: column 'controlled': 'maybe' is not a boolean (true, false, 1 or 0)"),
    ("empty controlled", HEADER + pod(controlled=""),
     "pods.csv:2: column 'controlled': '' is not a boolean"),
    ("inconsistent budget", HEADER + pod("a", budget="2") + pod("b", workload="db", budget="1") + pod("c", budget="3"),
     "pods.csv:4: column 'max_unavailable': workload 'default/web' has 3 (but 2 on line 2;"),
    ("duplicate optional column", HEADER.replace(",controlled,", ",priority,") + pod(),
     "pods.csv:1: duplicate column 'priority'"),
])
def test_bad_values_name_file_and_line(tmp_path, kind, pods, needle):
    with pytest.raises(InputError) as info:
        read_trace(write(tmp_path, pods))
    assert needle in str(info.value), kind


def test_a_budget_is_per_namespace_and_workload(tmp_path):
    other = pod("b", budget="5").replace(",default,", ",prod,")
    p = read_trace(write(tmp_path, HEADER + pod("a", budget="2") + other)).pods
    assert p.max_unavailable.tolist() == [2, 5]


def test_read_columns_returns_the_optional_columns_present(tmp_path):
    d = write(tmp_path, HEADER.replace(",max_unavailable", "").replace(",controlled", "")
              + "p1,default,web,Burstable,500,512,1000,0,0,600,flat,0,400,300,7\n")
    table = read_columns(d / "pods.csv", POD_COLUMNS, OPTIONAL_POD_COLUMNS)
    assert table.has("priority") and not table.has("controlled") and not table.has("max_unavailable")
    assert table.column("priority").tolist() == ["7"]
    assert list(read_columns(d / "pods.csv", POD_COLUMNS).frame.columns) == list(POD_COLUMNS)


def test_round_trip_keeps_the_columns(tmp_path, small_trace):
    trace = with_columns(small_trace)
    d = write_trace(trace, tmp_path / "rt")
    assert list(pd.read_csv(d / "pods.csv", nrows=1).columns) == [*POD_COLUMNS, *OPTIONAL_POD_COLUMNS]
    assert set(pd.read_csv(d / "pods.csv", usecols=["controlled"], dtype=str)["controlled"]) == {"true", "false"}
    back = read_trace(d).pods
    for c in OPTIONAL_POD_COLUMNS:
        np.testing.assert_array_equal(getattr(back, c), getattr(trace.pods, c), err_msg=c)
    assert write_trace(read_trace(d), tmp_path / "again") and \
        (tmp_path / "again" / "pods.csv").read_bytes() == (d / "pods.csv").read_bytes()


def test_a_trace_without_them_writes_as_before(tmp_path, small_trace, small_trace_dir):
    d = write_trace(read_trace(small_trace_dir), tmp_path / "old")
    assert (d / "pods.csv").read_bytes() == (small_trace_dir / "pods.csv").read_bytes()
    assert (d / "pods.csv").read_text().splitlines()[0] + "\n" == PODS_HEADER


def test_take_slices_present_columns_and_keeps_absent_ones(small_trace):
    rows = np.array([5, 0, 3])
    plain = small_trace.pods.take(rows)
    assert plain.priority is None and plain.name.tolist() == small_trace.pods.name[rows].tolist()
    full = with_columns(small_trace).pods
    cut = full.take(full.creation_s < 3600)
    assert len(cut) == len(cut.priority) == len(cut.controlled) == len(cut.max_unavailable) > 0
    np.testing.assert_array_equal(cut.max_unavailable, full.max_unavailable[full.creation_s < 3600])


def _outcome(trace):
    result = replay(trace, make_policy("default", trace=trace, seed=0), SimConfig())
    metrics = {k: v for k, v in result.metrics.items() if not k.startswith("decision_us")}
    return {"node_of": result.node_of, "bind_s": result.bind_s, "end_s": result.end_s, "metrics": metrics}


def test_replay_without_an_actuator_ignores_them(small_trace_dir):
    """Scheduling does not read the columns: the same placements and metrics with or without them."""
    plain = read_trace(small_trace_dir)
    np.testing.assert_equal(_outcome(with_columns(plain)), _outcome(plain))  # nan equals nan here
