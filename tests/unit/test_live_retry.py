"""The release retrier (neurokube/live/retry.py): a pod the binder left unschedulable is placed again
as soon as the watch sees room freed, not a sweep period later; only then, and only while the watch
still shows it pending."""

from __future__ import annotations

import time
from pathlib import Path

import functions_framework
import pytest
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent

from neurokube.errors import TemporaryError
from neurokube.k8s.objects import parse_pod
from neurokube.live import runtime as live_runtime
from neurokube.live.scheduler import UNSCHEDULABLE
from neurokube.live.settings import Settings
from neurokube.live.telemetry import Telemetry, process_telemetry
from neurokube.testing import FakeKube, fake_runtime, node_doc, pod_doc
from tests.polling import wait_for

SOURCE = str(Path(__file__).resolve().parents[2] / "functions" / "binder" / "main.py")
ADD = "dev.knative.apiserver.resource.add"


@pytest.fixture(autouse=True)
def insecure(monkeypatch):
    monkeypatch.setenv("NEUROKUBE_INSECURE", "1")


def full_cluster():
    """One node of 1 CPU, all of it held by ``filler``."""
    return FakeKube([node_doc("n0", cpu="1")],
                    [pod_doc("filler", "1", "256Mi", node="n0", uid="uid-filler", scheduler="default-scheduler")])


def add_event(doc):
    return to_binary(CloudEvent({"type": ADD, "source": "https://127.0.0.1:6443",
                                 "subject": f"/apis/v1/namespaces/default/pods/{doc['metadata']['name']}"}, doc))


def free_the_node(kube, runtime):
    """Delete ``filler``, and let the watch report it."""
    doc = kube.pods.pop(("default", "filler"))
    runtime.cache.apply("pods", "DELETED", doc)


def bound_pods(kube):
    return [key.split("/", 1)[1] for key, _node in kube.bindings]


def retries(telemetry, outcome):
    return telemetry.release_retries.labels(outcome=outcome)._value.get()


def test_the_binder_holds_an_unschedulable_pod_and_places_it_when_room_is_freed():
    kube = full_cluster()
    runtime = fake_runtime(kube, telemetry=process_telemetry())
    live_runtime.install(runtime)
    runtime.retrier.start()
    try:
        client = functions_framework.create_app("binder", SOURCE).test_client()
        doc = pod_doc("late", "500m", "256Mi", uid="uid-late")
        kube.add_pod(doc)
        runtime.cache.apply("pods", "ADDED", doc)
        headers, body = add_event(doc)
        reply = client.post("/", headers=headers, data=body)
        assert reply.status_code == 200 and reply.get_json()["outcome"] == UNSCHEDULABLE
        assert runtime.retrier.held == 1 and bound_pods(kube) == []
        time.sleep(0.2)
        assert bound_pods(kube) == []  # nothing was freed: no pass, no decision
        before = retries(runtime.telemetry, "bound")
        free_the_node(kube, runtime)
        wait_for("the held pod bound", lambda: bound_pods(kube) == ["late"], timeout_s=5, interval_s=0.01)
        assert kube.pods[("default", "late")]["spec"]["nodeName"] == "n0"
        wait_for("nothing held", lambda: runtime.retrier.held == 0, timeout_s=5, interval_s=0.01)
        assert retries(runtime.telemetry, "bound") == before + 1
    finally:
        runtime.retrier.close()
        live_runtime.install(None)


