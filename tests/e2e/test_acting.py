"""Acting on running pods on the real local control plane (neurokube/live/actuation.py): kube-apiserver
v1.35 resizes a running pod in place through ``pods/resize`` and KWOK's pod-resize stage
(deploy/local/kwok/stages/pod-resize.yaml) puts the new size in force, as a kubelet would; the
Eviction API enforces PodDisruptionBudgets (the disruption controller of kube-controller-manager
keeps their status); dry runs change nothing."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from neurokube.adapters.kube import KubeClient, KubeError
from neurokube.cluster import workload
from neurokube.cluster.session import RunningCluster
from neurokube.cluster.workload import PodSpec
from neurokube.live import actuation
from neurokube.live.actuation import Result
from tests.polling import wait_for

pytestmark = pytest.mark.e2e

NS = "default"
PODS = f"/api/v1/namespaces/{NS}/pods"
PDBS = f"/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets"
LIMITS = {"cpu": "500m", "memory": "128Mi"}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def get_pod(client: KubeClient, name: str) -> dict | None:
    try:
        return client.get(f"{PODS}/{name}")
    except KubeError as exc:
        if exc.not_found:
            return None
        raise


@pytest.fixture
def pods(cluster: RunningCluster) -> Iterator[Callable[..., dict]]:
    """Start Burstable pods (requests 100m / 64Mi, limits 500m / 128Mi) pinned to a KWOK node,
    Running; all deleted afterwards."""
    names: list[str] = []

    def start(prefix: str, labels: dict[str, str] | None = None) -> dict:
        name = unique(prefix)
        manifest = workload.pod_manifest(PodSpec(name, cpu_milli=100, memory_mib=64, node="kwok-node-0042",
                                                 labels=labels or {}))
        manifest["spec"]["containers"][0]["resources"]["limits"] = dict(LIMITS)
        cluster.client.create(PODS, manifest)
        names.append(name)
        return workload.wait_pods(cluster.client, [name], phase="Running", timeout_s=30)[name]

    yield start
    workload.delete_pods(cluster.client, names)


@pytest.fixture
def budgets(cluster: RunningCluster) -> Iterator[Callable[[dict[str, str]], dict]]:
    """Create PodDisruptionBudgets (minAvailable 1) and wait until the disruption controller has
    computed their status; all deleted afterwards."""
    names: list[str] = []

    def create(selector: dict[str, str]) -> dict:
        name = unique("pdb")
        cluster.client.create(PDBS, {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                                     "metadata": {"name": name},
                                     "spec": {"minAvailable": 1, "selector": {"matchLabels": selector}}})
        names.append(name)

        def observed() -> dict | None:
            doc = cluster.client.get(f"{PDBS}/{name}")
            status = doc.get("status") or {}
            fresh = status.get("observedGeneration", 0) >= doc["metadata"]["generation"]
            return doc if fresh and status.get("currentHealthy") == 1 else None

        return wait_for(f"PodDisruptionBudget {name} status", observed)

    yield create
    for name in names:
        try:
            cluster.client.delete(f"{PDBS}/{name}")
        except KubeError as exc:
            if not exc.not_found:
                raise


def test_running_pod_is_resized_in_place(cluster: RunningCluster, pods) -> None:
    client = cluster.client
    before = pods("resize")
    name, uid = before["metadata"]["name"], before["metadata"]["uid"]
    # KWOK's pod-ready stage reports the resources in force, as a resize-capable kubelet does.
    assert actuation.pod_resources_in_force(before) == {
        "main": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": LIMITS}}
    assert actuation.resize_done(before)

    dry = actuation.resize(client, NS, name, {"main": {"requests": {"cpu": "200m"}}}, dry_run=True)
    assert dry.result is Result.DRY_RUN
    unchanged = get_pod(client, name)
    assert unchanged["spec"]["containers"][0]["resources"]["requests"]["cpu"] == "100m"
    assert unchanged["metadata"]["generation"] == before["metadata"]["generation"]

    outcome = actuation.resize(client, NS, name, {"main": {"requests": {"cpu": "200m"}}}, dry_run=False)
    assert outcome.result is Result.APPLIED, outcome
    after = wait_for("the new size in force", lambda: (p := get_pod(client, name)) and actuation.resize_done(p) and p,
                     timeout_s=15)
    assert after["metadata"]["uid"] == uid, "the pod was re-created, not resized in place"
    assert after["metadata"]["generation"] > before["metadata"]["generation"]
    assert after["status"]["observedGeneration"] == after["metadata"]["generation"]
    assert after["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "200m", "memory": "64Mi"}
    (status,) = after["status"]["containerStatuses"]
    assert status["resources"] == {"requests": {"cpu": "200m", "memory": "64Mi"}, "limits": LIMITS}
    assert status["allocatedResources"] == {"cpu": "200m", "memory": "64Mi"}
    assert status["state"]["running"]["startedAt"] == before["status"]["containerStatuses"][0]["state"]["running"][
        "startedAt"], "the container was restarted"
    assert after["status"]["phase"] == "Running" and after["status"]["qosClass"] == "Burstable"


def test_resize_that_changes_the_qos_class_is_refused(cluster: RunningCluster, pods) -> None:
    pod = pods("qos")
    name = pod["metadata"]["name"]
    outcome = actuation.resize(cluster.client, NS, name, {"main": {"requests": dict(LIMITS)}}, dry_run=False)
    assert outcome.result is Result.REFUSED_INVALID and outcome.status == 422
    assert "QOS" in outcome.message, outcome  # Burstable -> Guaranteed
    after = get_pod(cluster.client, name)
    assert after["spec"]["containers"][0]["resources"] == pod["spec"]["containers"][0]["resources"]


def test_eviction_respects_pod_disruption_budgets(cluster: RunningCluster, pods, budgets) -> None:
    client = cluster.client
    app = unique("guarded")
    guarded = pods("guarded", {"app": app})["metadata"]["name"]
    free = pods("free")["metadata"]["name"]
    budget = budgets({"app": app})
    assert budget["status"]["disruptionsAllowed"] == 0

    assert actuation.evict(client, NS, guarded, dry_run=True).result is Result.REFUSED_BUDGET
    refused = actuation.evict(client, NS, guarded, dry_run=False)
    assert refused.result is Result.REFUSED_BUDGET and refused.status == 429, refused
    assert not get_pod(client, guarded)["metadata"].get("deletionTimestamp")

    assert actuation.evict(client, NS, free, dry_run=True).result is Result.DRY_RUN
    time.sleep(0.5)  # a real eviction would be visible by now (the pod-delete stage acts at once)
    assert not get_pod(client, free)["metadata"].get("deletionTimestamp")

    assert actuation.evict(client, NS, free, dry_run=False).result is Result.APPLIED
    wait_for("the evicted pod gone", lambda: (p := get_pod(client, free)) is None
             or bool(p["metadata"].get("deletionTimestamp")), timeout_s=15)
    assert actuation.evict(client, NS, unique("absent"), dry_run=False).result is Result.NOT_FOUND


def test_pod_under_two_budgets_is_not_evicted(cluster: RunningCluster, pods, budgets) -> None:
    app = unique("twice")
    name = pods("twice", {"app": app})["metadata"]["name"]
    budgets({"app": app})
    budgets({"app": app})
    outcome = actuation.evict(cluster.client, NS, name, dry_run=False)
    assert outcome.result is Result.MULTIPLE_BUDGETS and outcome.status == 500, outcome
    assert not get_pod(cluster.client, name)["metadata"].get("deletionTimestamp")
