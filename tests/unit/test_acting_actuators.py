"""VPA in place and NeuroKube's actuator on hand-made views (neurokube/acting/)."""

from __future__ import annotations

import numpy as np
import pytest

from neurokube.acting.base import ActuatorView, Evict, Resize, RunningPods, qos_class, resized
from neurokube.acting.neurokube_actuator import NeuroKubeActuator, NeuroKubeActuatorArgs
from neurokube.acting.vpa_inplace import VpaInPlace, VpaInPlaceArgs
from neurokube.forecast.vpa import VpaSettings
from neurokube.policies.base import BEST_EFFORT, BURSTABLE, GUARANTEED, NodeMetrics


def pods(node, workload, cpu_req, cpu_use, *, cpu_lim=None, mem_req=None, mem_lim=None, mem_use=None,
         priority=None, controlled=None, started=None, waiting=None) -> RunningPods:
    n = len(node)

    def arr(v, default, dt):
        return np.asarray(default if v is None else v, dtype=dt) * np.ones(n, dtype=dt)

    return RunningPods(
        pod=np.arange(n, dtype=np.int64), node=np.asarray(node, np.int64), workload=np.asarray(workload, np.int64),
        qos=np.full(n, BURSTABLE, np.int8), priority=arr(priority, 0, np.int64), controlled=arr(controlled, True, bool),
        cpu_request=np.asarray(cpu_req, np.int64), memory_request=arr(mem_req, 100, np.int64),
        cpu_limit=arr(cpu_lim, 0, np.int64), memory_limit=arr(mem_lim, 0, np.int64),
        cpu_usage=np.asarray(cpu_use, float), memory_usage=arr(mem_use, 50.0, float),
        started_s=arr(started, 0.0, float), resize_waiting_s=arr(waiting, np.nan, float))


def view(now, running, alloc_cpu, *, alloc_mem=None, workloads=None, budget=1) -> ActuatorView:
    n = len(alloc_cpu)
    alloc_mem = np.asarray(alloc_mem if alloc_mem is not None else [100_000] * n, np.int64)
    w = int(running.workload.max()) + 1 if workloads is None else workloads
    return ActuatorView(
        now_s=now, alloc_cpu=np.asarray(alloc_cpu, np.int64), alloc_mem=alloc_mem,
        req_cpu=np.bincount(running.node, weights=running.cpu_request, minlength=n).astype(np.int64),
        req_mem=np.bincount(running.node, weights=running.memory_request, minlength=n).astype(np.int64),
        metrics=NodeMetrics.empty(n), pods=running, unavailable=np.zeros(w, np.int64),
        max_unavailable=np.full(w, budget, np.int64), pending=0)


# --- the shared helpers -----------------------------------------------------------------------

def test_qos_class_and_resized_keep_the_class():
    assert qos_class(0, 0, 0, 0) == BEST_EFFORT
    assert qos_class(500, 100, 500, 100) == GUARANTEED
    assert qos_class(0, 0, 500, 100) == GUARANTEED  # requests default to limits
    assert qos_class(500, 100, 1000, 0) == BURSTABLE
    g = resized(1, 800, 200, (500, 100, 500, 100), "x")
    assert (g.cpu_limit_milli, g.memory_limit_mib) == (800, 200)
    b = resized(1, 800, 200, (500, 100, 1000, 0), "x")
    assert (b.cpu_limit_milli, b.memory_limit_mib) == (1600, 0)  # the ratio 2 kept; no limit stays none


# --- VPA in place --------------------------------------------------------------------------------

def feed(vpa, running, times):
    for t in times:
        vpa.observe(t, running)


def test_vpa_target_is_the_p90_bucket_end_plus_the_margin():
    vpa = VpaInPlace(VpaInPlaceArgs())
    running = pods([0, 0], [0, 0], [100, 100], [400.0, 400.0])
    feed(vpa, running, np.arange(0, 3600, 60))
    rec = vpa.recommendation(3600.0)
    edges = VpaSettings().cpu.edges()
    end = edges[np.searchsorted(edges, 400.0, side="right")]  # the end of the bucket holding 400
    assert rec["cpu_target"][0] == pytest.approx(end * 1.15)
    # one hour of history: the upper bound is wide (1 + 1/d), the lower close to p50 x 1.15
    assert rec["cpu_upper"][0] > 20 * rec["cpu_target"][0]
    assert rec["cpu_lower"][0] == pytest.approx(end * 1.15 * (1 + 0.001 * 24) ** -2)


