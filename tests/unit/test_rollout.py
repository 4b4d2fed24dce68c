"""The model-based rollout estimate (neurokube/learning/rollout.py) and its use in the nightly rule.

* the reconstruction round-trips a small synthetic day logged as the simulated world logs it
  (decision log, per-pod usage at the trace's step, node snapshots): requests, limits, QoS and
  allocatable come back exactly; the logged placements replayed on it reproduce the day's
  contention and node-hours exactly; and a policy replayed on it gives the same contention,
  node-hours and memory overflow as on the original trace (to 1e-9 relative) when no pod waited
  under the logged policy (the log has bind times, not creation times), and no more pending time;
* what the logs lack is filled as documented: a pod with no usage sample leaves at once, usage
  of a pod without a decision is counted and left out, coarser samples still rebuild a trace;
* bad input is an InputError: no decisions, a missing column, a bad step, non-finite features,
  negative usage, an unknown QoS class, samples off the simulator's steps, no policy;
* the promotion rule uses the estimate: a candidate that beats the incumbent on the held-out
  replay but is estimated worse on the logged days is not promoted, with the reason; the setting
  None or a tolerance lets it through; without an estimate the rule is the replay's alone;
* the night's evaluation step gives an estimate from logged frames, and says why when it cannot.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from neurokube.adapters.model_files import load_value_model
from neurokube.errors import InputError
from neurokube.learning import rollout
from neurokube.model.reward import RewardWeights
from neurokube.policies import make_policy
from neurokube.sim import SimConfig, replay
from neurokube.testing.model import write_packing_model
from neurokube.trace.assemble import ArrivalSettings
from neurokube.trace.synth import SynthSettings, synth_trace
from pipelines import evaluate
from pipelines.register import decide
from pipelines.settings import NightlySettings, PromotionRule
from pipelines.simulate import run_day
from pipelines.usage import SimulatorUsage

START = 1_710_028_800  # a UTC midnight, as the simulated loop's days start
STEP = 60
WEIGHTS = RewardWeights()


def logged_day(trace, epsilon: float = 0.2, step_s: int = STEP):
    """The day as the world logs it: decisions, candidates, node snapshots and per-pod usage every
    ``step_s`` until every pod has ended."""
    day = run_day(trace, None, start_epoch_s=START, epsilon=epsilon, seed=1, weights=WEIGHTS)
    end = START + int((day.usage.bind_step + day.usage.run_steps).max()) * STEP + STEP
    source = SimulatorUsage(day.usage)
    return day, source.read(START, end, step_s), source.read_pods(START, end, step_s)


def small_day(name: str, target_load: float, seed: int):
    """A 3-hour day on 6 nodes of two shapes at ``target_load``, logged as the loop logs it."""
    trace = synth_trace(name, SynthSettings(
        arrivals=ArrivalSettings(hours=3, target_load=target_load, warmup_hours=1, seed=seed), nodes=6, workloads=30,
        node_shapes=((8000, 32768), (16000, 65536)), qos_shares=(0.3, 0.5, 0.2), cpu_level_median=(0.9, 1.4, 1.0),
        cpu_level_sigma=0.8))
    day, nodes, pods = logged_day(trace)
    return trace, day, nodes, pods


@pytest.fixture(scope="module")
def light():
    """A lightly loaded day: under the logged policy no pod waits for a node."""
    return small_day("light", 0.35, 5)


@pytest.fixture(scope="module")
def busy():
    """A contended day (pods use more than they request; some wait for a node)."""
    return small_day("busy", 0.8, 3)


def rebuild(day, nodes, pods, **kw) -> rollout.Reconstruction:
    return rollout.reconstruct(day.decisions, pods, step_s=kw.pop("step_s", STEP), nodes=nodes,
                               candidates=day.candidates, **kw)


def by_name(trace) -> pd.DataFrame:
    p = trace.pods
    return pd.DataFrame({"cpu_req": p.cpu_request_milli, "mem_req": p.memory_request_mib, "cpu_lim": p.cpu_limit_milli,
                         "mem_lim": p.memory_limit_mib, "qos": p.qos, "workload": p.workload.astype(str)},
                        index=pd.Index(p.namespace.astype(str) + "/" + p.name.astype(str)))


def test_the_pods_and_nodes_come_back_exactly(busy):
    trace, day, nodes, pods = busy
    rec = rebuild(day, nodes, pods)
    assert rec.origin_s == START and len(rec.trace.pods) == len(day.decisions) == len(trace.pods)
    original, rebuilt = by_name(trace), by_name(rec.trace)
    pd.testing.assert_frame_equal(rebuilt, original.loc[rebuilt.index], check_dtype=False)
    assert list(rec.trace.nodes.name) == list(trace.nodes.name)
    np.testing.assert_array_equal(rec.trace.nodes.cpu_milli, trace.nodes.cpu_milli)
    np.testing.assert_array_equal(rec.trace.nodes.memory_mib, trace.nodes.memory_mib)
    assert rec.gaps["pods_without_usage"] == rec.gaps["usage_rows_without_decision"] == 0
    assert rec.gaps["memory_limits_unknown"] == rec.gaps["nodes_memory_filled"] == 0


def test_the_logged_placements_replayed_give_the_days_numbers(busy):
    _, day, nodes, pods = busy
    est = rollout.rollout(rebuild(day, nodes, pods), {"default": lambda t: make_policy("default", trace=t)}, WEIGHTS)
    logged = est.logged
    assert day.metrics["pending_pod_s"] > 0  # pods waited: the check must hold all the same
    for key in ("contention_core_s", "node_hours"):
        assert logged[f"replayed_{key}"] == pytest.approx(day.metrics[key], rel=1e-9)
        assert logged[f"observed_{key}"] == pytest.approx(day.metrics[key], rel=1e-9)
    assert logged["misfits"] == 0 and day.metrics["contention_core_s"] > 1000


@pytest.mark.parametrize("policy", ["default", "most-allocated", "tlp"])
def test_a_policy_replayed_on_the_rebuilt_day_matches_the_original(light, policy):
    trace, day, nodes, pods = light
    assert day.metrics["pending_pod_s"] < len(trace.pods) * STEP  # only the wait to the next step: none queued
    rec = rebuild(day, nodes, pods)
    est = rollout.rollout(rec, {policy: lambda t: make_policy(policy, trace=t, seed=4)}, WEIGHTS)
    truth = replay(trace, make_policy(policy, trace=trace, seed=4)).metrics
    got = est.metrics[policy]
    for key in ("contention_core_s", "node_hours", "mem_overflow_mib_s"):
        assert got[key] == pytest.approx(truth[key], rel=1e-9, abs=1e-6), key
    assert truth["node_hours"] > 0 and (truth["contention_core_s"] > 0 or policy == "tlp")  # TLP spreads it away
    assert got["pending_pod_s"] <= truth["pending_pod_s"]  # the sub-step wait to the first step is not in the log
    assert got["cost"] == pytest.approx(WEIGHTS.cost(truth["contention_core_s"], truth["node_hours"]), rel=1e-9)


def test_what_the_logs_lack_is_filled_and_counted(busy):
    _, day, nodes, pods = busy
    # a pod whose samples are lost leaves at once; samples of a pod with no decision are left out
    lost = day.decisions["pod"].iloc[5]
    foreign = pods.iloc[:7].assign(pod="other/stray")
    rec = rebuild(day, nodes, pd.concat([pods[pods["pod"] != lost], foreign], ignore_index=True))
    where = list(rec.trace.pods.namespace.astype(str) + "/" + rec.trace.pods.name.astype(str)).index(lost)
    assert rec.trace.pods.duration_s[where] == 0
    assert rec.gaps["pods_without_usage"] == 1 and rec.gaps["usage_rows_without_decision"] == 7
    # samples every two steps: the trace still rebuilds, usage held for two steps
    coarse = pods[(pods["ts"] - START) % (2 * STEP) == 0]
    rec2 = rebuild(day, nodes, coarse, step_s=2 * STEP)
    assert set(rec2.trace.profiles.step_s) == {2.0 * STEP} and (rec2.trace.pods.duration_s % (2 * STEP) == 0).all()
    est = rollout.rollout(rec2, {"default": lambda t: make_policy("default", trace=t)}, WEIGHTS)
    assert est.logged["replayed_node_hours"] == pytest.approx(est.logged["observed_node_hours"], rel=0.02)


def test_bad_input_is_an_input_error(busy):
    _, day, nodes, pods = busy
    d = day.decisions
    cases = [
        (d.iloc[0:0], pods, STEP, "no logged decisions"),
        (d.drop(columns=["f_pod_cpu_req_frac"]), pods, STEP, "lacks column"),
        (d, pods.drop(columns=["mem_used_mib"]), STEP, "lacks column"),
        (d, pods, 0, "positive whole number"),
        (d, pods, 1.5, "positive whole number"),
        (d.assign(f_node_cpu_cores=np.where(np.arange(len(d)) == 3, np.nan, d["f_node_cpu_cores"])), pods, STEP,
         "missing or infinite"),
        (d, pods.assign(cpu_used_milli=-pods["cpu_used_milli"] - 1), STEP, "negative"),
        (d.assign(qos="Gold"), pods, STEP, "unknown QoS"),
        (d.assign(f_node_mem_gib=0.0), pods, STEP, "no allocatable"),
    ]
    for decisions, usage, step, match in cases:
        with pytest.raises(InputError, match=match):
            rollout.reconstruct(decisions, usage, step_s=step, nodes=nodes, candidates=day.candidates)
    with pytest.raises(InputError, match="is not a table"):
        rollout.reconstruct(d.to_dict(), pods, step_s=STEP)
    rec = rebuild(day, nodes, pods)
    with pytest.raises(InputError, match="simulator steps"):
        rollout.rollout(dataclasses.replace(rec, step_s=90), {"default": lambda t: make_policy("default", trace=t)},
                        WEIGHTS)
    with pytest.raises(InputError, match="no policy"):
        rollout.rollout(rec, {}, WEIGHTS, SimConfig())


def m(cost: float, pending: float = 100.0) -> dict[str, float]:
    return {"cost": cost, "pending_pod_s": pending}


def test_the_promotion_rule_uses_the_estimate():
    replay_wins = {"candidate": m(90), "default": m(100)}
    estimated_worse = {"candidate": m(105), "default": m(100)}
    rule = PromotionRule()
    blocked = decide(replay_wins, rule, estimated_worse)
    assert not blocked.promote and blocked.estimated_gain == pytest.approx(-0.05)
    assert "estimated worse than the default on the logged days" in blocked.reason
    assert "cost 105.0 vs 100.0 (-5.00%)" in blocked.reason
    assert decide(replay_wins, rule).promote  # no estimate: the replay alone, as before
    assert decide(replay_wins, PromotionRule(rollout_max_relative_loss=None), estimated_worse).promote
    assert decide(replay_wins, PromotionRule(rollout_max_relative_loss=0.06), estimated_worse).promote
    ok = decide(replay_wins, rule, {"candidate": m(100), "default": m(100)})
    assert ok.promote and ok.estimated_gain == 0.0 and "rollout estimate" in ok.reason
    # the incumbent is the champion when there is one, in the estimate too
    with_champion = decide({"candidate": m(80), "champion": m(100), "default": m(50)}, rule,
                           {"candidate": m(80), "champion": m(70), "default": m(50)})
    assert not with_champion.promote and "worse than the champion" in with_champion.reason
    # the replay's own conditions come first
    assert "not better than the default" in decide({"candidate": m(99.5), "default": m(100)}, rule,
                                                   estimated_worse).reason


def test_settings_refuse_bad_values():
    for bad in (-0.1, 1.0):
        with pytest.raises(InputError, match="rollout_max_relative_loss"):
            PromotionRule(rollout_max_relative_loss=bad)
    with pytest.raises(InputError, match="rollout_days"):
        NightlySettings(lookback_days=2, rollout_days=3)
    with pytest.raises(InputError, match="rollout_days"):
        NightlySettings(rollout_days=-1)


def test_the_nights_evaluation_step_estimates_from_the_logs_and_blocks_a_worse_candidate(busy, tmp_path):
    """Packing (the test model) against default scoring, on a day where only contention is priced: the
    held-out replay (here: made up) says the candidate wins, the rollout on the logged day says it
    loses, and the rule follows the estimate."""
    _, day, nodes, pods = busy
    model = load_value_model(write_packing_model(tmp_path / "packing"))
    contention_only = RewardWeights(node_hour=0.0)
    logs = evaluate.LoggedDays(decisions=day.decisions, candidates=day.candidates, snapshots=nodes, pod_usage=pods,
                               start_s=START, end_s=START + 86400, step_s=STEP)
    estimate, why = evaluate.by_rollout(model, None, logs, contention_only, seed=0)
    assert why == "" and set(estimate.metrics) == {"default", "candidate"}
    assert estimate.metrics["candidate"]["node_hours"] < estimate.metrics["default"]["node_hours"]
    assert estimate.gain("candidate", "default") < 0  # packing adds contention
    verdict = decide({"candidate": m(90), "default": m(100)}, PromotionRule(), estimate.metrics)
    assert not verdict.promote and "estimated worse" in verdict.reason

    none, why = evaluate.by_rollout(model, None, dataclasses.replace(logs, pod_usage=pods.iloc[0:0]), WEIGHTS, seed=0)
    assert none is None and "no per-pod usage" in why
    none, why = evaluate.by_rollout(model, None, dataclasses.replace(logs, start_s=START + 86400,
                                                                     end_s=START + 2 * 86400), WEIGHTS, seed=0)
    assert none is None and "no logged decisions" in why
    bad = dataclasses.replace(logs, decisions=day.decisions.assign(qos="Gold"))
    none, why = evaluate.by_rollout(model, None, bad, WEIGHTS, seed=0)
    assert none is None and "could not be rebuilt" in why and "unknown QoS" in why
