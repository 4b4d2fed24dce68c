"""In-place resize and eviction (neurokube/live/actuation.py) through the project's KubeClient, against
a loopback HTTP stand-in of the apiserver scripted per method and path: what is sent (subresource,
patch type, body, dryRun) and how each answer becomes an Outcome. The real apiserver, its
PodDisruptionBudgets and the KWOK resize stage are exercised by tests/e2e/test_acting.py."""

from __future__ import annotations

import json
import socket
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from neurokube.adapters.kube import KubeClient
from neurokube.errors import InputError, TemporaryError
from neurokube.live import actuation
from neurokube.live.actuation import Outcome, Result

POD = "/api/v1/namespaces/team-a/pods/web-1"
RESIZE = POD + "/resize"
EVICTION = POD + "/eviction"


class Apiserver:
    """Answers ``(status, headers, body)`` scripted per ``(method, path)`` (404 otherwise) and records
    every request: method, path, query, Content-Type and decoded JSON body."""

    def __init__(self) -> None:
        self.script: dict[tuple[str, str], tuple[int, dict, dict]] = {}
        self.seen: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                url = urllib.parse.urlsplit(self.path)
                server.seen.append({"method": self.command, "path": url.path,
                                    "query": dict(urllib.parse.parse_qsl(url.query)),
                                    "content_type": self.headers.get("Content-Type"),
                                    "body": json.loads(raw) if raw else None})
                status, headers, doc = server.script.get((self.command, url.path), (404, {}, {
                    "kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404,
                    "message": f"{url.path} not found"}))
                body = json.dumps(doc).encode()
                self.send_response(status)
                for key, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PATCH = do_DELETE = _answer

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def answer(self, method: str, path: str, status: int, doc: dict, headers: dict | None = None) -> None:
        self.script[(method, path)] = (status, headers or {}, doc)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def client_for(url: str, tmp_path: Path) -> KubeClient:
    config = {"apiVersion": "v1", "kind": "Config", "current-context": "c",
              "clusters": [{"name": "k", "cluster": {"server": url}}],
              "users": [{"name": "u", "user": {"token": "t"}}],
              "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}]}
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    sleeps: list[float] = []
    return KubeClient.from_kubeconfig(path, timeout_s=5.0, sleep=sleeps.append)


@pytest.fixture
def apiserver():
    server = Apiserver()
    yield server
    server.close()


@pytest.fixture
def kube(apiserver, tmp_path):
    return client_for(apiserver.url, tmp_path)


def status(code: int, reason: str, message: str) -> dict:
    doc = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "code": code}
    if reason:
        doc["reason"] = reason
    return doc


