"""Forged requests bind nothing (issue "Secure by default"), on the real binder, sweeper and
extender processes beside the session cluster, each authenticated as its own ServiceAccount.

The binder here is configured as deployed with Knative OIDC: it accepts JWTs that the cluster's
service-account issuer signed for its audience (``serving.knative.dev/service/neurokube/
neurokube-binder``) and only from the ApiServerSource's OIDC identity (NEUROKUBE_OIDC_SUBJECTS),
plus the static event token. Tokens come from the real TokenRequest API.

Each forgery kind is sent once, against real pods made for it (pending pods that no node can
take, pods of another scheduler, a pod deleted and made again under the same name, ...). For
each: the answer is a 4xx with a reason, and over the whole suite the apiserver shows **0
Bindings** (no pod of the namespace has a node), **0 Events** written by NeuroKube, and **0
Leases** created in the ledger namespace. Controls prove the same setup binds: a genuine event
with a genuine OIDC token places a pod, and so does the extender's /bind for a genuine call.
"""

from __future__ import annotations

import base64
import copy
import json
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from neurokube.adapters.kube import KubeError
from neurokube.cluster import adapter, functions
from neurokube.cluster.livekit import Function, create_pods, ensure_namespace, neurokube_pod, packing_env
from neurokube.cluster.session import RunningCluster

pytestmark = pytest.mark.e2e

NAMESPACE = "nk-forged"
OTHER_NAMESPACE = "nk-forged-other"
ADD = "dev.knative.apiserver.resource.add"
UPDATE = "dev.knative.apiserver.resource.update"
PING = "dev.knative.sources.ping"
BINDER_AUDIENCE = functions.AUDIENCES["binder"]
SOURCE_SUBJECT = f"system:serviceaccount:{adapter.SOURCE_NAMESPACE}:{adapter.OIDC_SERVICE_ACCOUNT}"
ENV = {"NEUROKUBE_SWEEP_MIN_AGE_S": "86400", "NEUROKUBE_PROM_REFRESH_S": "1", "NEUROKUBE_PROM_STALE_AFTER_S": "4",
       "NEUROKUBE_DEBUG": "false"}
HUGE_CPU = 10_000  # cores: fits no node, so a forged small request is the only way it could be placed


# -- HTTP -----------------------------------------------------------------------------------------