def test_vpa_resizes_a_pod_below_its_lower_bound_and_leaves_single_replicas_alone():
    vpa = VpaInPlace(VpaInPlaceArgs())
    running = pods([0, 0, 1], [0, 0, 1], [100, 100, 100], [400.0, 400.0, 400.0], cpu_lim=[200, 200, 200])
    feed(vpa, running, np.arange(0, 3600, 60))
    actions = vpa.act(view(3600.0, running, [4000, 4000]))
    assert {a.pod for a in actions} == {0, 1}  # workload 1 has one replica (< min_replicas 2)
    a = actions[0]
    assert isinstance(a, Resize) and a.cpu_request_milli > 400 and a.cpu_limit_milli == 2 * a.cpu_request_milli
    one = VpaInPlace(VpaInPlaceArgs(min_replicas=1))
    feed(one, running, np.arange(0, 3600, 60))
    assert {a.pod for a in one.act(view(3600.0, running, [4000, 4000]))} == {0, 1, 2}


def test_vpa_recreates_when_in_place_cannot_or_waited_too_long():
    vpa = VpaInPlace(VpaInPlaceArgs(min_replicas=1))
    running = pods([0, 1, 2], [0, 1, 2], [100, 100, 0], [400.0, 400.0, 400.0], mem_req=[100, 100, 0],
                   waiting=[np.nan, 3600.0 - 301, np.nan])
    feed(vpa, running, np.arange(0, 3600, 60))
    actions = {a.pod: a for a in vpa.act(view(3600.0, running, [4000, 4000, 300]))}
    assert isinstance(actions[0], Resize)
    assert isinstance(actions[1], Evict) and actions[1].reason == "vpa: resize deferred"
    assert isinstance(actions[2], Evict) and actions[2].reason == "vpa: resize infeasible"  # no requests: QoS
    assert actions[1].recreate_with[0] == actions[0].cpu_request_milli


def test_vpa_evicts_at_most_its_tolerance_of_a_workload_per_round():
    vpa = VpaInPlace(VpaInPlaceArgs())
    running = pods([0] * 4, [0] * 4, [100] * 4, [400.0] * 4, waiting=[0.0] * 4)
    feed(vpa, running, np.arange(0, 3600, 60))
    actions = vpa.act(view(3600.0, running, [4000]))
    assert sum(isinstance(a, Evict) for a in actions) == 2  # half of 4 replicas


def test_vpa_args_are_validated():
    with pytest.raises(ValueError):
        VpaInPlaceArgs(lower_percentile=0.95, target_percentile=0.9)
    with pytest.raises(ValueError):
        VpaInPlaceArgs(eviction_tolerance=0)


# --- NeuroKube's actuator (no model: a workload's level is its pods' usage now) ------------------

def test_neurokube_raises_an_under_requested_pod_and_keeps_its_limit():
    act = NeuroKubeActuator(NeuroKubeActuatorArgs(margin=1.0, downsize=False), None)
    running = pods([0, 1], [0, 1], [100, 1000], [600.0, 900.0], cpu_lim=[2000, 0])
    act.observe(0.0, running)
    actions = act.act(view(60.0, running, [4000, 4000]))
    assert len(actions) == 1 and isinstance(actions[0], Resize)
    r = actions[0]
    assert (r.pod, r.cpu_request_milli, r.cpu_limit_milli) == (0, 600, 2000)
    assert act.fallbacks == 2  # both workloads used the no-model level


