"""The replay's rules for acting on running pods (neurokube/sim/acting.py): limits, resizes, evictions.

Tiny hand-made traces and a scripted actuator that issues given actions at given times, so every
number below follows from the rules in the module docstring.
"""

from __future__ import annotations

import numpy as np
import pytest

from neurokube.acting.base import Evict, NoActuator, Resize
from neurokube.policies import make_policy
from neurokube.sim import SimConfig, replay
from neurokube.sim.acting import PodRules
from neurokube.trace.model import NodeTable, PodTable, ProfileTable, Trace

CONFIG = SimConfig(step_s=60, scrape_s=60, window_s=60, lag_s=60)


def trace(n_pods: int, *, cpu_req=1000, cpu_lim=0, mem_req=10, mem_lim=0, cpu_use=500.0, mem_use=5.0,
          durations=600.0, creations=0.0, workloads=None, nodes=(2000,), node_mem=1000) -> Trace:
    def col(v, dt):
        return np.resize(np.asarray(v, dtype=dt), n_pods)

    pods = PodTable(
        name=np.array([f"p{i}" for i in range(n_pods)], dtype=object), namespace=np.array(["d"] * n_pods, dtype=object),
        workload=np.array(workloads or ["w"] * n_pods, dtype=object), qos=col(1, np.int8),
        cpu_request_milli=col(cpu_req, np.int64), memory_request_mib=col(mem_req, np.int64),
        cpu_limit_milli=col(cpu_lim, np.int64), memory_limit_mib=col(mem_lim, np.int64),
        creation_s=col(creations, float), duration_s=col(durations, float), profile=col(0, np.int32),
        profile_offset_s=col(0.0, float), cpu_scale_milli=col(cpu_use, float), memory_scale_mib=col(mem_use, float))
    profiles = ProfileTable(names=np.array(["c"], dtype=object), step_s=np.array([60.0]), start=np.array([0]),
                            length=np.array([1]), cpu=np.ones(1), memory=np.ones(1))
    table = NodeTable(name=np.array([f"n{i}" for i in range(len(nodes))], dtype=object),
                      cpu_milli=np.array(nodes, dtype=np.int64), memory_mib=np.full(len(nodes), node_mem))
    return Trace("tiny", table, pods, profiles)


class Scripted:
    """Issues ``script[t]`` at time ``t``; records what it was shown."""

    name = "scripted"
    interval_s = 60

    def __init__(self, script: dict[float, list]) -> None:
        self.script = script
        self.views = {}
        self.observed = []

    def observe(self, now_s, pods):
        self.observed.append((now_s, pods.pod.tolist(), pods.cpu_usage.tolist()))

    def act(self, view):
        self.views[view.now_s] = view
        return self.script.get(view.now_s, [])


def run(tr: Trace, actuator=None, rules=None, policy="default"):
    return replay(tr, make_policy(policy, trace=tr), CONFIG, actuator=actuator, rules=rules, record=True)


def test_without_an_actuator_limits_are_counted_and_nothing_acts():
    # CPU demand 500 above a 300 limit: throttled every step it runs (10 steps x 60 s);
    # memory demand 5 above a 4 limit: one OOM kill per step, each losing the work since the last.
    r = run(trace(1, cpu_req=200, cpu_lim=300, mem_req=2, mem_lim=4))
    m = r.metrics
    assert m["throttled_s"] == 600.0
    assert m["oom_kills"] == 10
    # 300 millicores for 60 s per step, lost at every kill: 10 x 18 core-s
    assert m["oom_lost_work_core_s"] == pytest.approx(10 * 300 * 60 / 1000)
    assert m["lost_work_core_s"] == 0.0  # lost to evictions only
    assert (m["resizes"], m["evictions"], m["resizes_refused"], m["evictions_refused"]) == (0, 0, 0, 0)
    assert r.actuator == "none"
    assert r.node_cpu[:, 0].max() == 300.0  # usage held at the limit


def test_a_resize_that_fits_applies_at_once_and_changes_the_node_sums():
    tr = trace(2, cpu_req=500, cpu_lim=1000, durations=600.0)
    a = Scripted({60.0: [Resize(0, 800, 10, 2000, 0, "up")]})
    r = run(tr, a)
    assert r.metrics["resizes"] == 1
    after = a.views[120.0]
    assert after.req_cpu[0] == 800 + 500
    row = after.pods.pod.tolist().index(0)
    assert after.pods.cpu_request[row] == 800 and after.pods.cpu_limit[row] == 2000