def test_a_gated_pod_is_held_and_placed_when_the_watch_sees_its_gates_removed():
    """The apiserver refuses a Binding while a scheduling gate is left: the binder must not try, and
    must place the pod as soon as the gates are gone, with no update event (none is delivered)."""
    kube = FakeKube([node_doc("n0", cpu="4")])
    runtime = fake_runtime(kube, telemetry=process_telemetry())
    live_runtime.install(runtime)
    runtime.retrier.start()
    try:
        client = functions_framework.create_app("binder", SOURCE).test_client()
        doc = pod_doc("gated", "500m", "256Mi", uid="uid-gated")
        doc["spec"]["schedulingGates"] = [{"name": "example.com/quota"}, {"name": "example.com/volume"}]
        kube.add_pod(doc)
        runtime.cache.apply("pods", "ADDED", doc)
        headers, body = add_event(doc)
        reply = client.post("/", headers=headers, data=body).get_json()
        assert reply == {"outcome": "ignored", "pod": "default/gated",
                         "reason": "scheduling gates: example.com/quota, example.com/volume"}
        assert (runtime.retrier.gated, runtime.retrier.held) == (1, 0) and kube.binding_bodies == []
        one_left = {**doc, "spec": {**doc["spec"], "schedulingGates": [{"name": "example.com/volume"}]}}
        kube.pods[("default", "gated")] = one_left
        runtime.cache.apply("pods", "MODIFIED", one_left)  # one gate removed: still not schedulable
        assert runtime.retrier.retry() == {} and kube.binding_bodies == [] and runtime.retrier.gated == 1
        ungated = {**doc, "spec": {**doc["spec"], "schedulingGates": []}}
        kube.pods[("default", "gated")] = ungated
        runtime.cache.apply("pods", "MODIFIED", ungated)
        wait_for("the ungated pod bound", lambda: bound_pods(kube) == ["gated"], timeout_s=5, interval_s=0.01)
        wait_for("nothing held", lambda: (runtime.retrier.gated, runtime.retrier.held) == (0, 0), timeout_s=5,
                 interval_s=0.01)
    finally:
        runtime.retrier.close()
        live_runtime.install(None)


def gated_doc(name: str, cpu: str = "100m") -> dict:
    doc = pod_doc(name, cpu, "64Mi", uid=f"uid-{name}")
    doc["spec"]["schedulingGates"] = [{"name": "example.com/quota"}]
    return doc


def test_gated_pods_do_not_crowd_out_the_unschedulable_ones():
    """Passes place at most max_pods held pods, oldest first; gated pods held before an
    unschedulable one must not take those places while their gates stay."""
    kube = full_cluster()
    runtime = fake_runtime(kube, Settings(replica="r", retry_max_pods=2), Telemetry())
    for i in range(5):
        doc = gated_doc(f"gated-{i}")
        kube.add_pod(doc)
        runtime.cache.apply("pods", "ADDED", doc)
        runtime.retrier.hold_gated(parse_pod(doc))
    doc = pod_doc("late", "500m", "256Mi", uid="uid-late")
    kube.add_pod(doc)
    runtime.cache.apply("pods", "ADDED", doc)
    runtime.retrier.hold(parse_pod(doc), runtime.retrier.releases)
    free_the_node(kube, runtime)
    assert runtime.retrier.retry() == {"bound": 1}
    assert bound_pods(kube) == ["late"] and runtime.retrier.gated == 5


def test_a_gate_removed_before_the_hold_is_not_missed():
    """The binder read the pod gated, the watch then saw the last gate removed (nobody held it
    yet), and only then the binder held it: the hold looks again and the pass places it."""
    kube = FakeKube([node_doc("n0", cpu="4")])
    runtime = fake_runtime(kube, Settings(replica="r"), Telemetry())
    doc = gated_doc("racy")
    kube.add_pod(doc)
    runtime.cache.apply("pods", "ADDED", doc)
    read_gated = parse_pod(doc)
    ungated = {**doc, "spec": {**doc["spec"], "schedulingGates": []}}
    kube.pods[("default", "racy")] = ungated
    runtime.cache.apply("pods", "MODIFIED", ungated)
    runtime.retrier.hold_gated(read_gated)
    assert runtime.retrier.retry() == {"bound": 1} and bound_pods(kube) == ["racy"] and runtime.retrier.gated == 0