def send(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, {"raw": raw[:300].decode(errors="replace")}


def ce_headers(kind: str, pod: dict | None = None) -> dict[str, str]:
    headers = {"ce-specversion": "1.0", "ce-type": kind, "ce-source": "https://kube-apiserver",
               "ce-id": str(uuid.uuid4()), "Content-Type": "application/json"}
    if pod is not None:
        headers["ce-subject"] = f"/apis/v1/namespaces/{pod['metadata']['namespace']}/pods/{pod['metadata']['name']}"
        headers["ce-kind"] = "Pod"
    return headers


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def service_account_token(client, namespace: str, account: str, audience: str) -> str:
    """A real JWT of the cluster's issuer (TokenRequest; the apiserver's minimum life is 10 min)."""
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"audiences": [audience], "expirationSeconds": 600}}
    return client.create(f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token", body)["status"]["token"]


def self_signed(kid: str, **claims: object) -> str:
    """A JWT with the issuer's key id and claims, signed with a key that is not the issuer's."""
    now = int(time.time())
    doc = {"iss": "https://kubernetes.default.svc.cluster.local", "aud": [BINDER_AUDIENCE], "sub": SOURCE_SUBJECT,
           "iat": now, "nbf": now, "exp": now + 600, **claims}
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(doc, key, algorithm="RS256", headers={"kid": kid})


def unsigned(**claims: object) -> str:
    def b64(doc: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()

    now = int(time.time())
    doc = {"iss": "https://kubernetes.default.svc.cluster.local", "aud": [BINDER_AUDIENCE], "sub": SOURCE_SUBJECT,
           "iat": now, "exp": now + 600, **claims}
    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(doc)}."


# -- the setting ----------------------------------------------------------------------------------


@dataclass
class Setting:
    cluster: RunningCluster
    binder: Function
    sweeper: Function
    extender: Function
    genuine: str  # a JWT of the ApiServerSource's identity for the binder's audience
    pods: dict[str, dict]  # name -> the pod as the apiserver returned it at creation
    nodes: list[str]
    leases_before: set[str]

    def event(self, name: str) -> dict:
        return copy.deepcopy(self.pods[name])


def pod_manifest(name: str, cpu_milli: int = 100, scheduler: str = "neurokube", namespace: str = NAMESPACE,
                 **spec: object) -> dict:
    manifest = neurokube_pod(name, cpu_milli, 64, "forged")
    manifest["metadata"]["namespace"] = namespace
    manifest["spec"]["schedulerName"] = scheduler
    manifest["spec"].update(spec)
    return manifest


def lease_names(client) -> set[str]:
    return {item["metadata"]["name"] for item in
            client.get(f"/apis/coordination.k8s.io/v1/namespaces/{functions.NAMESPACE}/leases")["items"]}


def neurokube_events(client) -> list[dict]:
    """Events that a NeuroKube function wrote, in the suite's namespaces."""
    found = []
    for namespace in (NAMESPACE, OTHER_NAMESPACE):
        for item in client.get(f"/api/v1/namespaces/{namespace}/events")["items"]:
            source = (item.get("source") or {}).get("component") or item.get("reportingComponent") or ""
            if "neurokube" in source:
                found.append(item)
    return found


@pytest.fixture(scope="module")
def setting(cluster: RunningCluster, tmp_path_factory):
    client = cluster.client
    nodes = [n["metadata"]["name"] for n in client.get("/api/v1/nodes")["items"]]
    env, prometheus = packing_env(cluster, tmp_path_factory.mktemp("model"), ENV)
    for namespace in (NAMESPACE, OTHER_NAMESPACE):
        ensure_namespace(client, namespace)
    manifests = [
        pod_manifest("huge", HUGE_CPU * 1000),
        pod_manifest("theirs", scheduler="someone-else"),
        pod_manifest("picky", nodeSelector={"neurokube.io/no-such-label": "x"}),
        pod_manifest("target"),  # pending, bindable: the forgeries name it in many ways
        pod_manifest("reborn"),
        pod_manifest("elsewhere", namespace=OTHER_NAMESPACE),
        pod_manifest("default-sched", scheduler="someone-else", namespace=NAMESPACE),
        pod_manifest("control"),  # genuinely placed at the end
        pod_manifest("bind-control", scheduler="default-scheduler-for-extender"),
    ]
    pods = {p["metadata"]["name"]: p for p in create_pods(client, manifests)}
    logs = tmp_path_factory.mktemp("forged-logs")
    binder_env = {**env, "NEUROKUBE_OIDC_SUBJECTS": SOURCE_SUBJECT}  # only the source's identity may send
    extender_env = {**env, "NEUROKUBE_EXTENDER_SCHEDULERS": "default-scheduler-for-extender"}
    fns = [Function("binder", binder_env, logs, "binder-forged"), Function("sweeper", env, logs, "sweeper-forged"),
           Function("extender", extender_env, logs, "extender-forged")]
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(Function.start, fns))
    try:
        genuine = service_account_token(client, adapter.SOURCE_NAMESPACE, adapter.OIDC_SERVICE_ACCOUNT,
                                         BINDER_AUDIENCE)
        yield Setting(cluster, *fns, genuine=genuine, pods=pods, nodes=nodes, leases_before=lease_names(client))
    finally:
        for fn in fns:
            fn.stop()
        prometheus.close()
        for namespace in (NAMESPACE, OTHER_NAMESPACE):
            try:
                client.delete(f"/api/v1/namespaces/{namespace}", {"gracePeriodSeconds": 0})
            except KubeError:
                pass


# -- the forgeries ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Forgery:
    target: str  # binder, sweeper or extender
    build: object  # (Setting) -> (path, headers, body)
    status: int
    reason: str  # the refusal's reason ("" for a 401, whose reason is in the message)


def to_binder(setting: Setting, pod: dict, kind: str = ADD, token: str | None = None) -> tuple[str, dict, bytes]:
    return "/", {**ce_headers(kind, pod), **bearer(token or setting.genuine)}, json.dumps(pod).encode()


def changed(setting: Setting, name: str, change) -> dict:
    pod = setting.event(name)
    change(pod)
    return pod


def container(pod: dict) -> dict:
    return pod["spec"]["containers"][0]