def test_neurokube_lowers_an_over_requested_pod_unless_its_node_is_predicted_hot():
    act = NeuroKubeActuator(NeuroKubeActuatorArgs(margin=1.0, hot_threshold=0.9, downsize=True), None)
    running = pods([0, 1, 1], [0, 1, 2], [2000, 2000, 2000], [500.0, 500.0, 3400.0])
    act.observe(0.0, running)
    actions = act.act(view(60.0, running, [4000, 4000]))
    lowered = {a.pod: a.cpu_request_milli for a in actions if isinstance(a, Resize) and a.cpu_request_milli < 2000}
    assert lowered == {0: 500}  # pod 1 sits on node 1, predicted at 3,900 of 4,000 (hot)


def test_neurokube_relieves_a_node_predicted_over_capacity_with_the_lowest_priority_youngest_pod():
    act = NeuroKubeActuator(NeuroKubeActuatorArgs(margin=1.0, max_evictions=1.0, victim="smallest"), None)
    # node 0: 5,000 of 4,000 predicted; pods 0-2 there; node 1 has room
    running = pods([0, 0, 0, 1], [0, 1, 2, 3], [1000, 1000, 1000, 500], [2000.0, 1500.0, 1500.0, 100.0],
                   priority=[10, 0, 0, 0], started=[0.0, 0.0, 30.0, 0.0])
    act.observe(0.0, running)
    actions = act.act(view(60.0, running, [4000, 4000]))
    evicted = [a.pod for a in actions if isinstance(a, Evict)]
    assert evicted == [2]  # pod 0 has a higher priority; pods 1 and 2 both cover 1,000; pod 2 is younger
    again = act.act(view(120.0, running, [4000, 4000]))
    assert not [a for a in again if isinstance(a, Evict)]  # the node's cooldown (600 s)


def test_neurokube_never_evicts_without_room_elsewhere_or_past_its_budget():
    running = pods([0, 0], [0, 1], [2000, 2000], [2500.0, 2500.0])
    full = NeuroKubeActuator(NeuroKubeActuatorArgs(margin=1.0, max_evictions=1.0), None)
    full.observe(0.0, running)
    assert not [a for a in full.act(view(60.0, running, [4000, 1000])) if isinstance(a, Evict)]
    spent = NeuroKubeActuator(NeuroKubeActuatorArgs(margin=1.0, max_evictions=0.0), None)
    spent.observe(0.0, running)
    assert not [a for a in spent.act(view(60.0, running, [4000, 4000])) if isinstance(a, Evict)]
    uncontrolled = NeuroKubeActuator(NeuroKubeActuatorArgs(margin=1.0, max_evictions=1.0), None)
    loose = pods([0, 0], [0, 1], [2000, 2000], [2500.0, 2500.0], controlled=[False, False])
    uncontrolled.observe(0.0, loose)
    assert not [a for a in uncontrolled.act(view(60.0, loose, [4000, 4000])) if isinstance(a, Evict)]


def test_neurokube_destination_usage_needs_room_for_the_victims_usage_elsewhere():
    # node 0: 5,000 of 4,000 predicted; node 1 has request room (1,000 of 4,000 requested) but uses 3,000
    running = pods([0, 0, 1], [0, 1, 2], [1000, 1000, 1000], [2500.0, 2500.0, 3000.0])

    def evictions(destination, alloc):
        act = NeuroKubeActuator(NeuroKubeActuatorArgs(margin=1.0, max_evictions=1.0, downsize=False,
                                                      destination=destination, hot_threshold=0.9), None)
        act.observe(0.0, running)
        return [a.pod for a in act.act(view(60.0, running, alloc)) if isinstance(a, Evict)]

    # node 1 at 3,000 of 4,000 is not predicted hot (0.9 x 4,000 = 3,600): requests alone let a pod go there
    assert evictions("requests", [4000, 4000]) in ([0], [1])
    # but 600 of usage room below its hot threshold cannot take 2,500: the eviction would move the overflow
    assert evictions("usage", [4000, 4000]) == []
    # a bigger node 1 (0.9 x 8,000 - 3,000 = 4,200 of room) can
    assert evictions("usage", [4000, 8000]) in ([0], [1])


