"""``neurokube bench scheduling`` without a cluster: the statistics (nearest-rank percentiles,
pods/s over the whole phase, latencies from the earliest sign of a pod), the ratios and goal
verdicts with how much a missed goal is missed by, the JSON in the issue's shape, kube-scheduler's
own scheduling-attempt histogram (quantiles as Prometheus' histogram_quantile, the extender's added
p99), the binder profile read from /metrics and the decision log, the Broker stand-in's delivery (filtering,
concurrency, retries), and bad arguments (one line, exit 2, before anything starts)."""

import json
import math
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psutil
import pytest

from neurokube.bench import scheduling, stats
from neurokube.cluster.broker import LocalBroker
from neurokube.errors import InputError

# -- percentiles and one phase ----------------------------------------------------------------------


@pytest.mark.parametrize("values, q, expected", [
    ([5.0], 50, 5.0),
    ([5.0], 99, 5.0),
    ([1, 2, 3, 4], 50, 2),  # nearest rank: ceil(0.5 * 4) = 2nd
    ([1, 2, 3, 4], 75, 3),
    ([1, 2, 3, 4], 100, 4),
    (list(range(1, 101)), 99, 99),
    (list(range(1, 2001)), 99, 1980),  # p99 of 2,000 is the 1,980th fastest
    ([3, 1, 2], 50, 2),  # unsorted input
])
def test_nearest_rank_percentiles(values, q, expected):
    assert stats.percentile(values, q) == expected


@pytest.mark.parametrize("values, q", [([], 50), ([1.0], 0), ([1.0], 101)])
def test_percentile_rejects_nonsense(values, q):
    with pytest.raises(ValueError):
        stats.percentile(values, q)


def test_a_phase_is_timed_from_first_created_to_last_bound():
    created = {"a": 10.0, "b": 10.5, "c": 11.0, "d": 12.0}
    bound = {"a": 10.1, "b": 10.7, "c": 11.4, "d": 14.0}
    r = stats.summarize(stats.NEUROKUBE, created, bound)
    assert r.pods == r.bound == 4
    assert r.span_s == pytest.approx(4.0) and r.create_span_s == pytest.approx(2.0)
    assert r.pods_per_s == pytest.approx(1.0)  # 4 pods / (14.0 - 10.0)
    assert r.p50_ms == pytest.approx(200.0)  # latencies 100, 200, 400, 2000
    assert r.p99_ms == pytest.approx(2000.0) and r.max_ms == pytest.approx(2000.0)
    assert r.mean_ms == pytest.approx(675.0)


def test_unbound_pods_count_as_created_not_in_latencies_and_clock_skew_is_not_negative():
    r = stats.summarize(stats.KUBE_SCHEDULER, {"a": 1.0, "b": 1.0, "c": 1.0}, {"a": 0.999, "b": 2.0})
    assert (r.pods, r.bound) == (3, 2)
    assert r.p50_ms == 0.0 and r.p99_ms == pytest.approx(1000.0)
    with pytest.raises(ValueError):
        stats.summarize(stats.NEUROKUBE, {"a": 1.0}, {})
    with pytest.raises(ValueError):
        stats.summarize(stats.NEUROKUBE, {}, {})


def test_rounds_are_reported_as_medians():
    rounds = [stats.PhaseResult(stats.NEUROKUBE, 10, 10, s, p50, p99, p99, p50, 1.0, 0.5)
              for s, p50, p99 in ((50.0, 300, 900), (80.0, 100, 2000), (60.0, 200, 1000))]
    m = stats.median_of(rounds)
    assert (m.pods_per_s, m.p50_ms, m.p99_ms) == (60.0, 200, 1000)  # each measure's own median
    assert stats.median_of(rounds[:2]).p99_ms == 1450  # even count: the mean of the middle two
    with pytest.raises(ValueError):
        stats.median_of([])
    with pytest.raises(ValueError):
        stats.median_of([rounds[0], stats.PhaseResult(stats.KUBE_SCHEDULER, *list(vars(rounds[0]).values())[1:])])


# -- ratios and verdicts ------------------------------------------------------------------------------


def phase(name, pods_per_s, p50, p99):
    return stats.PhaseResult(name, 100, 100, pods_per_s, p50, p99, p99, p50, 100 / pods_per_s, 1.0)


