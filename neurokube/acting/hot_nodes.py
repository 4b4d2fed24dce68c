"""The trained hot-node classifier, online: its features from what an actuator sees, one row per node.

``neurokube recommend --model-dir`` saves, beside the forecasts, a LightGBM classifier of "this
node's CPU use passes ``threshold`` (0.9) of its allocatable within 15 minutes"
(:mod:`neurokube.forecast.bottleneck`). It was trained on per-minute node series built from a whole
trace (:func:`~neurokube.forecast.bottleneck.node_features`). An actuator sees one minute at a
time, so this module keeps each node's last hour of utilisation and builds the same features
from it at every decision: the utilisation and requested share now, the 15-minute slope, the
time of day, the trailing mean, max and sample standard deviation over 5, 15 and 60 minutes, and
the node's forecast use (its pods' usage now times their workloads' 15-minute q50 and q95
forecast change) when the model was trained with it, and for the onset model (nodes at or below
the hot threshold now) the mean utilisation and requested share over all the nodes given.

Deviations from training, stated: the utilisation is the usage the actuator is shown (after
limits throttle it), not the demand; the forecast features use each pod's usage now rather
than its mean over the last 5-minute bin; and one row is one call of :meth:`HotNodes.features`,
so the windows count calls: the actuator calls it every ``interval_s``, which must then be the
models' 60-second step for the windows to mean minutes.

Pure: numpy and the model object.
"""

from __future__ import annotations

import numpy as np

from neurokube.forecast.bottleneck import BottleneckModel

WINDOWS = (5, 15, 60)


class HotNodes:
    """Each node's recent utilisation, and the classifier's warnings from it."""

    def __init__(self, model: BottleneckModel) -> None:
        self.model = model
        self.util = np.zeros((0, 0))  # (rows kept, nodes): the oldest first
        self.kept = max(WINDOWS) + 1

    def features(self, now_s: float, util: np.ndarray, requested: np.ndarray,
                 forecast50: np.ndarray, forecast95: np.ndarray) -> np.ndarray:
        """Record this decision's utilisation per node and return the (nodes, features) matrix."""
        n = len(util)
        if self.util.shape[1] != n:  # a changed node set: start afresh (the replay's nodes do not change)
            self.util = np.zeros((0, n))
        self.util = np.vstack([self.util, util[None, :]])[-self.kept:]
        h = self.util
        cols: dict[str, np.ndarray] = {"util": util, "requested": requested}
        cols["slope15"] = (util - h[-16]) / 15 if len(h) > 15 else np.full(n, np.nan)
        tod = (now_s % 86400) / 86400 * 2 * np.pi
        cols["tod_sin"], cols["tod_cos"] = np.full(n, np.sin(tod)), np.full(n, np.cos(tod))
        for w in WINDOWS:
            last = h[-w:]
            cols[f"mean{w}"], cols[f"max{w}"] = last.mean(axis=0), last.max(axis=0)
            cols[f"std{w}"] = last.std(axis=0, ddof=1) if len(last) > 1 else np.full(n, np.nan)
        cols["forecast50"], cols["forecast95"] = forecast50, forecast95
        cols["cluster_util"], cols["cluster_requested"] = np.full(n, util.mean()), np.full(n, requested.mean())
        return np.stack([cols[f] for f in self.model.settings.onset_feature_names()], axis=1)

    def warn(self, now_s: float, util: np.ndarray, requested: np.ndarray,
             forecast50: np.ndarray, forecast95: np.ndarray) -> np.ndarray:
        """Per node: the classifier predicts it passes its threshold within its look-ahead."""
        return self.model.warn(self.features(now_s, util, requested, forecast50, forecast95))
