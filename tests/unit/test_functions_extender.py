"""The extender function with kube-scheduler's exact wire format (Go field names): filter in
both modes (Nodes, NodeNames) with resolvable and unresolvable failures, prioritize scores 0..10
that follow the learned model (all 0 on a fallback), bind through the ledger, and the edge:
malformed ExtenderArgs 400, bearer token 401, body limit 413, wrong content type 415."""

from pathlib import Path

import functions_framework
import pytest

from neurokube.live import runtime as live_runtime
from neurokube.live.settings import Settings
from neurokube.live.telemetry import process_telemetry
from neurokube.policies.framework import Reason
from neurokube.testing import FakeKube, FakePrometheus, fake_runtime, node_doc, pod_doc, write_packing_model

SOURCE = str(Path(__file__).resolve().parents[2] / "functions" / "extender" / "main.py")
TOKEN = "s3cret-token-for-the-tests"
TAINT = [{"key": "dedicated", "value": "ml", "effect": "NoSchedule"}]



@pytest.fixture(autouse=True)
def insecure(monkeypatch):
    """The tests that are not about authentication run the function with NEUROKUBE_INSECURE=1."""
    monkeypatch.setenv("NEUROKUBE_INSECURE", "1")

@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return write_packing_model(tmp_path_factory.mktemp("model") / "m")


@pytest.fixture
def prom():
    server = FakePrometheus({n: (0.1, 2**30) for n in ("small", "empty", "busy", "tainted")})
    yield server
    server.close()


NODES = [node_doc("small", cpu="500m"), node_doc("empty", cpu="8"), node_doc("busy", cpu="8"),
         node_doc("tainted", cpu="8", taints=TAINT)]


@pytest.fixture
def kube(model, prom):
    fake = FakeKube(NODES, [pod_doc("load", "4", "1Gi", node="busy", uid="load", scheduler="default-scheduler")])
    runtime = fake_runtime(fake, Settings(model_dir=model, prometheus_url=prom.url, replica="x"),
                           telemetry=process_telemetry())
    runtime.metrics.refresh()
    live_runtime.install(runtime)
    yield fake
    live_runtime.install(None)


@pytest.fixture
def client():
    return functions_framework.create_app("extender", SOURCE).test_client()


def args(pod=None, names=None):
    pod = pod or pod_doc("p", "1", "1Gi", scheduler="default-scheduler")
    if names is not None:
        return {"Pod": pod, "Nodes": None, "NodeNames": names}
    return {"Pod": pod, "Nodes": {"metadata": {}, "items": NODES}, "NodeNames": None}


def test_filter_with_node_objects(client, kube):
    reply = client.post("/filter", json=args()).json
    assert set(reply) == {"Nodes", "NodeNames", "FailedNodes", "FailedAndUnresolvableNodes", "Error"}
    assert [n["metadata"]["name"] for n in reply["Nodes"]["items"]] == ["empty", "busy"]
    assert reply["NodeNames"] is None and reply["Error"] == ""
    assert reply["FailedNodes"] == {"small": "Insufficient cpu"}
    assert reply["FailedAndUnresolvableNodes"] == {"tainted": "node(s) had untolerated taint {dedicated: ml}"}


def test_filter_with_node_names(client, kube):
    reply = client.post("/filter", json=args(names=["small", "empty", "busy", "unknown-yet"])).json
    assert reply["Nodes"] is None and reply["NodeNames"] == ["empty", "busy", "unknown-yet"]
    assert reply["FailedNodes"] == {"small": "Insufficient cpu"}


def test_prioritize_follows_the_model(client, kube):
    reply = client.post("/prioritize", json=args()).json
    order = ["small", "empty", "busy", "tainted"]
    hosts = [r["Host"] for r in reply]
    assert hosts == [n for n in order if n in hosts]  # the request's order; a node scoring 0 is left out
    assert all(isinstance(r["Score"], int) and 1 <= r["Score"] <= 10 for r in reply)
    scores = dict.fromkeys(order, 0) | {r["Host"]: r["Score"] for r in reply}
    assert scores["busy"] == 10 and scores["empty"] < 10  # packing, unlike LeastAllocated
    assert "small" not in hosts and "tainted" not in hosts  # infeasible: 0, so not listed
    names = client.post("/prioritize", json=args(names=["busy", "empty"])).json
    assert names == [{"Host": "busy", "Score": 10}] + ([{"Host": "empty", "Score": scores["empty"]}]
                                                       if scores["empty"] else [])


