"""The actuator function (functions/actuator, neurokube/live/acting.py) on the real local control
plane: started in-process (functions-framework's app, NEUROKUBE_INSECURE=1) with the admin
kubeconfig and a Prometheus double that serves per-pod usage, it is pinged as the PingSource would.

A ReplicaSet's three pods run on one KWOK node, requesting 100m each while the double reports them
using 14, 14 and 8 cores: the node (32 cores) is predicted hot and over its allocatable. A
PodDisruptionBudget (minAvailable = replicas) covers them. NeuroKube's actuator runs with
``max_evictions=1.0,margin=1.0,evict_while_pending=true`` (NEUROKUBE_ACTUATOR_ARGS; the last because
other tests' pods may be pending on the shared cluster, and by default nothing is evicted then) and
without models (its predictions are the usage now):

* a dry-run ping (the default) asks for the resizes and the eviction and changes nothing;
* a real ping raises the requests of the two pods that fit in place (same UID; KWOK's pod-resize
  stage puts the new size in force, ``actuation.resize_done``), and the eviction that would relieve
  the node is refused by the budget: ``refused_budget`` in the report and in /metrics.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import functions_framework
import pytest
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent

from neurokube.adapters.kube import KubeError
from neurokube.cluster.session import RunningCluster
from neurokube.k8s.quantity import cpu_milli
from neurokube.live import acting, actuation
from neurokube.testing import FakePrometheus
from tests.polling import wait_for

pytestmark = pytest.mark.e2e

SOURCE = str(Path(__file__).resolve().parents[2] / "functions" / "actuator" / "main.py")
NS = "default"
NODE = "kwok-node-0093"  # a node no other test pins pods to
REPLICAS = 3
USAGE_CORES = (14.0, 14.0, 8.0)  # by pod name order: 36 cores on a 32-core node
RS = f"/apis/apps/v1/namespaces/{NS}/replicasets"
PDBS = f"/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets"
PODS = f"/api/v1/namespaces/{NS}/pods"


def pods_of(cluster: RunningCluster, app: str) -> list[dict]:
    items = cluster.client.get(PODS, labelSelector=f"app={app}")["items"]
    return sorted(items, key=lambda p: p["metadata"]["name"])


@pytest.fixture
def hot(cluster: RunningCluster) -> Iterator[tuple[str, list[dict]]]:
    """A ReplicaSet of three running pods on NODE and a budget that allows no disruption of them."""
    app = f"hot-{uuid.uuid4().hex[:8]}"
    container = {"name": "main", "image": "registry.k8s.io/pause:3.10",
                 "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
                               "limits": {"cpu": "500m", "memory": "128Mi"}}}
    cluster.client.create(RS, {
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": app},
        "spec": {"replicas": REPLICAS, "selector": {"matchLabels": {"app": app}},
                 "template": {"metadata": {"labels": {"app": app}},
                              "spec": {"nodeName": NODE, "containers": [container],
                                       "terminationGracePeriodSeconds": 0,
                                       "automountServiceAccountToken": False}}}})
    cluster.client.create(PDBS, {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": app},
                                 "spec": {"minAvailable": REPLICAS, "selector": {"matchLabels": {"app": app}}}})
    try:
        running = wait_for("the ReplicaSet's pods running", lambda: (
            pods := pods_of(cluster, app)) and len(pods) == REPLICAS
            and all(p["status"].get("phase") == "Running" for p in pods) and pods, timeout_s=30)

        def observed() -> bool:
            doc = cluster.client.get(f"{PDBS}/{app}")
            status = doc.get("status") or {}
            return (status.get("observedGeneration", 0) >= doc["metadata"]["generation"]
                    and status.get("currentHealthy") == REPLICAS)

        wait_for("the budget's status", observed, timeout_s=30)
        yield app, running
    finally:
        for path in (f"{PDBS}/{app}", f"{RS}/{app}"):
            try:
                cluster.client.delete(path, {"propagationPolicy": "Background"})
            except KubeError as exc:
                if not exc.not_found:
                    raise


@pytest.fixture
def prometheus(hot) -> Iterator[FakePrometheus]:
    _, pods = hot
    fake = FakePrometheus({}, pods={f"{NS}/{p['metadata']['name']}": (cores, 100 * 1024 ** 2)
                                    for p, cores in zip(pods, USAGE_CORES, strict=True)})
    yield fake
    fake.close()


def actuator_client(monkeypatch, cluster: RunningCluster, prometheus: FakePrometheus, *, dry_run: bool):
    monkeypatch.setenv("KUBECONFIG", cluster.kubeconfig)
    monkeypatch.setenv("NEUROKUBE_INSECURE", "1")
    monkeypatch.setenv("NEUROKUBE_PROMETHEUS_URL", prometheus.url)
    monkeypatch.setenv("NEUROKUBE_ACTUATOR_ARGS", "max_evictions=1.0,margin=1.0,evict_while_pending=true")
    if dry_run:
        monkeypatch.delenv("NEUROKUBE_ACTUATOR_DRY_RUN", raising=False)  # the default
    else:
        monkeypatch.setenv("NEUROKUBE_ACTUATOR_DRY_RUN", "false")
    acting.install(None)  # a fresh actor for these settings
    return functions_framework.create_app("actuator", SOURCE).test_client()


@pytest.fixture(autouse=True)
def forget_actor() -> Iterator[None]:
    yield
    acting.install(None)


def ping(client) -> dict:
    headers, body = to_binary(CloudEvent({"type": "dev.knative.sources.ping",
                                          "source": "/apis/v1/namespaces/neurokube/pingsources/neurokube-act"},
                                         {"task": "act"}))
    response = client.post("/", headers=headers, data=body)
    assert response.status_code == 200, response.data
    return response.json


def refused_budget_count(client) -> float:
    text = client.get("/metrics").data.decode()
    match = re.search(r'^neurokube_actuator_actions_total\{action="evict",result="refused_budget"\} (\S+)$', text,
                      re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def mine(report: dict, app: str) -> list[dict]:
    return [a for a in report["actions"] if a["pod"].startswith(f"{NS}/{app}-")]


def test_a_dry_run_ping_changes_nothing(cluster, hot, prometheus, monkeypatch):
    app, before = hot
    client = actuator_client(monkeypatch, cluster, prometheus, dry_run=True)
    report = ping(client)
    assert report["dry_run"] is True
    actions = mine(report, app)
    assert {a["action"] for a in actions} == {"resize", "evict"}, report
    assert {a["result"] for a in actions if a["action"] == "resize"} == {"dry_run"}
    # a dry-run eviction still meets the budget check
    assert [a["result"] for a in actions if a["action"] == "evict"] == ["refused_budget"]
    time.sleep(1.0)  # a real resize would be in the spec at once and in force within a second
    after = pods_of(cluster, app)
    assert [p["metadata"]["uid"] for p in after] == [p["metadata"]["uid"] for p in before]
    for old, new in zip(before, after, strict=True):
        assert new["metadata"].get("generation") == old["metadata"].get("generation")
        assert new["spec"]["containers"][0]["resources"] == old["spec"]["containers"][0]["resources"]


def test_a_ping_resizes_in_place_and_a_budget_refuses_the_eviction(cluster, hot, prometheus, monkeypatch):
    app, before = hot
    client = actuator_client(monkeypatch, cluster, prometheus, dry_run=False)
    refused_before = refused_budget_count(client)
    report = ping(client)
    assert report["dry_run"] is False and report["pods"] >= REPLICAS
    actions = mine(report, app)
    resized = {a["pod"].split("/", 1)[1]: a for a in actions if a["action"] == "resize"}
    names = [p["metadata"]["name"] for p in before]
    # raised to what they use (margin 1.0): the first two fit beside the others, the third does not
    assert sorted(resized) == names[:2], actions
    for a in resized.values():
        assert a["result"] == "applied", a
        assert a["to"]["cpu_request_milli"] >= 8000 and a["to"]["cpu_limit_milli"] == a["to"]["cpu_request_milli"]
    [evict] = [a for a in actions if a["action"] == "evict"]
    assert evict["pod"] == f"{NS}/{names[2]}", evict  # the smallest pod that covers the 4-core excess
    assert evict["result"] == "refused_budget" and evict["status"] == 429, evict
    assert report["outcomes"]["evict"].get("refused_budget", 0) >= 1
    assert refused_budget_count(client) == refused_before + 1

    uids = {p["metadata"]["name"]: p["metadata"]["uid"] for p in before}
    for name in resized:
        pod = wait_for(f"{name} resized in force", lambda n=name: (
            p := cluster.client.get(f"{PODS}/{n}")) and actuation.resize_done(p) and p, timeout_s=20)
        assert pod["metadata"]["uid"] == uids[name], "re-created, not resized in place"
        (status,) = pod["status"]["containerStatuses"]
        asked = resized[name]["to"]["cpu_request_milli"]
        assert cpu_milli(status["resources"]["requests"]["cpu"]) == asked
        assert cpu_milli(status["resources"]["limits"]["cpu"]) == asked
        assert pod["status"]["qosClass"] == "Burstable"
    untouched = cluster.client.get(f"{PODS}/{names[2]}")
    assert not untouched["metadata"].get("deletionTimestamp") and untouched["metadata"]["uid"] == uids[names[2]]
    assert cpu_milli(untouched["spec"]["containers"][0]["resources"]["requests"]["cpu"]) == 100
