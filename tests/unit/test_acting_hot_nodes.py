"""The hot-node classifier online (neurokube/acting/hot_nodes.py) against its training features."""

from __future__ import annotations

import numpy as np

from neurokube.acting.hot_nodes import HotNodes
from neurokube.forecast.bottleneck import BottleneckModel, BottleneckSettings, node_features
from neurokube.forecast.series import NodeSeries


class _Threshold:
    """A stand-in booster: the probability is the 5-minute mean utilisation (feature 5)."""

    def predict(self, X):
        return X[:, 5]


def test_online_features_equal_the_training_features_minute_by_minute():
    rng = np.random.default_rng(0)
    steps, n = 200, 3
    util = rng.uniform(0.2, 1.1, (steps, n))
    requested = rng.uniform(0.3, 0.9, (steps, n))
    settings = BottleneckSettings(use_forecasts=False, decision_steps=5, lead_steps=15)
    X, _, _ = node_features(NodeSeries(60, util, requested), settings)
    online = HotNodes(BottleneckModel(settings, None, 0.5))
    rows = []
    for k in range(steps):
        x = online.features((k + 1) * 60.0, util[k], requested[k], np.zeros(n), np.zeros(n))
        if k >= settings.decision_steps - 1 and (k + 1) % settings.decision_steps == 0 and k < steps - 15:
            rows.append(x)
    assert np.allclose(np.concatenate(rows), X, equal_nan=True)


def test_warn_uses_the_models_cut():
    settings = BottleneckSettings(use_forecasts=True)
    online = HotNodes(BottleneckModel(settings, _Threshold(), 0.9))
    for _ in range(5):
        warned = online.warn(0.0, np.array([0.5, 0.95]), np.array([0.5, 0.5]), np.ones(2), np.ones(2))
    assert warned.tolist() == [False, True]
