"""Hot-node warnings (neurokube/forecast/bottleneck.py): onset leads, the two models' split, the saved format."""

from __future__ import annotations

import json

import numpy as np
import pytest

from neurokube.errors import InputError
from neurokube.forecast.bottleneck import (
    BottleneckModel,
    BottleneckSettings,
    best_f1_threshold,
    best_fbeta_threshold,
    decision_steps,
    fit_bottleneck,
    lead_report,
    node_features,
    node_peaks,
    onset_leads,
)
from neurokube.forecast.series import NodeSeries

SETTINGS = BottleneckSettings(use_forecasts=False)


def _warned_at(util: np.ndarray, times: set[int]) -> np.ndarray:
    """Rows of node_features on ``util`` (one node): warned at decision times ``t = k + 1`` in ``times``."""
    k = decision_steps(len(util), SETTINGS)
    return np.isin(k + 1, list(times))


def test_onset_lead_is_minutes_from_the_earliest_warning_in_the_window_to_the_first_hot_step():
    util = np.full((80, 1), 0.5)
    util[40, 0] = 0.95  # the onset: decisions at t = 30, 35, 40 look ahead over step 40
    util[50, 0] = 0.95  # hot again 10 steps later: not a new onset
    cases = {frozenset(): np.nan, frozenset({30}): 10.0, frozenset({35}): 5.0, frozenset({40}): 0.0,
             frozenset({30, 35}): 10.0, frozenset({25}): np.nan, frozenset({45}): np.nan}
    for times, lead in cases.items():
        leads = onset_leads(util, _warned_at(util, set(times)), SETTINGS)
        np.testing.assert_array_equal(leads, [lead], err_msg=str(sorted(times)))


def test_lead_report_counts_only_warnings_at_least_ten_minutes_ahead():
    rep = lead_report(np.array([12.0, 10.0, 5.0, np.nan]))
    assert rep["onset_events_lead"] == 4
    assert rep["onset_recall_10m"] == 0.5 and rep["onset_recall_any_lead"] == 0.75
    assert rep["onset_median_lead_min"] == 10.0
    empty = lead_report(np.zeros(0))
    assert empty["onset_events_lead"] == 0 and np.isnan(empty["onset_recall_10m"])


def test_fbeta_above_one_moves_the_cut_towards_recall():
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    y = np.array([1, 1, 0, 0, 1])
    assert best_f1_threshold(p, y) == 0.8  # F1: 2 of 3 events in 2 warnings
    assert best_fbeta_threshold(p, y, 2.0) == 0.5  # F2: every event, at 3 of 5


class _Column:
    """A stand-in booster: its score is column ``i``."""

    def __init__(self, i: int) -> None:
        self.i = i

    def predict(self, X):
        return X[:, self.i]


def test_nodes_above_the_threshold_now_are_warned_by_the_classifier_the_others_by_the_onset_model():
    s = BottleneckSettings(use_forecasts=False)
    n = len(s.onset_feature_names())
    X = np.zeros((4, n))
    X[:, 0] = [0.95, 0.95, 0.5, 0.5]  # use now
    X[:, 1] = [0.9, 0.1, 0.9, 0.1]  # the classifier's score (requested share column)
    X[:, -1] = [0.1, 0.9, 0.1, 0.9]  # the onset model's predicted peak (last column)
    model = BottleneckModel(s, _Column(1), 0.5, _Column(n - 1), 0.8)
    assert model.warn(X).tolist() == [True, False, False, True]
    without = BottleneckModel(s, _Column(1), 0.5)  # no onset model: the classifier warns every node
    assert without.warn(X).tolist() == [True, False, True, False]


def _series(seed: int, steps: int = 720, nodes: int = 12) -> NodeSeries:
    """Nodes that ramp up for 20 minutes before running hot; requested share leads the ramp."""
    rng = np.random.default_rng(seed)
    util = 0.4 + 0.05 * rng.standard_normal((steps, nodes))
    requested = np.full((steps, nodes), 0.5)
    for j in range(nodes):
        for start in rng.choice(np.arange(60, steps - 60), 4, replace=False):
            util[start:start + 20, j] += np.linspace(0.0, 0.45, 20)
            util[start + 20:start + 30, j] = 0.97
            requested[start - 10:start + 30, j] = 0.9
    return NodeSeries(60, np.clip(util, 0.0, None), requested)


def test_fit_gives_an_onset_model_that_warns_new_bottlenecks_and_round_trips():
    model = fit_bottleneck([_series(1), _series(2)], SETTINGS)
    assert model.onset_booster is not None and np.isfinite(model.onset_threshold)
    X, y, now = node_features(_series(3), SETTINGS)
    assert X.shape[1] == len(SETTINGS.onset_feature_names())
    warned = model.warn(X)
    onset = now <= SETTINGS.threshold
    assert warned[onset & (y == 1)].mean() > 0.5  # the ramps are visible: most onsets are warned
    assert warned[onset & (y == 0)].mean() < 0.2
    again = BottleneckModel.from_texts(model.to_texts())
    np.testing.assert_array_equal(again.warn(X), warned)
    assert again.onset_threshold == model.onset_threshold


def test_no_onset_to_learn_leaves_the_classifier_warning_every_node():
    util = np.full((400, 3), 0.5)
    util[:, 0] = 0.95  # node 0 runs hot throughout: events, but never a new one
    series = NodeSeries(60, util, np.full_like(util, 0.5))
    _, y, now = node_features(series, SETTINGS)
    np.testing.assert_array_equal(node_peaks(series, SETTINGS) > SETTINGS.threshold, y.astype(bool))
    assert y.sum() > 0 and y[now <= SETTINGS.threshold].sum() == 0
    model = fit_bottleneck([series], SETTINGS)
    assert model.onset_booster is None and "bottleneck_onset.txt" not in model.to_texts()
    again = BottleneckModel.from_texts(model.to_texts())
    assert again.onset_booster is None and np.isnan(again.onset_threshold)


def test_a_format_1_bundle_fails_with_a_clear_input_error():
    model = fit_bottleneck([_series(1), _series(2)], SETTINGS)
    files = model.to_texts()
    manifest = json.loads(files["bottleneck_manifest.json"])
    manifest["format_version"] = 1
    files["bottleneck_manifest.json"] = json.dumps(manifest)
    with pytest.raises(InputError, match="another format") as err:
        BottleneckModel.from_texts(files)
    assert "retrain with --train-trace" in str(err.value) and "\n" not in str(err.value)
