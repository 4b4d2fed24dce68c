"""The descheduler actuator (neurokube/acting/descheduler.py) on hand-built views, worked out from
upstream's rules: LowNodeUtilization's no-op conditions, victim order (priority, then QoS), the stop
once a node is back under target, the room on underutilized nodes (which the last pod may overdraw),
the DefaultEvictor's protections (no controller, system-critical), the disruption budget and the
per-node limit, HighNodeUtilization, deviation thresholds, measured usage as the source, argument
validation; then one replay of a synthetic trace."""

from __future__ import annotations

import numpy as np
import pytest

from neurokube.acting.base import ActuatorView, Evict, RunningPods
from neurokube.acting.descheduler import (
    POD_CAPACITY,
    SYSTEM_CRITICAL_PRIORITY,
    Descheduler,
    DeschedulerArgs,
    victim_order,
)
from neurokube.errors import InputError
from neurokube.policies import make_policy
from neurokube.policies.base import BEST_EFFORT, BURSTABLE, GUARANTEED, NodeMetrics
from neurokube.policies.spec import parse_spec, typed_args
from neurokube.sim import SimConfig, replay
from neurokube.trace.assemble import ArrivalSettings
from neurokube.trace.synth import SynthSettings, synth_trace

CPU = MEM = 10_000  # every hand-built node: 10 cores, 10000 MiB


def pod(node, cpu, mem=100, *, workload=None, qos=BURSTABLE, priority=0, controlled=True, cpu_use=0.0,
        mem_use=0.0):
    return dict(node=node, cpu=cpu, mem=mem, workload=workload, qos=qos, priority=priority, controlled=controlled,
                cpu_use=cpu_use, mem_use=mem_use)


def make_view(n_nodes, pods, *, budget=None, unavailable=None, cpu_mean=None, mem_mean=None, samples=1):
    """``n_nodes`` nodes of CPU x MEM; pod ids are their positions; each pod its own workload unless given."""
    n = len(pods)
    col = lambda key, dtype: np.array([p[key] for p in pods], dtype=dtype)  # noqa: E731
    workload = np.array([p["workload"] if p["workload"] is not None else i for i, p in enumerate(pods)], np.int64)
    n_workloads = int(workload.max()) + 1 if n else 0
    node, cpu, mem = col("node", np.int64), col("cpu", np.int64), col("mem", np.int64)
    running = RunningPods(
        pod=np.arange(n, dtype=np.int64), node=node, workload=workload, qos=col("qos", np.int8),
        priority=col("priority", np.int64), controlled=col("controlled", bool), cpu_request=cpu,
        memory_request=mem, cpu_limit=np.zeros(n, np.int64), memory_limit=np.zeros(n, np.int64),
        cpu_usage=col("cpu_use", float), memory_usage=col("mem_use", float), started_s=np.zeros(n),
        resize_waiting_s=np.full(n, np.nan))
    metrics = NodeMetrics.empty(n_nodes)
    metrics.cpu_mean = np.asarray(cpu_mean if cpu_mean is not None else np.zeros(n_nodes), float)
    metrics.mem_mean = np.asarray(mem_mean if mem_mean is not None else np.zeros(n_nodes), float)
    metrics.samples = np.full(n_nodes, samples, np.int64)
    return ActuatorView(
        now_s=600.0, alloc_cpu=np.full(n_nodes, CPU, np.int64), alloc_mem=np.full(n_nodes, MEM, np.int64),
        req_cpu=np.bincount(node, weights=cpu, minlength=n_nodes).astype(np.int64),
        req_mem=np.bincount(node, weights=mem, minlength=n_nodes).astype(np.int64),
        metrics=metrics, pods=running,
        unavailable=np.asarray(unavailable if unavailable is not None else np.zeros(n_workloads), np.int64),
        max_unavailable=np.asarray(budget if budget is not None else np.ones(n_workloads), np.int64), pending=0)


def evicted(actions):
    assert all(isinstance(a, Evict) for a in actions)
    return [a.pod for a in actions]


# --- LowNodeUtilization: when it does nothing ---------------------------------------------------

def test_no_underutilized_node_is_a_no_op():
    # every node at 30 % CPU: above the 20 % threshold, not above the 50 % target
    d = Descheduler()
    assert d.act(make_view(3, [pod(n, 3000) for n in range(3)])) == []
    assert d.last.outcome == "no node underutilized"


def test_all_nodes_underutilized_is_a_no_op():
    d = Descheduler()
    assert d.act(make_view(3, [pod(0, 1000), pod(1, 500)])) == []
    assert d.last.outcome == "all nodes underutilized" and d.last.underutilized == (0, 1, 2)