SUCCESS = {"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 201}

# -- resize ---------------------------------------------------------------------------------------


def test_resize_patches_the_subresource_with_containers_by_name(apiserver, kube):
    apiserver.answer("PATCH", RESIZE, 200, {"kind": "Pod", "metadata": {"name": "web-1", "generation": 2}})
    outcome = actuation.resize(kube, "team-a", "web-1", {"app": {"requests": {"cpu": "200m"}},
                                                         "side": {"limits": {"memory": "1Gi"}}}, dry_run=False)
    assert outcome == Outcome(Result.APPLIED) and outcome.accepted
    (request,) = apiserver.seen
    assert (request["method"], request["path"], request["query"]) == ("PATCH", RESIZE, {})
    assert request["content_type"] == "application/strategic-merge-patch+json"  # merges containers by name
    assert request["body"] == {"spec": {"containers": [
        {"name": "app", "resources": {"requests": {"cpu": "200m"}}},
        {"name": "side", "resources": {"limits": {"memory": "1Gi"}}}]}}


def test_resize_dry_run_asks_the_apiserver_to_persist_nothing(apiserver, kube):
    apiserver.answer("PATCH", RESIZE, 200, {"kind": "Pod"})
    outcome = actuation.resize(kube, "team-a", "web-1", {"app": {"requests": {"cpu": "1"}}}, dry_run=True)
    assert outcome.result is Result.DRY_RUN and outcome.accepted
    assert apiserver.seen[0]["query"] == {"dryRun": "All"}


@pytest.mark.parametrize(("code", "reason", "expected"), [
    (422, "Invalid", Result.REFUSED_INVALID),
    (404, "NotFound", Result.NOT_FOUND),
    (409, "Conflict", Result.CONFLICT),
    (403, "Forbidden", Result.ERROR),
    (500, "", Result.ERROR),  # "several budgets" is an eviction answer only
])
def test_resize_refusals_are_outcomes(apiserver, kube, code, reason, expected):
    message = 'Pod "web-1" is invalid: spec: Invalid value: "Guaranteed": Pod QOS Class may not change'
    apiserver.answer("PATCH", RESIZE, code, status(code, reason, message))
    outcome = actuation.resize(kube, "team-a", "web-1", {"app": {"limits": {"cpu": "100m"}}}, dry_run=False)
    assert outcome == Outcome(expected, message, code)
    assert not outcome.accepted


@pytest.mark.parametrize(("resources", "why"), [
    ({}, "names no container"),
    ({"app": {}}, "requests and/or limits"),
    ({"app": {"claims": [{"name": "gpu"}]}}, "requests and/or limits"),
    ({"app": {"requests": {}}}, "non-empty"),
    ({"app": {"requests": {"nvidia.com/gpu": "1"}}}, "only cpu and memory"),
    ({"app": {"requests": {"cpu": 2}}}, "must be a string"),
    ({"app": {"limits": {"memory": "1 Gi"}}}, "memory"),
    ({"": {"requests": {"cpu": "1"}}}, "non-empty string"),
])
def test_malformed_resize_is_an_input_error_and_sends_nothing(apiserver, kube, resources, why):
    with pytest.raises(InputError, match=why):
        actuation.resize(kube, "team-a", "web-1", resources, dry_run=False)
    assert apiserver.seen == []


# -- eviction -------------------------------------------------------------------------------------


def test_evict_posts_a_policy_v1_eviction(apiserver, kube):
    apiserver.answer("POST", EVICTION, 201, SUCCESS)
    assert actuation.evict(kube, "team-a", "web-1", dry_run=False) == Outcome(Result.APPLIED)
    (request,) = apiserver.seen
    assert (request["method"], request["path"]) == ("POST", EVICTION)
    assert request["body"] == {"apiVersion": "policy/v1", "kind": "Eviction",
                               "metadata": {"name": "web-1", "namespace": "team-a"}, "deleteOptions": {}}


def test_evict_dry_run_sets_dry_run_in_the_delete_options(apiserver, kube):
    apiserver.answer("POST", EVICTION, 201, SUCCESS)
    assert actuation.evict(kube, "team-a", "web-1", dry_run=True).result is Result.DRY_RUN
    assert apiserver.seen[0]["body"]["deleteOptions"] == {"dryRun": ["All"]}


def test_a_budget_refusal_is_answered_at_once_not_retried(apiserver, kube):
    message = "Cannot evict pod as it would violate the pod's disruption budget."
    apiserver.answer("POST", EVICTION, 429, status(429, "TooManyRequests", message), {"Retry-After": "10"})
    outcome = actuation.evict(kube, "team-a", "web-1", dry_run=False)
    assert outcome == Outcome(Result.REFUSED_BUDGET, message, 429)
    assert len(apiserver.seen) == 1  # KubeClient retries other 429s (API Priority and Fairness)


@pytest.mark.parametrize(("code", "reason", "expected"), [
    (500, "", Result.MULTIPLE_BUDGETS),  # the eviction subresource's bare Status for several PDBs
    (500, "InternalError", Result.ERROR),
    (404, "NotFound", Result.NOT_FOUND),
    (409, "Conflict", Result.CONFLICT),
    (403, "Forbidden", Result.ERROR),
    (422, "Invalid", Result.REFUSED_INVALID),
])
def test_eviction_refusals_are_outcomes(apiserver, kube, code, reason, expected):
    apiserver.answer("POST", EVICTION, code, status(code, reason, "refused"))
    outcome = actuation.evict(kube, "team-a", "web-1", dry_run=False)
    assert (outcome.result, outcome.status, outcome.message) == (expected, code, "refused")


def test_an_unreachable_apiserver_is_no_answer_and_raises(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    kube = client_for(f"http://127.0.0.1:{port}", tmp_path)
    with pytest.raises(TemporaryError):
        actuation.evict(kube, "team-a", "web-1", dry_run=False)


def test_a_pod_needs_a_namespace_and_a_name(apiserver, kube):
    with pytest.raises(InputError):
        actuation.evict(kube, "", "web-1", dry_run=False)
    assert apiserver.seen == []


# -- reading a pod --------------------------------------------------------------------------------


def pod(spec: dict, in_force: dict | None, conditions: tuple[str, ...] = (), generation: int = 2,
        observed: int | None = 2) -> dict:
    statuses = [{"name": "app", "ready": True, **({"resources": in_force} if in_force is not None else {})}]
    status: dict = {"phase": "Running", "containerStatuses": statuses,
                    "conditions": [{"type": "Ready", "status": "True"}]
                    + [{"type": c, "status": "True"} for c in conditions]}
    if observed is not None:
        status["observedGeneration"] = observed
    return {"metadata": {"name": "web-1", "generation": generation},
            "spec": {"containers": [{"name": "app", "resources": spec}]}, "status": status}


BURSTABLE = {"requests": {"cpu": "200m", "memory": "64Mi"}, "limits": {"cpu": "1"}}


def test_resources_in_force_come_from_the_container_statuses():
    doc = pod(BURSTABLE, {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1"}})
    doc["status"]["containerStatuses"].append({"name": "old-node", "ready": True})
    assert actuation.pod_resources_in_force(doc) == {
        "app": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1"}}}
    assert actuation.pod_resources_in_force({"metadata": {}}) == {}


def test_resize_done_when_status_matches_spec():
    assert actuation.resize_done(pod(BURSTABLE, BURSTABLE))
    # equal values in other spellings, and a status without observedGeneration (older kubelets)
    same = {"requests": {"cpu": "0.2", "memory": "65536Ki"}, "limits": {"cpu": "1000m"}}
    assert actuation.resize_done(pod(BURSTABLE, same, observed=None))


@pytest.mark.parametrize("doc", [
    pod(BURSTABLE, {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1"}}),  # old size
    pod(BURSTABLE, {"requests": {"cpu": "200m", "memory": "64Mi"}}),  # limit not yet in force
    pod(BURSTABLE, BURSTABLE, conditions=("PodResizePending",)),
    pod(BURSTABLE, BURSTABLE, conditions=("PodResizeInProgress",)),
    pod(BURSTABLE, BURSTABLE, generation=3, observed=2),
    pod(BURSTABLE, None),  # the node reports no resources
], ids=["old-size", "limit-missing", "pending", "in-progress", "stale-generation", "unreported"])
def test_resize_not_done(doc):
    assert not actuation.resize_done(doc)