def test_a_resize_without_room_waits_and_applies_when_a_pod_leaves():
    # node 2000: pods of 1000 each; pod 0 wants 1500 while pod 1 (leaves at 300 s) is there
    tr = trace(2, cpu_req=1000, durations=[900.0, 300.0])
    a = Scripted({60.0: [Resize(0, 1500, 10, 0, 0, "up")]})
    r = run(tr, a)
    assert r.metrics["resizes_deferred"] == 1 and r.metrics["resizes"] == 1
    waiting = a.views[120.0].pods
    assert waiting.resize_waiting_s[waiting.pod.tolist().index(0)] == 60.0
    assert a.views[120.0].req_cpu[0] == 2000  # not applied yet
    assert a.views[300.0].req_cpu[0] == 1500  # pod 1 left at 300 s; the retry applied it
    assert np.isnan(a.views[300.0].pods.resize_waiting_s).all()


@pytest.mark.parametrize("resize, why", [
    (Resize(0, 3000, 10, 3000, 0, "x"), "resize: infeasible (above the node's allocatable)"),
    (Resize(0, 0, 0, 0, 0, "x"), "resize: changes the QoS class"),
    (Resize(0, 500, 10, 0, 0, "x"), "resize: removes a limit"),
    (Resize(0, 900, 10, 800, 0, "x"), "resize: request above limit"),
    (Resize(5, 500, 10, 1000, 0, "x"), "resize: not running"),
])
def test_resizes_the_apiserver_or_kubelet_would_refuse_are_refused(resize, why):
    r = run(trace(1, cpu_req=500, cpu_lim=1000), Scripted({60.0: [resize]}))
    assert r.metrics["resizes_refused"] == 1 and r.metrics["resizes"] == 0
    assert r.refusals == {why: 1}


def test_an_evicted_pod_is_queued_again_loses_its_work_and_ends_when_its_first_run_would_have():
    # two nodes of 1000; pod 0 on n0 is evicted at 120 s and re-placed at 180 s
    tr = trace(1, cpu_req=600, durations=600.0, nodes=(1000, 1000))
    a = Scripted({120.0: [Evict(0, "test")]})
    r = run(tr, a)
    m = r.metrics
    assert m["evictions"] == 1
    # it ran steps 0, 60, 120 at 500 millicores before the eviction: 90 core-s lost
    assert m["lost_work_core_s"] == pytest.approx(3 * 500 * 60 / 1000)
    assert m["pending_pod_s"] == pytest.approx(60.0)  # 120 -> 180 s back in the queue
    assert r.bind_s[0] == 0.0  # the first placement
    # its first run would have ended at 600 s: it runs 180..540 after the eviction, nothing at 600
    running = r.node_pods.sum(axis=1)
    assert running[2] == 1 and running[3] == 1 and running[9] == 1
    assert len(running) == 10 or running[10:].sum() == 0


def test_an_evicted_pod_placed_again_meets_the_demand_it_would_have_met_had_it_stayed():
    # a rising profile: 100, 200, ... 1000 millicores at minutes 0..9 of the pod's life
    tiny = trace(1, cpu_req=600, cpu_use=100.0, durations=600.0, nodes=(1000, 1000))
    ramp = ProfileTable(names=np.array(["ramp"], dtype=object), step_s=np.array([60.0]), start=np.array([0]),
                        length=np.array([10]), cpu=np.arange(1, 11, dtype=float), memory=np.ones(10))
    r = run(Trace(tiny.name, tiny.nodes, tiny.pods, ramp), Scripted({120.0: [Evict(0, "test")]}))
    assert r.metrics["evictions"] == 1
    cpu = r.node_cpu.sum(axis=1)
    assert cpu[:3].tolist() == [100.0, 200.0, 300.0]  # minutes 0..2 on its first node
    # evicted at 120 s and placed again at 180 s: minute 3's demand, not minute 0's over again
    assert cpu[3] == 400.0 and cpu[9] == 1000.0


def test_the_disruption_budget_refuses_a_second_eviction_of_one_workload():
    tr = trace(3, cpu_req=100, durations=600.0, workloads=["a", "a", "b"])
    a = Scripted({60.0: [Evict(0, "x"), Evict(1, "x"), Evict(2, "x")]})
    r = run(tr, a)
    assert r.metrics["evictions"] == 2 and r.metrics["evictions_refused"] == 1
    two = run(tr, Scripted({60.0: [Evict(0, "x"), Evict(1, "x")]}),
              rules=PodRules(np.zeros(3, np.int64), np.ones(3, bool), np.array([2, 1])))
    assert two.metrics["evictions"] == 2 and two.metrics["evictions_refused"] == 0


def test_an_eviction_may_recreate_the_pod_with_new_requests():
    tr = trace(1, cpu_req=600, durations=600.0, nodes=(1000, 1000))
    a = Scripted({60.0: [Evict(0, "x", recreate_with=(300, 10, 0, 0))]})
    run(tr, a)
    later = a.views[180.0].pods
    assert later.cpu_request.tolist() == [300]