def test_neurokube_evict_while_pending_false_waits_for_an_empty_queue():
    running = pods([0, 0, 1], [0, 1, 2], [1000, 1000, 500], [2500.0, 2500.0, 100.0])

    def evictions(evict_while_pending, pending):
        act = NeuroKubeActuator(NeuroKubeActuatorArgs(margin=1.0, max_evictions=1.0, downsize=False,
                                                      evict_while_pending=evict_while_pending), None)
        act.observe(0.0, running)
        v = view(60.0, running, [4000, 4000])
        v.pending = pending
        return [a.pod for a in act.act(v) if isinstance(a, Evict)]

    assert evictions(True, 3)
    assert evictions(False, 0)
    assert evictions(False, 3) == []


def test_neurokube_args_are_validated():
    with pytest.raises(ValueError):
        NeuroKubeActuatorArgs(refresh_s=100)
    with pytest.raises(ValueError):
        NeuroKubeActuatorArgs(max_evictions=2)
    with pytest.raises(ValueError, match="destination"):
        NeuroKubeActuatorArgs(destination="anywhere")


def test_neurokube_leaves_guaranteed_pods_alone():
    act = NeuroKubeActuator(NeuroKubeActuatorArgs(margin=1.0), None)
    running = pods([0, 0], [0, 1], [2000, 500], [300.0, 1500.0], cpu_lim=[2000, 500], mem_req=[100, 100],
                   mem_lim=[100, 100])
    act.observe(0.0, running)
    assert act.act(view(60.0, running, [4000])) == []  # their limits would have to follow their requests


def test_the_series_stay_bounded_and_keep_the_recent_bins():
    from neurokube.acting.neurokube_actuator import BIN_S, CAPACITY_BINS, HISTORY_BINS, _Series

    s = _Series()
    times = np.arange(0, 10 * CAPACITY_BINS * BIN_S, BIN_S)
    for k, t in enumerate(times):  # usage ramps with the bin: the bin's index (x1 and x3)
        s.add(float(t), pods([0, 0], [0, 1], [100, 100], [float(k), 3.0 * k]))
    assert s.cpu_s.shape == (2, CAPACITY_BINS)
    end = len(times) - 1  # the bin in progress
    w = s.window(np.array([0, 1]), end)
    assert w.cpu.shape == (2, HISTORY_BINS)
    expected = np.arange(end - HISTORY_BINS, end, dtype=float)
    assert np.allclose(w.cpu[0], expected) and np.allclose(w.cpu[1], 3 * expected)
    # a scrape after a long gap weighs one bin at most, not the whole gap
    s.add(float(times[-1] + 100 * BIN_S), pods([0], [0], [100], [1.0]))
    assert s.pod_s[0].max() <= BIN_S


def test_neurokube_least_work_evicts_the_pod_that_has_done_the_least():
    # node 0 (5,000) is predicted 500 over: pods 1 and 2 both cover it; pod 1 ran 3,000 s at 1,500, pod 2 60 s at 2,000
    running = pods([0, 0, 0, 1], [0, 1, 2, 3], [1000, 1000, 1000, 500], [2000.0, 1500.0, 2000.0, 100.0],
                   priority=[10, 0, 0, 0], started=[0.0, 0.0, 2940.0, 0.0])
    smallest = NeuroKubeActuator(NeuroKubeActuatorArgs(margin=1.0, max_evictions=1.0, victim="smallest"), None)
    least = NeuroKubeActuator(NeuroKubeActuatorArgs(margin=1.0, max_evictions=1.0, victim="least_work"), None)
    for act in (smallest, least):
        act.observe(0.0, running)
    evicted = [[a.pod for a in act.act(view(3000.0, running, [5000, 4000])) if isinstance(a, Evict)]
               for act in (smallest, least)]
    assert evicted == [[1], [2]]
    with pytest.raises(ValueError):
        NeuroKubeActuatorArgs(victim="oldest")


