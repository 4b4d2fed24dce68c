"""The binder function through functions-framework's own test client, both entry points
(``binder``, http, deployed; ``on_pod_event``, cloud_event): bad input answers 4xx with a
message, never 500, and never reaches the apiserver; ignored pods answer 200; a pending pod is
bound once, a redelivery is a 200 without a second binding; a missing runtime is a 503. Events
that contradict the apiserver's pod are refused (403/410) before any write; without a token, an
OIDC audience or NEUROKUBE_INSECURE=1 the function does not start. The binder takes ledger credits
as configured, the sweeper none. The tests that are not about authentication run it with
NEUROKUBE_INSECURE=1."""

import threading
from pathlib import Path

import functions_framework
import pytest
from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent

from neurokube.adapters.kube import KubeError
from neurokube.errors import StatusDetails
from neurokube.live import runtime as live_runtime
from neurokube.live.telemetry import process_telemetry
from neurokube.testing import FakeKube, fake_runtime, node_doc, pod_doc

SOURCE = str(Path(__file__).resolve().parents[2] / "functions" / "binder" / "main.py")
ADD = "dev.knative.apiserver.resource.add"


@pytest.fixture(autouse=True)
def insecure(monkeypatch):
    monkeypatch.setenv("NEUROKUBE_INSECURE", "1")


@pytest.fixture
def kube():
    fake = FakeKube([node_doc("n0"), node_doc("n1")])
    runtime = fake_runtime(fake, telemetry=process_telemetry())
    live_runtime.install(runtime)
    yield fake
    live_runtime.install(None)


@pytest.fixture(params=["binder", "on_pod_event"])
def client(request):
    return functions_framework.create_app(request.param, SOURCE).test_client()


@pytest.fixture
def http_client():
    return functions_framework.create_app("binder", SOURCE).test_client()


def event(data, kind=ADD, structured=False, **attributes):
    ce = CloudEvent({"type": kind, "source": "https://127.0.0.1:6443", "subject": "/apis/v1/namespaces/default/pods/p",
                     **attributes}, data)
    return to_structured(ce) if structured else to_binary(ce)


def post(client, headers_body):
    headers, body = headers_body
    return client.post("/", headers=headers, data=body)


def with_cpu(cpu):
    doc = pod_doc("p")
    doc["spec"]["containers"][0]["resources"]["requests"]["cpu"] = cpu
    return doc


def two_containers(cpu):
    doc = with_cpu(cpu)
    doc["spec"]["containers"].append({**doc["spec"]["containers"][0], "name": "second"})
    return doc


def no_spec():
    doc = pod_doc("p")
    del doc["spec"]
    return doc


BAD = {
    "wrong type": lambda: event(pod_doc("p"), kind="com.example.something"),
    "reference mode": lambda: event({"kind": "Pod", "namespace": "default", "name": "p", "apiVersion": "v1"},
                                    kind="dev.knative.apiserver.ref.add"),
    "ping sent to the binder": lambda: event(None, kind="dev.knative.sources.ping"),
    "missing data": lambda: event(None),
    "data not an object": lambda: event([1, 2, 3]),
    "pod without spec": lambda: event(no_spec()),
    "absurd cpu": lambda: event(with_cpu("1e30")),
    "negative cpu": lambda: event(with_cpu("-1")),
    "garbage cpu": lambda: event(with_cpu("lots")),
    "no containers": lambda: event({**pod_doc("p"), "spec": {"schedulerName": "neurokube"}}),
    "a name that is a path": lambda: event({**pod_doc("p"), "metadata": {"name": "../../nodes/n0", "namespace": "default"}}),
    "an invalid namespace": lambda: event({**pod_doc("p"), "metadata": {"name": "p", "namespace": "Not_A_NS"}}),
    "two containers beyond int64": lambda: event(two_containers("9e15")),
    "structured, missing data": lambda: event(None, structured=True),
}