def test_api_requests_per_bound_pod_by_verb_request_and_writes():
    before = {("POST", "pods", ""): 100.0, ("GET", "nodes", ""): 7.0, ("LIST", "pods", ""): 3.0}
    after = {("POST", "pods", ""): 120.0, ("POST", "pods", "binding"): 20.0, ("PUT", "leases", ""): 10.0,
             ("GET", "nodes", ""): 47.0, ("LIST", "pods", ""): 3.0, ("APPLY", "pods", "status"): 20.0,
             ("WATCH", "pods", ""): 0.05}
    got = stats.api_requests_per_pod(before, after, 20)
    assert got["by_verb"] == {"APPLY": 1.0, "GET": 2.0, "POST": 2.0, "PUT": 0.5, "WATCH": 0.003}
    assert got["writes"] == 3.5  # POST 2 + PUT 0.5 + APPLY 1; reads and watches are not writes
    assert list(got["by_request"])[:2] == ["GET nodes", "POST pods"]  # largest first
    assert got["by_request"]["POST pods/binding"] == 1.0 and "WATCH pods" not in got["by_request"]  # < 0.005
    with pytest.raises(ValueError):
        stats.api_requests_per_pod(before, after, 0)


def test_api_requests_over_rounds_are_medians():
    rounds = [{"by_verb": {"POST": 2.0, "GET": 1.0}, "writes": 2.0}, {"by_verb": {"POST": 4.0}, "writes": 4.0},
              {"by_verb": {"POST": 3.0, "GET": 5.0}, "writes": 3.0}]
    assert stats.median_requests(rounds) == {"by_verb": {"GET": 1.0, "POST": 3.0}, "writes": 3.0}


def test_goals_met():
    results = {stats.KUBE_SCHEDULER: phase(stats.KUBE_SCHEDULER, 40.0, 300, 1000),
               stats.NEUROKUBE: phase(stats.NEUROKUBE, 40.0, 350, 1500)}
    found = stats.verdicts(results, 500)
    assert [v.met for v in found] == [True, True]  # exactly at both limits
    assert stats.ratios(results) == {"throughput": 1.0, "p50": pytest.approx(350 / 300), "p99": 1.5}


def test_the_goals_hold_only_if_they_hold_in_every_round():
    """Issue 13's goals are for the median *and* every round: a median that meets them does not
    hide a round that misses, and the verdict names that round."""
    def pair(ks_rate, nk_rate, ks_p99=1000, nk_p99=900):
        return {stats.KUBE_SCHEDULER: phase(stats.KUBE_SCHEDULER, ks_rate, 300, ks_p99),
                stats.NEUROKUBE: phase(stats.NEUROKUBE, nk_rate, 300, nk_p99)}

    rounds = [pair(100.0, 108.0), pair(100.0, 94.0, nk_p99=1600), pair(100.0, 105.0)]
    median = pair(100.0, 105.0)
    throughput, latency = stats.verdicts(median, 500, rounds)
    assert not throughput.met and throughput.miss == "round 2 at 0.94 x: 6 % short"
    assert throughput.measured == "1.05 x (105.0 vs 100.0 pods/s); rounds 1.08, 0.94, 1.05 x"
    assert "every round" in throughput.goal
    assert not latency.met and latency.miss == "round 2 at 1.60 x, over 1.5 x"
    good = [pair(100.0, 101.0), pair(100.0, 103.0), pair(100.0, 100.0)]
    assert [v.met for v in stats.verdicts(median, 500, good)] == [True, True]
    assert [v.met for v in stats.verdicts(median, 500, rounds[1:2])] == [True, True]  # one round: the median alone


def test_missed_goals_say_by_how_much():
    results = {stats.KUBE_SCHEDULER: phase(stats.KUBE_SCHEDULER, 40.0, 300, 1000),
               stats.NEUROKUBE: phase(stats.NEUROKUBE, 30.0, 900, 2000)}
    throughput, latency = stats.verdicts(results, 500)
    assert not throughput.met and "25 % short" in throughput.miss and "10.0 pods/s more" in throughput.miss
    assert throughput.measured.startswith("0.75 x")
    assert not latency.met and latency.miss.startswith("500 ms over")  # 2000 - 1.5 x 1000
    table = stats.goals_table([throughput, latency])
    assert table.count("**NOT met**") == 2


