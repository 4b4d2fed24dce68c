"""Forecast features use the past only.

* Changing every value after bin ``t`` leaves the feature rows of bins ``<= t`` unchanged (no
  leakage), for random series with gaps.
* Targets are the value ``h`` bins later; lags and the scale are what they say on hand-made input.
"""

import numpy as np
import pytest

from neurokube.forecast.features import FeatureSettings, feature_names, series_features, targets, trailing_scale


def _series(seed=0, w=5, b=60):
    rng = np.random.default_rng(seed)
    x = rng.gamma(2.0, 100.0, (w, b))
    x[rng.random((w, b)) < 0.2] = np.nan  # bins where no pod ran
    pods = np.where(np.isfinite(x), rng.integers(1, 5, (w, b)), 0).astype(float)
    return x, pods, np.array([500.0, 0.0, 250.0, 1000.0, 100.0])


@pytest.mark.parametrize("t", [0, 5, 30, 58])
def test_changing_the_future_leaves_features_unchanged(t):
    x, pods, req = _series()
    before = series_features(x, pods, req, 300)
    x2, pods2 = x.copy(), pods.copy()
    rng = np.random.default_rng(1)
    x2[:, t + 1:] = rng.gamma(5.0, 400.0, x2[:, t + 1:].shape)  # a different future
    pods2[:, t + 1:] = 7
    after = series_features(x2, pods2, req, 300)
    np.testing.assert_array_equal(np.isnan(before[:, :t + 1]), np.isnan(after[:, :t + 1]))
    np.testing.assert_allclose(before[:, :t + 1], after[:, :t + 1], equal_nan=True)
    assert not np.allclose(before[:, t + 1:], after[:, t + 1:], equal_nan=True)


def test_lags_targets_and_scale_on_a_hand_made_series():
    x = np.array([[100.0, 200.0, 300.0, np.nan, 500.0]])
    s = FeatureSettings(lags=(1, 2), windows=(2,), scale_bins=2)
    f = series_features(x, np.ones_like(x), np.array([1000.0]), 300, s)
    names = feature_names(s)
    scale = trailing_scale(x, s)
    np.testing.assert_allclose(scale[0], [100, 150, 250, 300, 500])
    np.testing.assert_allclose(f[0, 2, names.index("lag1")] * scale[0, 2], 200)
    np.testing.assert_allclose(f[0, 2, names.index("lag2")] * scale[0, 2], 100)
    assert np.isnan(f[0, 1, names.index("lag2")])
    np.testing.assert_allclose(f[0, 2, names.index("last_over_request")], 0.3)
    np.testing.assert_allclose(targets(x, 2)[0], [300, np.nan, 500, np.nan, np.nan])