def test_no_overutilized_node_is_a_no_op():
    # node 0 at 50 % is at the target, not above it
    d = Descheduler()
    assert d.act(make_view(3, [pod(0, 2500), pod(0, 2500), pod(1, 3000)])) == []
    assert d.last.outcome == "no node overutilized" and d.last.underutilized == (2,)


def test_number_of_nodes_must_be_exceeded():
    pods = [pod(0, 3000), pod(0, 3000), pod(0, 3000)]  # node 0 at 90 %, nodes 1 and 2 empty
    assert Descheduler(DeschedulerArgs(number_of_nodes=2)).act(make_view(3, pods)) == []
    assert len(Descheduler(DeschedulerArgs(number_of_nodes=1)).act(make_view(3, pods))) > 0


# --- LowNodeUtilization: what it evicts ------------------------------------------------------------

def test_victims_lowest_priority_first_then_qos_and_stop_under_target():
    pods = [
        pod(0, 1800, qos=GUARANTEED),             # 0
        pod(0, 1800, qos=BURSTABLE),              # 1
        pod(0, 0, mem=0, qos=BEST_EFFORT),        # 2
        pod(0, 1800, qos=BURSTABLE, priority=1000),  # 3
        pod(0, 1800, qos=GUARANTEED, priority=-5),   # 4
        pod(0, 1800, qos=BURSTABLE),              # 5
    ]
    d = Descheduler()
    actions = d.act(make_view(3, pods))
    # node 0 holds 9000m (90 %). Order: 4 (priority -5), then priority 0: BestEffort 2, Burstable 1 and 5,
    # Guaranteed 0, then 3. CPU after each: 7200, 7200, 5400, 3600 <= 5000: the fourth eviction is the last.
    assert evicted(actions) == [4, 2, 1, 5]
    assert all(a.reason == "descheduler: LowNodeUtilization" for a in actions)
    assert d.last.overutilized == (0,) and d.last.underutilized == (1, 2) and d.last.evicted == 4


def test_victim_order_sorts_priority_then_qos_then_pod_id():
    view = make_view(1, [pod(0, 1, qos=GUARANTEED, priority=0), pod(0, 1, qos=BEST_EFFORT, priority=3),
                         pod(0, 1, qos=BURSTABLE, priority=0), pod(0, 1, qos=BEST_EFFORT, priority=0),
                         pod(0, 1, qos=BURSTABLE, priority=0)])
    assert victim_order(view.pods, np.arange(5)).tolist() == [3, 2, 4, 0, 1]


def test_busiest_overutilized_node_is_drained_first():
    # nodes 0 (90 % CPU, 1000 MiB) and 1 (80 % CPU, 2000 MiB) are above target. Upstream's key sums
    # millicores + memory bytes + pods, so memory decides: node 1 is "busier" and goes first.
    # One eviction per node (max_pods_per_node=1) shows the order.
    pods = [pod(0, 9000, 1000)] + [pod(1, 2000, 500) for _ in range(4)]
    d = Descheduler(DeschedulerArgs(max_pods_per_node=1))
    assert evicted(d.act(make_view(4, pods))) == [1, 0]
    assert d.last.skipped_node_limit == 1  # node 1 still above target (60 %) when its limit was reached


def test_room_on_underutilized_nodes_limits_evictions_and_the_last_pod_may_overdraw_it():
    # node 0: 19 pods of 500m (95 %); the target alone would stop after 9 evictions (9500 - 4500 = 5000).
    # The only underutilized node, node 1, holds 1800m (18 %): room 5000 - 1800 = 3200m. It stays positive
    # for six evictions (200m left), the seventh overdraws it (-300m), and eviction stops.
    pods = [pod(0, 500, 10) for _ in range(19)] + [pod(1, 1800, 10)] + [pod(2, 3000, 10)]
    actions = Descheduler().act(make_view(3, pods))
    assert len(actions) == 7


def test_memory_room_counts_too():
    # only memory matters here (CPU and pods targets at 100 %). Node 0: five pods of 2000 MiB (100 %);
    # the target alone would stop after three evictions (4000 MiB <= 5000). Node 1 is the only
    # underutilized node (1900 MiB, 19 %), node 2 (30 %) is neither: memory room 5000 - 1900 = 3100 MiB,
    # 1100 after one eviction, -900 after two: stop.
    pods = [pod(0, 100, 2000) for _ in range(5)] + [pod(1, 100, 1900), pod(2, 100, 3000)]
    d = Descheduler(DeschedulerArgs(cpu_target=100, pods_target=100))
    assert len(d.act(make_view(3, pods))) == 2
    assert d.last.underutilized == (1,) and d.last.overutilized == (0,)


