"""The sweeper function: a PingSource event places the pending pods of this scheduler, oldest
first, leaving very young ones to the binder; anything but a ping is a 4xx (both entry points)."""

import datetime as dt
from pathlib import Path

import functions_framework
import pytest
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent

from neurokube.live import runtime as live_runtime
from neurokube.live.telemetry import process_telemetry
from neurokube.testing import FakeKube, fake_runtime, node_doc, pod_doc

SOURCE = str(Path(__file__).resolve().parents[2] / "functions" / "sweeper" / "main.py")
PING = "dev.knative.sources.ping"


def stamp(seconds_ago: float) -> str:
    t = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=seconds_ago)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")



@pytest.fixture(autouse=True)
def insecure(monkeypatch):
    """The tests that are not about authentication run the function with NEUROKUBE_INSECURE=1."""
    monkeypatch.setenv("NEUROKUBE_INSECURE", "1")

@pytest.fixture
def kube():
    fake = FakeKube([node_doc("n0", cpu="2")], [
        pod_doc("old", "1", "1Gi", uid="u-old", created=stamp(300)),
        pod_doc("older", "1", "1Gi", uid="u-older", created=stamp(600)),
        pod_doc("oldest-but-too-big", "4", "1Gi", uid="u-big", created=stamp(900)),
        pod_doc("young", "100m", "1Mi", uid="u-young", created=stamp(0)),
        pod_doc("not-ours", "100m", "1Mi", uid="u-other", scheduler="default-scheduler", created=stamp(900)),
    ])
    live_runtime.install(fake_runtime(fake, telemetry=process_telemetry()))
    yield fake
    live_runtime.install(None)


def test_the_sweep_leaves_gated_pods_alone(kube):
    gated = pod_doc("gated", "100m", "1Mi", uid="u-gated", created=stamp(1200))
    gated["spec"]["schedulingGates"] = [{"name": "example.com/quota"}]
    kube.add_pod(gated)
    skipped = process_telemetry().sweeps.labels(outcome="gated")
    before = skipped._value.get()
    client = functions_framework.create_app("sweeper", SOURCE).test_client()
    headers, body = ping()
    report = client.post("/", headers=headers, data=body).json
    assert report["pending"] == 4 and report["bound"] == 2  # as without it
    assert [b["metadata"]["name"] for b in kube.binding_bodies if b["metadata"]["name"] == "gated"] == []
    assert skipped._value.get() == before + 1


def ping(kind=PING):
    return to_binary(CloudEvent({"type": kind, "source": "/apis/v1/namespaces/neurokube/pingsources/neurokube-sweep"},
                                {"task": "sweep"}))


@pytest.mark.parametrize("target", ["sweeper", "on_ping"])
def test_ping_places_pending_pods_oldest_first(kube, target):
    client = functions_framework.create_app(target, SOURCE).test_client()
    headers, body = ping()
    response = client.post("/", headers=headers, data=body)
    assert response.status_code == 200
    if target == "sweeper":
        report = response.json
        assert report["pending"] == 4 and report["bound"] == 2 and report["unschedulable"] == 1
        assert report["young"] == 1
    assert [pod for pod, _ in kube.bindings] == ["default/older", "default/old"]


@pytest.mark.parametrize("target", ["sweeper", "on_ping"])
def test_anything_but_a_ping_is_rejected(kube, target):
    client = functions_framework.create_app(target, SOURCE).test_client()
    headers, body = ping(kind="dev.knative.apiserver.resource.add")
    response = client.post("/", headers=headers, data=body)
    assert 400 <= response.status_code < 500 and kube.requests == []
    assert 400 <= client.post("/", data=b"not an event").status_code < 500


@pytest.mark.parametrize("target", ["sweeper", "on_ping"])
def test_event_token_and_limit(monkeypatch, kube, target):
    monkeypatch.setenv("NEUROKUBE_EVENT_TOKEN", "event-token-for-the-unit-tests")
    monkeypatch.setenv("NEUROKUBE_MAX_EVENT_BYTES", "4096")
    client = functions_framework.create_app(target, SOURCE).test_client()
    headers, body = ping()
    assert client.post("/", headers=headers, data=body).status_code == 401
    assert client.post("/", headers={**headers, "Authorization": "Bearer wrong-token-for-the-tests"},
                       data=body).status_code == 401
    assert kube.requests == []
    authorized = {**headers, "Authorization": "Bearer event-token-for-the-unit-tests"}
    if target == "sweeper":
        assert client.post("/", headers=authorized, data=b"x" * 5000).status_code == 413
    assert client.post("/", headers=authorized, data=body).status_code == 200
