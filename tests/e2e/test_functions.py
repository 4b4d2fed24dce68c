"""The live functions against the real local control plane (kube-apiserver, kube-scheduler, KWOK,
the Knative ApiServerSource receive adapter), run as functions-framework processes with the
least-privilege ServiceAccount of deploy/knative/rbac.yaml:

* 200 pods of ``schedulerName: neurokube`` go adapter -> binder -> bound within 30 s, each by
  exactly one successful Binding, no node over-committed;
* the binder killed mid-stream (SIGKILL) and restarted, events lost meanwhile: the sweeper places
  what was missed, and replayed duplicates bind nothing twice;
* three binder processes with their own (stale) caches race for 500 pods on 20 small nodes: no
  node ever has requests above allocatable, every pod is bound by exactly one Binding;
* Prometheus going away makes decisions fall back to default scoring, counted;
* the extender path: the real kube-scheduler, configured with the extender, calls /filter and
  /prioritize, and its choices follow NeuroKube's scores where they differ from its own.

Prometheus is a loopback test double of its HTTP API (neurokube.testing.FakePrometheus);
the model is a small LightGBM model with a known packing preference.
"""

from __future__ import annotations

import json
import random
import time
import urllib.request
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from neurokube.cluster import certs, functions, schedconfig, workload
from neurokube.cluster.livekit import (
    SMALL_POOL,
    Function,
    create_pods,
    live_functions,
    neurokube_pod,
    over_committed,
    pods_of,
    scheduled_events,
    wait_bound,
)
from neurokube.cluster.session import RunningCluster, running_cluster
from neurokube.cluster.state import Layout
from neurokube.k8s.quantity import cpu_milli
from neurokube.testing import FakePrometheus, write_packing_model
from tests.polling import wait_for

pytestmark = pytest.mark.e2e

TEST_ENV = {"NEUROKUBE_SWEEP_MIN_AGE_S": "1", "NEUROKUBE_PROM_REFRESH_S": "1", "NEUROKUBE_PROM_STALE_AFTER_S": "4",
            "NEUROKUBE_DEBUG": "false"}


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return write_packing_model(tmp_path_factory.mktemp("model") / "champion")


@pytest.fixture(scope="module")
def prometheus(cluster: RunningCluster):
    names = [n["metadata"]["name"] for n in cluster.client.get("/api/v1/nodes")["items"]]
    names += [f"nk-small-{i:02d}" for i in range(20)]
    server = FakePrometheus({name: (0.5, 2.0 * 2**30) for name in names})
    yield server
    server.close()


@pytest.fixture(scope="module")
def live(cluster: RunningCluster, model: Path, prometheus: FakePrometheus, tmp_path_factory):
    """The binder and sweeper as the ServiceAccount, and a receive adapter delivering to the binder."""
    options = functions.FunctionsOptions(model_dir=model, prometheus_url=prometheus.url, env=TEST_ENV)
    with live_functions(cluster, options, tmp_path_factory.mktemp("function-logs")) as running:
        running.binder.wait_metrics_fresh()
        yield {"binder": running.binder, "sweeper": running.sweeper, "env": running.env, "logs": running.logs,
               "started": running.started}


# -- the binder --------------------------------------------------------------------------------


def test_200_pods_bound_through_the_adapter_within_30s(cluster, live):
    run = f"burst-{uuid.uuid4().hex[:6]}"
    binder = live["binder"]
    bound_before = binder.counter("neurokube_decisions_total", outcome="bound")
    learned_before = binder.counter("neurokube_decisions_total", policy="neurokube", outcome="bound")
    manifests = [neurokube_pod(f"{run}-{i:03d}", 250, 256, run) for i in range(200)]
    started = time.monotonic()
    create_pods(cluster.client, manifests)
    pods = wait_bound(cluster.client, run, 200, timeout_s=30)
    elapsed = time.monotonic() - started
    print(f"\n200 pods created and bound in {elapsed:.1f}s")
    assert elapsed < 30
    assert binder.counter("neurokube_decisions_total", outcome="bound") - bound_before == 200  # one Binding each
    learned = binder.counter("neurokube_decisions_total", policy="neurokube", outcome="bound") - learned_before
    print(f"{learned:.0f} of 200 placed by the learned policy (the rest: counted fallbacks)")
    assert learned >= 190  # the learned path, not the fallback (a metrics refresh may lag on a busy machine)
    uids = {p["metadata"]["uid"] for p in pods.values()}
    deadline = time.monotonic() + 15
    while sum(scheduled_events(cluster.client)[u] for u in uids) < 200 and time.monotonic() < deadline:
        time.sleep(0.5)
    events = scheduled_events(cluster.client)
    assert all(events[u] == 1 for u in uids), Counter(events[u] for u in uids)
    assert over_committed(cluster.client) == []
    workload.delete_pods(cluster.client, list(pods))