def test_uncontrolled_and_system_critical_pods_are_never_evicted():
    pods = [
        pod(0, 3000, priority=-10, controlled=False),             # no controller: ownerless
        pod(0, 3000, priority=SYSTEM_CRITICAL_PRIORITY),          # system-cluster-critical
        pod(0, 3000, priority=SYSTEM_CRITICAL_PRIORITY + 1000),   # system-node-critical
        pod(0, 1000, priority=5),
    ]
    d = Descheduler()
    assert evicted(d.act(make_view(3, pods))) == [3]
    assert d.last.protected == 3


def test_disruption_budget_is_spent_within_a_cycle_and_refusals_are_skipped():
    # workload 0 (pods 0, 1) may lose one pod; workload 1 (pod 2) has none left; workload 2 (pod 3) two
    pods = [pod(0, 2000, workload=0), pod(0, 2000, workload=0), pod(0, 2000, workload=1),
            pod(0, 2000, workload=2, priority=1), pod(0, 1500, workload=2, priority=2)]
    d = Descheduler()
    actions = d.act(make_view(3, pods, budget=[1, 1, 2], unavailable=[0, 1, 0]))
    # 9500m: evict 0 (7500), skip 1 (budget), skip 2 (budget), evict 3 (5500), evict 4 (4000)
    assert evicted(actions) == [0, 3, 4]
    assert d.last.skipped_budget == 2
    assert d.totals["skipped_budget"] == 2 and d.totals["evicted"] == 3 and d.totals["cycles"] == 1


def test_max_pods_per_node():
    pods = [pod(0, 2000) for _ in range(5)]
    assert len(Descheduler(DeschedulerArgs(max_pods_per_node=2)).act(make_view(3, pods))) == 2
    assert len(Descheduler().act(make_view(3, pods))) == 3  # 10000 -> 4000


def test_pods_resource_counts_against_110():
    # 70 pods of no requests on node 0: 70/110 = 64 % > 50 %; evicted down to 55 pods (floor(0.5 x 110))
    pods = [pod(0, 0, 0, qos=BEST_EFFORT) for _ in range(70)]
    assert POD_CAPACITY == 110
    assert len(Descheduler().act(make_view(3, pods))) == 15


# --- HighNodeUtilization -----------------------------------------------------------------------

def test_high_drains_least_used_underutilized_nodes_first():
    # thresholds 20 %: nodes 0 (10 %) and 1 (5 %) are underutilized; 2 and 3 receive (room 40 % + 30 %)
    pods = [pod(0, 600), pod(0, 400), pod(1, 500), pod(2, 6000), pod(3, 7000)]
    d = Descheduler(DeschedulerArgs(strategy="high"))
    actions = d.act(make_view(4, pods))
    assert evicted(actions) == [2, 0, 1]  # node 1 first, then node 0 (equal pods: by pod id)
    assert all(a.reason == "descheduler: HighNodeUtilization" for a in actions)
    assert d.last.underutilized == (0, 1) and d.last.overutilized == (2, 3)


def test_high_stops_when_the_receiving_nodes_are_full():
    # nodes 0 and 1 both at 10 % CPU; node 1 holds less memory, so it goes first. The receiver, node 2 at
    # 9500m, has 500m of room: pod 2 (1000m) overdraws it and eviction stops there.
    pods = [pod(0, 600), pod(0, 400), pod(1, 1000), pod(2, 9500)]
    actions = Descheduler(DeschedulerArgs(strategy="high")).act(make_view(3, pods))
    assert evicted(actions) == [2]


def test_high_does_nothing_when_all_nodes_are_underutilized():
    d = Descheduler(DeschedulerArgs(strategy="high"))
    assert d.act(make_view(3, [pod(0, 500), pod(1, 500)])) == []
    assert d.last.outcome == "all nodes underutilized"


# --- deviation thresholds and measured usage ---------------------------------------------------

def test_deviation_thresholds_are_relative_to_the_mean():
    # CPU and memory: 10 %, 40 %, 40 %, 90 % (mean 45); pods 1, 4, 4, 9 (mean 4.09 % of 110)
    counts = [1, 4, 4, 9]
    pods = [pod(n, 1000, 1000) for n, k in enumerate(counts) for _ in range(k)]
    args = DeschedulerArgs(use_deviation=True, cpu_threshold=10, memory_threshold=10, pods_threshold=2,
                           cpu_target=10, memory_target=10, pods_target=10)
    d = Descheduler(args)
    actions = d.act(make_view(4, pods))
    # under: <= 35 %, 35 %, 2.09 %: node 0 only. over: > 55 %: node 3. Node 3 drains to 5000 <= 5500.
    assert d.last.underutilized == (0,) and d.last.overutilized == (3,)
    assert len(actions) == 4 and all(p >= 9 for p in evicted(actions))
    # the same numbers as static thresholds: 10 % under, above 10 % over: nodes 1, 2 and 3
    static = Descheduler(DeschedulerArgs(cpu_threshold=10, memory_threshold=10, pods_threshold=2,
                                         cpu_target=10, memory_target=10, pods_target=10))
    static.act(make_view(4, pods))
    assert static.last.overutilized == (1, 2, 3)