def test_the_extender_verdict_is_the_added_p99_and_names_the_node_count():
    results = {stats.KUBE_SCHEDULER: phase(stats.KUBE_SCHEDULER, 40.0, 300, 1000),
               stats.NEUROKUBE: phase(stats.NEUROKUBE, 40.0, 300, 1000),
               stats.EXTENDER: phase(stats.EXTENDER, 35.0, 310, 1004)}
    ext = stats.verdicts(results, 1000)[2]
    assert ext.met and ext.measured.startswith("+4 ms") and ext.note == ""
    results[stats.EXTENDER] = phase(stats.EXTENDER, 35.0, 310, 1020)
    ext = stats.verdicts(results, 500)[2]
    assert not ext.met and ext.miss == "15 ms over" and "measured at 500" in ext.note
    assert stats.ratios(results)["extender_added_p99_ms"] == pytest.approx(20.0)


def test_zero_baselines_do_not_divide_by_zero():
    results = {stats.KUBE_SCHEDULER: phase(stats.KUBE_SCHEDULER, 40.0, 0, 0),
               stats.NEUROKUBE: phase(stats.NEUROKUBE, 40.0, 0, 5)}
    r = stats.ratios(results)
    assert r["p50"] == 1.0 and math.isinf(r["p99"])


def test_json_has_the_issue_shape_with_extra_keys_beside_it():
    results = {stats.KUBE_SCHEDULER: phase(stats.KUBE_SCHEDULER, 40.0, 300, 1000),
               stats.NEUROKUBE: phase(stats.NEUROKUBE, 20.0, 600, 3000)}
    doc = json.loads(json.dumps(stats.to_json(results, 500, {"model": "m"})))
    for name in ("kube_scheduler", "neurokube"):
        assert {"pods_per_s", "p50_ms", "p99_ms"} <= set(doc[name])
        assert all(isinstance(doc[name][k], (int, float)) for k in ("pods_per_s", "p50_ms", "p99_ms"))
    assert doc["neurokube"]["p99_ms"] == 3000 and doc["kube_scheduler"]["pods_per_s"] == 40.0
    assert doc["ratios"]["throughput"] == 0.5 and doc["ratios"]["p99"] == 3.0
    assert [g["met"] for g in doc["goals"]] == [False, False] and doc["model"] == "m" and doc["nodes"] == 500


# -- the runner's pure parts ----------------------------------------------------------------------------


def test_the_same_pods_for_every_phase_only_the_scheduler_differs():
    specs = scheduling.pod_specs(50, seed=3)
    assert specs == scheduling.pod_specs(50, seed=3) and specs != scheduling.pod_specs(50, seed=4)
    a = scheduling.manifests("run", stats.KUBE_SCHEDULER, "default-scheduler", specs)
    b = scheduling.manifests("run", stats.NEUROKUBE, "neurokube", specs)
    strip = [(m["spec"]["containers"], m["metadata"]["labels"][scheduling.LABEL]) for m in a]
    assert strip == [(m["spec"]["containers"], m["metadata"]["labels"][scheduling.LABEL]) for m in b]
    assert {m["spec"]["schedulerName"] for m in b} == {"neurokube"}
    names = [{m["metadata"]["name"] for m in ms} for ms in (
        a, b, scheduling.manifests("run", stats.EXTENDER, "x", specs),
        scheduling.manifests("run", stats.KUBE_SCHEDULER, "default-scheduler", specs, round_=2))]
    assert sum(map(len, names)) == len(set().union(*names)) == 200  # the watch keys on names: never reused


def test_options_are_checked_before_anything_starts(tmp_path):
    with pytest.raises(InputError, match="not a model directory"):
        scheduling.BenchOptions(nodes=5, pods=5, model_dir=tmp_path)
    with pytest.raises(InputError):
        scheduling.BenchOptions(nodes=0, pods=5)
    assert scheduling.BenchOptions(nodes=5, pods=100).phase_timeout_s == 110.0


METRICS_BEFORE = """
neurokube_decision_duration_seconds_bucket{stage="total",le="0.05"} 10
neurokube_decision_duration_seconds_bucket{stage="total",le="0.1"} 10
neurokube_decision_duration_seconds_bucket{stage="total",le="+Inf"} 10
neurokube_decision_duration_seconds_count{stage="total"} 10
neurokube_decision_duration_seconds_sum{stage="total"} 0.3
neurokube_decisions_total{policy="neurokube",outcome="bound"} 10
"""
METRICS_AFTER = """
neurokube_decision_duration_seconds_bucket{stage="total",le="0.05"} 60
neurokube_decision_duration_seconds_bucket{stage="total",le="0.1"} 109
neurokube_decision_duration_seconds_bucket{stage="total",le="+Inf"} 110
neurokube_decision_duration_seconds_count{stage="total"} 110
neurokube_decision_duration_seconds_sum{stage="total"} 6.3
neurokube_decisions_total{policy="neurokube",outcome="bound"} 105
neurokube_decisions_total{policy="default",outcome="bound"} 5
"""