def test_binder_killed_mid_stream_loses_no_pod_and_binds_none_twice(cluster, live):
    run = f"kill-{uuid.uuid4().hex[:6]}"
    binder, sweeper = live["binder"], live["sweeper"]
    manifests = [neurokube_pod(f"{run}-{i:03d}", 200, 128, run) for i in range(150)]
    created = create_pods(cluster.client, manifests[:50], threads=4)  # binder up
    binder.kill()
    created += create_pods(cluster.client, manifests[50:], threads=4)  # binder down: the adapter gives up
    time.sleep(5)  # longer than the adapter's retries (5, exponential from 50 ms)
    binder.start()
    pending = [p for p in pods_of(cluster.client, run).values() if not p["spec"].get("nodeName")]
    assert pending, "no event was lost while the binder was down; the test proves nothing"
    report = sweeper.ping()
    pods = wait_bound(cluster.client, run, 150, timeout_s=30)
    print(f"\n{len(pending)} pods were pending after the restart; sweep: {report}")
    # The sweep accounts for every pod still pending when it listed them (the restarted binder may
    # bind a few from the adapter's backlog between our listing and the sweeper's: those it never
    # sees; wait_bound above already proved that every pod ended up bound).
    assert report.get("bound", 0) + report.get("already_bound", 0) >= report["pending"] - report.get("young", 0)
    # Replay every original add event (the pods as created, without a node) to the new binder.
    bound_before = binder.counter("neurokube_decisions_total", outcome="bound")
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(binder.post_event, created))
    assert Counter(r.get("outcome") for r in replies) == {"already_bound": 150}, Counter(map(str, replies))
    assert binder.counter("neurokube_decisions_total", outcome="bound") == bound_before
    events = scheduled_events(cluster.client)
    assert max(events[p["metadata"]["uid"]] for p in pods.values()) <= 1  # never two successful Bindings
    assert over_committed(cluster.client) == []
    workload.delete_pods(cluster.client, list(pods))


def test_a_stale_event_never_binds_a_recreated_pod(cluster, live):
    """An old event about a deleted pod cannot place a new pod that has the same name: the binder
    finds the UID is not the apiserver's pod's and answers 410 (and the Binding would carry the
    UID as a precondition anyway)."""
    run = f"uid-{uuid.uuid4().hex[:6]}"
    manifest = neurokube_pod(f"{run}-p", 100, 64, run)
    manifest["spec"]["schedulerName"] = "nobody"  # keep the binder away from the first one
    [old] = create_pods(cluster.client, [manifest])
    workload.delete_pods(cluster.client, [old["metadata"]["name"]])
    deadline = time.monotonic() + 30
    while pods_of(cluster.client, run) and time.monotonic() < deadline:
        time.sleep(0.2)
    [new] = create_pods(cluster.client, [{**manifest, "spec": {**manifest["spec"], "schedulerName": "other"}}])
    assert new["metadata"]["uid"] != old["metadata"]["uid"]
    stale = {**old, "spec": {**old["spec"], "schedulerName": "neurokube"}}
    reply = live["binder"].post_event(stale)
    assert reply["status"] == 410 and json.loads(reply["error"])["reason"] == "uid_mismatch", reply
    assert not pods_of(cluster.client, run)[new["metadata"]["name"]]["spec"].get("nodeName")
    workload.delete_pods(cluster.client, [new["metadata"]["name"]])