def test_prioritize_falls_back_to_neutral_scores(client, kube):
    live_runtime.installed().metrics._latest = type(live_runtime.installed().metrics.latest())()  # no metrics
    before = process_telemetry().fallbacks.labels(reason="prometheus_unavailable")._value.get()
    reply = client.post("/prioritize", json=args()).json
    assert reply == []  # every node 0: none listed, kube-scheduler's own plugins decide
    assert process_telemetry().fallbacks.labels(reason="prometheus_unavailable")._value.get() == before + 1


def test_prioritize_counts_a_failing_model_under_the_enum_reason(client, kube, monkeypatch):
    """The model raises inside /prioritize: the value plugin fails with Reason.PREDICT_ERROR, the
    answer is neutral (all 0, kube-scheduler decides alone) and the fallback is counted under that
    reason's label; the next call with a working model scores again."""
    policy = live_runtime.installed().decider.policy
    counter = process_telemetry().fallbacks.labels(reason=Reason.PREDICT_ERROR.value)
    before = counter._value.get()
    working = client.post("/prioritize", json=args()).json

    def boom(features):
        raise RuntimeError("the model server fell over")

    monkeypatch.setattr(policy.model, "components", boom)
    reply = client.post("/prioritize", json=args()).json
    assert reply == [] and working and all(r["Score"] > 0 for r in working)
    assert counter._value.get() == before + 1
    assert policy.fallbacks_by_reason == {}  # prioritize is not a decision: the replay's counts are untouched
    monkeypatch.undo()
    assert client.post("/prioritize", json=args()).json == working and counter._value.get() == before + 1


def test_bind_goes_through_the_ledger(client, kube):
    kube.add_pod(pod_doc("b", "1", "1Gi", uid="ub", scheduler="default-scheduler"))
    ok = client.post("/bind", json={"PodName": "b", "PodNamespace": "default", "PodUID": "ub", "Node": "empty"})
    assert ok.json == {"Error": ""} and kube.bindings == [("default/b", "empty")]
    kube.add_pod(pod_doc("c", "1", "1Gi", uid="uc", scheduler="default-scheduler"))
    full = client.post("/bind", json={"PodName": "c", "PodNamespace": "default", "PodUID": "uc", "Node": "small"})
    assert full.status_code == 200 and "no_room" in full.json["Error"]
    missing = client.post("/bind", json={"PodName": "zz", "PodNamespace": "default", "PodUID": "u", "Node": "empty"})
    assert missing.status_code == 404 and "pod default/zz does not exist" in missing.json["error"]


BIND_REFUSALS = {
    "unknown node": ({"PodName": "d", "PodUID": "ud", "Node": "nowhere"}, 403, "unknown_node"),
    "no PodUID": ({"PodName": "d", "PodUID": "", "Node": "empty"}, 400, "no_uid"),
    "wrong PodUID": ({"PodName": "d", "PodUID": "u-wrong", "Node": "empty"}, 410, "uid_mismatch"),
    "another scheduler's pod": ({"PodName": "ours", "PodUID": "u-ours", "Node": "empty"}, 403, "other_scheduler"),
}


@pytest.mark.parametrize("case", list(BIND_REFUSALS))
def test_bind_refuses_what_the_apiserver_contradicts(client, kube, case):
    """/bind checks node, UID and scheduler before any write (kube-scheduler profiles use
    default-scheduler; NeuroKube's own pods are the binder's, not the extender's)."""
    kube.add_pod(pod_doc("d", "1", "1Gi", uid="ud", scheduler="default-scheduler"))
    kube.add_pod(pod_doc("ours", "1", "1Gi", uid="u-ours", scheduler="neurokube"))
    args, status, reason = BIND_REFUSALS[case]
    response = client.post("/bind", json={"PodNamespace": "default", **args})
    assert response.status_code == status and response.json["reason"] == reason, response.json
    assert kube.bindings == [] and kube.writes() == []


