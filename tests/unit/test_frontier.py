"""``neurokube bench frontier``: the domination and Pareto logic on hand-made points, and the
command's JSON and plot on a tiny trace."""

import json

import lightgbm as lgb
import numpy as np
import pytest

from neurokube.bench.frontier import (
    PEER_SETTINGS,
    Point,
    analyse,
    dominates,
    learned_specs,
    pareto_front,
    total,
)
from neurokube.cli.main import main
from neurokube.features import FEATURE_NAMES
from neurokube.model.reward import RewardWeights
from neurokube.model.value_model import ValueModel
from neurokube.trace.assemble import ArrivalSettings
from neurokube.trace.io import write_trace
from neurokube.trace.synth import SynthSettings, synth_trace


def pt(spec, c, nh, pending=100.0, default=None):
    return Point(spec=spec, family=spec.partition(":")[0], contention_core_s=c, node_hours=nh,
                 pending_pod_s=pending, default=(":" not in spec) if default is None else default)


def test_dominates_within_slack_on_both_axes():
    peer = pt("tlp", 1000.0, 100.0)
    assert dominates(pt("neurokube", 1000.0, 100.0), peer)  # equal counts
    assert dominates(pt("neurokube", 1019.0, 101.9), peer)  # within 2 %
    assert not dominates(pt("neurokube", 1021.0 + 1.0, 50.0), peer)  # contention 2.2 % worse
    assert not dominates(pt("neurokube", 0.0, 102.1), peer)  # node-hours 2.1 % worse
    assert dominates(pt("neurokube", 0.9, 99.0), pt("tlp", 0.0, 99.0))  # below 1 core-s counts as 0
    assert not dominates(pt("neurokube", 5.0, 99.0), pt("tlp", 0.0, 99.0))


def test_pareto_front_keeps_only_undominated_points():
    points = [pt("neurokube:a", 10, 100), pt("neurokube:b", 5, 120), pt("neurokube:c", 11, 101),
              pt("neurokube:d", 0, 150), pt("neurokube:e", 5, 130)]
    assert [p.spec for p in pareto_front(points)] == ["neurokube:a", "neurokube:b", "neurokube:d"]


def test_analyse_flags_each_peer_point_and_the_goals():
    points = [pt("default", 100, 100, pending=50), pt("default:x=1", 50, 130), pt("tlp", 30, 98, pending=40),
              pt("tlp:y=2", 0, 200), pt("neurokube", 20, 90, pending=42), pt("neurokube:node_hour_cost=0", 1, 140)]
    a = analyse(points)
    assert a.dominated["default"] == {"dominated": True, "by": ["neurokube"]}
    assert a.dominated["default:x=1"]["by"] == ["neurokube"]
    assert a.dominated["tlp:y=2"] == {"dominated": True, "by": ["neurokube:node_hour_cost=0"]}
    assert a.goals["every peer point dominated"] == {"met": True, "dominated": 4, "of": 4}
    assert a.goals["default beats default at its default"]["met"]
    assert a.goals["default beats tlp at its default"]["met"]  # pending 42 <= 1.1 x 40
    worse = analyse([*points, pt("lvrb", 0, 80)])
    assert not worse.dominated["lvrb"]["dominated"]
    assert worse.dominated["lvrb"]["closest_ratio"] == pytest.approx(140 / 80)  # C=0: 1 core-s counts as 0
    assert not worse.goals["every peer point dominated"]["met"]
    slow = analyse([pt("tlp", 30, 98, pending=40), pt("neurokube", 20, 90, pending=45)])
    assert not slow.goals["default beats tlp at its default"]["met"]  # pending 1.125 x


def test_total_sums_over_traces():
    t = total([[pt("tlp", 1, 10), pt("neurokube", 2, 5)], [pt("tlp", 3, 20), pt("neurokube", 0, 6)]])
    assert {(p.spec, p.contention_core_s, p.node_hours) for p in t} == {("tlp", 4, 30), ("neurokube", 2, 11)}


def test_learned_specs_cover_the_default_and_each_rate():
    assert learned_specs(None, (0.0, 60.0)) == ["neurokube", "neurokube:node_hour_cost=0", "neurokube:node_hour_cost=60"]
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
    model = ValueModel(boosters, RewardWeights(), version="tiny").save(root / "model")
    return write_trace(trace, root / "trace"), model, root


def test_the_command_writes_points_fronts_domination_and_a_plot(tiny, capsys):
    trace, model, root = tiny
    out, plot = root / "f.json", root / "f.png"
    assert main(["bench", "frontier", "--trace", str(trace), "--model", str(model), "--json", str(out),
                 "--plot", str(plot), "--node-hour-cost", "0,100,1000,10000,100000"]) == 0
    doc = json.loads(out.read_text())
    part = doc["traces"]["trace"]
    specs = [p["spec"] for p in part["points"]]
    assert len(specs) == 15 + 6 and specs[-6:] == learned_specs(None, (0, 100, 1000, 10000, 100000))
    assert set(part["fronts"]) == {*PEER_SETTINGS, "neurokube"}
    assert set(part["dominated"]) == set(specs[:15])
    for spec, d in part["dominated"].items():  # the flags agree with the points
        p = next(q for q in part["points"] if q["spec"] == spec)
        by = [q["spec"] for q in part["points"] if q["family"] == "neurokube"
              and q["contention_core_s"] <= p["contention_core_s"] * 1.02 + 1.0
              and q["node_hours"] <= p["node_hours"] * 1.02]
        assert d["by"] == by
    assert "every peer point dominated" in part["goals"] and doc["total"]["points"]
    assert plot.stat().st_size > 20_000
    assert "dominated by NeuroKube" in capsys.readouterr().out


def test_a_bad_rate_or_spec_is_one_line(tiny, capsys):
    trace, model, _ = tiny
    assert main(["bench", "frontier", "--trace", str(trace), "--model", str(model), "--peer", "tlp:target=1"]) == 2
    assert "unknown key 'target'" in capsys.readouterr().err