def test_three_binders_with_stale_caches_never_over_commit(cluster, live):
    """500 pods on 20 small nodes (3 CPU each, 83% of the CPU requested), every add event sent to two
    of three binder processes at once (the adapter also feeds the first), packing model: all
    binders want the same nodes."""
    client = cluster.client
    run = f"race-{uuid.uuid4().hex[:6]}"
    specs = [workload.NodeSpec(f"nk-small-{i:02d}", 3000, 4096, labels={SMALL_POOL: "small"}) for i in range(20)]
    workload.create_nodes(client, specs)
    workload.wait_nodes_schedulable(client, 100 + 20, timeout_s=60)
    for spec in specs:  # keep default-scheduler pods away; the test pods tolerate it
        client.merge_patch(f"/api/v1/nodes/{spec.name}",
                           {"spec": {"taints": [{"key": SMALL_POOL, "value": "small", "effect": "NoSchedule"}]}})
    replicas = [live["binder"]] + [Function("binder", live["env"], live["logs"], f"binder-{i}").start()
                                   for i in (2, 3)]
    live["started"].extend(replicas[1:])
    before = sum(r.counter("neurokube_decisions_total", outcome="bound") for r in replicas)
    rng = random.Random(5)
    manifests = [neurokube_pod(f"{run}-{i:03d}", rng.choice([50, 100, 150]), 64, run, small_pool=True)
                 for i in range(500)]
    created = create_pods(client, manifests)

    deliveries = [(replica, pod) for pod in created for replica in rng.sample(replicas, 2)]
    rng.shuffle(deliveries)
    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        replies = list(pool.map(lambda d: d[0].post_event(d[1]), deliveries))
    report = live["sweeper"].ping()  # whatever gave up on every try
    pods = wait_bound(client, run, 500, timeout_s=60)
    elapsed = time.monotonic() - started
    bindings = sum(r.counter("neurokube_decisions_total", outcome="bound") for r in replicas) - before
    conflicts = {kind: sum(r.counter("neurokube_bind_conflicts_total", kind=kind) for r in replicas)
                 for kind in ("reservation", "no_room", "already_assigned")}
    outcomes = Counter(r.get("outcome", r.get("status")) for r in replies)
    print(f"\n500 pods on 20 nodes by 3 binders in {elapsed:.1f}s; replies {dict(outcomes)}; conflicts {conflicts}; "
          f"sweep {report}")
    assert over_committed(client) == []
    assert bindings + report.get("bound", 0) == 500  # exactly one successful Binding per pod
    assert all(p["spec"]["nodeName"].startswith("nk-small-") for p in pods.values())
    assert conflicts["reservation"] + conflicts["no_room"] > 0, "no race happened; the test proves nothing"
    workload.delete_pods(client, list(pods))
    for spec in specs:
        client.delete(f"/api/v1/nodes/{spec.name}")
    for replica in replicas[1:]:
        replica.stop()


def test_prometheus_down_falls_back_to_default_scoring(cluster, live, prometheus):
    binder = live["binder"]
    before = binder.counter("neurokube_fallbacks_total", reason="prometheus_unavailable")
    prometheus.up = False
    try:
        time.sleep(6)  # NEUROKUBE_PROM_STALE_AFTER_S=4 in this test
        run = f"noprom-{uuid.uuid4().hex[:6]}"
        create_pods(cluster.client, [neurokube_pod(f"{run}-{i}", 100, 64, run) for i in range(5)])
        pods = wait_bound(cluster.client, run, 5, timeout_s=20)
    finally:
        prometheus.up = True
    assert binder.counter("neurokube_fallbacks_total", reason="prometheus_unavailable") - before >= 5
    assert binder.counter("neurokube_node_metrics_age_seconds") > 4
    workload.delete_pods(cluster.client, list(pods))


# -- the extender ------------------------------------------------------------------------------