def reborn_event(setting: Setting) -> dict:
    """The add event of a pod that has since been deleted and made again under the same name."""
    old = setting.event("reborn")
    client = setting.cluster.client
    path = f"/api/v1/namespaces/{NAMESPACE}/pods/reborn"
    if client.get(path)["metadata"]["uid"] == old["metadata"]["uid"]:
        client.delete(path, {"gracePeriodSeconds": 0})
        deadline = time.monotonic() + 30
        while True:
            try:
                client.get(path)
            except KubeError as exc:
                if exc.not_found:
                    break
                raise
            assert time.monotonic() < deadline, "the old pod did not go away"
            time.sleep(0.2)
        create_pods(client, [pod_manifest("reborn")])
    return old


def bind_args(setting: Setting, name: str, **changes: object) -> tuple[str, dict, bytes]:
    pod = setting.pods[name]
    doc = {"PodName": name, "PodNamespace": pod["metadata"]["namespace"], "PodUID": pod["metadata"]["uid"],
           "Node": setting.nodes[0], **changes}
    return "/bind", {"Content-Type": "application/json"}, json.dumps(doc).encode()


FORGERIES: dict[str, Forgery] = {
    # -- who is calling ---------------------------------------------------------------------------
    "no token": Forgery("binder", lambda s: ("/", ce_headers(ADD, s.pods["target"]),
                                             json.dumps(s.event("target")).encode()), 401, ""),
    "wrong static token": Forgery("binder", lambda s: to_binder(s, s.event("target"), token="not-the-token-1234"),
                                  401, ""),
    "basic auth": Forgery("binder", lambda s: ("/", {**ce_headers(ADD, s.pods["target"]),
                                                     "Authorization": "Basic " + s.genuine},
                                               json.dumps(s.event("target")).encode()), 401, ""),
    "wrong audience": Forgery("binder", lambda s: to_binder(s, s.event("target"), token=service_account_token(
        s.cluster.client, adapter.SOURCE_NAMESPACE, adapter.OIDC_SERVICE_ACCOUNT,
        "serving.knative.dev/service/neurokube/neurokube-sweeper")), 401, ""),
    "right audience, wrong sender": Forgery("binder", lambda s: to_binder(s, s.event("target"), token=(
        service_account_token(s.cluster.client, functions.NAMESPACE, functions.SERVICE_ACCOUNTS["sweeper"],
                              BINDER_AUDIENCE))), 401, ""),
    "signed with another key": Forgery("binder", lambda s: to_binder(s, s.event("target"), token=self_signed(
        jwt.get_unverified_header(s.genuine)["kid"])), 401, ""),
    "unsigned JWT (alg none)": Forgery("binder", lambda s: to_binder(s, s.event("target"), token=unsigned()), 401, ""),
    "sweeper: no token": Forgery("sweeper", lambda s: ("/", ce_headers(PING), b"{}"), 401, ""),
    "sweeper: the binder's JWT": Forgery("sweeper", lambda s: ("/", {**ce_headers(PING), **bearer(s.genuine)}, b"{}"),
                                         401, ""),
    # -- what the event claims ----------------------------------------------------------------------
    "another scheduler's pod": Forgery("binder", lambda s: to_binder(s, changed(
        s, "theirs", lambda p: p["spec"].update(schedulerName="neurokube"))), 403, "other_scheduler"),
    "another scheduler's pod, as an update": Forgery("binder", lambda s: to_binder(s, changed(
        s, "default-sched", lambda p: p["spec"].update(schedulerName="neurokube")), kind=UPDATE), 403,
        "other_scheduler"),
    "fewer CPUs than the pod asks": Forgery("binder", lambda s: to_binder(s, changed(
        s, "huge", lambda p: container(p)["resources"]["requests"].update(cpu="10m"))), 403, "spec_mismatch"),
    "no requests at all": Forgery("binder", lambda s: to_binder(s, changed(
        s, "huge", lambda p: container(p).pop("resources"))), 403, "spec_mismatch"),
    "made-up toleration": Forgery("binder", lambda s: to_binder(s, changed(
        s, "target", lambda p: p["spec"].update(tolerations=[{"operator": "Exists"}]))), 403, "spec_mismatch"),
    "node selector dropped": Forgery("binder", lambda s: to_binder(s, changed(
        s, "picky", lambda p: p["spec"].pop("nodeSelector"))), 403, "spec_mismatch"),
    "wrong UID": Forgery("binder", lambda s: to_binder(s, changed(
        s, "target", lambda p: p["metadata"].update(uid=str(uuid.uuid4())))), 410, "uid_mismatch"),
    "no UID": Forgery("binder", lambda s: to_binder(s, changed(
        s, "target", lambda p: p["metadata"].pop("uid"))), 400, "no_uid"),
    "another pod's UID": Forgery("binder", lambda s: to_binder(s, changed(
        s, "target", lambda p: p["metadata"].update(uid=s.pods["control"]["metadata"]["uid"]))), 403, "other_pod"),
    "other namespace": Forgery("binder", lambda s: to_binder(s, changed(
        s, "elsewhere", lambda p: p["metadata"].update(namespace=NAMESPACE))), 403, "other_pod"),
    "a pod that was never created": Forgery("binder", lambda s: to_binder(s, changed(
        s, "target", lambda p: p["metadata"].update(name="ghost", uid=str(uuid.uuid4())))), 410, "pod_gone"),
    "replayed old event of a pod made again": Forgery("binder", lambda s: to_binder(s, reborn_event(s)), 410,
                                                      "uid_mismatch"),
    # -- the extender's /bind (kube-scheduler's profile here: default-scheduler-for-extender) -----
    "bind: unknown node": Forgery("extender", lambda s: bind_args(s, "bind-control", Node="no-such-node"), 403,
                                  "unknown_node"),
    "bind: NeuroKube's own pod": Forgery("extender", lambda s: bind_args(s, "target"), 403, "other_scheduler"),
    "bind: another scheduler's pod": Forgery("extender", lambda s: bind_args(s, "theirs"), 403, "other_scheduler"),
    "bind: wrong UID": Forgery("extender", lambda s: bind_args(s, "bind-control", PodUID=str(uuid.uuid4())), 410,
                               "uid_mismatch"),
    "bind: no UID": Forgery("extender", lambda s: bind_args(s, "bind-control", PodUID=""), 400, "no_uid"),
}