RAW = {
    "non-JSON data": ({"ce-specversion": "1.0", "ce-type": ADD, "ce-source": "s", "ce-id": "1",
                       "Content-Type": "application/json"}, b"{not json"),
    "wrong specversion": ({"ce-specversion": "0.2", "ce-type": ADD, "ce-source": "s", "ce-id": "1",
                           "Content-Type": "application/json"}, b'{"kind": "Pod"}'),
    "not a CloudEvent": ({"Content-Type": "application/json"}, b'{"hello": "world"}'),
    "structured garbage": ({"Content-Type": "application/cloudevents+json"}, b"{oops"),
    "empty": ({}, b""),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_events_are_4xx_and_never_bind(client, kube, case):
    response = post(client, BAD[case]())
    assert 400 <= response.status_code < 500, (case, response.status_code, response.get_data()[:300])
    assert kube.requests == [] and kube.bindings == []


@pytest.mark.parametrize("case", list(RAW))
def test_malformed_requests_are_4xx_and_never_bind(client, kube, case):
    headers, body = RAW[case]
    response = client.post("/", headers=headers, data=body)
    assert 400 <= response.status_code < 500, (case, response.status_code, response.get_data()[:300])
    assert kube.requests == [] and kube.bindings == []


def test_http_errors_are_json_with_a_message(http_client, kube):
    response = post(http_client, event(with_cpu("1e30")))
    assert response.status_code == 400 and response.is_json
    assert "absurdly large" in response.json["error"] and response.json["request_id"]
    assert response.headers["X-Request-Id"] == response.json["request_id"]
    assert http_client.put("/").status_code == 405 and http_client.post("/nope").status_code == 404


def test_a_pending_pod_is_bound_once(http_client, kube):
    doc = pod_doc("p", uid="u1")
    kube.add_pod(doc)
    first = post(http_client, event(doc))
    assert first.status_code == 200 and first.json["outcome"] == "bound" and first.json["node"] in ("n0", "n1")
    again = post(http_client, event(doc))  # at-least-once delivery: the same event again
    assert again.status_code == 200 and again.json["outcome"] == "already_bound"
    assert kube.bindings == [("default/p", first.json["node"])]


def test_cloud_event_target_binds_too(kube):
    client = functions_framework.create_app("on_pod_event", SOURCE).test_client()
    doc = pod_doc("q", uid="u2")
    kube.add_pod(doc)
    response = post(client, event(doc, structured=True))
    assert response.status_code == 200 and kube.bindings == [("default/q", kube.placements()["default/q"])]


@pytest.mark.parametrize("doc, kind, reason", [
    (pod_doc("p", scheduler="default-scheduler"), ADD, "schedulerName is 'default-scheduler'"),
    (pod_doc("p", node="n0"), "dev.knative.apiserver.resource.update", "already bound to n0"),
    ({**pod_doc("p"), "metadata": {**pod_doc("p")["metadata"], "deletionTimestamp": "2026-01-01T00:00:00Z"}},
     ADD, "being deleted"),
    (pod_doc("p", phase="Succeeded"), ADD, "phase Succeeded"),
    (pod_doc("p"), "dev.knative.apiserver.resource.delete", "delete event"),
    (node_doc("n9"), ADD, "not a pod (Node)"),
])
def test_other_pods_and_events_are_ignored(http_client, kube, doc, kind, reason):
    response = post(http_client, event(doc, kind=kind))
    assert response.status_code == 200 and response.json == {"outcome": "ignored", "pod": response.json["pod"],
                                                              "reason": reason}
    assert kube.requests == []


def test_no_runtime_is_a_503_not_a_500(monkeypatch, tmp_path):
    live_runtime.install(None)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing.kubeconfig"))
    client = functions_framework.create_app("binder", SOURCE).test_client()
    response = post(client, event(pod_doc("p")))
    assert response.status_code == 503 and "unreadable kubeconfig" in response.json["error"]
    assert response.headers["Retry-After"] == "1"


def test_metrics_and_health(http_client, kube):
    post(http_client, event(pod_doc("p", scheduler="other")))
    assert http_client.get("/healthz").json == {"ok": True}
    text = http_client.get("/metrics").get_data(as_text=True)
    for name in ("neurokube_decisions_total", "neurokube_fallbacks_total", "neurokube_bind_conflicts_total",
                 "neurokube_decision_duration_seconds", "neurokube_model_info", "neurokube_pending_pods",
                 "neurokube_cache_age_seconds", 'neurokube_cloudevents_total{result="ignored"',
                 'neurokube_cpu_seconds_total{part="event_ignored"}'):
        assert name in text, name


def test_readiness_starts_the_runtime_and_reports(http_client, kube):
    response = http_client.get("/readyz")
    assert response.status_code == 200
    assert response.json == {"cache": "synced", "metrics": "disabled", "model_version": "none", "replica": "test"}
    live_runtime.installed().cache._synced["nodes"].clear()
    assert http_client.get("/readyz").status_code == 503


def test_body_size_limit(monkeypatch, kube):
    monkeypatch.setenv("NEUROKUBE_MAX_EVENT_BYTES", "2000")
    monkeypatch.setenv("NEUROKUBE_MAX_BODY_BYTES", "100")  # the extender's limit, not the binder's
    client = functions_framework.create_app("binder", SOURCE).test_client()
    doc = pod_doc("p", scheduler="other")
    assert post(client, event(doc)).status_code == 200  # under the limit: read (and ignored)
    doc["metadata"]["annotations"] = {"big": "x" * 5000}
    response = post(client, event(doc))
    assert response.status_code == 413 and "limit of 2000" in response.json["error"] and kube.requests == []


def test_the_default_event_limit_is_one_mebibyte(http_client, kube):
    doc = pod_doc("p")
    doc["metadata"]["annotations"] = {"big": "x" * (1024 * 1024)}
    response = post(http_client, event(doc))
    assert response.status_code == 413 and "limit of 1048576" in response.json["error"] and kube.requests == []


EVENT_TOKEN = "event-token-for-the-unit-tests"


@pytest.mark.parametrize("target", ["binder", "on_pod_event"])
def test_event_token(monkeypatch, kube, target):
    monkeypatch.setenv("NEUROKUBE_EVENT_TOKEN", EVENT_TOKEN)
    client = functions_framework.create_app(target, SOURCE).test_client()
    doc = pod_doc("p", uid="u1")
    kube.add_pod(doc)
    headers, body = event(doc)
    for authorization in (None, "Basic " + EVENT_TOKEN, "Bearer " + EVENT_TOKEN[:-1] + "X", "Bearer"):
        sent = {**headers, **({"Authorization": authorization} if authorization else {})}
        assert client.post("/", headers=sent, data=body).status_code == 401, authorization
    assert kube.requests == [] and kube.bindings == []
    right = client.post("/", headers={**headers, "Authorization": "Bearer " + EVENT_TOKEN}, data=body)
    assert right.status_code == 200 and len(kube.bindings) == 1
    if target == "binder":
        assert client.get("/healthz").status_code == 200 and client.get("/metrics").status_code == 200


def test_a_pod_in_an_unknown_namespace_is_gone(http_client, kube):
    response = post(http_client, event(pod_doc("p", namespace="nowhere")))
    assert response.status_code == 410 and response.json["reason"] == "pod_gone", response.json
    assert kube.bindings == [] and kube.writes() == []


def test_a_namespace_deleted_before_the_binding_is_a_404(http_client, kube):
    """The watch cache still has the pod, the apiserver's namespace admission refuses the Binding:
    the 404's Status details (kind ``namespaces``) make it "namespace does not exist", a 404."""
    doc = pod_doc("p", uid="u1", namespace="team")
    kube.add_pod(doc)
    live_runtime.installed().cache.apply("pods", "ADDED", doc)
    kube.delete_namespace("team")
    response = post(http_client, event(doc))
    assert response.status_code == 404, response.json
    assert "namespace 'team' does not exist" in response.json["error"]
    assert ("POST", "/api/v1/namespaces/team/pods/p/binding") in kube.requests and kube.bindings == []


@pytest.mark.parametrize("details, status", [
    (StatusDetails("namespaces", "default"), 404),
    (StatusDetails("pods", "p"), 200),  # the message alone says nothing: the pod is gone
    (StatusDetails(), 200),
    (StatusDetails("namespaces", "default", group="example.com"), 200),  # not the core namespaces
])
def test_the_404s_details_not_its_message_say_the_namespace_is_gone(http_client, kube, details, status):
    def not_found(method, path, body):
        if method == "POST" and path.endswith("/binding"):
            raise KubeError(404, "NotFound", 'namespaces "default" not found', method, path, details)

    doc = pod_doc("p", uid="u1")
    kube.add_pod(doc)
    kube.before.append(not_found)
    response = post(http_client, event(doc))
    assert response.status_code == status, response.json
    if status == 200:
        assert response.json["outcome"] == "gone"
    assert kube.bindings == []


def forged(kube, change):
    """A pending pod the apiserver has, and an event about it changed by ``change``."""
    doc = pod_doc("real", uid="u-real")
    kube.add_pod(doc)
    claimed = pod_doc("real", uid="u-real")
    change(claimed)
    return claimed


def _requests(cpu):
    def change(doc):
        doc["spec"]["containers"][0]["resources"]["requests"]["cpu"] = cpu
    return change


FORGERIES = {
    "wrong UID": (lambda d: d["metadata"].update(uid="u-other"), 410, "uid_mismatch"),
    "no UID": (lambda d: d["metadata"].pop("uid"), 400, "no_uid"),
    "fewer CPUs than the pod asks": (_requests("10m"), 403, "spec_mismatch"),
    "made-up toleration": (lambda d: d["spec"].update(tolerations=[{"operator": "Exists"}]), 403, "spec_mismatch"),
    "made-up node selector": (lambda d: d["spec"].update(nodeSelector={"pool": "x"}), 403, "spec_mismatch"),
    "another namespace": (lambda d: d["metadata"].update(namespace="kube-system"), 410, "pod_gone"),
    "a pod that was never created": (lambda d: d["metadata"].update(name="ghost", uid="u-ghost"), 410, "pod_gone"),
}


@pytest.mark.parametrize("case", list(FORGERIES))
def test_forged_events_are_refused_before_any_write(http_client, kube, case):
    change, status, reason = FORGERIES[case]
    before = process_telemetry().refused.labels(reason=reason)._value.get()
    response = post(http_client, event(forged(kube, change)))
    assert response.status_code == status and response.json["reason"] == reason, response.json
    assert kube.bindings == [] and kube.writes() == []
    assert process_telemetry().refused.labels(reason=reason)._value.get() == before + 1


def test_another_schedulers_pod_claimed_as_ours_is_refused(http_client, kube):
    kube.add_pod(pod_doc("theirs", uid="u-theirs", scheduler="default-scheduler"))
    response = post(http_client, event(pod_doc("theirs", uid="u-theirs")))
    assert response.status_code == 403 and response.json["reason"] == "other_scheduler"
    assert kube.bindings == [] and kube.writes() == []


def test_the_apiservers_pod_is_placed_not_the_events(http_client, kube):
    """The event may be newer than the watch cache (no contradiction after a fresh GET): the
    apiserver's pod is what is bound, with its UID as the precondition."""
    doc = pod_doc("p", uid="u1")
    kube.add_pod(doc)
    response = post(http_client, event(doc))
    assert response.status_code == 200 and response.json["outcome"] == "bound"
    assert kube.binding_bodies[-1]["metadata"]["uid"] == "u1"


def test_no_auth_and_no_insecure_flag_refuses_to_start(monkeypatch):
    from neurokube.errors import InputError

    monkeypatch.delenv("NEUROKUBE_INSECURE")
    with pytest.raises(InputError, match="would accept requests from anyone"):
        functions_framework.create_app("binder", SOURCE)


def test_insecure_is_visible_in_metrics(http_client, kube):
    assert "neurokube_insecure 1.0" in http_client.get("/metrics").get_data(as_text=True)


def test_invalid_settings_stop_the_function_at_start(monkeypatch):
    from neurokube.errors import InputError

    monkeypatch.setenv("NEUROKUBE_PROM_REFRESH_S", "often")
    with pytest.raises(InputError, match="NEUROKUBE_PROM_REFRESH_S='often'"):
        functions_framework.create_app("binder", SOURCE)


@pytest.mark.parametrize("status, answer", [(403, 422), (401, 422), (500, 503), (429, 503)])
def test_apiserver_refusals_are_final_and_outages_temporary(http_client, kube, status, answer):
    """A 4xx from the apiserver (RBAC, admission) would be refused again: the binder answers 4xx,
    which Knative does not retry; a 5xx or 429 is a 503, which it retries."""

    def refuse(method, path, body):
        if method == "POST" and path.endswith("/binding"):
            raise KubeError(status, "Refused", "pods/binding is forbidden", method, path)

    doc = pod_doc("p", uid="u1")
    kube.add_pod(doc)
    kube.before.append(refuse)
    response = post(http_client, event(doc))
    assert response.status_code == answer, response.json
    assert kube.bindings == []


def test_the_pod_is_read_from_the_cache_when_it_has_it(http_client, kube):
    """A GET only when the watch cache has not caught up with the event (counted by source)."""
    doc = pod_doc("p", uid="u-cached")
    kube.add_pod(doc)
    live_runtime.installed().cache.apply("pods", "ADDED", doc)
    lookups = process_telemetry().pod_lookups
    before = {s: lookups.labels(source=s)._value.get() for s in ("cache", "apiserver")}
    assert post(http_client, event(doc)).json["outcome"] == "bound"
    assert ("GET", "/api/v1/namespaces/default/pods/p") not in kube.requests
    missing = pod_doc("q", uid="u-uncached")
    kube.add_pod(missing)
    assert post(http_client, event(missing)).json["outcome"] == "bound"
    assert ("GET", "/api/v1/namespaces/default/pods/q") in kube.requests
    assert lookups.labels(source="cache")._value.get() == before["cache"] + 1
    assert lookups.labels(source="apiserver")._value.get() == before["apiserver"] + 1


def test_an_event_ahead_of_the_watch_waits_for_the_watch_instead_of_a_get(kube, monkeypatch):
    """The ApiServerSource's event can beat the binder's own watch to a new pod: the lookup waits
    (up to NEUROKUBE_POD_WATCH_WAIT_S) for the watch to report it, and GETs nothing."""
    monkeypatch.setenv("NEUROKUBE_POD_WATCH_WAIT_S", "5")
    app = functions_framework.create_app("binder", SOURCE).test_client()
    doc = pod_doc("w", uid="u-waited")
    kube.add_pod(doc)
    lookups = process_telemetry().pod_lookups
    before = lookups.labels(source="watch_wait")._value.get()
    timer = threading.Timer(0.05, live_runtime.installed().cache.apply, args=("pods", "ADDED", doc))
    timer.start()
    assert post(app, event(doc)).json["outcome"] == "bound"
    timer.join()
    assert ("GET", "/api/v1/namespaces/default/pods/w") not in kube.requests
    assert lookups.labels(source="watch_wait")._value.get() == before + 1


def _load(function, monkeypatch):
    import importlib.util

    monkeypatch.setenv("NEUROKUBE_LEDGER_CREDIT_SHARE", "0.5")
    path = Path(SOURCE).parents[1] / function / "main.py"
    spec = importlib.util.spec_from_file_location(f"neurokube_test_{function}_main", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_binder_takes_ledger_credits_and_the_sweeper_none(monkeypatch):
    """The sweeper places a few pods a minute: a credit would hold room the binders need."""
    assert _load("binder", monkeypatch).SETTINGS.ledger_credit_share == 0.5
    assert _load("sweeper", monkeypatch).SETTINGS.ledger_credit_share == 0.0
