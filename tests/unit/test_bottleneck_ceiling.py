"""The clairvoyant bound of hot-node warnings (``known_pod_warnings``): exact for the pods known at a
decision, blind to the pods placed later."""

from __future__ import annotations

import numpy as np
import pytest

from neurokube.errors import InputError
from neurokube.forecast.bottleneck import (
    BottleneckSettings,
    known_pod_warnings,
    lead_report,
    node_features,
    onset_leads,
)
from neurokube.forecast.series import node_series
from neurokube.trace.model import NodeTable, PodTable, ProfileTable, Trace

S = BottleneckSettings(use_forecasts=False)


def _trace() -> tuple[Trace, np.ndarray, np.ndarray]:
    """Node 0: pod 0 (bound at 0) uses 50 % of it for 40 minutes, then 100 % (its profile ramps).
    Node 1: pod 1 (bound at 0) uses 10 %; pod 2, created at minute 33 and bound at minute 38, 95 %."""
    ramp = np.r_[np.full(40, 0.5), np.full(60, 1.0)]
    flat = np.ones(100)
    n = 3
    pods = PodTable(
        name=np.array(["a", "b", "c"], object), namespace=np.array(["ns"] * n, object),
        workload=np.array(["w1", "w2", "w3"], object), qos=np.zeros(n, np.int8),
        cpu_request_milli=np.full(n, 100), memory_request_mib=np.full(n, 10),
        cpu_limit_milli=np.zeros(n, np.int64), memory_limit_mib=np.zeros(n, np.int64),
        creation_s=np.array([0.0, 0.0, 33 * 60.0]), duration_s=np.array([80 * 60.0, 80 * 60.0, 42 * 60.0]),
        profile=np.array([0, 1, 1], np.int32), profile_offset_s=np.zeros(n),
        cpu_scale_milli=np.array([1000.0, 100.0, 950.0]), memory_scale_mib=np.ones(n))
    profiles = ProfileTable(names=np.array(["ramp", "flat"], object), step_s=np.array([60.0, 60.0]),
                            start=np.array([0, 100]), length=np.array([100, 100]),
                            cpu=np.r_[ramp, flat], memory=np.ones(200))
    nodes = NodeTable(np.array(["n0", "n1"], object), np.array([1000, 1000]), np.array([1000, 1000]))
    return Trace("t", nodes, pods, profiles), np.array([0, 1, 1]), np.array([0.0, 0.0, 38 * 60.0])


def test_with_every_pod_known_the_warnings_are_the_labels():
    trace, node_of, bind_s = _trace()
    _, y, _ = node_features(node_series(trace, node_of, bind_s), S)
    assert y.any() and not y.all()
    np.testing.assert_array_equal(known_pod_warnings(trace, node_of, bind_s, S, known_s=np.full(3, -np.inf)),
                                  y.astype(bool))


def test_a_known_pods_ramp_is_caught_early_a_pod_placed_later_is_not():
    trace, node_of, bind_s = _trace()
    util = node_series(trace, node_of, bind_s).util
    leads = onset_leads(util, known_pod_warnings(trace, node_of, bind_s, S), S)
    # onsets in time order: node 1 at minute 38 (pod 2 arrives), node 0 at minute 40 (its own pod ramps)
    np.testing.assert_array_equal(leads, [np.nan, 10.0])
    pending = onset_leads(util, known_pod_warnings(trace, node_of, bind_s, S, known_s=trace.pods.creation_s), S)
    np.testing.assert_array_equal(pending, [3.0, 10.0])  # created at 33: known from the decision at 35
    assert lead_report(leads)["onset_recall_10m"] == 0.5


def test_mismatched_placements_are_refused():
    trace, node_of, bind_s = _trace()
    with pytest.raises(InputError):
        known_pod_warnings(trace, node_of, bind_s, S, known_s=np.zeros(2))