def test_the_suite_covers_the_issue():
    """At least 20 kinds, including every kind the issue names."""
    assert len(FORGERIES) >= 20
    names = " ".join(FORGERIES).lower()
    for words in ("another scheduler", "other namespace", "wrong uid", "fewer cpus", "unknown node", "replayed",
                  "no token", "wrong audience"):
        assert words in names, words


@pytest.mark.parametrize("name", list(FORGERIES))
def test_a_forgery_is_answered_4xx(setting, name):
    forgery = FORGERIES[name]
    fn = getattr(setting, forgery.target)
    path, headers, body = forgery.build(setting)
    status, doc = send(fn.url + path, body, headers)
    assert status == forgery.status, (name, status, doc)
    if forgery.reason:
        assert doc.get("reason") == forgery.reason, (name, doc)
    assert doc.get("error"), doc


def test_forgeries_wrote_nothing(setting):
    """Runs after every forgery (file order): no Binding, no Event, no Lease came of them."""
    client = setting.cluster.client
    time.sleep(2.0)  # Events are posted in the background: give a wrongly queued one time to arrive
    bound = {p["metadata"]["name"]: p["spec"]["nodeName"]
             for namespace in (NAMESPACE, OTHER_NAMESPACE)
             for p in client.get(f"/api/v1/namespaces/{namespace}/pods")["items"] if p["spec"].get("nodeName")}
    assert bound == {}
    assert neurokube_events(client) == []
    assert lease_names(client) == setting.leases_before
    refused = setting.binder.counter("neurokube_refused_total") + setting.extender.counter("neurokube_refused_total")
    assert refused >= sum(1 for f in FORGERIES.values() if f.reason)
    assert setting.binder.counter("neurokube_auth_failures_total") >= 7


def test_genuine_requests_still_bind(setting):
    """Controls, after the forgeries: the binder places a genuine event with the source's genuine
    token, the extender binds for a genuine call, and that is visible in the apiserver."""
    client = setting.cluster.client
    _, headers, body = to_binder(setting, setting.event("control"))
    status, doc = send(setting.binder.url + "/", body, headers)
    assert status == 200 and doc["outcome"] == "bound", doc
    path, headers, body = bind_args(setting, "bind-control")
    status, doc = send(setting.extender.url + path, body, headers)
    assert status == 200 and doc == {"Error": ""}, doc
    pods = {p["metadata"]["name"]: p for p in client.get(f"/api/v1/namespaces/{NAMESPACE}/pods")["items"]}
    assert pods["control"]["spec"].get("nodeName") and pods["bind-control"]["spec"]["nodeName"] == setting.nodes[0]