def parsed(text):
    from prometheus_client.parser import text_string_to_metric_families

    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def test_profile_from_metric_deltas():
    before, after = parsed(METRICS_BEFORE), parsed(METRICS_AFTER)
    assert scheduling.delta(before, after, "neurokube_decisions_total", outcome="bound") == 100
    h = scheduling.histogram_profile(before, after, "neurokube_decision_duration_seconds", "stage", "total")
    assert h == {"count": 100, "mean_ms": 60.0, "p50_ms_le": 50.0, "p99_ms_le": 100.0}
    assert scheduling.histogram_profile(before, after, "neurokube_decision_duration_seconds", "stage",
                                        "decide") == {"count": 0}


def test_where_the_time_goes_from_the_decision_log(tmp_path):
    log = tmp_path / "binder.log"
    lines = [json.dumps({"ts": 100.5, "msg": "pod bound", "pod": "default/p1", "ms": 100.0}),
             "not json", json.dumps({"ts": 101.0, "msg": "event ignored", "pod": "default/p2"}),
             json.dumps({"ts": 102.0, "msg": "pod bound", "pod": "default/other-run", "ms": 5.0})]
    log.write_text("\n".join(lines) + "\n")
    out = scheduling.binder_log_profile(log, 0, {"p1": 100.0}, {"p1": 100.52})
    assert out["pods_in_log"] == 1
    assert out["wait_for_delivery_ms"]["p50"] == pytest.approx(400.0)  # placement started at 100.4
    assert out["placement_ms"]["p50"] == 100.0
    assert out["bound_to_watch_ms"]["p50"] == pytest.approx(20.0)


# -- kube-scheduler's own scheduling attempts -----------------------------------------------------------

INF = math.inf


def test_histogram_quantile_interpolates_inside_the_bucket_like_prometheus():
    buckets = [(0.001, 0), (0.002, 10), (0.004, 30), (0.008, 40), (INF, 40)]
    # rank 20 falls in (0.002, 0.004], which holds counts 11..30: 0.002 + 0.002 * (20 - 10) / 20
    assert stats.histogram_quantile(0.5, buckets) == pytest.approx(0.003)
    # rank 39.6 in (0.004, 0.008], counts 31..40: 0.004 + 0.004 * 9.6 / 10
    assert stats.histogram_quantile(0.99, buckets) == pytest.approx(0.00784)
    assert stats.histogram_quantile(1.0, buckets) == pytest.approx(0.008)
    assert stats.histogram_quantile(0.5, list(reversed(buckets))) == pytest.approx(0.003)  # order does not matter
    assert stats.histogram_quantile(0.5, [(0.001, 10), (INF, 10)]) == pytest.approx(0.0005)  # first bucket from 0


def test_a_quantile_in_the_inf_bucket_is_the_highest_finite_bound():
    buckets = [(0.001, 0), (0.002, 5), (INF, 10)]
    assert stats.histogram_quantile(0.99, buckets) == 0.002  # rank 9.9 lies beyond every finite bound
    assert stats.histogram_quantile(0.4, buckets) == pytest.approx(0.0018)


def test_histogram_quantile_of_nothing_is_none_and_nonsense_is_an_error():
    assert stats.histogram_quantile(0.99, [(0.001, 0), (0.002, 0), (INF, 0)]) is None
    with pytest.raises(ValueError):
        stats.histogram_quantile(0.5, [(0.001, 1), (0.002, 2)])  # no +Inf bucket
    with pytest.raises(ValueError):
        stats.histogram_quantile(0.5, [(INF, 3)])  # nothing to interpolate in
    for q in (0.0, 1.5):
        with pytest.raises(ValueError):
            stats.histogram_quantile(q, [(0.001, 1), (INF, 1)])


