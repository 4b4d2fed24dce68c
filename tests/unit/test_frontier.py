"""``neurokube bench frontier``: the domination and Pareto logic on hand-made points, and the
command's JSON and plot on a tiny trace."""

import json

import lightgbm as lgb
import numpy as np
import pytest

from neurokube.adapters.model_files import save_value_model
from neurokube.adapters.trace_files import write_trace
from neurokube.bench.frontier import (
    PEER_SETTINGS,
    Point,
    analyse,
    dominates,
    failing_axes,
    learned_specs,
    markdown,
    oracle_goal,
    pareto_front,
    total,
)
from neurokube.cli.main import main
from neurokube.features import FEATURE_NAMES
from neurokube.model.reward import RewardWeights
from neurokube.model.value_model import ValueModel
from neurokube.trace.assemble import ArrivalSettings
from neurokube.trace.synth import SynthSettings, synth_trace


def pt(spec, c, nh, pending=100.0, default=None, mem=0.0):
    return Point(spec=spec, family=spec.partition(":")[0], contention_core_s=c, node_hours=nh,
                 pending_pod_s=pending, mem_overflow_mib_s=mem,
                 default=(":" not in spec) if default is None else default)


def test_dominates_within_slack_on_all_three_axes():
    peer = pt("tlp", 1000.0, 100.0, pending=1000.0)
    assert dominates(pt("neurokube", 1000.0, 100.0, pending=1000.0), peer)  # equal counts
    assert dominates(pt("neurokube", 1019.0, 101.9, pending=1019.0), peer)  # within 2 % on each
    assert not dominates(pt("neurokube", 1021.0 + 1.0, 50.0, pending=10.0), peer)  # contention 2.2 % worse
    assert not dominates(pt("neurokube", 0.0, 102.1, pending=10.0), peer)  # node-hours 2.1 % worse
    assert not dominates(pt("neurokube", 0.0, 50.0, pending=1021.0), peer)  # pending 2.1 % worse
    assert failing_axes(pt("neurokube", 0.0, 50.0, pending=1021.0), peer) == ["pending_pod_s"]
    assert failing_axes(pt("neurokube", 2000.0, 50.0, pending=1500.0), peer) == ["contention_core_s", "pending_pod_s"]
    assert dominates(pt("neurokube", 0.9, 99.0), pt("tlp", 0.0, 99.0))  # below 1 core-s counts as 0
    assert not dominates(pt("neurokube", 5.0, 99.0), pt("tlp", 0.0, 99.0))
    assert not dominates(pt("neurokube", 0.0, 99.0, pending=100.5), pt("tlp", 0.0, 99.0, pending=0.0))  # no abs pending


def test_pareto_front_keeps_only_undominated_points():
    points = [pt("neurokube:a", 10, 100), pt("neurokube:b", 5, 120), pt("neurokube:c", 11, 101),
              pt("neurokube:d", 0, 150), pt("neurokube:e", 5, 130)]
    assert [p.spec for p in pareto_front(points)] == ["neurokube:a", "neurokube:b", "neurokube:d"]
    # pending is an axis: c is worse than a on contention and node-hours but waits less, so it stays
    points[2] = pt("neurokube:c", 11, 101, pending=50)
    assert [p.spec for p in pareto_front(points)] == ["neurokube:a", "neurokube:c", "neurokube:b", "neurokube:d"]


