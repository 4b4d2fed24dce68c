"""The actuator function's tick (neurokube/live/acting.py) over the apiserver and Prometheus doubles:
the view built from the live state (requests, QoS, owner, priority, usage joined by pod), dry run by
default, a real run that resizes and evicts, an actuator that raises doing nothing, and the counters."""

from __future__ import annotations

import copy
from pathlib import Path

import functions_framework
import numpy as np
import pytest
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent

from neurokube.acting.base import Evict, Resize
from neurokube.live import acting
from neurokube.live.acting import Actor, Container, Ids, Target, build_view, resize_patch
from neurokube.live.settings import Settings
from neurokube.live.telemetry import Telemetry
from neurokube.policies.base import BURSTABLE, GUARANTEED
from neurokube.testing import FakeKube, FakePrometheus, node_doc, pod_doc

SOURCE = str(Path(__file__).resolve().parents[2] / "functions" / "actuator" / "main.py")
PING = "dev.knative.sources.ping"
GIB = 1024 ** 3
LIMITS = {"cpu": "500m", "memory": "256Mi"}


def running(name: str, node: str, cpu: str = "100m", memory: str = "128Mi", *, limits: dict | None = None,
            owner: str | None = None, priority: int | None = None, namespace: str = "default") -> dict:
    doc = pod_doc(name, cpu, memory, node=node, namespace=namespace, uid=f"uid-{name}", limits=limits,
                  phase="Running", scheduler="default-scheduler")
    if owner:
        doc["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": f"{owner}-abc",
                                               "uid": "rs", "controller": True}]
        doc["metadata"]["labels"] = {"pod-template-hash": "abc"}
    if priority is not None:
        doc["spec"]["priority"] = priority
    doc["status"]["startTime"] = "2026-01-01T00:00:00Z"
    return doc


@pytest.fixture
def kube() -> FakeKube:
    done = running("done", "n1")
    done["status"]["phase"] = "Succeeded"
    return FakeKube([node_doc("n0", cpu="4", memory="8Gi"), node_doc("n1", cpu="4", memory="8Gi")], [
        running("web-1", "n0", limits=LIMITS, owner="web", priority=10),
        running("web-2", "n0", limits=LIMITS, owner="web", priority=10),
        running("db", "n1", "1", "1Gi", limits={"cpu": "1", "memory": "1Gi"}),
        running("proxy", "n1", "50m", "64Mi", namespace="kube-system"),
        running("quiet", "n1", "200m", "64Mi"),  # no usage series
        done,
        pod_doc("waiting", "100m", "64Mi", uid="uid-waiting"),
    ])


USAGE = {"default/web-1": (3.5, 200 * 1024 ** 2), "default/web-2": (1.0, 100 * 1024 ** 2),
         "default/db": (0.2, 0.5 * GIB), "kube-system/proxy": (0.01, 10 * 1024 ** 2)}


@pytest.fixture
def prometheus():
    fake = FakePrometheus({"n0": (4.5, 2 * GIB), "n1": (0.3, 1 * GIB)}, label="instance", suffix="",
                          pods=dict(USAGE))
    yield fake
    fake.close()


def actor(kube: FakeKube, prometheus: FakePrometheus, telemetry: Telemetry | None = None, **settings) -> Actor:
    s = Settings(replica="test", prometheus_url=prometheus.url, prom_strip_port=False, **settings)
    return Actor.from_settings(s, kube, telemetry or Telemetry())


def count(telemetry: Telemetry, name: str, **labels) -> float:
    return telemetry.registry.get_sample_value(name, labels) or 0.0