def attempts_text(profile_counts):
    """kube-scheduler's /metrics text: {(profile, result): cumulative counts for le 1, 2, 4 ms, +Inf}."""
    lines = ["# TYPE scheduler_scheduling_attempt_duration_seconds histogram"]
    for (profile, result), counts in profile_counts.items():
        for le, count in zip(("0.001", "0.002", "0.004", "+Inf"), counts):
            lines.append(f'scheduler_scheduling_attempt_duration_seconds_bucket{{profile="{profile}",'
                         f'result="{result}",le="{le}"}} {count}')
        lines.append(f'scheduler_scheduling_attempt_duration_seconds_count{{profile="{profile}",result="{result}"}} '
                     f"{counts[-1]}")
    return "\n".join(lines) + "\n"


def test_scheduling_attempts_are_the_phase_bucket_deltas_of_one_profile():
    before = attempts_text({("default-scheduler", "scheduled"): (5, 5, 5, 5),
                            ("other", "scheduled"): (0, 0, 0, 0)})
    after = attempts_text({("default-scheduler", "scheduled"): (5, 55, 95, 100),
                           ("default-scheduler", "unschedulable"): (0, 0, 5, 5),
                           ("other", "scheduled"): (0, 0, 0, 1000)})
    b = scheduling.attempt_buckets(before, "default-scheduler")
    a = scheduling.attempt_buckets(after, "default-scheduler")
    assert a[("scheduled", INF)] == 100 and ("scheduled", 0.004) in a and len(a) == 8  # "other" left out
    got = stats.scheduling_attempts(stats.bucket_deltas(b, a))
    # 100 attempts: le 1 ms 0, le 2 ms 50, le 4 ms 95, +Inf 100
    assert got["attempts"] == 100
    assert got["p50"] == pytest.approx(2.0)  # rank 50: the top of (1, 2] ms
    assert got["p99"] == 4.0  # rank 99 beyond 4 ms: the highest finite bound
    assert got["by_result"]["scheduled"] == {"p50": pytest.approx(1.95), "p99": 4.0, "attempts": 95}  # rank 47.5 of 50
    assert got["by_result"]["unschedulable"]["attempts"] == 5
    assert stats.scheduling_attempts(stats.bucket_deltas(a, a)) is None  # nothing happened in between
    assert stats.scheduling_attempts({}) is None


def test_rounds_of_attempts_are_pooled():
    one = {("scheduled", 0.001): 10.0, ("scheduled", INF): 10.0}
    two = {("scheduled", 0.001): 0.0, ("scheduled", 0.002): 10.0, ("scheduled", INF): 10.0}
    pooled = stats.pooled([one, two])
    assert pooled == {("scheduled", 0.001): 10.0, ("scheduled", 0.002): 10.0, ("scheduled", INF): 20.0}
    assert stats.scheduling_attempts(pooled)["p50"] == pytest.approx(1.0)


def test_the_attempt_verdict_is_the_extender_phase_p99_minus_the_plain_one():
    plain = {"p50": 1.0, "p99": 20.0, "attempts": 500}
    v = stats.attempt_verdict(plain, {"p50": 1.5, "p99": 25.0, "attempts": 500}, 1000)
    assert v.met and v.measured.startswith("+5.0 ms") and v.note == ""
    v = stats.attempt_verdict(plain, {"p50": 1.5, "p99": 32.5, "attempts": 510}, 50)
    assert not v.met and v.miss == "7.5 ms over" and "measured at 50" in v.note
    v = stats.attempt_verdict(None, {"p50": 1.5, "p99": 25.0, "attempts": 500}, 1000)
    assert not v.met and v.measured == "not measured" and "for kube-scheduler" in v.miss


def bench_result(attempts_by_round, nodes=1000):
    def record(name, p99, attempts=None):
        return scheduling.PhaseRecord(name, phase(name, 40, 300, p99), {"p": "n1"}, {}, attempts=attempts)

    rounds = [{stats.KUBE_SCHEDULER: record(stats.KUBE_SCHEDULER, 1000, ks),
               stats.NEUROKUBE: record(stats.NEUROKUBE, 1000),
               stats.EXTENDER: record(stats.EXTENDER, 1003, ex)} for ks, ex in attempts_by_round]
    options = scheduling.BenchOptions(nodes=nodes, pods=100, extender=True, rounds=len(rounds))
    return scheduling.BenchResult(options, rounds, "m", "fake", "c")


