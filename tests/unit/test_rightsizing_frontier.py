"""The right-sizing frontier (issue 18) and ``neurokube recommend --margin``.

* Dominance on hand-made points: ``<=`` on both slack and time above request, ties count, one
  worse coordinate is enough to fail; the closest margin by max(slack ratio, time ratio), 0 vs 0.
* VPA's targets at several percentiles from one histogram equal ``VpaSettings(target_percentile=p)``.
* On small synthetic traces: one frontier point per margin and three VPA points (CPU and memory);
  the VPA p90 point is the reported VPA point and the calibrated margin's point is the reported
  point (same frame, same fallbacks); slack grows and time above request falls along each curve;
  ``dominated_by`` agrees with the numbers.
* ``cpu_margin`` moves the reported point onto the frontier at that margin (and its percentile), says so in
  ``cpu_margin_source`` and leaves the frontier alone; a margin <= 0 is an InputError.
* With VPA's 24-hour memory and no forecast growth, margins x0.5, x1, x2 are VPA's p80, p90, p95
  points exactly (the recommender reduces to VPA).
* The benchmark's frontier rows say met / NOT met and name the closest margin.
* The CLI: ``--margin`` changes the reported point and the CSV requests, the JSON keeps every
  earlier key, and a bad ``--margin`` is one line and exit 2.
"""

import csv
import json
from dataclasses import replace

import numpy as np
import pytest

from benchmarks import forecast_quality
from neurokube.cli import main as cli
from neurokube.errors import InputError
from neurokube.forecast.bottleneck import BottleneckSettings
from neurokube.forecast.evaluation import RecommenderSettings, evaluate, json_report, prepare, train
from neurokube.forecast.frontier import Point, closest, dominated_by, dominates, ratio
from neurokube.forecast.models import ForecastSettings
from neurokube.forecast.vpa import HistogramSettings, VpaSettings, vpa_target, vpa_targets
from neurokube.policies import make_policy
from neurokube.sim import SimConfig, replay
from neurokube.trace.assemble import ArrivalSettings
from neurokube.trace.synth import SynthSettings, synth_trace

FAST = RecommenderSettings(forecast=ForecastSettings(num_boost_round=20),
                           bottleneck=BottleneckSettings(num_boost_round=20))
MARGINS = [Point(1.0, 10.0, 100.0), Point(1.2, 12.0, 50.0), Point(1.5, 15.0, 20.0)]


# --- pure helpers on hand-made numbers ---------------------------------------------------------

@pytest.mark.parametrize("vpa, expected", [
    (Point(0.9, 13.0, 60.0), [1.2]),            # only x1.2 is below on both
    (Point(0.9, 12.0, 50.0), [1.2]),            # ties count (<=)
    (Point(0.95, 20.0, 100.0), [1.0, 1.2, 1.5]),
    (Point(0.8, 9.0, 500.0), []),               # less slack than every margin
    (Point(0.8, 100.0, 10.0), []),              # less time above request than every margin
    (Point(0.9, 11.9, 1000.0), [1.0]),
])
def test_dominated_by_needs_both_coordinates(vpa, expected):
    assert dominated_by(MARGINS, vpa) == expected
    assert [m.setting for m in MARGINS if dominates(m, vpa)] == expected


def test_dominance_is_not_symmetric_and_one_worse_coordinate_fails():
    a, b = Point(1.0, 5.0, 5.0), Point(0.9, 5.0, 5.000001)
    assert dominates(a, b) and not dominates(b, a)
    assert not dominates(Point(1.0, 5.000001, 0.0), Point(0.9, 5.0, 100.0))


def test_closest_margin_minimises_the_larger_ratio():
    best, score = closest(MARGINS, Point(0.9, 13.0, 60.0))
    # x1.0: max(10/13, 100/60) = 1.67; x1.2: max(12/13, 50/60) = 0.92; x1.5: max(15/13, 20/60) = 1.15
    assert best.setting == 1.2 and score == pytest.approx(12 / 13)
    best, score = closest(MARGINS, Point(0.8, 9.0, 500.0))  # not dominated: x1.0 at 10/9 is nearest
    assert best.setting == 1.0 and score == pytest.approx(10 / 9) and score > 1
    assert ratio(0.0, 0.0) == 1.0 and ratio(1.0, 0.0) == float("inf") and ratio(0.0, 2.0) == 0.0
    best, score = closest([Point(2.0, 1.0, 0.0)], Point(0.9, 2.0, 0.0))  # 0 throttled against 0
    assert score == 1.0 and dominated_by([best], Point(0.9, 2.0, 0.0)) == [2.0]
    with pytest.raises(ValueError):
        closest([], Point(0.9, 1.0, 1.0))