def test_the_view_of_the_live_state(kube):
    ids = Ids()
    built = build_view(list(kube.nodes.values()), list(kube.pods.values()), USAGE, now=1_000_000.0, epoch=999_900.0,
                       ids=ids, skip_namespaces=frozenset({"kube-system"}))
    view, pods = built.view, built.view.pods
    assert [t.key for t in built.targets] == ["default/web-1", "default/web-2", "default/db"]
    assert built.no_usage == 1 and built.skipped_namespace == 1 and view.pending == 1
    assert view.now_s == 100.0 and view.n_nodes == 2
    assert view.alloc_cpu.tolist() == [4000, 4000] and view.alloc_mem.tolist() == [8192, 8192]
    # every bound, non-terminal pod's requests count on its node: usage or not, skipped or not
    assert view.req_cpu.tolist() == [200, 1000 + 50 + 200]
    assert view.req_mem.tolist() == [256, 1024 + 64 + 64]
    assert pods.node.tolist() == [0, 0, 1]
    assert pods.cpu_request.tolist() == [100, 100, 1000] and pods.memory_request.tolist() == [128, 128, 1024]
    assert pods.cpu_limit.tolist() == [500, 500, 1000] and pods.memory_limit.tolist() == [256, 256, 1024]
    assert pods.qos.tolist() == [BURSTABLE, BURSTABLE, GUARANTEED]
    assert pods.priority.tolist() == [10, 10, 0] and pods.controlled.tolist() == [True, True, False]
    assert pods.workload[0] == pods.workload[1] != pods.workload[2]
    assert ids.workloads["default/web"] == pods.workload[0]  # the ReplicaSet's hash stripped
    assert pods.cpu_usage.tolist() == [3500.0, 1000.0, 200.0]
    assert pods.memory_usage.tolist() == [200.0, 100.0, 512.0]
    assert np.isnan(pods.resize_waiting_s).all()
    assert len(view.max_unavailable) == len(ids.workloads) and (view.unavailable == 0).all()
    assert (view.max_unavailable >= acting.NO_BUDGET).all()  # the apiserver enforces the budgets
    # ids stay the same on the next tick; a pod that is gone loses its id, which is never reused
    again = build_view(list(kube.nodes.values()), list(kube.pods.values()), USAGE, now=1_000_060.0,
                       epoch=999_900.0, ids=ids, skip_namespaces=frozenset({"kube-system"}))
    assert again.view.pods.pod.tolist() == pods.pod.tolist()
    kube.pods.pop(("default", "web-1"))
    kube.add_pod(running("web-3", "n0", limits=LIMITS, owner="web", priority=10))
    third = build_view(list(kube.nodes.values()), list(kube.pods.values()), {**USAGE, "default/web-3": (1.0, 0)},
                       now=1_000_120.0, epoch=999_900.0, ids=ids, skip_namespaces=frozenset({"kube-system"}))
    assert "uid-web-1" not in ids.pods and third.view.pods.pod.max() > pods.pod.max()


def test_a_pending_resize_is_seen(kube):
    doc = kube.pods[("default", "db")]
    doc["status"]["conditions"] = [{"type": "PodResizePending", "status": "True", "reason": "Deferred",
                                    "lastTransitionTime": "2026-01-01T00:01:00Z"}]
    built = build_view(list(kube.nodes.values()), list(kube.pods.values()), USAGE, now=2e9, epoch=0.0, ids=Ids())
    waiting = built.view.pods.resize_waiting_s
    assert np.isnan(waiting[:2]).all() and waiting[2] == pytest.approx(1767225660.0)


def test_dry_run_by_default_changes_nothing(kube, prometheus):
    before = copy.deepcopy(kube.pods)
    a = actor(kube, prometheus)
    assert a.dry_run
    report = a.tick("r1")
    assert report["dry_run"] is True and report["pods"] == 3 and report["fallback"] == "no_model"
    assert report["actions"], "the under-requested pod on the hot node should be resized"
    assert {x["result"] for x in report["actions"]} == {"dry_run"}
    assert kube.pods == before and kube.resizes == [] and kube.evictions == []
    assert all(path.endswith(("/resize", "/eviction")) for _, path in kube.writes())


def test_a_real_run_resizes_in_place(kube, prometheus):
    telemetry = Telemetry()
    report = actor(kube, prometheus, telemetry, actuator_dry_run=False, actuator_args="margin=1.0").tick()
    assert report["dry_run"] is False
    resizes = {x["pod"]: x for x in report["actions"] if x["action"] == "resize"}
    # the under-requested pod on the hot node is raised; its neighbour's raise does not fit on n0
    web = resizes["default/web-1"]
    cpu = web["to"]["cpu_request_milli"]
    assert web["result"] == "applied" and cpu > 500 and web["from"]["cpu_request_milli"] == 100
    assert web["patch"] == {"main": {"requests": {"cpu": f"{cpu}m"}, "limits": {"cpu": f"{cpu}m"}}}  # limit >= request
    assert "default/web-2" not in resizes
    # the Guaranteed db uses less than it requests, but its limit would have to follow its request
    # down: it is left alone (lowering a limit throttles a pod, it relieves nothing)
    assert "default/db" not in resizes
    spec = kube.pods[("default", "web-1")]["spec"]["containers"][0]["resources"]
    assert spec == {"requests": {"cpu": f"{cpu}m", "memory": "128Mi"}, "limits": {"cpu": f"{cpu}m", "memory": "256Mi"}}
    assert kube.pods[("default", "web-1")]["metadata"]["uid"] == "uid-web-1"  # in place
    assert sorted(k for k, _ in kube.resizes) == ["default/web-1"]
    assert report["outcomes"] == {"resize": {"applied": 1}}
    assert count(telemetry, "neurokube_actuator_actions_total", action="resize", result="applied") == 1
    assert count(telemetry, "neurokube_actuator_fallbacks_total", reason="no_model") == 1


