"""Metrics on tiny hand-made series: RMSE, MAPE above 5 % utilisation only, q95 coverage,
precision/recall, and the right-sizing outcome (slack, throttled and over-request time)."""

import numpy as np
import pytest

from neurokube.forecast.metrics import coverage, mape, precision_recall, rmse
from neurokube.forecast.rightsizing import Scored, limits, outcome, per_sample
from neurokube.forecast.series import PodSamples


def test_rmse_ignores_missing_pairs():
    assert rmse(np.array([1.0, 2.0, np.nan]), np.array([1.0, 4.0, 3.0])) == pytest.approx(np.sqrt(2.0))
    assert np.isnan(rmse(np.array([np.nan]), np.array([1.0])))


def test_mape_only_above_five_percent_of_the_request():
    pred = np.array([110.0, 1.0, 45.0])
    actual = np.array([100.0, 2.0, 50.0])  # 2 m of a 1000 m request is 0.2 %: left out
    ref = np.array([1000.0, 1000.0, 1000.0])
    assert mape(pred, actual, ref) == pytest.approx((0.1 + 0.1) / 2)


def test_coverage_and_precision_recall():
    assert coverage(np.array([1.0, 2.0, 3.0, 4.0]), np.array([0.5, 2.5, 3.0, 5.0])) == 0.5
    p, r = precision_recall(np.array([1, 1, 0, 0], bool), np.array([1, 0, 1, 0], bool))
    assert (p, r) == (0.5, 0.5)
    assert precision_recall(np.zeros(3, bool), np.zeros(3, bool)) == (1.0, 1.0)


def test_outcome_slack_and_time_above_request():
    s = PodSamples(pod=np.array([0, 0, 1]), bin=np.array([12, 13, 12]), cpu=np.array([500.0, 1500.0, 0.0]),
                   mem=np.array([100.0, 100.0, 300.0]), run_s=np.array([300.0, 300.0, 60.0]))
    scored = Scored(s, np.zeros(3, int), np.ones(3, int), np.full(3, 1000.0), np.full(3, 200.0))
    o = outcome(scored, scored.cpu_written, scored.mem_written)
    # slack: (1000-500) x 300 + 0 + 1000 x 60 milli-s = 210,000 milli-s = 0.0583 core-h
    assert o["slack_core_h"] == pytest.approx(210_000 / 1000 / 3600)
    assert o["throttled_s"] == 300.0  # the 1500 m sample
    assert o["mem_over_request_s"] == 60.0  # 300 MiB over a 200 MiB request
    assert o["mem_slack_gib_h"] == pytest.approx((100 * 300 + 100 * 300) / 1024 / 3600)


def test_no_history_falls_back_to_vpa_then_to_the_request_as_written():
    s = PodSamples(pod=np.array([0, 1, 2]), bin=np.array([12, 12, 12]), cpu=np.ones(3), mem=np.ones(3),
                   run_s=np.full(3, 300.0))
    scored = Scored(s, np.array([0, 1, 2]), np.ones(3, int), np.array([100.0, 200.0, 300.0]), np.ones(3))
    rec = np.array([[np.nan, 50.0], [np.nan, np.nan], [np.nan, np.nan]])
    vpa = np.array([[np.nan, 70.0], [np.nan, 80.0], [np.nan, np.nan]])
    np.testing.assert_allclose(per_sample(rec, vpa, scored, scored.cpu_written), [50.0, 80.0, 300.0])


def test_limits_keep_the_written_ratio():
    np.testing.assert_allclose(limits(np.array([500.0, 500.0, 500.0]), np.array([1000.0, 1000.0, 0.0]),
                                      np.array([2000.0, 0.0, 0.0])), [1000.0, 0.0, 0.0])
