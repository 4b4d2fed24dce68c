"""The live loop's pure parts: a trace slice as live pods, their usage as the emulator's source, and the
outcomes of a usage frame in the replay's units."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from neurokube.cluster.functions import BINDER_THREADS
from neurokube.errors import InputError
from neurokube.liveloop import outcomes, plan
from neurokube.liveloop.run import LiveLoopSettings
from neurokube.liveloop.usage import LiveUsage, Node
from neurokube.trace.assemble import ArrivalSettings
from neurokube.trace.synth import SynthSettings, synth_trace
from neurokube.trace.usage import pod_usage


@pytest.fixture(scope="module")
def trace():
    return synth_trace("loop", SynthSettings(arrivals=ArrivalSettings(hours=3, target_load=0.7, warmup_hours=0, seed=4),
                                             nodes=5, workloads=12))


def test_a_slice_is_its_hours_of_arrivals_compressed(trace):
    pods = plan.slice_pods(trace, 1, 1.0, 60.0, "nk2")
    rows = np.array([p.index for p in pods])
    created = trace.pods.creation_s[rows]
    assert ((created >= 3600) & (created < 7200)).all() and len(pods) == int(
        ((trace.pods.creation_s >= 3600) & (trace.pods.creation_s < 7200)).sum())
    assert np.all(np.diff(created) >= 0)  # creation order
    first = pods[0]
    assert first.name == "nk2-00000" and first.create_at_s == pytest.approx((created[0] - 3600) / 60)
    assert first.run_for_s == pytest.approx(max(1.0, trace.pods.duration_s[first.index] / 60))
    assert first.cpu_request_milli == trace.pods.cpu_request_milli[first.index]
    # the same slice for the other scheduler: same pods and times, other names
    other = plan.slice_pods(trace, 1, 1.0, 60.0, "ks2")
    assert [(p.index, p.create_at_s) for p in other] == [(p.index, p.create_at_s) for p in pods]


def test_slices_are_counted_and_bad_ones_refused(trace):
    assert plan.slices_in(trace, 1.0) == 3
    with pytest.raises(InputError, match="no pods"):
        plan.slice_pods(trace, 10, 1.0, 60.0, "x")
    with pytest.raises(InputError, match="positive"):
        plan.slice_pods(trace, 0, 0.0, 60.0, "x")


def test_owner_names_are_dns_names_and_distinct():
    a, b = plan.owner_name("team-a", "Web_Front/v2"), plan.owner_name("team-a", "web-front-v2")
    assert a != b and a.startswith("wl-team-a-web-front-v2-")
    assert all(len(n) <= 63 and n == n.lower() for n in (a, b, plan.owner_name("x" * 200, "y")))


def test_the_manifest_carries_requests_limits_run_for_and_the_owner(trace):
    pod = plan.slice_pods(trace, 0, 1.0, 60.0, "ks1")[0]
    pod = plan.LivePod(**{**pod.__dict__, "cpu_limit_milli": 2000, "memory_limit_mib": 0, "run_for_s": 1.5})
    doc = plan.pod_manifest(pod, "default", "neurokube", "uid-1", {"run": "ks1"})
    resources = doc["spec"]["containers"][0]["resources"]
    assert resources["requests"] == {"cpu": f"{pod.cpu_request_milli}m", "memory": f"{pod.memory_request_mib}Mi"}
    assert resources["limits"] == {"cpu": "2000m"}
    assert doc["metadata"]["annotations"][plan.RUN_FOR_ANNOTATION] == "1500ms"
    assert doc["metadata"]["ownerReferences"][0] == {"apiVersion": "v1", "kind": "ConfigMap", "name": pod.workload,
                                                     "uid": "uid-1", "controller": True, "blockOwnerDeletion": False}
    assert doc["spec"]["schedulerName"] == "neurokube"


def test_usage_follows_the_profile_at_the_compressed_age_until_the_run_ends(trace):
    nodes = [Node(str(n), int(c), int(m)) for n, c, m in zip(trace.nodes.name, trace.nodes.cpu_milli,
                                                              trace.nodes.memory_mib, strict=True)]
    usage = LiveUsage(trace, nodes, speed=60.0, namespace="default")
    assert usage.bind("p1", 3, nodes[2].name, bound_wall_s=1000.0, run_for_s=10.0)
    assert usage.bind("p2", 5, nodes[2].name, bound_wall_s=1002.0, run_for_s=100.0)
    assert not usage.bind("p3", 6, "no-such-node", 1000.0, 10.0)
    snap = usage.snapshot(1005.0)
    cpu, mem = pod_usage(trace.pods, trace.profiles, np.array([3, 5]), np.array([5.0 * 60, 3.0 * 60]))
    assert snap.nodes[2].cpu_milli_used == pytest.approx(cpu.sum())
    assert snap.nodes[2].mem_mib_used == pytest.approx(mem.sum())
    assert {p.name for p in snap.pods} == {"p1", "p2"} and all(n.cpu_milli_used == 0 for n in snap.nodes[:2])
    later = usage.snapshot(1011.0)  # p1's run is over
    assert [p.name for p in later.pods] == ["p2"] and usage.running(1011.0) == 1
    usage.forget({"p2"})
    assert usage.snapshot(1011.0).pods == [] and usage.running(1011.0) == 0


def test_outcomes_of_a_usage_frame_are_in_trace_units():
    frame = pd.DataFrame({"ts": [0, 0, 1, 1], "node": ["a", "b", "a", "b"],
                          "cpu_used_milli": [5000.0, 0.0, 9000.0, 1000.0], "cpu_alloc_milli": [8000.0] * 4,
                          "mem_used_mib": [10.0, 0.0, 10.0, 5.0]})
    got = outcomes.from_usage(frame, step_s=1, speed=60.0)
    assert got["contention_core_s"] == pytest.approx(1.0 * 60)  # 1 core over for one 1-s step = 60 trace s
    assert got["node_hours"] == pytest.approx(3 * 60 / 3600)  # three node-steps with a working set
    assert outcomes.from_usage(frame.iloc[:0], 1, 60.0) == {"contention_core_s": 0.0, "node_hours": 0.0}
    assert outcomes.pending({"a": 10.0, "b": 10.0}, {"a": 12.0}, end_s=20.0, speed=60.0) == pytest.approx(
        (2.0 + 10.0) * 60)


def test_the_spread_of_waits_separates_slow_binding_from_waiting_for_room():
    created = {"a": 0.0, "b": 0.0, "c": 0.0, "d": 0.0}
    bound = {"a": 0.1, "b": 0.2, "c": 2.0}  # d is never bound: it waits until the end (5 s wall)
    got = outcomes.waits(created, bound, end_s=5.0, speed=60.0)
    assert got["wait_max_s"] == pytest.approx(300.0)
    assert got["wait_p50_s"] == pytest.approx((12.0 + 120.0) / 2)
    assert got["long_waits"] == 2  # c (120 trace s) and d (300): a trace minute or more
    total = outcomes.pending(created, bound, end_s=5.0, speed=60.0)
    assert got["long_wait_share"] == pytest.approx((120.0 + 300.0) / total)
    assert outcomes.waits({}, {}, 1.0, 60.0)["long_waits"] == 0


def test_who_bound_the_pods_is_the_difference_of_the_placers_counters():
    before = {"binder": 10.0, "release_retry": 2.0, "sweeper": 1.0}
    after = {"binder": 40.0, "release_retry": 5.0, "sweeper": 4.0}
    assert outcomes.bound_by(before, after) == {"binder": 30, "release_retry": 3, "sweeper": 3, "binder_event": 27}


def test_the_per_step_cpu_query_keeps_the_selector_and_reads_a_few_scrapes():
    q = outcomes.queries('cluster="a"', scrape_s=1.0)
    rendered = q.rendered()["cpu_used_milli"]
    assert "irate(container_cpu_usage_seconds_total{" in rendered and 'cluster="a"' in rendered
    assert q.rate_window == "3s"


def test_the_live_loop_runs_the_binder_with_the_deployed_concurrency():
    """A binder throttled below its deployment places a burst of pods late: with 8 threads against
    the deployed 64, 137 of day 1's 374 pods waited a trace minute or more, against 2 (docs/BENCHMARKS.md)."""
    services = Path(__file__).resolve().parents[2] / "deploy" / "knative" / "services.yaml"
    binder = next(d for d in yaml.safe_load_all(services.read_text())
                  if d and d.get("metadata", {}).get("name") == "neurokube-binder")
    spec = binder["spec"]["template"]["spec"]
    threads = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}["THREADS"]
    assert spec["containerConcurrency"] == int(threads) == BINDER_THREADS
    field = {f.name: f for f in dataclasses.fields(LiveLoopSettings)}["binder_threads"]
    assert field.default == BINDER_THREADS