def test_cooldowns_hold_across_ticks(kube, prometheus):
    a = actor(kube, prometheus, actuator_dry_run=False, actuator_args="margin=1.0")
    first = a.tick()
    second = a.tick()
    assert first["actions"] and not [x for x in second["actions"] if x["action"] == "resize"]
    assert second["pods"] == 3


def test_an_eviction_a_budget_refuses_is_counted(kube, prometheus):
    telemetry = Telemetry()
    kube.budget_exhausted.add("default/web-2")
    args = "max_evictions=1.0,margin=1.0,evict_while_pending=true"
    report = actor(kube, prometheus, telemetry, actuator_dry_run=False, actuator_args=args).tick()
    [evict] = [x for x in report["actions"] if x["action"] == "evict"]
    assert evict["pod"] == "default/web-2" and evict["result"] == "refused_budget" and evict["status"] == 429
    assert ("default", "web-2") in kube.pods and kube.evictions == []
    assert report["outcomes"]["evict"] == {"refused_budget": 1}
    assert count(telemetry, "neurokube_actuator_actions_total", action="evict", result="refused_budget") == 1
    kube.budget_exhausted.clear()
    again = actor(kube, prometheus, telemetry, actuator_dry_run=False, actuator_args=args).tick()
    assert [x["result"] for x in again["actions"] if x["action"] == "evict"] == ["applied"]
    assert kube.evictions == ["default/web-2"] and ("default", "web-2") not in kube.pods


class Boom:
    name, interval_s = "boom", 60

    def observe(self, now_s, pods):
        return None

    def act(self, view):
        raise RuntimeError("the model is broken")


def test_an_actuator_that_raises_does_nothing(kube, prometheus):
    telemetry = Telemetry()
    settings = Settings(replica="test", prometheus_url=prometheus.url, actuator_dry_run=False)
    a = Actor.from_settings(settings, kube, telemetry)
    a.actuator = Boom()
    report = a.tick()
    assert report["fallback"] == "error" and report["actions"] == [] and report["pods"] == 3
    assert kube.writes() == []
    assert count(telemetry, "neurokube_actuator_fallbacks_total", reason="error") == 1


def test_without_usage_nothing_is_done(kube, prometheus):
    telemetry = Telemetry()
    prometheus.up = False
    report = actor(kube, prometheus, telemetry, actuator_dry_run=False).tick()
    assert report["fallback"] == "prometheus_unavailable" and report["actions"] == [] and kube.writes() == []
    assert count(telemetry, "neurokube_actuator_fallbacks_total", reason="prometheus_unavailable") == 1


def test_unreadable_models_fall_back_and_are_counted(kube, prometheus, tmp_path):
    telemetry = Telemetry()
    a = actor(kube, prometheus, telemetry, actuator_model_dir=tmp_path)  # no manifest.json
    assert a.model_fallback == "model_unreadable"
    assert a.tick()["fallback"] == "model_unreadable"
    assert count(telemetry, "neurokube_actuator_fallbacks_total", reason="model_unreadable") == 1


def test_the_first_container_takes_the_change():
    two = Target("default", "p", "u", "n0", "default/p", (
        Container("app", 300, 256 * 1024 ** 2, 600, 512 * 1024 ** 2),
        Container("sidecar", 100, 64 * 1024 ** 2, 200, 128 * 1024 ** 2)), (400, 320, 800, 640))
    assert resize_patch(two, Resize(0, 1000, 320, 1400, 640, "r")) == {
        "app": {"requests": {"cpu": "900m"}, "limits": {"cpu": "1200m"}}}
    assert resize_patch(two, Resize(0, 400, 384, 800, 640, "r")) == {"app": {"requests": {"memory": "320Mi"}}}
    assert resize_patch(two, Resize(0, 50, 320, 800, 640, "r")) is None  # the app container would go below zero
    assert resize_patch(two, Resize(0, 400, 320, 800, 640, "r")) == {}  # nothing changes
    unlimited = Target("default", "q", "u", "n0", "default/q", (Container("app", 100, None, None, None),),
                       (100, 0, 0, 0))
    assert resize_patch(unlimited, Resize(0, 100, 0, 500, 0, "r")) is None  # a limit added: QoS would change