def test_bench_json_and_markdown_carry_the_scheduling_attempts_beside_the_old_keys():
    fast = {("scheduled", 0.001): 0.0, ("scheduled", 0.002): 100.0, ("scheduled", 0.004): 100.0,
            ("scheduled", INF): 100.0}
    slow = {("scheduled", 0.001): 0.0, ("scheduled", 0.002): 0.0, ("scheduled", 0.004): 100.0,
            ("scheduled", INF): 100.0}
    result = bench_result([(fast, slow)])
    doc = json.loads(json.dumps(result.to_json()))
    for name in ("kube_scheduler", "neurokube", "kube_scheduler_extender"):
        assert {"pods_per_s", "p50_ms", "p99_ms", "api_requests_per_pod"} <= set(doc[name])
    assert doc["kube_scheduler"]["scheduling_attempt_ms"]["p99"] == pytest.approx(1.99)
    assert doc["kube_scheduler_extender"]["scheduling_attempt_ms"]["p99"] == pytest.approx(3.98)
    assert doc["kube_scheduler_extender"]["scheduling_attempt_ms"]["by_result"]["scheduled"]["attempts"] == 100
    assert "scheduling_attempt_ms" not in doc["neurokube"]
    assert "scheduling_attempt_ms" not in doc["rounds"][0]["neurokube"]
    assert doc["rounds"][0]["kube_scheduler"]["scheduling_attempt_ms"]["attempts"] == 100
    assert doc["ratios"]["extender_added_attempt_p99_ms"] == pytest.approx(1.99)
    assert doc["ratios"]["extender_added_p99_ms"] == 3  # the create-to-bound goal stays
    assert [g["met"] for g in doc["goals"]] == [True, True, True, True]
    assert "scheduling attempt" in doc["goals"][-1]["goal"]
    text = scheduling.markdown(result, "neurokube bench scheduling --extender")
    assert "extender adds <= 5 ms p99 per pod" in text  # the create-to-bound row
    assert "The extender adds 2.0 ms to kube-scheduler's p99 scheduling attempt (goal <= 5 ms): met." in text
    slower = {**slow, ("scheduled", 0.004): 0.0, ("scheduled", 0.008): 100.0}
    doc = bench_result([(fast, slower)]).to_json()
    assert not doc["goals"][-1]["met"] and doc["goals"][-1]["miss"] == "1.0 ms over"  # 7.96 - 1.99 - 5
    assert "**NOT met**" in scheduling.markdown(bench_result([(fast, slower)]), "x")


def test_an_unread_scheduler_is_reported_not_measured_not_zero():
    fast = {("scheduled", 0.001): 10.0, ("scheduled", INF): 10.0}
    result = bench_result([(fast, fast), (fast, None)])
    doc = json.loads(json.dumps(result.to_json()))
    assert doc["kube_scheduler_extender"]["scheduling_attempt_ms"] is None
    assert doc["rounds"][0]["kube_scheduler_extender"]["scheduling_attempt_ms"]["attempts"] == 10
    assert doc["kube_scheduler"]["scheduling_attempt_ms"]["attempts"] == 20  # both rounds together
    assert doc["goals"][-1]["measured"] == "not measured" and not doc["goals"][-1]["met"]
    assert "extender_added_attempt_p99_ms" not in doc["ratios"]


# -- CPU per bound pod --------------------------------------------------------------------------------


def test_cpu_per_bound_pod_is_the_phase_delta_of_every_process_read_both_times():
    before = {"kube-scheduler": 10.0, "binder": 5.0, "kube-apiserver": 100.0, "etcd": 3.0}
    after = {"kube-scheduler": 10.5, "binder": 9.0, "kube-apiserver": 104.0, "kwok": 1.0}
    got = stats.cpu_ms_per_pod(before, after, 2000)
    # ms per pod: (after - before) * 1000 / pods; etcd and kwok were read once only: left out
    assert got == {"kube-scheduler": 0.25, "binder": 2.0, "kube-apiserver": 2.0}
    assert stats.cpu_ms_per_pod(before, after, 0) == {}
    assert stats.cpu_ms_per_pod({"bench": 5.0}, {"bench": 4.0}, 10) == {"bench": 0.0}  # never negative