def test_kube_scheduler_follows_the_extender_scores(tmp_path, model):
    """A 4-node cluster whose kube-scheduler calls the extender (weight 10). One node is half full:
    kube-scheduler's LeastAllocated prefers the empty ones, NeuroKube's packing model the loaded
    one. Pods must land where NeuroKube's scores say."""
    port = functions.plan().ports["extender"]
    extender = schedconfig.Extender(f"http://127.0.0.1:{port}", ("filter", "prioritize"), weight=10)
    nodes = workload.uniform_nodes(4, cpu_milli=8000, memory_mib=16384)
    prom = FakePrometheus({n.name: (0.2, 2**30) for n in nodes})
    with running_cluster(tmp_path / "ext-cluster", nodes, start_adapter=False, extender=extender) as small:
        functions.apply_manifests(small.client)
        kubeconfig = functions.service_account_kubeconfig(small.client, Layout(small.state_dir),
                                                          certs.Pki(small.state_dir / "pki").ca_cert,
                                                          small.record.apiserver)
        env = functions.function_env(kubeconfig, functions.FunctionsOptions(model_dir=model, prometheus_url=prom.url,
                                                                            env=TEST_ENV), "ext")
        fn = Function("extender", env, tmp_path)
        fn.port = port
        fn.start()
        try:
            busy = "kwok-node-0002"
            workload.create_pods(small.client, [workload.PodSpec(f"load-{i}", 1000, 1024, node=busy) for i in range(4)])
            workload.wait_pods(small.client, [f"load-{i}" for i in range(4)], timeout_s=30)
            _wait_for_learned_scores(fn.url, small.client)
            for i in range(3):
                probe = workload.pod_manifest(workload.PodSpec(f"probe-{i}", 500, 512))
                node_list = small.client.get("/api/v1/nodes")
                scores = _post(fn.url + "/prioritize", {"Pod": probe, "Nodes": node_list, "NodeNames": None})
                best = {s["Host"] for s in scores if s["Score"] == max(x["Score"] for x in scores)}
                least_allocated_best = _emptiest(small.client)
                assert best.isdisjoint(least_allocated_best), (scores, least_allocated_best)  # the test can fail
                workload.create_pods(small.client, [workload.PodSpec(f"probe-{i}", 500, 512)])
                pod = workload.wait_pods(small.client, [f"probe-{i}"], timeout_s=30)[f"probe-{i}"]
                placed = pod["spec"]["nodeName"]
                print(f"\nNeuroKube scores {scores}; kube-scheduler chose {placed}")
                assert placed in best
            assert fn.counter("neurokube_http_requests_total", path="/prioritize", code="200") >= 3 + 3
            assert fn.counter("neurokube_http_requests_total", path="/filter", code="200") >= 3
        finally:
            fn.stop()
            prom.close()


def _wait_for_learned_scores(url: str, client, timeout_s: float = 30.0) -> None:
    """The extender's runtime starts on its first call; until its cache has listed and Prometheus
    answered, every score is 0 (the fallback)."""
    probe = workload.pod_manifest(workload.PodSpec("warm-up", 100, 64))
    deadline = time.monotonic() + timeout_s
    while True:
        scores = _post(url + "/prioritize", {"Pod": probe, "Nodes": client.get("/api/v1/nodes"), "NodeNames": None})
        if any(s["Score"] for s in scores):
            return
        assert time.monotonic() < deadline, f"the extender never scored: {scores}"
        time.sleep(0.5)