def test_an_ungated_pod_whose_placement_fails_stays_held():
    kube = FakeKube([node_doc("n0", cpu="4")])
    runtime = fake_runtime(kube, Settings(replica="r"), Telemetry())
    doc = gated_doc("flaky")
    kube.add_pod(doc)
    runtime.cache.apply("pods", "ADDED", doc)
    runtime.retrier.hold_gated(parse_pod(doc))
    ungated = {**doc, "spec": {**doc["spec"], "schedulingGates": []}}
    kube.pods[("default", "flaky")] = ungated
    runtime.cache.apply("pods", "MODIFIED", ungated)
    schedule = runtime.scheduler.schedule

    def down(pod, request_id=""):
        raise TemporaryError("the apiserver is down")

    runtime.scheduler.schedule = down
    assert runtime.retrier.retry() == {"failed": 1}
    assert (runtime.retrier.gated, runtime.retrier.held) == (0, 1)  # not dropped: held for the next release
    runtime.scheduler.schedule = schedule
    assert runtime.retrier.retry() == {"bound": 1} and bound_pods(kube) == ["flaky"]


def test_room_freed_while_the_pod_was_decided_is_not_missed():
    """The release came between the decision (no room) and the hold: the pass comes at once."""
    kube = full_cluster()
    runtime = fake_runtime(kube, Settings(replica="r"), Telemetry())
    runtime.retrier.start()
    try:
        doc = pod_doc("late", "500m", "256Mi", uid="uid-late")
        kube.add_pod(doc)
        runtime.cache.apply("pods", "ADDED", doc)
        pod = parse_pod(doc)
        releases = runtime.retrier.releases
        assert runtime.scheduler.schedule(pod).outcome == UNSCHEDULABLE
        free_the_node(kube, runtime)  # nothing held yet: the release alone wakes nobody
        runtime.retrier.hold(pod, releases)
        wait_for("the held pod bound", lambda: bound_pods(kube) == ["late"], timeout_s=5, interval_s=0.01)
    finally:
        runtime.retrier.close()


def test_a_held_pod_the_watch_shows_bound_or_gone_is_dropped_without_a_decision():
    kube = full_cluster()
    runtime = fake_runtime(kube, Settings(replica="r"), Telemetry())
    docs = {name: pod_doc(name, "500m", "256Mi", uid=f"uid-{name}") for name in ("elsewhere", "deleted", "waits")}
    for doc in docs.values():
        kube.add_pod(doc)
        runtime.cache.apply("pods", "ADDED", doc)
        pod = parse_pod(doc)
        assert runtime.scheduler.schedule(pod).outcome == UNSCHEDULABLE
        runtime.retrier.hold(pod, runtime.retrier.releases)
    bound_elsewhere = {**docs["elsewhere"], "spec": {**docs["elsewhere"]["spec"], "nodeName": "n9"}}
    runtime.cache.apply("pods", "MODIFIED", bound_elsewhere)  # another scheduler (or replica) placed it
    runtime.cache.apply("pods", "DELETED", docs["deleted"])
    decided = []
    schedule = runtime.scheduler.schedule
    runtime.scheduler.schedule = lambda pod, request_id="": decided.append(pod.name) or schedule(pod, request_id)
    counts = runtime.retrier.retry()
    assert counts == {"not_pending": 2, UNSCHEDULABLE: 1}  # the node is still full: "waits" stays held
    assert decided == ["waits"] and runtime.retrier.held == 1 and bound_pods(kube) == []
    assert retries(runtime.telemetry, "not_pending") == 2


def test_a_pass_is_bounded_and_oldest_first():
    kube = full_cluster()
    runtime = fake_runtime(kube, Settings(replica="r", retry_max_pods=2), Telemetry())
    names = [f"p{i}" for i in range(4)]
    for name in names:
        doc = pod_doc(name, "500m", "256Mi", uid=f"uid-{name}")
        kube.add_pod(doc)
        runtime.cache.apply("pods", "ADDED", doc)
        runtime.retrier.hold(parse_pod(doc), runtime.retrier.releases)
    free_the_node(kube, runtime)  # room for two of the four
    assert runtime.retrier.retry() == {"bound": 2}
    assert bound_pods(kube) == ["p0", "p1"] and runtime.retrier.held == 2


def test_off_means_the_binder_holds_nothing():
    runtime = fake_runtime(full_cluster(), Settings(replica="r", retry_on_release=False), Telemetry())
    assert runtime.retrier is None and runtime.cache.on_release is None
