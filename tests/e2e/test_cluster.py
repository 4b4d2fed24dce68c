"""The local control plane behaves like a cluster: Ready nodes, running pods, real scheduling,
and the Knative receive adapter turning pod creations into CloudEvents."""

from __future__ import annotations

import json
import queue
import time
import uuid
from collections import Counter

import pytest

from neurokube.cluster import control, workload
from neurokube.cluster.session import RunningCluster
from neurokube.cluster.workload import PodSpec
from tests.e2e.event_sink import EventSink

pytestmark = pytest.mark.e2e

NODES = 100  # as started by the session fixture in conftest.py


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_all_nodes_are_ready(cluster: RunningCluster) -> None:
    nodes = json.loads(cluster.kubectl("get", "nodes", "-o", "json"))["items"]
    assert len(nodes) == NODES
    assert all(workload.is_ready(n) for n in nodes)
    assert all(workload.is_schedulable(n) for n in nodes), "lifecycle taints left on some nodes"
    allocatable = nodes[0]["status"]["allocatable"]
    assert allocatable["cpu"] == "32" and allocatable["memory"] == "128Gi" and allocatable["pods"] == "110"


def test_binaries_report_the_pinned_version(cluster: RunningCluster) -> None:
    version = json.loads(cluster.kubectl("version", "-o", "json"))
    assert version["serverVersion"]["gitVersion"] == "v1.35.4"
    assert version["clientVersion"]["gitVersion"] == "v1.35.4"


def test_pod_with_node_name_runs(cluster: RunningCluster) -> None:
    name = unique("pinned")
    workload.create_pods(cluster.client, [PodSpec(name, cpu_milli=500, memory_mib=256, node="kwok-node-0007")])
    pod = workload.wait_pods(cluster.client, [name], phase="Running", timeout_s=30)[name]
    assert pod["spec"]["nodeName"] == "kwok-node-0007"
    assert pod["status"]["podIP"].startswith("10.128.7.")  # from the node's pod CIDR
    assert all(c["ready"] for c in pod["status"]["containerStatuses"])


def test_pod_without_node_is_placed_by_kube_scheduler(cluster: RunningCluster) -> None:
    name = unique("scheduled")
    workload.create_pods(cluster.client, [PodSpec(name, cpu_milli=1000, memory_mib=1024)])
    pod = workload.wait_pods(cluster.client, [name], phase="Running", timeout_s=30)[name]
    assert pod["spec"]["nodeName"].startswith("kwok-node-")
    events = cluster.client.get("/api/v1/namespaces/default/events",
                                fieldSelector=f"involvedObject.name={name},reason=Scheduled")["items"]
    assert events, "no Scheduled event"
    assert {e.get("reportingComponent") or e["source"].get("component") for e in events} == {"default-scheduler"}


def test_scheduler_spreads_over_every_node_right_after_up(cluster: RunningCluster) -> None:
    # LeastAllocated prefers emptier nodes, so equal pods spread one per node, unless some nodes
    # are still tainted not-ready (`up` must wait for the node lifecycle controller).
    specs = [PodSpec(unique("spread"), cpu_milli=250, memory_mib=512) for _ in range(NODES)]
    names = workload.create_pods(cluster.client, specs)
    try:
        pods = workload.wait_pods(cluster.client, names, phase="Running", timeout_s=120)
        per_node = Counter(pod["spec"]["nodeName"] for pod in pods.values())
        # The few nodes that already run a pod from another test tie with singly-loaded ones.
        assert len(per_node) >= NODES - 5 and max(per_node.values()) <= 2, per_node
    finally:
        workload.delete_pods(cluster.client, names)


def test_pod_that_fits_nowhere_stays_pending(cluster: RunningCluster) -> None:
    name = unique("too-big")
    workload.create_pods(cluster.client, [PodSpec(name, cpu_milli=64_000, memory_mib=1024)])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        pod = cluster.client.get(f"/api/v1/namespaces/default/pods/{name}")
        conditions = {c["type"]: c for c in pod["status"].get("conditions", [])}
        if conditions.get("PodScheduled", {}).get("reason") == "Unschedulable":
            break
        time.sleep(0.2)
    assert not pod["spec"].get("nodeName")
    assert conditions["PodScheduled"]["reason"] == "Unschedulable"
    workload.delete_pods(cluster.client, [name])


def test_receive_adapter_delivers_add_event_for_new_pod(cluster: RunningCluster, event_sink: EventSink) -> None:
    name = unique("watched")
    workload.create_pods(cluster.client, [PodSpec(name, cpu_milli=100, memory_mib=64)])
    deadline = time.monotonic() + 30
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no dev.knative.apiserver.resource.add event for pod {name}"
        try:
            event = event_sink.events.get(timeout=remaining)
        except queue.Empty:
            continue
        if event.attr("type") == "dev.knative.apiserver.resource.add" and event.attr("name") == name:
            break
    assert event.attr("subject") == f"/apis/v1/namespaces/default/pods/{name}"
    assert event.attr("source") == cluster.record.apiserver
    assert event.attr("kind") == "Pod"
    assert event.data["metadata"]["name"] == name  # Resource mode: the whole object


def test_up_is_idempotent(cluster: RunningCluster) -> None:
    options = control.UpOptions(state_dir=cluster.state_dir, nodes=workload.uniform_nodes(NODES))
    result = control.up(options)
    assert result.already_running
    assert result.record.apiserver == cluster.record.apiserver
    status = control.status(cluster.state_dir)
    assert status["running"] and status["nodes"] == {"total": NODES, "ready": NODES, "schedulable": NODES}