def test_own_cpu_is_each_schedulers_own_processes_and_the_table_shows_the_shared_ones():
    ks = {"kube-scheduler": 1.5, "binder": 0.1, "kube-apiserver": 3.0, "etcd": 1.0}
    nk = {"kube-scheduler": 0.05, "binder": 4.0, "sweeper": 0.2, "receive-adapter": 0.8, "kube-apiserver": 3.5,
          "etcd": 1.2}
    assert stats.own_cpu(stats.KUBE_SCHEDULER, ks) == 1.5  # the idle binder is not kube-scheduler's
    assert stats.own_cpu(stats.NEUROKUBE, nk) == 5.0  # binder + sweeper + the adapter delivering its events
    assert stats.own_cpu(stats.EXTENDER, ks) is None  # neither of its processes was read
    text = stats.cpu_table({stats.KUBE_SCHEDULER: ks, stats.NEUROKUBE: nk})
    rows = text.splitlines()
    assert rows[0].startswith("| scheduler | its own processes | own ms | kube-apiserver | etcd |")
    assert "| 1.50 | 3.00 | 1.00 | 5.50 |" in rows[2]  # own, apiserver, etcd, all
    assert "| 5.00 | 3.50 | 1.20 | 9.70 |" in rows[3]


def test_cpu_is_reported_as_the_median_of_the_rounds_in_json_and_markdown():
    def record(name, cpu):
        return scheduling.PhaseRecord(name, phase(name, 40, 300, 1000), {"p": "n1"}, {}, cpu_ms_per_pod=cpu)

    rounds = [{stats.KUBE_SCHEDULER: record(stats.KUBE_SCHEDULER, {"kube-scheduler": k, "kube-apiserver": 2.0}),
               stats.NEUROKUBE: record(stats.NEUROKUBE, {"binder": b, "kube-apiserver": 3.0})}
              for k, b in ((1.0, 4.0), (3.0, 8.0), (2.0, 5.0))]
    result = scheduling.BenchResult(scheduling.BenchOptions(nodes=10, pods=100, rounds=3), rounds, "m", "f", "c")
    doc = json.loads(json.dumps(result.to_json()))
    assert doc["kube_scheduler"]["cpu_ms_per_pod"] == {"kube-scheduler": 2.0, "kube-apiserver": 2.0}
    assert doc["neurokube"]["cpu_ms_per_pod"] == {"binder": 5.0, "kube-apiserver": 3.0}
    assert doc["rounds"][1]["neurokube"]["cpu_ms_per_pod"]["binder"] == 8.0
    text = scheduling.markdown(result, "x")
    assert "CPU per bound pod, ms" in text and "| NeuroKube binder | binder, sweeper, receive-adapter | 5.00 |" in text


def test_process_cpu_reads_this_process_and_leaves_out_one_that_is_gone():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    busy = time.thread_time() + 0.05
    while time.thread_time() < busy:  # use some CPU, so that the reading cannot be zero
        pass
    got = scheduling.process_cpu_s({"bench": os.getpid(), "gone": child.pid})
    assert set(got) == {"bench"} and got["bench"] >= 0.05


def test_process_cpu_counts_children_only_for_the_functions():
    code = "import time\nt = time.process_time() + 0.3\nwhile time.process_time() < t: pass\ntime.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # until the child has spent its CPU
            times = psutil.Process(child.pid).cpu_times()
            if times.user + times.system >= 0.3:
                break
            time.sleep(0.05)
        alone = scheduling.process_cpu_s({"bench": os.getpid()})["bench"]
        got = scheduling.process_cpu_s({"binder": os.getpid()})  # a function: its worker counts
        assert got["binder"] >= alone + 0.3 - 0.02
        # the bench: the cluster and functions it started are read under their own names
        assert scheduling.process_cpu_s({"bench": os.getpid()})["bench"] < alone + 0.2
    finally:
        child.kill()
        child.wait()