def test_neurokube_relief_per_work_weighs_relief_against_the_work_lost():
    # node 0 (allocatable 5,000) is predicted 1,000 over. Pod 1 is the smallest that covers the excess
    # (1,200) but has run 3,000 s; pod 2 is the largest (3,000) and has run as long; pod 3 (800) covers
    # 80 % of the excess and started 300 s ago. Relief per work: pod 3 by far.
    running = pods([0, 0, 0, 0, 1], [0, 1, 2, 3, 4], [500, 500, 500, 500, 100],
                   [1000.0, 1200.0, 3000.0, 800.0, 100.0], priority=[10, 0, 0, 0, 0],
                   started=[0.0, 0.0, 0.0, 2700.0, 0.0])
    chosen = {}
    for victim in ("smallest", "least_work", "relief_per_work"):  # relief now only (relief_horizon_s=0)
        act = NeuroKubeActuator(NeuroKubeActuatorArgs(margin=1.0, max_evictions=1.0, victim=victim,
                                                      relief_horizon_s=0.0), None)
        for t in np.arange(0.0, 3000.0, 60.0):
            act.observe(t, running)
        chosen[victim] = [a.pod for a in act.act(view(3000.0, running, [5000, 6000])) if isinstance(a, Evict)]
    assert chosen == {"smallest": [1], "least_work": [1], "relief_per_work": [3]}


def test_neurokube_relief_per_work_counts_the_work_observed_not_usage_now_times_age():
    # both pods cover the 500 excess and started at 0; pod 1 idled at 10 m until its last scrape, pod 2 ran
    # at 2,000 all along: usage now x age calls pod 2 the cheaper eviction, the scrapes say pod 1 is
    act = NeuroKubeActuator(NeuroKubeActuatorArgs(margin=1.0, max_evictions=1.0, victim="relief_per_work",
                                                  work_floor_core_s=1.0, relief_horizon_s=0.0), None)
    for t in np.arange(0.0, 3000.0, 60.0):
        act.observe(t, pods([0, 0, 0, 1], [0, 1, 2, 3], [500, 500, 500, 100], [1000.0, 10.0, 2000.0, 100.0],
                            priority=[10, 0, 0, 0]))
    now = pods([0, 0, 0, 1], [0, 1, 2, 3], [500, 500, 500, 100], [1000.0, 2500.0, 2000.0, 100.0],
               priority=[10, 0, 0, 0])
    act.observe(3000.0, now)
    assert [a.pod for a in act.act(view(3000.0, now, [5000, 6000])) if isinstance(a, Evict)] == [1]


def test_neurokube_relief_per_work_starts_a_pods_count_afresh_with_its_new_run():
    from neurokube.acting.neurokube_actuator import _Work

    w = _Work()
    for t in (0.0, 60.0, 120.0):
        w.add(t, pods([0], [0], [100], [1000.0], started=[0.0]))
    assert np.allclose(w.lost(120.0, pods([0], [0], [100], [1000.0], started=[0.0]), np.array([0])), [120_000.0])
    w.add(180.0, pods([0], [0], [100], [500.0], started=[150.0]))  # evicted and placed again at 150 s
    assert np.allclose(w.lost(180.0, pods([0], [0], [100], [500.0], started=[150.0]), np.array([0])), [15_000.0])
    with pytest.raises(ValueError):
        NeuroKubeActuatorArgs(victim="relief_per_work", work_floor_core_s=0)


class _SameForecast:
    """Forecasts that every workload's usage stays as it is."""

    class settings:  # noqa: N801 - mimics ForecastModels.settings
        horizons_min = (15, 60)

    def predict(self, series, what, horizon, quantile):
        return series.cpu


class _WarnAbove:
    """A hot-node classifier stand-in: warns when the node's utilisation now (feature 0) is above ``cut``."""

    def __init__(self, cut):
        self.cut = cut

    def predict(self, X):
        return X[:, 0] - self.cut


def _models(cut):
    from types import SimpleNamespace

    from neurokube.forecast.bottleneck import BottleneckModel, BottleneckSettings

    return SimpleNamespace(forecast=_SameForecast(),
                           bottleneck=BottleneckModel(BottleneckSettings(), _WarnAbove(cut), 0.0))


