"""Replay simulator: invariants (never requests above allocatable, each pod bound at most once,
departure at binding + duration, FIFO arrival), agreement with the independent audit for every
policy, and the expected ordering of the peers on a realistic trace."""

import numpy as np
import pytest

from neurokube.policies import POLICY_NAMES, make_policy
from neurokube.policies.base import PodSpec
from neurokube.sim import SimConfig, replay
from neurokube.sim.audit import recompute, relative_errors
from neurokube.sim.engine import PolicyError
from neurokube.trace.model import NodeTable, PodTable, ProfileTable, Trace

CONFIG = SimConfig()


@pytest.fixture(scope="module")
def results(small_trace):
    return {name: replay(small_trace, make_policy(name, trace=small_trace, seed=1), CONFIG)
            for name in POLICY_NAMES}


def _requested_per_step(trace, r, step):
    """Requested CPU/memory per (node, step) rebuilt from the placements alone."""
    n_steps = int(r.end_s // step) + 1
    cpu = np.zeros((len(trace.nodes), n_steps))
    mem = np.zeros_like(cpu)
    for p in np.flatnonzero(r.node_of >= 0):
        k0 = int(r.bind_s[p] // step)
        k1 = k0 + int(np.ceil(trace.pods.duration_s[p] / step))
        cpu[r.node_of[p], k0:k1] += trace.pods.cpu_request_milli[p]
        mem[r.node_of[p], k0:k1] += trace.pods.memory_request_mib[p]
    return cpu, mem


@pytest.mark.parametrize("name", POLICY_NAMES)
def test_requests_never_exceed_allocatable(small_trace, results, name):
    cpu, mem = _requested_per_step(small_trace, results[name], CONFIG.step_s)
    assert (cpu <= small_trace.nodes.cpu_milli[:, None]).all()
    assert (mem <= small_trace.nodes.memory_mib[:, None]).all()


@pytest.mark.parametrize("name", POLICY_NAMES)
def test_binding_happens_after_creation_and_on_a_step(small_trace, results, name):
    r = results[name]
    bound = r.node_of >= 0
    assert bound.sum() + r.metrics["unscheduled_pods"] == len(small_trace.pods)
    assert (r.bind_s[bound] >= small_trace.pods.creation_s[bound] - 1e-9).all()
    assert (np.mod(r.bind_s[bound], CONFIG.step_s) == 0).all()
    assert np.isnan(r.bind_s[~bound]).all()


@pytest.mark.parametrize("name", POLICY_NAMES)
def test_metrics_match_independent_recomputation(small_trace, results, name):
    r = results[name]
    again = recompute(small_trace, r.node_of, r.bind_s, step_s=CONFIG.step_s, end_s=r.end_s)
    errors = relative_errors(r.metrics, again)
    assert max(errors.values()) <= 0.05, errors


def test_peers_order_as_expected(results):
    m = {k: v.metrics for k, v in results.items()}
    assert m["most-allocated"]["node_hours"] < m["default"]["node_hours"]
    assert m["tlp"]["contention_core_s"] < m["most-allocated"]["contention_core_s"]
    assert m["oracle"]["contention_core_s"] == min(x["contention_core_s"] for x in m.values())


def _tiny_trace(durations, creations, cpu=(1000,), nodes=(2000,)):
    n = len(durations)
    one = lambda v, dt=np.int64: np.full(n, v, dtype=dt)  # noqa: E731
    pods = PodTable(
        name=np.array([f"p{i}" for i in range(n)], dtype=object), namespace=np.array(["d"] * n, dtype=object),
        workload=np.array(["w"] * n, dtype=object), qos=one(1, np.int8),
        cpu_request_milli=np.resize(np.array(cpu, dtype=np.int64), n), memory_request_mib=one(10),
        cpu_limit_milli=one(0), memory_limit_mib=one(0), creation_s=np.asarray(creations, float),
        duration_s=np.asarray(durations, float), profile=one(0, np.int32), profile_offset_s=one(0.0, float),
        cpu_scale_milli=one(500.0, float), memory_scale_mib=one(5.0, float))
    profiles = ProfileTable(names=np.array(["c"], dtype=object), step_s=np.array([60.0]),
                            start=np.array([0]), length=np.array([1]), cpu=np.ones(1), memory=np.ones(1))
    node_table = NodeTable(name=np.array([f"n{i}" for i in range(len(nodes))], dtype=object),
                           cpu_milli=np.array(nodes, dtype=np.int64), memory_mib=np.full(len(nodes), 1000))
    return Trace("tiny", node_table, pods, profiles)


def test_departure_frees_capacity_at_binding_plus_duration():
    # Node fits two pods; the third waits until the first leaves at 0 + 120 s.
    trace = _tiny_trace([120, 600, 600], [0, 0, 0])
    r = replay(trace, make_policy("default", trace=trace), CONFIG)
    assert r.bind_s.tolist() == [0.0, 0.0, 120.0]
    assert r.metrics["pending_pod_s"] == 120.0
    # active for steps 0..10 (the last pod leaves at 720 s): 12 steps of 60 s
    assert r.metrics["node_hours"] == pytest.approx(12 * 60 / 3600)


def test_arrival_waits_for_the_next_step_and_never_fitting_pods_stay_unscheduled():
    trace = _tiny_trace([60, 60], [30, 0], cpu=(1000, 5000))
    r = replay(trace, make_policy("default", trace=trace), CONFIG)
    assert r.bind_s[0] == 60.0 and r.node_of[1] == -1
    assert r.metrics["unscheduled_pods"] == 1


def test_a_policy_choosing_an_infeasible_node_is_an_error():
    class Bad:
        name = "bad"

        def select(self, pod: PodSpec, view):
            return 0

    trace = _tiny_trace([60, 60, 60], [0, 0, 0], nodes=(2000, 2000))  # the third pod fits only n1
    with pytest.raises(PolicyError, match="does not fit"):
        replay(trace, Bad(), CONFIG)


def test_same_seed_same_result(small_trace):
    a = replay(small_trace, make_policy("random", trace=small_trace, seed=5), CONFIG)
    b = replay(small_trace, make_policy("random", trace=small_trace, seed=5), CONFIG)
    np.testing.assert_array_equal(a.node_of, b.node_of)


def test_load_aware_policies_see_metrics_with_a_lag():
    from neurokube.sim.observe import MetricsWindow

    w = MetricsWindow(1, SimConfig())
    for t in range(0, 600, 60):
        w.record(float(t), np.array([float(t)]), np.array([0.0]))
    metrics, newest = w.view(600.0)
    assert newest == 540.0  # the sample of [540, 600) is readable at 600
    assert metrics.cpu_mean[0] == pytest.approx(np.mean([300, 360, 420, 480, 540]))
    assert metrics.cpu_trend[0] == pytest.approx(1.0)
    assert metrics.age_s[0] == 60.0