def _post(url: str, doc: dict) -> object:
    request = urllib.request.Request(url, data=json.dumps(doc).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _emptiest(client) -> set[str]:
    """The nodes kube-scheduler's LeastAllocated would rank first (fewest requested CPU)."""
    requested: dict[str, int] = {n["metadata"]["name"]: 0 for n in client.get("/api/v1/nodes")["items"]}
    for pod in client.get("/api/v1/pods")["items"]:
        node = pod["spec"].get("nodeName")
        if node:
            requested[node] += sum(cpu_milli(((c.get("resources") or {}).get("requests") or {}).get("cpu", "0"))
                                   for c in pod["spec"]["containers"])
    low = min(requested.values())
    return {name for name, cpu in requested.items() if cpu == low}



def test_an_unschedulable_pod_is_bound_when_room_is_freed_without_a_sweep(cluster, live):
    """The binder holds a pod it found no room for and places it when its watch sees room freed
    (neurokube/live/retry.py), as kube-scheduler requeues on an assigned pod's deletion: nobody pings
    the sweeper here, whose period would otherwise be the pod's wait."""
    client = cluster.client
    run = f"retry-{uuid.uuid4().hex[:6]}"
    binder, sweeper = live["binder"], live["sweeper"]
    node = workload.NodeSpec(f"nk-{run}", 1000, 2048, labels={SMALL_POOL: run})
    workload.create_nodes(client, [node])
    client.merge_patch(f"/api/v1/nodes/{node.name}",
                       {"spec": {"taints": [{"key": SMALL_POOL, "value": run, "effect": "NoSchedule"}]}})

    def on_the_node(name: str, cpu: int, label: str) -> dict:
        manifest = neurokube_pod(name, cpu, 128, label)
        manifest["spec"]["nodeSelector"] = {SMALL_POOL: run}
        manifest["spec"]["tolerations"] = [{"key": SMALL_POOL, "operator": "Equal", "value": run,
                                            "effect": "NoSchedule"}]
        return manifest

    try:
        create_pods(client, [on_the_node(f"{run}-filler", 800, f"{run}-filler")])
        wait_bound(client, f"{run}-filler", 1, timeout_s=30)
        unschedulable = binder.counter("neurokube_decisions_total", outcome="unschedulable")
        retried = binder.counter("neurokube_release_retries_total", outcome="bound")
        swept = sweeper.counter("neurokube_sweep_pods_total")
        create_pods(client, [on_the_node(f"{run}-late", 500, f"{run}-late")])
        wait_for("the binder finds the late pod unschedulable",
                 lambda: binder.counter("neurokube_decisions_total", outcome="unschedulable") > unschedulable,
                 timeout_s=30)
        time.sleep(1.0)
        [late] = pods_of(client, f"{run}-late").values()
        assert not late["spec"].get("nodeName"), "the late pod fitted; the test proves nothing"
        freed = time.monotonic()
        workload.delete_pods(client, [f"{run}-filler"])
        pods = wait_bound(client, f"{run}-late", 1, timeout_s=10)
        print(f"\nthe late pod was bound {time.monotonic() - freed:.2f}s after the filler's deletion")
        assert [p["spec"]["nodeName"] for p in pods.values()] == [node.name]
        # the retrier counts a pass's outcomes when the pass ends, after the apiserver has shown the bind
        wait_for("the binder counts the late pod bound by its retrier", lambda: binder.counter(
            "neurokube_release_retries_total", outcome="bound") > retried, timeout_s=5)
        assert binder.counter("neurokube_release_retries_total", outcome="bound") == retried + 1
        assert sweeper.counter("neurokube_sweep_pods_total") == swept  # no sweep placed it
    finally:
        workload.delete_pods(client, [f"{run}-filler", f"{run}-late"])
        client.delete(f"/api/v1/nodes/{node.name}")


def test_a_gated_pod_is_left_alone_and_bound_once_its_gates_are_removed(cluster, live):
    """The real apiserver refuses a Binding while a scheduling gate is left (what FakeKube mimics);
    the binder leaves such a pod alone and binds it once the last gate is removed, with no sweep."""
    from neurokube.errors import ApiStatusError

    client = cluster.client
    run = f"gated-{uuid.uuid4().hex[:6]}"
    binder, sweeper = live["binder"], live["sweeper"]
    manifest = neurokube_pod(f"{run}-pod", 100, 128, run)
    manifest["spec"]["schedulingGates"] = [{"name": "example.com/quota"}, {"name": "example.com/volume"}]
    path = f"/api/v1/namespaces/{manifest['metadata'].get('namespace', 'default')}/pods/{manifest['metadata']['name']}"
    try:
        swept = sweeper.counter("neurokube_sweep_pods_total")
        ignored = binder.counter("neurokube_cloudevents_total", result="ignored")
        create_pods(client, [manifest])
        wait_for("the binder answers the gated pod's event", lambda: binder.counter(
            "neurokube_cloudevents_total", result="ignored") > ignored, timeout_s=30)
        any_node = next(iter(workload.schedulable_nodes(client)))
        binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": manifest["metadata"]["name"]},
                   "target": {"apiVersion": "v1", "kind": "Node", "name": any_node}}
        with pytest.raises(ApiStatusError) as refused:
            client.create(path + "/binding", binding)
        assert refused.value.status == 409 and "non-empty .spec.schedulingGates" in refused.value.message
        client.merge_patch(path, {"spec": {"schedulingGates": [{"name": "example.com/volume"}]}})
        time.sleep(1.5)
        assert not client.get(path)["spec"].get("nodeName"), "bound with a gate left"
        ungated = time.monotonic()
        client.merge_patch(path, {"spec": {"schedulingGates": []}})
        wait_bound(client, run, 1, timeout_s=10)
        print(f"\nthe pod was bound {time.monotonic() - ungated:.2f}s after its last gate was removed")
        assert sweeper.counter("neurokube_sweep_pods_total") == swept  # no sweep placed it
    finally:
        workload.delete_pods(client, [manifest["metadata"]["name"]])