def test_the_scheduler_client_reuses_the_credentials_on_the_scheduler_port(tmp_path):
    from neurokube.adapters.kube import KubeClient

    config = tmp_path / "kc"
    config.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "u", "user": {"token": "secret"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    kube = KubeClient.from_kubeconfig(config)
    client = scheduling.scheduler_client(kube, 1)
    assert client.server == "https://127.0.0.1:1" and client.configuration.verify_ssl is False
    assert client.configuration.api_key == kube.configuration.api_key  # the same user
    assert kube.server == "https://127.0.0.1:6443" and kube.configuration.verify_ssl is True  # untouched
    assert scheduling.scheduling_attempt_buckets(client, "default-scheduler") is None  # nothing listens on port 1


# -- the Broker stand-in ------------------------------------------------------------------------------


class Subscriber:
    """A binder double: answers ``codes`` in turn (then 200), records the concurrency it saw."""

    def __init__(self, codes=(), delay_s=0.0):
        self.codes = list(codes)
        self.seen, self.in_flight, self.max_in_flight = [], 0, 0
        lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:
                    owner.in_flight += 1
                    owner.max_in_flight = max(owner.max_in_flight, owner.in_flight)
                    code = owner.codes.pop(0) if owner.codes else 200
                    owner.seen.append((self.headers.get("ce-type"), code))
                time.sleep(delay_s)
                with lock:
                    owner.in_flight -= 1
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def post(url, kind):
    import urllib.request

    request = urllib.request.Request(url, data=b"{}", method="POST",
                                     headers={"ce-type": kind, "ce-id": "1", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status


def wait_idle(broker):
    for _ in range(500):
        if broker.idle():
            return
        time.sleep(0.01)
    raise AssertionError("the broker never went idle")


def test_broker_acks_at_once_and_delivers_concurrently_only_the_triggered_types():
    sub = Subscriber(delay_s=0.2)
    broker = LocalBroker(sub.url, concurrency=4)
    try:
        started = time.monotonic()
        codes = [post(broker.url, "dev.knative.apiserver.resource.add") for _ in range(8)]
        codes.append(post(broker.url, "dev.knative.apiserver.resource.delete"))
        codes.append(post(broker.url, "dev.knative.apiserver.resource.update"))
        assert codes == [202] * 10 and time.monotonic() - started < 1.0  # not 8 x 0.2 s
        wait_idle(broker)
        assert sub.max_in_flight == 4
        assert [t for t, _ in sub.seen] == ["dev.knative.apiserver.resource.add"] * 8
        assert broker.stats.filtered == 2 and broker.stats.delivered == 8  # no Trigger for updates and deletes
    finally:
        broker.close()
        sub.close()


def test_broker_retries_5xx_with_backoff_and_drops_4xx():
    sub = Subscriber(codes=[503, 503, 200, 400])
    broker = LocalBroker(sub.url, concurrency=1, backoff_s=0.01)
    try:
        post(broker.url, "dev.knative.apiserver.resource.add")  # 503, 503, then 200
        wait_idle(broker)
        post(broker.url, "dev.knative.apiserver.resource.add")  # 400: not retried
        wait_idle(broker)
        assert [c for _, c in sub.seen] == [503, 503, 200, 400]
        assert (broker.stats.retries, broker.stats.delivered, broker.stats.rejected) == (2, 1, 1)
    finally:
        broker.close()
        sub.close()


# -- the command line ------------------------------------------------------------------------------


def run(*argv):
    return subprocess.run([sys.executable, "-m", "neurokube.cli.main", *argv], capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("argv, needle", [
    (["bench", "scheduling", "--nodes", "0"], "must be positive"),
    (["bench", "scheduling", "--pods", "many"], "not a whole number"),
    (["bench", "scheduling", "--rate", "-1"], "must not be negative"),
    (["bench", "scheduling", "--rounds", "0"], "must be positive"),
    (["bench", "scheduling", "--model", "/nonexistent/model"], "not a directory"),
    (["bench", "scheduling", "--model", "{tmp}"], "not a model directory"),
    (["bench", "scheduling", "--json", "{tmp}"], "is a directory"),
    (["bench", "nonsense"], "invalid choice"),
])
def test_bad_arguments_are_one_line_and_exit_2(tmp_path, argv, needle):
    result = run(*(a.format(tmp=tmp_path) for a in argv))
    assert result.returncode == 2, result.stderr
    assert needle in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2


def test_rounds_alternate_which_scheduler_goes_first():
    """The phase after another pays for some of its cleanup (KWOK's late DELETEs), so the order
    alternates: kube-scheduler first in odd rounds, NeuroKube first in even ones."""
    firsts = [scheduling.phase_order(n)[0][0] for n in (1, 2, 3, 4)]
    assert firsts == [stats.KUBE_SCHEDULER, stats.NEUROKUBE, stats.KUBE_SCHEDULER, stats.NEUROKUBE]
    assert {frozenset(scheduling.phase_order(n)) for n in (1, 2)} == {frozenset(scheduling.phase_order(1))}


def test_the_profile_says_how_the_ledger_reserved_the_pods_and_only_when_it_was_counted():
    profile = {"decision_stages": {}, "ledger_reservations": {"write": 18, "credit": 282}}
    assert ("with a Lease write 18, under the binder's credit (no write) 282"
            in scheduling.profile_text(profile))
    assert "ledger reserved" not in scheduling.profile_text({"decision_stages": {}})  # a JSON from before the counter
