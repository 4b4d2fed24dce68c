"""The forecast pipeline on small synthetic traces (train on two seeds, evaluate on a third).

* Node series recomputed from placements equal the simulator's recorded node CPU.
* Workload series are the pod-seconds-weighted mean per running pod.
* Bottleneck labels look 15 steps ahead and features only back (hand-made node series).
* Trained models round-trip through their text bundle (no pickle) with identical forecasts.
* A workload never seen in training (renamed) gets finite, positive recommendations from its
  own recent series; a workload with no history at all gets the request as written.
* The report has every key, and the q95 forecast lies above the median.
"""

import json
from dataclasses import replace

import numpy as np
import pytest

from neurokube.errors import InputError
from neurokube.forecast.bottleneck import (
    BottleneckSettings,
    node_features,
    node_forecasts,
)
from neurokube.forecast.evaluation import (
    Recommender,
    RecommenderSettings,
    evaluate,
    prepare,
    recommendations,
    train,
)
from neurokube.forecast.models import ForecastSettings
from neurokube.forecast.series import (
    NodeSeries,
    PodSamples,
    node_series,
    pod_samples,
    workload_series,
)
from neurokube.policies import make_policy
from neurokube.sim import SimConfig, replay
from neurokube.trace.assemble import ArrivalSettings
from neurokube.trace.synth import SynthSettings, synth_trace

FAST = RecommenderSettings(forecast=ForecastSettings(num_boost_round=20),
                           bottleneck=BottleneckSettings(num_boost_round=20))


def _trace(seed, name=None):
    return synth_trace(name or f"s{seed}", SynthSettings(
        arrivals=ArrivalSettings(hours=6, target_load=0.8, warmup_hours=3, seed=seed), nodes=10, workloads=40))


def _data(trace, record=False):
    r = replay(trace, make_policy("default", trace=trace), SimConfig(), record=record)
    return prepare(trace, r.node_of, r.bind_s), r


@pytest.fixture(scope="module")
def trained():
    return train([_data(_trace(1))[0], _data(_trace(2))[0]], FAST)


def test_node_series_equal_the_replay():
    trace = _trace(2)
    data, r = _data(trace, record=True)
    ns = node_series(trace, r.node_of, r.bind_s)
    n = ns.util.shape[0]
    np.testing.assert_allclose(ns.util * trace.nodes.cpu_milli, r.node_cpu[:n], atol=0.05)
    assert not r.node_cpu[n:].any()


def test_workload_series_is_the_mean_per_running_pod():
    trace = _trace(1)
    data, r = _data(trace)
    s = pod_samples(trace, r.bind_s)
    ws = workload_series(trace, s)
    # recompute one (workload, bin) cell by hand
    w, b = np.argwhere(ws.pods > 1)[0]
    from neurokube.forecast.series import workload_keys
    _, wid = workload_keys(trace)
    cell = (wid[s.pod] == w) & (s.bin == b)
    assert ws.cpu[w, b] == pytest.approx((s.cpu[cell] * s.run_s[cell]).sum() / s.run_s[cell].sum())
    assert ws.pods[w, b] == pytest.approx(s.run_s[cell].sum() / 300)


def test_bottleneck_labels_look_ahead_and_features_look_back():
    util = np.full((60, 1), 0.5)
    util[40, 0] = 0.95  # one hot minute at step 40
    X, y, now = node_features(NodeSeries(60, util, util),
                              BottleneckSettings(decision_steps=5, lead_steps=15, use_forecasts=False))
    steps = np.arange(4, 60 - 15, 5)  # decisions at steps 4, 9, ..., 44
    np.testing.assert_array_equal(y, ((steps + 1 <= 40) & (40 <= steps + 15)).astype(int))
    assert (now == 0.5).all()  # the features of those decisions never saw the hot minute
    assert X[:, 0].max() == 0.5


def test_node_forecast_scales_running_pods_by_their_workload_growth():
    # two pods of workload 0 on node 0 in bin 0 (100 m and 300 m, mean 200 m); workload 0 is
    # forecast to grow to 300 m per pod (x1.5); one pod of workload 1 on node 1 with no forecast
    samples = PodSamples(pod=np.array([0, 1, 2]), bin=np.zeros(3, int), cpu=np.array([100.0, 300.0, 50.0]),
                         mem=np.zeros(3), run_s=np.full(3, 300.0))
    level = np.array([[200.0], [50.0]])
    forecast = np.array([[300.0], [np.nan]])
    f = node_forecasts(samples, np.array([0, 0, 1]), np.array([0, 0, 1]), level, forecast, np.array([1000.0, 100.0]))
    np.testing.assert_allclose(f, [[0.6, 0.5]])


def test_models_round_trip_through_text(trained):
    files = trained.to_texts()
    assert "manifest.json" in files and all(not v.startswith("\x80") for v in files.values())
    again = Recommender.from_texts(files)
    data, _ = _data(_trace(3))
    for key in trained.forecast.boosters:
        np.testing.assert_allclose(trained.forecast.predict(data.series, *key),
                                   again.forecast.predict(data.series, *key))
    assert again.cpu_margin == trained.cpu_margin and again.bottleneck.probability_threshold == \
        trained.bottleneck.probability_threshold
    assert again.settings.rightsizing == trained.settings.rightsizing


def test_a_bundle_of_format_2_reads_its_margins_as_percentiles_and_format_1_is_refused(trained):
    files = trained.to_texts()
    manifest = json.loads(files["manifest.json"])
    manifest["format_version"] = 2
    for key in ("allocation", "price_unit_cpu_milli", "price_unit_mem_mib"):
        del manifest["rightsizing"][key]
    old = Recommender.from_texts({**files, "manifest.json": json.dumps(manifest)})
    assert old.settings.rightsizing.allocation == "per_workload" and old.cpu_margin == trained.cpu_margin
    manifest["format_version"] = 1
    with pytest.raises(InputError, match="format_version 1"):
        Recommender.from_texts({**files, "manifest.json": json.dumps(manifest)})


def test_unseen_workloads_get_sensible_recommendations(trained):
    trace = _trace(3)
    p = trace.pods
    renamed = replace(trace, pods=replace(p, workload=np.array([f"new-{w}" for w in p.workload], dtype=object)))
    data, _ = _data(renamed)
    rows = recommendations(trained, data)
    assert len(rows) == len(data.series.keys)
    seen = [r for r in rows if r["source"] == "forecast"]
    assert seen and all(r["workload"].startswith("new-") for r in rows)
    for r in seen:
        i = list(data.series.keys).index(f"{r['namespace']}/{r['workload']}")
        peak = np.nanmax(data.series.cpu[i])
        assert 0 < r["cpu_request_milli"] <= 20 * max(peak, 25) and r["memory_request_mib"] > 0


def test_report_has_every_key_and_quantiles_are_ordered(trained):
    data, _ = _data(_trace(3))
    report = evaluate(trained, data)
    for k in ("rmse_15m", "rmse_60m", "persistence_rmse_15m", "persistence_rmse_60m"):
        assert np.isfinite(report["forecast"][k])
    for k in ("slack_core_h", "requested_slack_core_h", "throttled_s", "vpa_slack_core_h", "vpa_throttled_s"):
        assert report["rightsizing"][k] >= 0
    assert 0 <= report["bottleneck"]["precision"] <= 1 and 0 <= report["bottleneck"]["recall"] <= 1
    q50 = trained.forecast.predict(data.series, "cpu", 60, 0.5)
    q95 = trained.forecast.predict(data.series, "cpu", 60, 0.95)
    ok = np.isfinite(q50)
    assert np.mean(q95[ok] >= q50[ok]) > 0.9