def test_vpa_targets_at_several_percentiles_equal_one_setting_each():
    rng = np.random.default_rng(3)
    values = rng.gamma(2.0, 80.0, 400)
    t = rng.uniform(0, 86400, 400)
    w = rng.uniform(0.1, 2.0, 400)
    s = VpaSettings(cpu=HistogramSettings(first_bucket=10.0, max_value=1e5))
    many = vpa_targets(values, t, w, "cpu", 86400.0, s, (0.5, 0.8, 0.9, 0.95, 1.0))
    one = [vpa_target(values, t, w, "cpu", 86400.0, replace(s, target_percentile=p))
           for p in (0.5, 0.8, 0.9, 0.95, 1.0)]
    np.testing.assert_array_equal(many, one)
    assert (np.diff(many) >= 0).all() and many[0] < many[-1]
    assert np.isnan(vpa_targets(values[:0], t[:0], w[:0], "mem", 0.0, s, (0.8, 0.9))).all()


def test_benchmark_rows_say_met_and_name_the_closest_margin():
    frontier = {"margins": [{"margin": m.setting, "slack_core_h": m.slack, "throttled_s": m.over_s}
                            for m in MARGINS],
                "vpa": [{"percentile": 0.8, "slack_core_h": 9.0, "throttled_s": 500.0, "dominated_by": []},
                        {"percentile": 0.9, "slack_core_h": 13.0, "throttled_s": 60.0, "dominated_by": [1.2]}]}
    rows = forecast_quality.frontier_rows("synth-2", frontier)
    assert len(rows) == 2 and all(r.startswith("| synth-2 | some CPU margin dominates VPA p") for r in rows)
    assert "VPA p80" in rows[0] and "closest x1:" in rows[0] and "| 1.111 |" in rows[0]
    assert rows[0].endswith("| **NOT met** |")
    assert "VPA p90" in rows[1] and "margins x1.2; closest x1.2:" in rows[1] and "| 0.923 |" in rows[1]
    assert rows[1].endswith("| met |")


# --- the report on small synthetic traces ------------------------------------------------------

def _data(seed):
    trace = synth_trace(f"s{seed}", SynthSettings(
        arrivals=ArrivalSettings(hours=6, target_load=0.8, warmup_hours=3, seed=seed), nodes=10, workloads=40))
    r = replay(trace, make_policy("default", trace=trace), SimConfig())
    return prepare(trace, r.node_of, r.bind_s)


@pytest.fixture(scope="module")
def trained():
    model = train([_data(1), _data(2)], FAST)
    data = _data(3)
    return model, data, evaluate(model, data)


def _curve(section, slack, over):
    return (np.array([m[slack] for m in section["margins"]]), np.array([m[over] for m in section["margins"]]),
            np.array([v[slack] for v in section["vpa"]]), np.array([v[over] for v in section["vpa"]]))


def test_frontier_has_every_margin_and_three_vpa_points(trained):
    model, _, report = trained
    fr, rs = report["rightsizing_frontier"], report["rightsizing"]
    margins = list(model.settings.rightsizing.margins)
    for section, slack, over in ((fr, "slack_core_h", "throttled_s"),
                                 (fr["memory"], "mem_slack_gib_h", "mem_over_request_s")):
        assert [m["margin"] for m in section["margins"]] == margins
        assert [v["percentile"] for v in section["vpa"]] == [0.8, 0.9, 0.95]
        ms, mo, vs, vo = _curve(section, slack, over)
        assert (np.diff(ms) >= 0).all() and (np.diff(mo) <= 0).all() and ms[-1] > ms[0]
        assert (np.diff(vs) >= 0).all() and (np.diff(vo) <= 0).all()
        for v in section["vpa"]:
            assert v["dominated_by"] == [m["margin"] for m in section["margins"]
                                         if m[slack] <= v[slack] and m[over] <= v[over]]
    # VPA at its default is the reported VPA point; the calibrated margin is the reported point
    p90 = fr["vpa"][1]
    assert p90["slack_core_h"] == rs["vpa_slack_core_h"] and p90["throttled_s"] == rs["vpa_throttled_s"]
    assert fr["memory"]["vpa"][1]["mem_over_request_s"] == rs["vpa_mem_over_request_s"]
    at = fr["margins"][margins.index(model.cpu_margin)]
    assert at["slack_core_h"] == rs["slack_core_h"] and at["throttled_s"] == rs["throttled_s"]
    mem_at = fr["memory"]["margins"][margins.index(model.mem_margin)]
    assert mem_at["mem_slack_gib_h"] == rs["mem_slack_gib_h"]
    assert rs["cpu_margin_source"] == "calibrated"
    doc = json_report(report)
    assert doc["rightsizing_frontier"] == json.loads(json.dumps(fr))
    assert doc["rightsizing_details"]["cpu_margin_source"] == "calibrated"