def test_neurokube_relieve_warned_needs_the_classifier_to_agree():
    # node 0 runs at 5,000 of 4,000 (predicted over its allocatable); node 1 has room
    running = pods([0, 0, 1], [0, 1, 2], [1000, 1000, 500], [2500.0, 2500.0, 100.0])
    evicted = {}
    for relieve, cut in (("forecast", 2.0), ("warned", 2.0), ("warned", 1.0)):
        act = NeuroKubeActuator(NeuroKubeActuatorArgs(margin=1.0, max_evictions=1.0, relieve=relieve,
                                                      victim="smallest"), _models(cut))
        for t in np.arange(0.0, 960.0, 60.0):
            act.observe(t, running)
        evicted[(relieve, cut)] = [a.pod for a in act.act(view(960.0, running, [4000, 8000])) if isinstance(a, Evict)]
    assert evicted == {("forecast", 2.0): [0], ("warned", 2.0): [], ("warned", 1.0): [0]}


def test_neurokube_relieve_forecast_or_warned_relieves_a_warned_node_down_to_the_hot_threshold():
    # node 0 runs at 3,800 of 4,000: not over its allocatable, but warned; 0.9 x 4,000 = 3,600, so 200 over
    running = pods([0, 0, 1], [0, 1, 2], [1000, 1000, 500], [3000.0, 800.0, 100.0])
    evicted = {}
    for relieve in ("forecast", "forecast_or_warned"):
        act = NeuroKubeActuator(NeuroKubeActuatorArgs(margin=1.0, max_evictions=1.0, relieve=relieve,
                                                      victim="smallest"), _models(0.9))
        for t in np.arange(0.0, 960.0, 60.0):
            act.observe(t, running)
        evicted[relieve] = [a.pod for a in act.act(view(960.0, running, [4000, 8000])) if isinstance(a, Evict)]
    assert evicted == {"forecast": [], "forecast_or_warned": [1]}  # the smallest pod that covers the 200


def test_neurokube_relief_per_work_counts_relief_over_the_run_its_workload_says_is_left():
    # node 0 (4,000) is predicted 1,000 over. Pods 1 and 2 are alike (1,000 each, 600 s old) but pod 1's
    # workload's runs ended at 700 s and pod 2's at 4,000 s: evicting pod 2 relieves the node far longer
    act = NeuroKubeActuator(NeuroKubeActuatorArgs(margin=1.0, max_evictions=1.0, victim="relief_per_work"), None)
    t = 0.0
    for start in (0.0, 5000.0, 10000.0):  # three finished runs of each workload, on node 1
        for t in np.arange(start, start + 4000.0 + 1, 60.0):
            short_done = t - start > 700.0
            act.observe(t, pods([1] if short_done else [1, 1], [2] if short_done else [2, 1], [100] * (1 if short_done
                                else 2), [10.0] * (1 if short_done else 2), started=[start] * (1 if short_done else 2)))
        act.observe(t + 60.0, pods([1], [3], [100], [10.0], started=[t + 60.0]))  # both runs over
    t0 = 20000.0
    running = pods([0, 0, 0, 1], [0, 1, 2, 3], [1000, 1000, 1000, 100], [3000.0, 1000.0, 1000.0, 10.0],
                   priority=[10, 0, 0, 0], started=[0.0, t0, t0, 0.0])
    running.pod[:] = [10, 11, 12, 13]
    for t in np.arange(t0, t0 + 601.0, 60.0):
        act.observe(t, running)
    assert (act.work.runs[1], act.work.runs[2]) == ([660.0] * 3, [3960.0] * 3)  # as last seen running
    assert [a.pod for a in act.act(view(t0 + 600.0, running, [4000, 8000])) if isinstance(a, Evict)] == [12]
    again = NeuroKubeActuator(NeuroKubeActuatorArgs(margin=1.0, max_evictions=1.0, victim="relief_per_work",
                                                    relief_horizon_s=0.0), None)
    again.observe(t0 + 600.0, running)  # no history, relief now only: a tie, the first pod
    assert [a.pod for a in again.act(view(t0 + 600.0, running, [4000, 8000])) if isinstance(a, Evict)] == [11]