def test_analyse_flags_each_peer_point_and_the_goals():
    points = [pt("default", 100, 100, pending=50), pt("default:x=1", 50, 130), pt("tlp", 30, 98, pending=40),
              pt("tlp:y=2", 0, 200), pt("neurokube", 20, 90, pending=42), pt("neurokube:node_hour_cost=0", 1, 140)]
    a = analyse(points)
    assert a.dominated["default"] == {"dominated": True, "by": ["neurokube"]}
    assert a.dominated["default:x=1"]["by"] == ["neurokube"]
    assert a.dominated["tlp:y=2"] == {"dominated": True, "by": ["neurokube:node_hour_cost=0"]}
    # tlp waits less: pending 42 against 40 is 5 % worse, beyond the 2 % slack
    assert a.dominated["tlp"]["fails_on"] == ["pending"] and a.dominated["tlp"]["blocking"] == ["pending"]
    assert a.goals["every peer point dominated"] == {"met": False, "dominated": 3, "of": 4, "not dominated": ["tlp"]}
    assert analyse([*points, pt("neurokube:node_hour_cost=9", 30, 98, pending=40.8)]).goals[
        "every peer point dominated"]["met"]  # within 2 % on pending
    assert a.goals["default beats default at its default"]["met"]
    assert a.goals["default beats tlp at its default"]["met"]  # pending 42 <= 1.1 x 40
    worse = analyse([*points, pt("lvrb", 0, 80)])
    assert not worse.dominated["lvrb"]["dominated"]
    assert worse.dominated["lvrb"]["closest_ratio"] == pytest.approx(140 / 80)  # C=0: 1 core-s counts as 0
    assert not worse.goals["every peer point dominated"]["met"]
    slow = analyse([pt("tlp", 30, 98, pending=40), pt("neurokube", 20, 90, pending=45)])
    assert not slow.goals["default beats tlp at its default"]["met"]  # pending 1.125 x
    oom = analyse([pt("tlp", 30, 98, pending=40, mem=10.0), pt("neurokube", 20, 90, pending=40, mem=11.0)])
    assert not oom.goals["default beats tlp at its default"]["met"]  # more memory overflow
    assert oom.goals["default beats tlp at its default"]["mem_overflow_ratio"] == pytest.approx(1.1)


def test_a_peer_that_waits_less_is_not_dominated_and_pending_is_named():
    # NeuroKube beats most-allocated on contention and node-hours but leaves pods pending longer
    points = [pt("most-allocated", 9000, 1100, pending=430), pt("neurokube", 500, 920, pending=640),
              pt("neurokube:node_hour_cost=0", 400, 1100, pending=560), pt("neurokube:node_hour_cost=30", 350, 1200,
                                                                           pending=420)]
    d = analyse(points).dominated["most-allocated"]
    assert not d["dominated"] and d["by"] == []
    assert d["closest"] == "neurokube:node_hour_cost=30"  # worst ratio 1200/1100, the others 640/430, 560/430
    assert d["fails_on"] == ["node-hours"] and d["closest_ratios"]["pending_pod_s"] == pytest.approx(420 / 430)
    assert d["blocking"] == ["node-hours", "pending"]  # each alone stands in the way of some point
    a = analyse(points)
    assert a.goals["every peer point dominated"] == {"met": False, "dominated": 0, "of": 1,
                                                     "not dominated": ["most-allocated"]}
    assert "**no**: node-hours" in markdown({"traces": {"t": a.to_dict()}, "total": a.to_dict()})
    # with pending only 1.5 % above, the default dominates
    near = [pt("most-allocated", 9000, 1100, pending=430), pt("neurokube", 500, 920, pending=436)]
    assert analyse(near).dominated["most-allocated"] == {"dominated": True, "by": ["neurokube"]}


def test_the_oracle_is_a_reference_not_a_peer_and_its_goal_is_judged():
    oracle = pt("oracle", 1000, 100, pending=500)
    inside = pt("neurokube:node_hour_cost=30", 1150, 105, pending=550)  # exactly at 1.15 x, 1.05 x, 1.1 x
    assert oracle_goal([inside], oracle)["met"]
    for worse in (pt("neurokube", 1152, 105, pending=550), pt("neurokube", 1150, 105.2, pending=550),
                  pt("neurokube", 1150, 105, pending=551)):
        g = oracle_goal([worse], oracle)
        assert not g["met"] and len(g["misses_on"]) == 1, worse
    g = oracle_goal([pt("neurokube", 900, 130, pending=400),
                     pt("neurokube:node_hour_cost=1000", 1400, 101, pending=520)],
                    oracle)
    assert not g["met"] and g["closest"] == "neurokube:node_hour_cost=1000"  # 1.4/1.15 = 1.22 < 1.3/1.05 = 1.24
    assert g["misses_on"] == ["contention"] and g["contention_ratio"] == pytest.approx(1.4)
    a = analyse([pt("tlp", 2000, 120, pending=600), oracle, pt("neurokube", 1100, 104, pending=540)])
    assert set(a.dominated) == {"tlp"}  # the oracle is not a peer to dominate
    assert a.goals["every peer point dominated"]["of"] == 1
    assert a.goals["oracle goal"]["met"] and a.goals["oracle goal"]["by"] == ["neurokube"]
    assert "oracle goal" not in analyse([pt("tlp", 2000, 120), pt("neurokube", 1, 1)]).goals