def test_a_given_margin_moves_the_reported_point_onto_the_frontier(trained):
    model, data, report = trained
    margin = 3.0 if model.cpu_margin != 3.0 else 0.7
    other = evaluate(model, data, cpu_margin=margin)
    rs = other["rightsizing"]
    at = next(m for m in report["rightsizing_frontier"]["margins"] if m["margin"] == margin)
    assert rs["cpu_margin"] == margin and rs["cpu_margin_source"] == "--margin"
    assert rs["allocation"] == "per_workload" and rs["cpu_price"] is None
    assert rs["cpu_target_percentile"] == pytest.approx(1 - 0.1 / margin)
    assert rs["slack_core_h"] == at["slack_core_h"] and rs["throttled_s"] == at["throttled_s"]
    assert rs["slack_core_h"] != report["rightsizing"]["slack_core_h"]
    assert other["rightsizing_frontier"] == report["rightsizing_frontier"]
    assert set(rs) == set(report["rightsizing"])
    assert rs["mem_slack_gib_h"] == report["rightsizing"]["mem_slack_gib_h"]  # memory keeps its margin
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(InputError):
            evaluate(model, data, cpu_margin=bad)


def test_with_vpas_memory_and_no_growth_margins_half_one_two_are_vpas_three_points(trained):
    model, data, _ = trained
    like_vpa = replace(model.settings.rightsizing, half_life_s=24 * 3600.0, long_weight=0.0, growth_bounds=(1.0, 1.0),
                       allocation="per_workload")
    report = evaluate(replace(model, settings=replace(model.settings, rightsizing=like_vpa)), data)
    fr = report["rightsizing_frontier"]
    for section, slack, over in ((fr, "slack_core_h", "throttled_s"),
                                 (fr["memory"], "mem_slack_gib_h", "mem_over_request_s")):
        at = {m["margin"]: (m[slack], m[over]) for m in section["margins"]}
        for v, margin in zip(section["vpa"], (0.5, 1.0, 2.0)):
            assert at[margin] == pytest.approx((v[slack], v[over]), rel=1e-12)
            assert margin in v["dominated_by"]  # a tie dominates (<=): the goal needs more than VPA itself


# --- the command ------------------------------------------------------------------------------