def test_usage_source_reads_the_metrics_not_the_requests():
    pods = [pod(0, 3000, 100, cpu_use=500.0, mem_use=50.0) for _ in range(3)] + [pod(1, 2500, 100, cpu_use=2500.0)]
    # requests: node 0 at 90 %, node 2 empty -> evicts; measured: node 0 at 15 %, node 1 at 25 %
    assert len(Descheduler().act(make_view(3, pods, cpu_mean=[1500, 2500, 0], mem_mean=[150, 100, 0]))) > 0
    usage = Descheduler(DeschedulerArgs(source="usage"))
    assert usage.act(make_view(3, pods, cpu_mean=[1500, 2500, 0], mem_mean=[150, 100, 0])) == []
    assert usage.last.outcome == "no node overutilized"


def test_usage_source_frees_each_pods_measured_usage():
    # requests are tiny but node 0 measures 8000m: each eviction frees its pod's 2000m of usage
    pods = [pod(0, 100, 100, cpu_use=2000.0, mem_use=100.0) for _ in range(4)]
    d = Descheduler(DeschedulerArgs(source="usage"))
    actions = d.act(make_view(3, pods, cpu_mean=[8000, 0, 0], mem_mean=[400, 0, 0]))
    assert len(actions) == 2  # 8000 -> 6000 -> 4000 <= 5000
    assert d.act(make_view(3, pods, cpu_mean=[8000, 0, 0], mem_mean=[400, 0, 0], samples=0)) == []
    assert d.last.outcome == "no metrics for some node"


# --- arguments ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    (dict(strategy="medium"), "strategy must be one of low, high"),
    (dict(source="prometheus"), "source must be one of requests, usage"),
    (dict(cpu_threshold=-1), "cpu_threshold must be a percentage"),
    (dict(pods_target=101), "pods_target must be a percentage"),
    (dict(memory_threshold=60), r"memory_threshold \(60\) is above memory_target \(50"),
    (dict(strategy="high", source="usage"), "strategy=low only"),
    (dict(strategy="high", use_deviation=True), "strategy=low only"),
    (dict(interval_s=0), "interval_s must be > 0"),
    (dict(max_pods_per_node=-1), "must be >= 0"),
    (dict(number_of_nodes=-2), "must be >= 0"),
])
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DeschedulerArgs(**kwargs)


def test_arguments_from_a_spec_and_what_upstream_allows():
    args = typed_args(DeschedulerArgs, parse_spec("descheduler:strategy=high,cpu_threshold=30,max_pods_per_node=3",
                                                  "--actuator"), "--actuator")
    assert (args.strategy, args.cpu_threshold, args.max_pods_per_node) == ("high", 30.0, 3)
    DeschedulerArgs(use_deviation=True, cpu_threshold=60)  # deviations need no ordering (upstream)
    DeschedulerArgs(strategy="high", cpu_threshold=90)  # targets are not used by high
    with pytest.raises(InputError, match="cpu_threshold"):
        typed_args(DeschedulerArgs, parse_spec("descheduler:cpu_threshold=70", "--actuator"), "--actuator")
    d = Descheduler(args, name="descheduler:strategy=high")
    assert d.name == "descheduler:strategy=high" and d.interval_s == 300
    assert d.observe(0.0, make_view(1, []).pods) is None


# --- a replay ----------------------------------------------------------------------------------

def test_replay_with_the_descheduler_evicts_and_loses_work():
    # memory well under the limits: no OOM kill, so every lost core-second is an eviction's
    trace = synth_trace("desched", SynthSettings(
        arrivals=ArrivalSettings(hours=3, target_load=0.6, warmup_hours=2, seed=7), nodes=6, workloads=20,
        memory_level_median=(0.2, 0.2, 0.2), memory_level_sigma=0.1))
    d = Descheduler(DeschedulerArgs(cpu_threshold=40, memory_threshold=40, pods_threshold=40,
                                    cpu_target=50, memory_target=50, pods_target=50))
    result = replay(trace, make_policy("default", trace=trace), SimConfig(), actuator=d)
    m = result.metrics
    assert result.actuator == "descheduler"
    assert m["oom_kills"] == 0
    assert m["evictions"] > 0 and m["lost_work_core_s"] > 0
    assert m["evictions"] == d.totals["evicted"]  # the replay granted every eviction asked for...
    assert m["evictions_refused"] == 0  # ...because the actuator kept within the disruption budgets
    assert d.totals["cycles"] > 1
    none = replay(trace, make_policy("default", trace=trace), SimConfig())
    assert none.metrics["evictions"] == 0 and none.metrics["lost_work_core_s"] == 0