MALFORMED = {
    "not JSON": b"{oops",
    "a list": [1, 2],
    "no Pod": {"Nodes": None, "NodeNames": ["a"]},
    "neither Nodes nor NodeNames": {"Pod": pod_doc("p"), "Nodes": None, "NodeNames": None},
    "NodeNames not a list": {"Pod": pod_doc("p"), "NodeNames": "a,b"},
    "Nodes without items": {"Pod": pod_doc("p"), "Nodes": {"items": "x"}},
    "a bad node": {"Pod": pod_doc("p"), "Nodes": {"items": [{"metadata": {}}]}},
    "pod without spec": {"Pod": {"metadata": {"name": "p"}}, "NodeNames": ["a"]},
    "absurd request": {"Pod": pod_doc("p", "1e30"), "NodeNames": ["a"]},
    "empty body": b"",
}


@pytest.mark.parametrize("verb", ["filter", "prioritize"])
@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_extender_args_are_400(client, kube, verb, case):
    body = MALFORMED[case]
    kwargs = {"data": body, "content_type": "application/json"} if isinstance(body, bytes) else {"json": body}
    response = client.post(f"/{verb}", **kwargs)
    assert response.status_code == 400, (case, response.get_data()[:200])
    assert response.json["error"] and kube.requests == [] and kube.bindings == []


@pytest.mark.parametrize("body", [
    {"PodName": "p", "PodNamespace": "default"}, {"PodName": 3}, ["x"],
    {"PodName": "../p", "PodNamespace": "default", "Node": "empty"},
    {"PodName": "p", "PodNamespace": "default/x", "Node": "empty"},
    {"PodName": "p", "PodNamespace": "default", "Node": "../../api/v1/pods"},
    {"PodName": "p", "PodNamespace": "default", "PodUID": 7, "Node": "empty"},
])
def test_malformed_binding_args_are_400(client, kube, body):
    response = client.post("/bind", json=body)
    assert response.status_code == 400 and response.json["error"] and kube.requests == []


def test_bearer_token(monkeypatch, kube):
    monkeypatch.setenv("NEUROKUBE_TOKEN", TOKEN)
    client = functions_framework.create_app("extender", SOURCE).test_client()
    assert client.post("/filter", json=args()).status_code == 401
    wrong = client.post("/filter", json=args(), headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"].startswith("Bearer")
    assert wrong.json["error"] == "unauthorized: wrong bearer token"
    basic = client.post("/filter", json=args(), headers={"Authorization": f"Basic {TOKEN}"})
    assert basic.status_code == 401 and "scheme must be Bearer" in basic.json["error"]
    last = client.post("/filter", json=args(), headers={"Authorization": f"Bearer {TOKEN[:-1]}X"})
    assert last.status_code == 401
    assert client.post("/preempt", json={}).status_code == 401  # nothing is answered before the token
    assert kube.requests == []
    right = client.post("/filter", json=args(), headers={"Authorization": f"Bearer {TOKEN}"})
    assert right.status_code == 200
    assert client.get("/metrics").status_code == 200  # metrics need no token


def test_limits_and_routes(monkeypatch, kube):
    monkeypatch.setenv("NEUROKUBE_MAX_BODY_BYTES", "1024")
    client = functions_framework.create_app("extender", SOURCE).test_client()
    assert client.post("/filter", json=args()).status_code == 413  # four Node objects are bigger
    assert client.post("/filter", data="Pod=1", content_type="text/plain").status_code == 415
    assert client.get("/filter").status_code == 405 and client.post("/preempt", json={}).status_code == 404
    assert kube.requests == []


def test_an_unsynced_cache_passes_every_node(client, kube):
    live_runtime.installed().cache._synced["pods"].clear()
    reply = client.post("/filter", json=args(names=["small", "empty"])).json
    assert reply["NodeNames"] == ["small", "empty"] and reply["FailedNodes"] == {}