OLD_KEYS = {
    "forecast": {"rmse_15m", "rmse_60m", "persistence_rmse_15m", "persistence_rmse_60m"},
    "rightsizing": {"slack_core_h", "requested_slack_core_h", "throttled_s", "vpa_slack_core_h", "vpa_throttled_s"},
    "bottleneck": {"precision", "recall"},
    "forecast_details": {"mem_rmse_15m", "mem_persistence_rmse_60m", "mape_15m", "persistence_mape_60m",
                         "q95_coverage_15m", "points_60m"},
    "rightsizing_details": {"requested_throttled_s", "mem_slack_gib_h", "requested_mem_slack_gib_h",
                            "vpa_mem_slack_gib_h", "mem_over_request_s", "vpa_mem_over_request_s",
                            "requested_mem_over_request_s", "scored_pod_s", "cpu_margin", "mem_margin",
                            "clairvoyant_slack_core_h", "clairvoyant_quantile"},
    "bottleneck_details": {"probability_threshold", "events", "decisions", "onset_precision", "onset_recall",
                           "onset_events"},
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("frontier")
    for seed in (1, 2, 3):
        assert cli.main(["trace", "synth", "--out", str(root / f"s{seed}"), "--hours", "4", "--warmup-hours", "2",
                         "--nodes", "10", "--workloads", "30", "--target-load", "0.8", "--seed", str(seed)]) == 0
    assert cli.main(["recommend", "--trace", str(root / "s3"), "--train-trace", str(root / "s1"),
                     "--train-trace", str(root / "s2"), "--model-dir", str(root / "m"),
                     "--json", str(root / "calibrated.json"), "--csv", str(root / "calibrated.csv")]) == 0
    return root


def test_margin_flag_changes_the_reported_point_and_keeps_the_keys(runs, capsys):
    calibrated = json.loads((runs / "calibrated.json").read_text())
    margin = 3.0 if calibrated["rightsizing_details"]["cpu_margin"] != 3.0 else 0.7
    capsys.readouterr()
    assert cli.main(["recommend", "--trace", str(runs / "s3"), "--model-dir", str(runs / "m"), "--margin", str(margin),
                     "--json", str(runs / "given.json"), "--csv", str(runs / "given.csv")]) == 0
    printed = capsys.readouterr().out
    given = json.loads((runs / "given.json").read_text())
    for doc in (calibrated, given):
        for section, keys in OLD_KEYS.items():
            assert keys <= set(doc[section]), section
        for section in ("forecast", "rightsizing", "bottleneck"):
            assert set(doc[section]) == OLD_KEYS[section]
    assert calibrated["rightsizing_details"]["cpu_margin_source"] == "calibrated"
    assert given["rightsizing_details"]["cpu_margin_source"] == "--margin"
    assert given["rightsizing_details"]["cpu_margin"] == margin
    assert given["rightsizing"]["slack_core_h"] != calibrated["rightsizing"]["slack_core_h"]
    assert given["rightsizing"]["vpa_slack_core_h"] == calibrated["rightsizing"]["vpa_slack_core_h"]
    at = next(m for m in given["rightsizing_frontier"]["margins"] if m["margin"] == margin)
    assert at["slack_core_h"] == given["rightsizing"]["slack_core_h"]
    assert given["rightsizing_frontier"] == calibrated["rightsizing_frontier"]
    assert len(given["rightsizing_frontier"]["vpa"]) == 3 and len(given["rightsizing_frontier"]["memory"]["vpa"]) == 3
    # the CSV's CPU requests follow the margin; memory keeps the calibrated one
    before = list(csv.DictReader((runs / "calibrated.csv").read_text().splitlines()))
    after = list(csv.DictReader((runs / "given.csv").read_text().splitlines()))
    changed = [(a, b) for a, b in zip(before, after) if a["source"] == "forecast"]
    assert changed and any(a["cpu_request_milli"] != b["cpu_request_milli"] for a, b in changed)
    assert all(a["memory_request_mib"] == b["memory_request_mib"] for a, b in zip(before, after))
    # the printed frontier block: one line per VPA percentile and resource
    assert f"reported CPU margin x{margin:g}, --margin" in printed
    lines = [ln for ln in printed.splitlines() if " VPA p" in ln]
    assert len(lines) == 6 and all("dominated" in ln for ln in lines)
    assert [ln.split()[2] for ln in lines[:3]] == ["p80", "p90", "p95"]


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "abc", ""])
def test_a_bad_margin_is_one_line_and_exit_2(tmp_path, capsys, value):
    try:  # argparse refuses it: its SystemExit carries the code
        code = cli.main(["recommend", "--trace", str(tmp_path / "t"), "--train-trace", str(tmp_path / "u"),
                         "--margin", value])
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and "--margin" in err and err.count("\n") == 1, err
    assert not list(tmp_path.iterdir())


def test_allocation_priced_trains_the_priced_rule_and_needs_training_traces(runs, capsys):
    out = runs / "priced.json"
    assert cli.main(["recommend", "--trace", str(runs / "s3"), "--train-trace", str(runs / "s1"),
                     "--train-trace", str(runs / "s2"), "--allocation", "priced", "--model-dir", str(runs / "mp"),
                     "--json", str(out)]) == 0
    priced = json.loads(out.read_text())["rightsizing_details"]
    calibrated = json.loads((runs / "calibrated.json").read_text())
    assert calibrated["rightsizing_details"]["allocation"] == "per_workload"
    assert priced["allocation"] == "priced" and priced["cpu_target_percentile"] is None
    assert priced["cpu_price"] == pytest.approx(priced["cpu_margin"] * 10_000.0)

    def memory(details):  # the histogram's memory and the forecast growth in effect: each rule's own
        return details["half_life_s"], details["long_weight"], details["growth_bounds"]

    assert memory(calibrated["rightsizing_details"]) == (3600.0, 0.05, [1.0, 1.5])
    assert memory(priced) == (900.0, 0.02, [1.0, 1.0])
    again = runs / "priced-again.json"  # the saved priced model reads back with its rule's memory and growth
    assert cli.main(["recommend", "--trace", str(runs / "s3"), "--model-dir", str(runs / "mp"),
                     "--json", str(again)]) == 0
    reread = json.loads(again.read_text())["rightsizing_details"]
    assert reread["allocation"] == "priced" and memory(reread) == memory(priced)
    assert reread["cpu_margin"] == priced["cpu_margin"]
    def vpa_points(doc):  # VPA is the same baseline whatever our rule; which margins dominate it differs
        return [(v["percentile"], v["slack_core_h"], v["throttled_s"]) for v in doc["rightsizing_frontier"]["vpa"]]

    assert vpa_points(json.loads(out.read_text())) == vpa_points(calibrated)
    capsys.readouterr()
    code = cli.main(["recommend", "--trace", str(runs / "s3"), "--model-dir", str(runs / "m"), "--allocation",
                     "priced"])
    err = capsys.readouterr().err
    assert code == 2 and "--allocation needs --train-trace" in err and err.count("\n") == 1, err