def test_total_sums_over_traces():
    t = total([[pt("tlp", 1, 10), pt("neurokube", 2, 5)], [pt("tlp", 3, 20), pt("neurokube", 0, 6)]])
    assert {(p.spec, p.contention_core_s, p.node_hours) for p in t} == {("tlp", 4, 30), ("neurokube", 2, 11)}


def test_learned_specs_cover_the_default_and_each_rate():
    assert learned_specs(None, (0.0, 60.0)) == ["neurokube", "neurokube:node_hour_cost=0", "neurokube:node_hour_cost=60"]
    assert learned_specs("m", (5.0,), ["tie_core_s=10"]) == [
        "neurokube", "neurokube:model=m,node_hour_cost=5", "neurokube:model=m,tie_core_s=10"]
    assert all(len(settings) == 3 and ":" not in settings[0] for settings in PEER_SETTINGS.values())


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("frontier")
    trace = synth_trace("tiny", SynthSettings(
        arrivals=ArrivalSettings(hours=2, target_load=0.8, warmup_hours=1, seed=5), nodes=6, workloads=20))
    rng = np.random.default_rng(0)
    x = rng.random((1500, len(FEATURE_NAMES))).astype(np.float32)
    peak = x[:, FEATURE_NAMES.index("proj_cpu_peak_frac")]
    packed = x[:, FEATURE_NAMES.index("req_cpu_frac_after")]
    boosters = {name: lgb.train({"objective": "regression", "verbosity": -1, "num_leaves": 7, "num_threads": 1},
                                lgb.Dataset(x, y), num_boost_round=15)
                for name, y in (("contention", np.maximum(peak - 0.6, 0) * 100), ("occupancy", 1 - packed))}
    model = save_value_model(ValueModel(boosters, RewardWeights(), version="tiny"), root / "model")
    return write_trace(trace, root / "trace"), model, root


def test_the_command_writes_points_fronts_domination_and_a_plot(tiny, capsys):
    trace, model, root = tiny
    out, plot = root / "f.json", root / "f.png"
    assert main(["bench", "frontier", "--trace", str(trace), "--model", str(model), "--json", str(out),
                 "--plot", str(plot), "--node-hour-cost", "0,100,1000,10000,100000", "--setting", "tie_core_s=10"]) == 0
    doc = json.loads(out.read_text())
    part = doc["traces"]["trace"]
    specs = [p["spec"] for p in part["points"]]
    assert len(specs) == 15 + 7 + 1
    assert specs[15:22] == learned_specs(None, (0, 100, 1000, 10000, 100000), ["tie_core_s=10"])
    assert specs[21] == "neurokube:tie_core_s=10" and specs[-1] == "oracle"
    assert set(part["fronts"]) == {*PEER_SETTINGS, "neurokube", "oracle"}
    assert set(part["dominated"]) == set(specs[:15])
    for spec, d in part["dominated"].items():  # the flags agree with the points
        p = next(q for q in part["points"] if q["spec"] == spec)
        by = [q["spec"] for q in part["points"] if q["family"] == "neurokube"
              and q["contention_core_s"] <= p["contention_core_s"] * 1.02 + 1.0
              and q["node_hours"] <= p["node_hours"] * 1.02 and q["pending_pod_s"] <= p["pending_pod_s"] * 1.02]
        assert d["by"] == by
        assert d["dominated"] or d["fails_on"]
    assert "every peer point dominated" in part["goals"] and doc["total"]["points"]
    assert "oracle goal" in part["goals"] and "oracle goal" in doc["total"]["goals"]
    assert plot.stat().st_size > 20_000
    assert "dominated by NeuroKube" in capsys.readouterr().out


def test_a_bad_rate_or_spec_is_one_line(tiny, capsys):
    trace, model, _ = tiny
    assert main(["bench", "frontier", "--trace", str(trace), "--model", str(model), "--peer", "tlp:target=1"]) == 2
    assert "unknown key 'target'" in capsys.readouterr().err