def test_an_actuator_that_never_acts_leaves_the_replay_as_it_was():
    # NoActuator skips the bookkeeping; an actuator that is shown every step but never acts must give
    # the same replay
    tr = trace(4, cpu_req=700, durations=[300.0, 600.0, 900.0, 200.0], creations=[0, 0, 60, 120],
               nodes=(1500, 1500))
    plain = run(tr)
    none = run(tr, NoActuator())
    silent = run(tr, Scripted({}))
    assert silent.metrics["evictions"] == 0
    for r in (none, silent):
        assert r.node_of.tolist() == plain.node_of.tolist()
        assert r.bind_s.tolist() == plain.bind_s.tolist()
        assert r.metrics["contention_core_s"] == plain.metrics["contention_core_s"]


def test_pod_rules_come_from_the_trace_columns_when_present():
    from dataclasses import replace

    tr = trace(3, cpu_req=100, workloads=["a", "a", "b"])
    rules = PodRules.of(tr.pods)
    assert rules.priority.tolist() == [0, 0, 0] and rules.controlled.all()
    assert rules.max_unavailable.tolist() == [1, 1]
    pods = replace(tr.pods, priority=np.array([5, 5, -1]), controlled=np.array([True, False, True]),
                   max_unavailable=np.array([2, 2, 0]))
    rules = PodRules.of(pods)
    assert rules.priority.tolist() == [5, 5, -1] and rules.controlled.tolist() == [True, False, True]
    assert rules.max_unavailable.tolist() == [2, 0]
    # the replay reads them by default: workload b's budget of 0 refuses its eviction
    columns = Trace(tr.name, tr.nodes, pods, tr.profiles)
    r = run(columns, Scripted({60.0: [Evict(2, "x"), Evict(0, "x"), Evict(1, "x")]}))
    assert r.metrics["evictions"] == 2 and r.refusals == {"evict: disruption budget": 1}


def test_an_evicted_pod_whose_run_ends_while_it_waits_just_ends():
    # pod 0 (300 s) is evicted at 120 s; pod 1 fills the only node until 600 s, so pod 0 is placed
    # again only after its first run would have ended: it takes its place and leaves at once
    tr = trace(2, cpu_req=1500, durations=[300.0, 600.0], creations=[0.0, 60.0], nodes=(2000,))
    r = run(tr, Scripted({120.0: [Evict(0, "x")]}))
    assert r.metrics["evictions"] == 1 and r.metrics["unscheduled_pods"] == 0
    assert r.node_pods[:, 0].max() == 1  # never both on the node
    assert r.metrics["pending_pod_s"] >= 600.0 - 120.0  # back in the queue from 120 s to 660 s


# --- the command line -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def synth_trace(tmp_path_factory):
    from neurokube.cli.main import main

    out = tmp_path_factory.mktemp("acting") / "t"
    assert main(["trace", "synth", "--out", str(out), "--hours", "2", "--nodes", "6", "--workloads", "20",
                 "--warmup-hours", "1", "--target-load", "0.9"]) == 0
    return out


@pytest.mark.parametrize("actuator", [
    "vpa-inplace:min_replicas=1",
    "descheduler:use_deviation=true,cpu_threshold=5,memory_threshold=5,pods_threshold=5,cpu_target=5,"
    "memory_target=5,pods_target=5",
])
def test_replay_with_an_actuator_records_it_and_its_metrics(synth_trace, tmp_path, capsys, actuator):
    import json

    from neurokube.cli.main import main

    out = tmp_path / "r.json"
    assert main(["replay", "--trace", str(synth_trace), "--policy", "default", "--actuator", actuator,
                 "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["config"]["actuator"] == actuator
    m = doc["policies"]["default"]
    assert m["resizes"] + m["evictions"] > 0
    assert "evictions" in capsys.readouterr().out  # the table shows the acting columns
    capsys.readouterr()
    # an actuated replay cannot be audited: evicted pods have more than one placement
    assert main(["audit", "--trace", str(synth_trace), "--placements", str(tmp_path), "--report", str(out)]) == 2
    assert "cannot be audited" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--actuator", "nope"], "unknown actuator 'nope'"),
    (["--actuator", "vpa-inplace:half_life=3"], "unknown key 'half_life'"),
    (["--actuator", "descheduler:cpu_threshold=x"], "is not a number"),
    (["--actuator", "neurokube"], "needs prediction models"),
    (["--actuator", "vpa-inplace", "--placements-out", "PLACEMENTS"], "--placements-out cannot be used"),
])
def test_bad_actuator_specs_are_one_line_and_exit_2(synth_trace, tmp_path, capsys, argv, message):
    from neurokube.cli.main import main

    argv = [a.replace("PLACEMENTS", str(tmp_path / "p")) for a in argv]
    code = main(["replay", "--trace", str(synth_trace), "--policy", "default", *argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
