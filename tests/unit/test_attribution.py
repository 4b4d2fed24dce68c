"""Outcomes attributed from usage snapshots (neurokube/learning/attribution.py, pipelines/attribute.py).

* a worked example: added and experienced contention, added node-hours, a rescheduled pod's two
  decisions, a pod still running at the newest sample (``running``) and one never sampled
  (``no_usage``) are left without an outcome and counted; bad input is an InputError;
* the same pods both ways: a simulated day's own attribution (the simulator's outcomes) against
  the attribution from the usage that day produced, written as hourly snapshots by the snapshot
  step and read back by ingest (node table) plus the per-pod table at the same steps. "Agree
  within 10 %" means: (1) the totals of added contention, added node-hours and experienced
  contention are within 10 % of the simulator's; (2) per decision, at least 90 % of decisions
  have every outcome within 10 % of the simulator's (``|snap - sim| <= 0.1 |sim| + 1e-6``);
  (3) the rank correlation of added contention over the decisions is at least 0.9. Measured:
  exact up to float summation (largest per-decision difference ~1e-3 core-s);
* the night's wiring: a decision with an outcome row keeps it; one without gets the snapshots'
  (``replace_simulated`` attributes all); snapshots without per-pod usage attribute nothing, say
  so in the counts and keep the simulated outcomes; a window that ends while pods run leaves those
  pods without an outcome (a later night attributes them), and the rest still agree;
* a night (``run_night``) whose decisions are all live trains on the snapshots' outcomes and logs
  the counts (ingest wrapped to return the per-pod table, which the store does not hold yet).
"""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pandas as pd
import pytest

from neurokube.adapters.objectstore import LocalDirStore
from neurokube.errors import InputError
from neurokube.learning.attribution import OUTCOME_NAMES, attribute
from neurokube.model.reward import RewardWeights
from neurokube.trace.assemble import ArrivalSettings
from neurokube.trace.synth import SynthSettings, synth_trace
from pipelines import attribute as attribute_step
from pipelines import ingest, keys, snapshot
from pipelines.settings import HOUR_S, AttributionSettings, SnapshotSettings
from pipelines.simulate import DayResult, ReplayUsage, run_day
from pipelines.usage import SimulatorUsage

START = 1_709_251_200  # 2024-03-01T00:00Z
STEP = 60


def parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def decisions(rows: list[tuple[str, float, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["decision_id", "ts_s", "pod", "node"])


def test_worked_example():
    # n1 (1000 m): a alone at t=0, a (600 m) and b (700 m) together at 60 and 120: 300 m over;
    # each one's share is the overflow it adds, min(own, over) = 300 m; n1 is empty at 180.
    nodes = pd.DataFrame([(t, n, used, 1000.0) for t, n, used in
                          [(0, "n1", 600.0), (60, "n1", 1300.0), (120, "n1", 1300.0), (180, "n1", 0.0),
                           (0, "n2", 0.0), (60, "n2", 0.0), (120, "n2", 0.0), (180, "n2", 400.0)]],
                         columns=["ts", "node", "cpu_used_milli", "cpu_alloc_milli"])
    pods = pd.DataFrame([(0, "ns/a", "n1", 600.0), (60, "ns/a", "n1", 600.0), (120, "ns/a", "n1", 600.0),
                         (60, "ns/b", "n1", 700.0), (120, "ns/b", "n1", 700.0), (180, "ns/c", "n2", 400.0)],
                        columns=["ts", "pod", "node", "cpu_used_milli"])
    got = attribute(decisions([("a", 0.0, "ns/a", "n1"), ("b", 30.0, "ns/b", "n1"), ("c", 150.0, "ns/c", "n2"),
                               ("d", 10.0, "ns/d", "n2")]), nodes, pods, STEP)
    assert got.counts == {"attributed": 2, "running": 1, "no_usage": 1}
    out = got.outcomes.set_index("decision_id").sort_index()
    assert out.loc["a"].to_dict() == pytest.approx({"added_contention_core_s": 2 * 300 * 60 / 1000,
                                                    "added_node_h": 60 / 3600,
                                                    "node_contention_core_s": 2 * 300 * 60 / 1000})
    assert out.loc["b"].to_dict() == pytest.approx({"added_contention_core_s": 36.0, "added_node_h": 0.0,
                                                    "node_contention_core_s": 36.0})


def test_a_rescheduled_pod_is_one_decision_per_placement_and_bad_input_is_an_input_error():
    # ns/a: on n1 at 0 and 60 (500 m over), moved to n2 at 120 (200 m over), back on n1 at 180 (100 m)
    nodes = pd.DataFrame({"ts": [0, 60, 120, 180, 240] * 2, "node": ["n1"] * 5 + ["n2"] * 5,
                          "cpu_used_milli": [1500.0, 1500.0, 0.0, 1100.0, 0.0, 0.0, 0.0, 1200.0, 0.0, 0.0],
                          "cpu_alloc_milli": 1000.0})
    pods = pd.DataFrame({"ts": [0, 60, 120, 180], "pod": "ns/a", "node": ["n1", "n1", "n2", "n1"],
                         "cpu_used_milli": [1500.0, 1500.0, 1200.0, 1100.0]})
    got = attribute(decisions([("first", 0.0, "ns/a", "n1"), ("moved", 100.0, "ns/a", "n2"),
                               ("back", 170.0, "ns/a", "n1")]), nodes, pods, STEP)
    out = got.outcomes.set_index("decision_id").loc[["first", "moved", "back"]]
    assert out["added_contention_core_s"].tolist() == pytest.approx([2 * 500 * 60 / 1000, 12.0, 6.0])
    assert out["added_node_h"].tolist() == pytest.approx([2 / 60, 1 / 60, 1 / 60])
    with pytest.raises(InputError, match="pod usage lacks column"):
        attribute(decisions([("x", 0.0, "ns/a", "n1")]), nodes, pods.drop(columns="cpu_used_milli"), STEP)
    with pytest.raises(InputError, match="step must be positive"):
        attribute(decisions([]), nodes, pods, 0)


def pod_frame(usage: ReplayUsage, start_s: int, end_s: int) -> pd.DataFrame:
    """The per-pod usage at the snapshot's steps (what the proposed per-pod snapshot table holds)."""
    rows = [(ts, f"{p.namespace}/{p.name}", p.node, p.cpu_used_milli, p.mem_used_mib)
            for ts in range(start_s, end_s, STEP) for p in usage.snapshot(float(ts)).pods]
    return pd.DataFrame(rows, columns=["ts", "pod", "node", "cpu_used_milli", "mem_used_mib"])


def contended_day(start_s: int) -> tuple[DayResult, int]:
    """A simulated day on 8 nodes whose pods often use more than they request (so nodes overflow),
    and the end of the whole hours past every pod's end."""
    trace = synth_trace("attr", SynthSettings(
        arrivals=ArrivalSettings(hours=5, target_load=0.8, warmup_hours=1, seed=3), nodes=8, workloads=30,
        node_shapes=((8000, 32768), (16000, 65536)), qos_shares=(0.1, 0.5, 0.4),
        cpu_level_median=(0.9, 1.4, 1.0), cpu_level_sigma=0.8))
    # names of their own, so that no other series in a shared Prometheus mixes in
    trace = dataclasses.replace(
        trace, nodes=dataclasses.replace(trace.nodes, name=np.char.add("attr-", trace.nodes.name.astype(str))
                                         .astype(object)),
        pods=dataclasses.replace(trace.pods, namespace=np.full(len(trace.pods), "attr-test", dtype=object)))
    result = run_day(trace, None, start_epoch_s=start_s, epsilon=0.2, seed=1, weights=RewardWeights())
    last = int((result.usage.bind_step + result.usage.run_steps).max()) * STEP
    return result, start_s + (last // HOUR_S + 1) * HOUR_S


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    """A contended simulated day, its snapshots in a store (to past every pod's end) and its pod usage."""
    result, end = contended_day(START)
    tmp = tmp_path_factory.mktemp("attr")
    store = LocalDirStore(tmp / "store")
    snapshot.run(SimulatorUsage(result.usage), store, START, end, SnapshotSettings(step_s=STEP), tmp / "spool")
    data = ingest.read(store, [keys.day_of(START)])
    return result, data, pod_frame(result.usage, START, end)


def tables(data, day_result, pods=None, outcomes=True) -> dict[str, pd.DataFrame]:
    out = {**data.tables, "decisions": day_result.decisions,
           "outcomes": day_result.outcomes if outcomes else day_result.outcomes.iloc[0:0]}
    if pods is not None:
        out["pod_usage"] = pods
    return out


def compare(sim: pd.DataFrame, snap: pd.DataFrame) -> dict[str, float]:
    both = sim.merge(snap, on="decision_id", suffixes=("_sim", "_snap"), validate="one_to_one")
    assert len(both) == len(snap)
    report = {}
    within = np.ones(len(both), dtype=bool)
    for name in OUTCOME_NAMES:
        a, b = both[f"{name}_sim"].to_numpy(), both[f"{name}_snap"].to_numpy()
        report[f"{name}_total_rel"] = abs(b.sum() - a.sum()) / max(abs(a.sum()), 1e-9)
        report[f"{name}_max_abs"] = float(np.abs(b - a).max())
        within &= np.abs(b - a) <= 0.1 * np.abs(a) + 1e-6
    report["within_10pct"] = float(within.mean())
    sim_c, snap_c = both["added_contention_core_s_sim"], both["added_contention_core_s_snap"]
    report["rank_corr"] = float(sim_c.rank().corr(snap_c.rank()))
    return report


def test_live_decisions_get_the_simulators_outcomes_from_the_snapshots(day):
    result, data, pods = day
    sim = result.outcomes
    assert len(sim) > 200 and (sim["added_contention_core_s"] > 0).sum() > 100 and (sim["added_node_h"] > 0).sum() >= 10
    assert len(data["snapshots"]) > 0 and data.quarantined == []
    got, counts = attribute_step.outcomes(tables(data, result, pods, outcomes=False), AttributionSettings(), STEP)
    assert counts == {"outcomes_simulated": 0, "outcomes_attributed": len(sim), "outcomes_running": 0,
                      "outcomes_no_usage": 0}
    report = compare(sim, got)
    for name in OUTCOME_NAMES:
        assert report[f"{name}_total_rel"] <= 0.10, report
    assert report["within_10pct"] >= 0.90 and report["rank_corr"] >= 0.90, report


def test_simulated_outcomes_are_kept_unless_the_setting_says_otherwise(day):
    result, data, pods = day
    kept, counts = attribute_step.outcomes(tables(data, result, pods), AttributionSettings(), STEP)
    assert counts["outcomes_simulated"] == len(result.outcomes) and counts["outcomes_attributed"] == 0
    pd.testing.assert_frame_equal(kept, result.outcomes.reset_index(drop=True), check_dtype=False)

    replaced, counts = attribute_step.outcomes(tables(data, result, pods), AttributionSettings(replace_simulated=True),
                                               STEP)
    assert counts["outcomes_simulated"] == 0 and counts["outcomes_attributed"] == len(result.outcomes)
    assert compare(result.outcomes, replaced)["within_10pct"] == 1.0


def test_node_only_snapshots_attribute_nothing_and_say_so(day):
    result, data, _ = day
    half = len(result.decisions) // 2
    outcomes = result.outcomes.iloc[:half]  # the other half are "live": no outcome row
    node_only = {k: v for k, v in tables(data, result).items() if k != "pod_usage"}  # a store from before pod_usage/
    got, counts = attribute_step.outcomes({**node_only, "outcomes": outcomes}, AttributionSettings(), STEP)
    assert counts == {"outcomes_simulated": half, "outcomes_attributed": 0, "outcomes_running": 0,
                      "outcomes_no_usage": len(result.decisions) - half}
    assert got["decision_id"].tolist() == outcomes["decision_id"].tolist()


def test_a_window_that_ends_while_pods_run_leaves_them_for_a_later_night(day):
    result, data, pods = day
    cut = START + 2 * HOUR_S
    snaps = data["snapshots"][data["snapshots"]["ts"] < cut]
    tabs = {**tables(data, result, pods[pods["ts"] < cut], outcomes=False), "snapshots": snaps}
    got, counts = attribute_step.outcomes(tabs, AttributionSettings(), STEP)
    assert counts["outcomes_running"] > 0 and counts["outcomes_no_usage"] > 0 and counts["outcomes_attributed"] > 20
    assert sum(v for k, v in counts.items() if k != "outcomes_simulated") == len(result.decisions)
    assert compare(result.outcomes, got)["within_10pct"] == 1.0  # those attributed had ended: exact


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*Any type hint:UserWarning")  # MLflow's own, importing mlflow.pyfunc
def test_a_night_trains_live_decisions_on_snapshot_outcomes(day, tmp_path):
    from neurokube.registry import Registry
    from pipelines import nightly
    from pipelines.settings import NightlySettings, WorldSettings

    result, data, pods = day
    store = LocalDirStore(tmp_path / "store")
    date = keys.day_of(START)
    live = result.decisions.assign(source="live", decision_id="live:r0:" + result.decisions["decision_id"])
    store.put_bytes(keys.table_key("decisions", "decisions", date, "live-r0"), parquet(live))
    store.put_bytes(keys.table_key("decisions", "candidates", date, "live-r0"),
                    parquet(result.candidates.assign(decision_id="live:r0:" + result.candidates["decision_id"])))
    snapshot.run(SimulatorUsage(result.usage), store, START, START + 6 * HOUR_S, SnapshotSettings(step_s=STEP),
                 tmp_path / "spool")
    stored = ingest.read(store, [date])["pod_usage"]  # the snapshot step's per-pod table, as the night reads it
    pods = pods[pods["ts"] < START + 6 * HOUR_S]
    assert len(stored) == len(pods) > 1000
    pd.testing.assert_frame_equal(stored.sort_values(["ts", "pod"], ignore_index=True)[list(pods.columns)],
                                  pods.sort_values(["ts", "pod"], ignore_index=True), check_dtype=False)
    base = NightlySettings()
    settings = NightlySettings(world=WorldSettings(nodes=4, workloads=20, seed=3, eval_hours=1),
                               fit=dataclasses.replace(base.fit, rounds=4), lookback_days=1)
    registry = Registry(f"sqlite:///{(tmp_path / 'mlflow.db').resolve()}", settings.model_name, tmp_path / "art")
    night = nightly.run_night(store, registry, date, nightly.eval_trace(settings.world), tmp_path, settings)
    m = night.metrics
    assert m["data.outcomes_simulated"] == 0 and m["data.outcomes_no_usage"] == 0
    assert m["data.outcomes_attributed"] + m["data.outcomes_running"] == len(live)
    assert m["data.with_outcome"] == m["data.outcomes_attributed"] > 200