def test_a_skipped_resize_is_counted_not_sent(kube, prometheus):
    telemetry = Telemetry()
    a = actor(kube, prometheus, telemetry, actuator_dry_run=False)

    class AddsALimit:
        name, interval_s = "adds", 60

        def observe(self, now_s, pods):
            return None

        def act(self, view):
            return [Resize(int(view.pods.pod[0]), 100, 128, 500, 999, "test"), Evict(int(view.pods.pod[1]), "test")]

    kube.pods[("default", "web-1")]["spec"]["containers"][0]["resources"]["limits"].pop("memory")
    a.actuator = AddsALimit()
    report = a.tick()
    assert [x["result"] for x in report["actions"]] == ["skipped", "applied"]
    assert kube.resizes == [] and kube.evictions == ["default/web-2"]
    assert count(telemetry, "neurokube_actuator_actions_total", action="resize", result="skipped") == 1


# -- the function ------------------------------------------------------------------------------------


def ping(kind=PING):
    return to_binary(CloudEvent({"type": kind, "source": "/apis/v1/namespaces/neurokube/pingsources/neurokube-act"},
                                {"task": "act"}))


@pytest.fixture
def installed(kube, prometheus, monkeypatch):
    monkeypatch.setenv("NEUROKUBE_INSECURE", "1")
    acting.install(actor(kube, prometheus))
    yield kube
    acting.install(None)


@pytest.mark.parametrize("target", ["actuator", "on_ping"])
def test_the_function_runs_a_tick_per_ping(installed, target):
    client = functions_framework.create_app(target, SOURCE).test_client()
    headers, body = ping()
    response = client.post("/", headers=headers, data=body)
    assert response.status_code == 200
    if target == "actuator":
        assert response.json["dry_run"] is True and response.json["actions"]
    assert installed.resizes == [] and installed.evictions == []
    headers, body = ping("dev.knative.apiserver.resource.add")
    assert 400 <= client.post("/", headers=headers, data=body).status_code < 500


def test_the_function_is_ready_without_a_runtime(installed):
    client = functions_framework.create_app("actuator", SOURCE).test_client()
    response = client.get("/readyz")
    assert response.status_code == 200 and response.json["dry_run"] is True
    metrics = client.get("/metrics").data.decode()
    assert "neurokube_actuator_actions_total" in metrics


def test_the_function_refuses_to_start_open(monkeypatch):
    monkeypatch.delenv("NEUROKUBE_INSECURE", raising=False)
    with pytest.raises(Exception, match="refusing to start"):
        functions_framework.create_app("actuator", SOURCE)


def test_pods_no_node_could_ever_take_do_not_hold_evictions_back(kube, prometheus):
    """``evict_while_pending=false`` (the default) holds evictions back while pods wait for room; a
    pod whose selector no node matches, or that is larger than every node, never gets room, and a
    gated pod is not waiting for a scheduler: none of them may switch eviction off."""
    kube.add_pod(pod_doc("nowhere", "100m", "64Mi", uid="uid-nowhere", node_selector={"zone": "mars"}))
    kube.add_pod(pod_doc("giant", "64", "64Mi", uid="uid-giant"))
    gated = pod_doc("gated", "100m", "64Mi", uid="uid-gated")
    gated["spec"]["schedulingGates"] = [{"name": "example.com/quota"}]
    kube.add_pod(gated)
    args = "max_evictions=1.0,margin=1.0"
    held = actor(kube, prometheus, actuator_dry_run=False, actuator_args=args).tick()
    assert held["pending"] == 1 and held["unplaceable"] == 2  # "waiting" fits on some node: evictions wait
    assert not [x for x in held["actions"] if x["action"] == "evict"] and kube.evictions == []
    kube.pods.pop(("default", "waiting"))
    report = actor(kube, prometheus, actuator_dry_run=False, actuator_args=args).tick()
    assert report["pending"] == 0 and report["unplaceable"] == 2
    assert [(x["pod"], x["result"]) for x in report["actions"] if x["action"] == "evict"] == [
        ("default/web-2", "applied")]
