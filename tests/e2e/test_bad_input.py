"""Bad input against the real functions (issue 7, "Bad input"): the binder, the extender and the
sweeper run as functions-framework processes with the ServiceAccount of deploy/knative/rbac.yaml,
beside the session cluster, and are sent

* a named corpus of every bad input the issue lists (wrong CloudEvent type, missing data, non-JSON,
  a body over the limit, wrong specversion, a pod without a spec, an unknown namespace, malformed
  ExtenderArgs, quantities "-1", "1e30", "abc", ...): each answers its expected 4xx with a JSON
  ``{"error": ...}`` that says what is wrong;
* a hypothesis fuzzer per target (derandomized, so CI is reproducible): random CloudEvent
  envelopes, random JSON, mutated copies of real pending pods and real nodes. Property: never a
  5xx, the process stays up, and nothing is bound: the mutated pods are real pending pods of
  ``schedulerName: neurokube`` that a valid event *does* bind (checked with identical control
  pods, so the test can fail), and after the fuzz none has a node and the binder's
  ``neurokube_decisions_total{outcome="bound"}`` has not moved.

The sweeper runs with NEUROKUBE_SWEEP_MIN_AGE_S of a day: even a valid ping leaves the test's pods
alone, so only the binder and the extender's /bind could bind them.
"""

from __future__ import annotations

import copy
import http.client
import json
import re
import string
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurokube.adapters.kube import KubeError
from neurokube.cluster import functions, processes
from neurokube.cluster.livekit import Function, create_pods, neurokube_pod, service_account_env
from neurokube.cluster.session import RunningCluster
from neurokube.testing import FakePrometheus, write_packing_model

pytestmark = pytest.mark.e2e

NAMESPACE = "nk-bad-input"
MISSING_NAMESPACE = "nk-no-such-namespace"
ADD = "dev.knative.apiserver.resource.add"
UPDATE = "dev.knative.apiserver.resource.update"
PING = "dev.knative.sources.ping"
MIB = 1024 * 1024
EXTENDER_LIMIT = 16 * MIB
SENTINELS = 4
EXAMPLES = 300  # per fuzzed target; derandomized
ENV = {"NEUROKUBE_SWEEP_MIN_AGE_S": "86400", "NEUROKUBE_PROM_REFRESH_S": "1", "NEUROKUBE_PROM_STALE_AFTER_S": "4",
       "NEUROKUBE_DEBUG": "false"}
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, print_blob=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                                       HealthCheck.large_base_example])
# The apiserver's name rules, written here independently of neurokube.k8s.objects.
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


# -- HTTP ----------------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def doc(self) -> object:
        return json.loads(self.body)


#: url -> the Authorization header its function accepts (filled by the ``live`` fixture), added by
#: :func:`call` to every request: this module is about what authenticated callers can send.
AUTH: dict[str, dict[str, str]] = {}


def call(url: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
         method: str = "POST") -> Answer:
    """One request with exactly these headers (plus the function's credential) and bytes (no
    client-side normalisation)."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        try:
            conn.request(method, path, body=body, headers={**AUTH.get(url, {}), **(headers or {})})
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered (413) and closed before the whole body was sent: read the answer
        response = conn.getresponse()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        conn.close()


def binary_event(data: object, kind: str = ADD, specversion: str = "1.0", raw: bytes | None = None,
                 **extra: str) -> tuple[dict[str, str], bytes]:
    headers = {"ce-specversion": specversion, "ce-type": kind, "ce-source": "https://kube-apiserver",
               "ce-id": str(uuid.uuid4()), "Content-Type": "application/json", **extra}
    return headers, raw if raw is not None else json.dumps(data).encode()


def ping_event(**overrides: str) -> tuple[dict[str, str], bytes]:
    return binary_event({"task": "sweep"}, kind=PING, **overrides)


# -- the functions -------------------------------------------------------------------------------


@dataclass
class Live:
    cluster: RunningCluster
    binder: Function
    extender: Function
    sweeper: Function
    sentinels: list[dict]  # real pending pods of schedulerName neurokube, as the apiserver returned them
    nodes: list[dict]  # real Node objects

    def pod(self, i: int = 0) -> dict:
        return copy.deepcopy(self.sentinels[i])

    def fresh_pods(self, prefix: str, count: int) -> list[dict]:
        """Pods made exactly as the sentinels are (the binder binds them on a valid event)."""
        manifests = [pending_pod(f"{prefix}-{i}") for i in range(count)]
        return create_pods(self.cluster.client, manifests)

    def bound(self) -> float:
        return self.binder.counter("neurokube_decisions_total", outcome="bound")


def pending_pod(name: str) -> dict:
    manifest = neurokube_pod(name, 100, 64, "bad-input")
    manifest["metadata"]["namespace"] = NAMESPACE
    return manifest


def pods_in_namespace(client) -> dict[str, dict]:
    return {p["metadata"]["name"]: p for p in client.get(f"/api/v1/namespaces/{NAMESPACE}/pods")["items"]}


@pytest.fixture(scope="module")
def live(cluster: RunningCluster, tmp_path_factory) -> Live:
    client = cluster.client
    node_docs = client.get("/api/v1/nodes")["items"]
    prometheus = FakePrometheus({n["metadata"]["name"]: (0.5, 2.0 * 2**30) for n in node_docs})
    model = write_packing_model(tmp_path_factory.mktemp("model") / "champion")
    options = functions.FunctionsOptions(model_dir=model, prometheus_url=prometheus.url, env=ENV)
    env = service_account_env(cluster, options)
    logs = tmp_path_factory.mktemp("bad-input-logs")
    try:
        client.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    except KubeError as exc:
        if not exc.conflict:
            raise
    sentinels = create_pods(client, [pending_pod(f"sentinel-{i}") for i in range(SENTINELS)])
    fns = [Function(name, env, logs, f"{name}-bad-input") for name in ("binder", "extender", "sweeper")]
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(Function.start, fns))
    AUTH.update({fn.url: fn.auth_headers() for fn in fns})
    try:
        yield Live(cluster, *fns, sentinels=sentinels, nodes=node_docs[:5])
        for fn in fns:  # nothing the module sent made any function answer 500 or log a bug
            assert fn.counter("neurokube_http_requests_total", code="500") == 0, fn.label
            text = (logs / f"{fn.label}.log").read_text(errors="replace")
            assert "unexpected error" not in text and "Traceback" not in text, f"{fn.label}: see {logs}"
    finally:
        for fn in fns:
            fn.stop()
        prometheus.close()
        try:
            client.delete(f"/api/v1/namespaces/{NAMESPACE}", {"gracePeriodSeconds": 0})
        except KubeError:
            pass
        for name in pods_in_namespace(client):  # the namespace goes away after its pods
            client.delete(f"/api/v1/namespaces/{NAMESPACE}/pods/{name}", {"gracePeriodSeconds": 0})


# -- the corpus ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    target: str  # binder, extender or sweeper
    build: object  # (Live) -> (method, path, headers, body)
    status: int
    message: str  # a part of the JSON error message


def with_cpu(pod: dict, cpu: object, section: str = "requests") -> dict:
    pod["spec"]["containers"][0].setdefault("resources", {}).setdefault(section, {})["cpu"] = cpu
    return pod


def post_event(headers_body: tuple[dict[str, str], bytes]) -> tuple[str, str, dict[str, str], bytes]:
    return "POST", "/", *headers_body


def post_json(path: str, doc: object) -> tuple[str, str, dict[str, str], bytes]:
    return "POST", path, {"Content-Type": "application/json"}, json.dumps(doc).encode()


def extender_args(live: Live, pod: object = None, names: bool = True) -> dict:
    pod = live.pod() if pod is None else pod
    if names:
        return {"Pod": pod, "Nodes": None, "NodeNames": [n["metadata"]["name"] for n in live.nodes]}
    return {"Pod": pod, "Nodes": {"metadata": {}, "items": copy.deepcopy(live.nodes)}, "NodeNames": None}


def big_pod_event(live: Live, size: int) -> tuple[str, str, dict[str, str], bytes]:
    pod = live.pod()
    pod["metadata"]["annotations"] = {"padding": "x" * size}
    return post_event(binary_event(pod))


def no_spec(live: Live) -> dict:
    pod = live.pod()
    del pod["spec"]
    return pod


def in_namespace(live: Live, namespace: str) -> dict:
    pod = live.pod()
    pod["metadata"]["namespace"] = namespace
    return pod


def bad_node(live: Live, **changes: object) -> dict:
    args = extender_args(live, names=False)
    node = args["Nodes"]["items"][0]
    for path, value in changes.items():
        section, key = path.split("__")
        node.setdefault(section, {})[key] = value
    return args


CORPUS: dict[str, Case] = {
    # -- the binder: ApiServerSource events ------------------------------------------------------
    "binder/wrong CloudEvent type": Case("binder", lambda lv: post_event(binary_event(lv.pod(), kind="com.example.x")),
                                         400, "unexpected event type 'com.example.x'"),
    "binder/Reference-mode event": Case("binder", lambda lv: post_event(binary_event(
        {"kind": "Pod", "name": "sentinel-0"}, kind="dev.knative.apiserver.ref.add")), 400, "Reference-mode"),
    "binder/ping sent to the binder": Case("binder", lambda lv: post_event(ping_event()), 400, "unexpected event type"),
    "binder/missing data": Case("binder", lambda lv: post_event(binary_event(None, raw=b"")), 400, "has no data"),
    "binder/non-JSON data": Case("binder", lambda lv: post_event(binary_event(None, raw=b"{not json")), 400,
                                 "not a JSON object"),
    "binder/data is a JSON list": Case("binder", lambda lv: post_event(binary_event([lv.pod()])), 400,
                                       "not a JSON object"),
    "binder/body over 1 MiB": Case("binder", lambda lv: big_pod_event(lv, MIB + 1), 413,
                                   "exceeds the limit of 1048576"),
    "binder/wrong specversion 0.2": Case("binder", lambda lv: post_event(binary_event(lv.pod(), specversion="0.2")),
                                         400, "invalid specversion 0.2"),
    "binder/wrong specversion 2.0": Case("binder", lambda lv: post_event(binary_event(lv.pod(), specversion="2.0")),
                                         400, "invalid specversion 2.0"),
    "binder/not a CloudEvent": Case("binder", lambda lv: post_json("/", lv.pod()), 400, "not a valid CloudEvent"),
    "binder/structured mode, not JSON": Case("binder", lambda lv: (
        "POST", "/", {"Content-Type": "application/cloudevents+json"}, b"{oops"), 400, "not a valid CloudEvent"),
    "binder/structured mode, type is a number": Case("binder", lambda lv: (
        "POST", "/", {"Content-Type": "application/cloudevents+json"},
        json.dumps({"specversion": "1.0", "type": 7, "source": "s", "id": "1", "data": lv.pod()}).encode()),
        400, "attribute type must be a string"),
    "binder/JSON nested too deeply": Case("binder", lambda lv: (
        "POST", "/", {"Content-Type": "application/cloudevents+json"}, b"[" * 50000 + b"]" * 50000), 400,
        "not a valid CloudEvent"),
    "binder/pod without a spec": Case("binder", lambda lv: post_event(binary_event(no_spec(lv))), 400,
                                      "the pod has no spec"),
    "binder/pod without containers": Case("binder", lambda lv: post_event(binary_event(
        {**lv.pod(), "spec": {"schedulerName": "neurokube"}})), 400, "spec.containers is missing"),
    "binder/pod without metadata": Case("binder", lambda lv: post_event(binary_event(
        {k: v for k, v in lv.pod().items() if k != "metadata"})), 400, "pod metadata must be a JSON object"),
    "binder/unknown namespace": Case("binder", lambda lv: post_event(binary_event(in_namespace(lv, MISSING_NAMESPACE))),
                                     403, "belongs to pod nk-bad-input/sentinel-0"),
    "binder/invalid namespace name": Case("binder", lambda lv: post_event(binary_event(in_namespace(lv, "Not_A_NS"))),
                                          400, "is not a valid namespace name"),
    "binder/pod name that is a path": Case("binder", lambda lv: post_event(binary_event(
        {**lv.pod(), "metadata": {**lv.pod()["metadata"], "name": "../../nodes/x"}})), 400, "is not a valid name"),
    "binder/cpu -1": Case("binder", lambda lv: post_event(binary_event(with_cpu(lv.pod(), "-1"))), 400,
                          "cpu '-1' is negative"),
    "binder/cpu 1e30": Case("binder", lambda lv: post_event(binary_event(with_cpu(lv.pod(), "1e30"))), 400,
                            "cpu '1e30' is absurdly large"),
    "binder/cpu abc": Case("binder", lambda lv: post_event(binary_event(with_cpu(lv.pod(), "abc"))), 400,
                           "cpu 'abc' is not a Kubernetes quantity"),
    "binder/cpu limit empty": Case("binder", lambda lv: post_event(binary_event(with_cpu(lv.pod(), "", "limits"))),
                                   400, "is not a Kubernetes quantity"),
    "binder/cpu NaN": Case("binder", lambda lv: post_event(binary_event(
        None, raw=json.dumps(with_cpu(lv.pod(), float("nan"))).encode())), 400, "nan is not a finite number"),
    "binder/cpu is an object": Case("binder", lambda lv: post_event(binary_event(with_cpu(lv.pod(), {"v": 1}))), 400,
                                    "must be a string like '100m'"),
    "binder/memory 10^40 bytes as a number": Case("binder", lambda lv: post_event(binary_event(
        {**lv.pod(), "spec": {**lv.pod()["spec"], "containers": [{"name": "m", "resources": {
            "requests": {"memory": 10**40}}}]}})), 400, "memory 10000000000000000000000000000000000000000 is absurdly"),
    "binder/two containers beyond int64": Case("binder", lambda lv: post_event(binary_event(
        {**lv.pod(), "spec": {**lv.pod()["spec"], "containers": [
            {"name": f"c{i}", "resources": {"requests": {"cpu": "9e15"}}} for i in range(2)]}})), 400,
        "total cpu is absurdly large"),
    "binder/GET an unknown path": Case("binder", lambda lv: ("GET", "/nope", {}, b""), 404, "no such path /nope"),
    "binder/PUT": Case("binder", lambda lv: ("PUT", "/", {}, b""), 405, "POST a CloudEvent"),
    # -- the extender: kube-scheduler's ExtenderArgs -------------------------------------------
    "extender/not JSON": Case("extender", lambda lv: ("POST", "/filter", {"Content-Type": "application/json"},
                                                      b"{oops"), 400, "request body is not valid JSON"),
    "extender/empty body": Case("extender", lambda lv: ("POST", "/prioritize", {"Content-Type": "application/json"},
                                                        b""), 400, "empty request body"),
    "extender/JSON nested too deeply": Case("extender", lambda lv: (
        "POST", "/filter", {"Content-Type": "application/json"}, b"[" * 50000 + b"]" * 50000), 400,
        "nested too deeply"),
    "extender/a list": Case("extender", lambda lv: post_json("/filter", [1, 2]), 400,
                            "ExtenderArgs must be a JSON object"),
    "extender/no Pod": Case("extender", lambda lv: post_json("/prioritize", {"NodeNames": ["a"]}), 400,
                            "ExtenderArgs.Pod is missing"),
    "extender/pod without a spec": Case("extender", lambda lv: post_json("/filter", extender_args(lv, no_spec(lv))),
                                        400, "the pod has no spec"),
    "extender/neither Nodes nor NodeNames": Case("extender", lambda lv: post_json(
        "/filter", {"Pod": lv.pod(), "Nodes": None, "NodeNames": None}), 400, "needs Nodes"),
    "extender/NodeNames not a list": Case("extender", lambda lv: post_json(
        "/prioritize", {"Pod": lv.pod(), "NodeNames": "a,b"}), 400, "NodeNames must be a list"),
    "extender/Nodes without an items list": Case("extender", lambda lv: post_json(
        "/filter", {"Pod": lv.pod(), "Nodes": {"items": "x"}}), 400, "NodeList object with an items list"),
    "extender/node without a name": Case("extender", lambda lv: post_json(
        "/filter", {"Pod": lv.pod(), "Nodes": {"items": [{"metadata": {}}]}}), 400, "node metadata.name"),
    "extender/node allocatable cpu abc": Case("extender", lambda lv: post_json(
        "/filter", bad_node(lv, status__allocatable={"cpu": "abc", "memory": "1Gi", "pods": "10"})), 400,
        "allocatable cpu 'abc' is not a Kubernetes quantity"),
    "extender/node taints not a list": Case("extender", lambda lv: post_json(
        "/prioritize", bad_node(lv, spec__taints=5)), 400, "spec.taints and status.addresses must be lists"),
    "extender/pod cpu -1": Case("extender", lambda lv: post_json("/filter", extender_args(
        lv, with_cpu(lv.pod(), "-1"))), 400, "is negative"),
    "extender/pod cpu 1e30": Case("extender", lambda lv: post_json("/prioritize", extender_args(
        lv, with_cpu(lv.pod(), "1e30"))), 400, "is absurdly large"),
    "extender/pod cpu abc": Case("extender", lambda lv: post_json("/filter", extender_args(
        lv, with_cpu(lv.pod(), "abc"), names=False)), 400, "is not a Kubernetes quantity"),
    "extender/text/plain": Case("extender", lambda lv: ("POST", "/filter", {"Content-Type": "text/plain"}, b"Pod=1"),
                                415, "expected application/json, got text/plain"),
    "extender/body over 16 MiB": Case("extender", lambda lv: (
        "POST", "/filter", {"Content-Type": "application/json"}, b" " * (EXTENDER_LIMIT + 1)), 413,
        f"exceeds the limit of {EXTENDER_LIMIT}"),
    "extender/GET /filter": Case("extender", lambda lv: ("GET", "/filter", {}, b""), 405, "POST ExtenderArgs"),
    "extender/unknown verb": Case("extender", lambda lv: post_json("/preempt", {}), 404, "no such verb /preempt"),
    "extender/bind without Node": Case("extender", lambda lv: post_json(
        "/bind", {"PodName": "sentinel-0", "PodNamespace": NAMESPACE}), 400, "ExtenderBindingArgs.Node"),
    "extender/bind PodName a number": Case("extender", lambda lv: post_json(
        "/bind", {"PodName": 3, "PodNamespace": NAMESPACE, "Node": "n"}), 400, "ExtenderBindingArgs.PodName"),
    "extender/bind node name that is a path": Case("extender", lambda lv: post_json(
        "/bind", {"PodName": "sentinel-0", "PodNamespace": NAMESPACE, "Node": "../../api/v1/pods"}), 400,
        "is not a valid name"),
    "extender/bind unknown namespace": Case("extender", lambda lv: post_json(
        "/bind", {"PodName": "sentinel-0", "PodNamespace": MISSING_NAMESPACE, "PodUID": "u",
                  "Node": lv.nodes[0]["metadata"]["name"]}),
        404, f"pod {MISSING_NAMESPACE}/sentinel-0 does not exist"),
    "extender/bind unknown pod": Case("extender", lambda lv: post_json(
        "/bind", {"PodName": "no-such-pod", "PodNamespace": NAMESPACE, "PodUID": "u",
                  "Node": lv.nodes[0]["metadata"]["name"]}),
        404, f"pod {NAMESPACE}/no-such-pod does not exist"),
    # -- the sweeper: PingSource events ----------------------------------------------------------
    "sweeper/wrong CloudEvent type": Case("sweeper", lambda lv: post_event(binary_event(lv.pod())), 400,
                                          "unexpected event type 'dev.knative.apiserver.resource.add'"),
    "sweeper/wrong specversion": Case("sweeper", lambda lv: post_event(ping_event(**{"ce-specversion": "0.2"})), 400,
                                      "invalid specversion 0.2"),
    "sweeper/not a CloudEvent": Case("sweeper", lambda lv: post_json("/", {"task": "sweep"}), 400,
                                     "not a valid CloudEvent"),
    "sweeper/structured mode, not JSON": Case("sweeper", lambda lv: (
        "POST", "/", {"Content-Type": "application/cloudevents+json"}, b"\xff\xfe"), 400, "not a valid CloudEvent"),
    "sweeper/body over 1 MiB": Case("sweeper", lambda lv: post_event(binary_event(None, kind=PING,
                                                                                  raw=b" " * (MIB + 1))), 413,
                                    "exceeds the limit of 1048576"),
    "sweeper/unknown path": Case("sweeper", lambda lv: ("POST", "/sweep", *ping_event()), 404, "no such path /sweep"),
    "sweeper/DELETE": Case("sweeper", lambda lv: ("DELETE", "/", {}, b""), 405, "POST a CloudEvent"),
}


@pytest.mark.parametrize("name", list(CORPUS))
def test_corpus_answers_a_clear_4xx(live, name):
    case = CORPUS[name]
    method, path, headers, body = case.build(live)
    before = live.bound()
    answer = call(getattr(live, case.target).url, path, body, headers, method)
    assert answer.status == case.status, (name, answer.status, answer.body[:300])
    assert answer.headers["content-type"].startswith("application/json"), answer.headers
    error = answer.doc["error"]
    assert case.message in error, (name, error)
    assert answer.doc["request_id"] and answer.headers["x-request-id"] == answer.doc["request_id"]
    assert live.bound() == before
    assert not any(p["spec"].get("nodeName") for p in pods_in_namespace(live.cluster.client).values())


def test_the_corpus_covers_the_issue(live):
    """Every kind of bad input issue 7 names is in the corpus, for each function it applies to."""
    names = " ".join(CORPUS).lower()
    for words in ("wrong cloudevent type", "missing data", "non-json", "over 1 mib", "wrong specversion",
                  "without a spec", "unknown namespace", "nodenames", "-1", "1e30", "abc"):
        assert words in names, words
    assert {c.target for c in CORPUS.values()} == {"binder", "extender", "sweeper"}


def test_valid_input_is_still_served(live):
    """The controls: a body just under the limit is read, and a valid event binds a pod made exactly
    like the sentinels (so the corpus and the fuzz could have bound them)."""
    pod = live.pod()
    pod["spec"]["schedulerName"] = "someone-else"  # read and ignored: no binding
    pod["metadata"]["annotations"] = {"padding": "x" * (MIB - 2000)}
    headers, body = binary_event(pod)
    assert len(body) < MIB
    answer = call(live.binder.url, "/", body, headers)
    assert answer.status == 200 and answer.doc["outcome"] == "ignored", answer.body[:300]
    [control] = live.fresh_pods("control", 1)
    before = live.bound()
    headers, body = binary_event(control)
    answer = call(live.binder.url, "/", body, headers)
    assert answer.status == 200 and answer.doc["outcome"] == "bound", answer.body[:300]
    assert live.bound() == before + 1
    filtered = call(live.extender.url, "/filter", json.dumps(extender_args(live)).encode(),
                    {"Content-Type": "application/json"})
    assert filtered.status == 200 and len(filtered.doc["NodeNames"]) == len(live.nodes)
    swept = call(live.sweeper.url, "/", *reversed(ping_event()))
    assert swept.status == 200 and swept.doc["young"] >= SENTINELS, swept.body[:300]


# -- the fuzzer -------------------------------------------------------------------------------------

PRINTABLE = string.ascii_letters + string.digits + " .-_/:+=%"
scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=16))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=16)
truthy_junk = (st.integers(min_value=1) | st.just(True) | st.text(min_size=1, max_size=8)
               | st.lists(scalars, min_size=1, max_size=3) | st.dictionaries(st.text(max_size=4), scalars, min_size=1,
                                                                             max_size=3))
not_a_list = truthy_junk.filter(lambda v: not isinstance(v, list))
not_a_dict = truthy_junk.filter(lambda v: not isinstance(v, dict))
header_text = st.text(alphabet=PRINTABLE, max_size=24)
BAD_QUANTITIES = ["-1", "1e30", "abc", "", "-0.5", "1e999", "NaN", "Infinity", "1.2.3", "5Kii", "0x10", "--1",
                  "+-1", "1e", "e3", "Ki", ".", "1 0", "9223372036854775808", "1" * 65, "-1Gi", "2Ei5"]
bad_quantities = st.one_of(
    st.sampled_from(BAD_QUANTITIES),
    st.from_regex(r"-[1-9][0-9]{0,5}(m|Mi|Gi|k)?", fullmatch=True),  # negative
    st.from_regex(r"[1-9][0-9]{0,3}e(3[1-9]|[4-9][0-9]|[1-9][0-9]{2})", fullmatch=True),  # >= 1e31: beyond int64
    st.text(alphabet=string.ascii_letters, min_size=1, max_size=8),  # no digits: never a quantity
    st.integers(min_value=10**19, max_value=10**80), st.integers(max_value=-1),
    st.floats(min_value=1e19, allow_infinity=True, allow_nan=False), st.floats(max_value=-1e-6, allow_nan=False),
    st.just(float("nan")), st.booleans(), st.lists(scalars, max_size=2), st.dictionaries(st.text(max_size=3), scalars,
                                                                                         max_size=2),
)
bad_names = st.one_of(
    st.sampled_from(["", "UPPER", "a/b", "../../nodes/x", "a_b", "-a", "a-", "a..b", "x" * 254, "%2F", "a b", "."]),
    st.text(max_size=20).filter(lambda t: not DNS_SUBDOMAIN.fullmatch(t)),
    st.integers(), st.lists(scalars, max_size=2), st.none(),
)
bad_namespaces = st.one_of(bad_names, st.just("a" * 64), st.just("a.b"),
                           st.text(max_size=20).filter(lambda t: not DNS_LABEL.fullmatch(t)))


def container(pod: dict) -> dict:
    """The first container, recreated if an earlier fault broke the path (the caller's own fault
    then still makes the pod invalid)."""
    if not isinstance(pod.get("spec"), dict):
        pod["spec"] = {"schedulerName": "neurokube"}
    containers = pod["spec"].get("containers")
    if not isinstance(containers, list) or not containers or not isinstance(containers[0], dict):
        pod["spec"]["containers"] = containers = [{"name": "c"}]
    return containers[0]


def _set(pod: dict, value: object, *path: str) -> dict:
    target = pod
    for key in path[:-1]:
        if not isinstance(target.get(key), dict):
            target[key] = {}
        target = target[key]
    target[path[-1]] = value
    return pod


def _resource(section: str, resource: str):
    def apply(pod: dict, value: object) -> dict:
        c = container(pod)
        if not isinstance(c.get("resources"), dict):
            c["resources"] = {}
        if not isinstance(c["resources"].get(section), dict):
            c["resources"][section] = {}
        c["resources"][section][resource] = value
        return pod
    return apply


# Faults: each alone makes the pod event rejected (4xx) or ignored; one or more is applied last.
POD_FAULTS = {
    "cpu request": (bad_quantities, _resource("requests", "cpu")),
    "memory request": (bad_quantities, _resource("requests", "memory")),
    "cpu limit": (bad_quantities, _resource("limits", "cpu")),
    "memory limit": (bad_quantities, _resource("limits", "memory")),
    "init container": (bad_quantities, lambda p, v: _set(p, [{"name": "i", "resources": {"requests": {"cpu": v}}}],
                                                         "spec", "initContainers")),
    "overhead": (bad_quantities, lambda p, v: _set(p, {"cpu": v}, "spec", "overhead")),
    "no spec": (st.just(None), lambda p, v: {k: x for k, x in p.items() if k != "spec"}),
    "spec junk": (st.one_of(scalars, st.lists(scalars)), lambda p, v: {**p, "spec": v}),
    "containers junk": (st.one_of(st.just([]), st.just(None), st.lists(scalars, min_size=1, max_size=3),
                                  st.dictionaries(st.text(max_size=3), scalars, max_size=2), st.text(max_size=5),
                                  st.integers()),
                        lambda p, v: _set(p, v, "spec", "containers")),
    "name": (bad_names, lambda p, v: _set(p, v, "metadata", "name")),
    "namespace": (bad_namespaces, lambda p, v: _set(p, v, "metadata", "namespace")),
    "metadata junk": (st.one_of(scalars, st.lists(scalars)), lambda p, v: {**p, "metadata": v}),
    "uid not a string": (st.one_of(st.integers(min_value=1), st.just(True), st.lists(scalars, min_size=1, max_size=2)),
                         lambda p, v: _set(p, v, "metadata", "uid")),
    "ownerReferences not a list": (not_a_list,
                                   lambda p, v: _set(p, v, "metadata", "ownerReferences")),
    "tolerations": (st.one_of(not_a_list,
                              st.lists(st.one_of(scalars, st.fixed_dictionaries(
                                  {"operator": st.text(min_size=1, max_size=6).filter(
                                      lambda t: t not in ("Equal", "Exists"))})), min_size=1, max_size=2)),
                    lambda p, v: _set(p, v, "spec", "tolerations")),
    "affinity": (st.one_of(not_a_dict,
                           st.fixed_dictionaries({"nodeAffinity": not_a_dict}),
                           st.just({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                               "nodeSelectorTerms": [{"matchExpressions": [{"key": "k", "operator": "Gt",
                                                                            "values": ["x"]}]}]}}})),
                 lambda p, v: _set(p, v, "spec", "affinity")),
    "nodeSelector": (st.one_of(not_a_dict,
                               st.dictionaries(st.text(max_size=4),
                                               st.one_of(st.integers(), st.none(), st.lists(scalars)),
                                               min_size=1, max_size=2)),
                     lambda p, v: _set(p, v, "spec", "nodeSelector")),
    "status junk": (not_a_dict, lambda p, v: {**p, "status": v}),
    "kind": (st.text(max_size=8).filter(lambda t: t not in ("", "Pod")), lambda p, v: {**p, "kind": v}),
    "other scheduler": (st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=8).filter(
        lambda t: t != "neurokube"), lambda p, v: _set(p, v, "spec", "schedulerName")),
    "already has a node": (st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=8),
                           lambda p, v: _set(p, v, "spec", "nodeName")),
    "being deleted": (st.text(min_size=1, max_size=8), lambda p, v: _set(p, v, "metadata", "deletionTimestamp")),
}
# Noise: random changes that do not by themselves make a pod invalid (applied before the faults).
POD_NOISE = {
    "labels": (st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
               lambda p, v: _set(p, v, "metadata", "labels")),
    "annotations": (st.dictionaries(st.text(max_size=8), st.text(max_size=16), max_size=3),
                    lambda p, v: _set(p, v, "metadata", "annotations")),
    "extra field": (st.tuples(st.text(max_size=8).filter(lambda k: k not in ("metadata", "spec", "status", "kind")),
                              json_values), lambda p, v: {**p, v[0]: v[1]}),
    "container junk": (st.dictionaries(st.sampled_from(["env", "image", "ports", "args", "x"]), json_values,
                                       max_size=2),
                       lambda p, v: (container(p).update(v), p)[1]),
    "phase": (st.text(max_size=8), lambda p, v: _set(p, v, "status", "phase")),
    "good quantity": (st.sampled_from(["1m", "0", "1.5", "2Gi", "500M", "1e3", "0.001"]),
                      _resource("requests", "memory")),
}


@st.composite
def mutated_pods(draw, live: Live) -> dict:
    """A copy of a real pending pod with noise, then at least one fault."""
    pod = live.pod(draw(st.integers(0, SENTINELS - 1)))
    for name in draw(st.lists(st.sampled_from(sorted(POD_NOISE)), max_size=3)):
        strategy, apply = POD_NOISE[name]
        pod = apply(pod, draw(strategy))
    for name in draw(st.lists(st.sampled_from(sorted(POD_FAULTS)), min_size=1, max_size=3)):
        strategy, apply = POD_FAULTS[name]
        pod = apply(pod, draw(strategy))
    return pod


VALID_SPECVERSIONS = ("1.0", "0.3")
bad_specversions = st.one_of(st.sampled_from(["0.2", "2.0", "1", "", "1.0.0", "v1.0", "0.1"]),
                             header_text.filter(lambda t: t.strip() not in VALID_SPECVERSIONS))
event_types = st.one_of(st.sampled_from([ADD, UPDATE, "dev.knative.apiserver.resource.delete",
                                         "dev.knative.apiserver.ref.add", PING, "com.example", ""]), header_text)
extra_headers = st.dictionaries(st.sampled_from(["ce-subject", "ce-kind", "ce-time", "ce-dataschema", "ce-x",
                                                 "X-Request-Id", "Content-Type"]), header_text, max_size=3)


@st.composite
def envelopes(draw, data: object, kind: str, specversion: str) -> tuple[dict[str, str], bytes]:
    """``data`` as a binary- or structured-mode CloudEvent, or as raw bytes."""
    mode = draw(st.sampled_from(["binary", "structured", "raw"]))
    body = json.dumps(data).encode()
    if mode == "binary":
        headers = {"ce-specversion": specversion, "ce-type": kind, "ce-source": draw(header_text) or "s",
                   "ce-id": draw(header_text) or "1", "Content-Type": "application/json"}
        headers.update(draw(extra_headers))
        return headers, body
    if mode == "structured":
        doc = {"specversion": specversion, "type": kind, "source": "s", "id": "1", "data": data}
        doc.update(draw(st.dictionaries(st.sampled_from(["specversion", "type", "id", "source", "subject", "kind",
                                                         "datacontenttype", "data_base64"]), json_values, max_size=2)))
        return {"Content-Type": "application/cloudevents+json"}, json.dumps(doc).encode()
    raw = draw(st.one_of(st.binary(max_size=64), st.just(body)))
    return {"Content-Type": draw(st.sampled_from(["application/json", "application/cloudevents+json",
                                                  "text/plain", ""]))}, raw


@st.composite
def binder_events(draw, live: Live) -> tuple[dict[str, str], bytes]:
    """Events that must not bind: a faulty pod in any envelope, or a valid pod in a faulty one."""
    choice = draw(st.sampled_from(["faulty pod", "random data", "valid pod, bad specversion", "valid pod, bad type"]))
    if choice == "faulty pod":
        return draw(envelopes(draw(mutated_pods(live)), draw(event_types), draw(st.sampled_from(VALID_SPECVERSIONS))))
    if choice == "random data":
        return draw(envelopes(draw(json_values), draw(event_types), draw(st.sampled_from(VALID_SPECVERSIONS))))
    pod = live.pod(draw(st.integers(0, SENTINELS - 1)))
    headers = {"ce-source": "https://kube-apiserver", "ce-id": "1", "Content-Type": "application/json",
               "ce-specversion": "1.0", "ce-type": ADD}
    if choice == "valid pod, bad specversion":
        headers["ce-specversion"] = draw(bad_specversions)
    else:
        headers["ce-type"] = draw(event_types.filter(lambda t: t.strip() not in (ADD, UPDATE)))
    return headers, json.dumps(pod).encode()


NODE_FAULTS = {
    "allocatable": (st.tuples(st.sampled_from(["cpu", "memory", "pods"]), bad_quantities),
                    lambda n, v: _set(n, v[1], "status", "allocatable", v[0])),
    "taints": (st.one_of(not_a_list, st.lists(scalars, min_size=1, max_size=2)),
               lambda n, v: _set(n, v, "spec", "taints")),
    "addresses": (not_a_list, lambda n, v: _set(n, v, "status", "addresses")),
    "labels": (st.one_of(not_a_dict,
                         st.dictionaries(st.text(max_size=4), st.integers(), min_size=1, max_size=2)),
               lambda n, v: _set(n, v, "metadata", "labels")),
    "name": (bad_names, lambda n, v: _set(n, v, "metadata", "name")),
    "spec or status junk": (st.tuples(st.sampled_from(["spec", "status"]), not_a_dict),
                            lambda n, v: {**n, v[0]: v[1]}),
}


@st.composite
def extender_docs(draw, live: Live) -> dict | object:
    """ExtenderArgs with any mix of a faulty or valid pod and faulty or valid nodes, or random JSON."""
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)
    pod = draw(st.one_of(mutated_pods(live), st.just(live.pod()), json_values))
    mode = draw(st.sampled_from(["names", "nodes", "junk"]))
    if mode == "names":
        names = [n["metadata"]["name"] for n in live.nodes]
        doc = {"Pod": pod, "Nodes": None,
               "NodeNames": draw(st.one_of(st.just(names), st.lists(st.text(max_size=12), max_size=4),
                                           st.lists(scalars, max_size=3)))}
    elif mode == "nodes":
        items = copy.deepcopy(live.nodes[: draw(st.integers(0, len(live.nodes)))])
        for item in items:
            for name in draw(st.lists(st.sampled_from(sorted(NODE_FAULTS)), max_size=2)):
                strategy, apply = NODE_FAULTS[name]
                apply(item, draw(strategy))
        doc = {"Pod": pod, "Nodes": {"metadata": {}, "items": items}, "NodeNames": None}
    else:
        doc = {"Pod": pod, "Nodes": draw(json_values), "NodeNames": draw(json_values)}
    doc.update(draw(st.dictionaries(st.text(max_size=6), json_values, max_size=2)))
    return doc


@st.composite
def binding_args(draw, live: Live) -> object:
    """ExtenderBindingArgs that must not bind: at least one field is wrong."""
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)
    pod = live.pod(draw(st.integers(0, SENTINELS - 1)))
    doc = {"PodName": pod["metadata"]["name"], "PodNamespace": NAMESPACE, "PodUID": pod["metadata"]["uid"],
           "Node": live.nodes[0]["metadata"]["name"]}
    faults = {
        "PodName": bad_names, "PodNamespace": bad_namespaces, "Node": bad_names,
        "PodUID": st.one_of(st.integers(), st.lists(scalars, max_size=2), st.just(str(uuid.uuid4()))),
        "missing": st.sampled_from(["PodName", "PodNamespace", "Node"]),
        "unknown node": st.just("nk-no-such-node"), "unknown pod": st.just("nk-no-such-pod"),
    }
    for fault in draw(st.lists(st.sampled_from(sorted(faults)), min_size=1, max_size=2, unique=True)):
        value = draw(faults[fault])
        if fault == "missing":
            doc.pop(value, None)
        elif fault == "unknown node":
            doc["Node"] = value
        elif fault == "unknown pod":
            doc["PodName"] = value
        else:
            doc[fault] = value
    noise = st.text(max_size=6).filter(lambda k: k not in ("PodName", "PodNamespace", "PodUID", "Node"))
    doc.update(draw(st.dictionaries(noise, json_values, max_size=2)))
    return doc


@st.composite
def sweeper_events(draw) -> tuple[dict[str, str], bytes]:
    """Anything but a valid ping (a valid one would only find young pods, but must not be sent)."""
    kind = draw(event_types.filter(lambda t: t.strip() != PING))
    data = draw(st.one_of(json_values, st.just({"task": "sweep"})))
    return draw(envelopes(data, kind, draw(st.sampled_from(VALID_SPECVERSIONS))))


def assert_well_answered(answer: Answer, what: object) -> None:
    assert answer.status < 500, (answer.status, answer.body[:300], repr(what)[:300])
    if answer.status >= 400:
        assert answer.doc["error"], answer.body[:300]


@pytest.fixture
def nothing_bound(live: Live):
    """Around one fuzz run: no sentinel gets a node, the binder binds nothing, every process lives."""
    before = live.bound()
    yield
    pods = pods_in_namespace(live.cluster.client)
    bound = {name: p["spec"]["nodeName"] for name, p in pods.items()
             if name.startswith("sentinel-") and p["spec"].get("nodeName")}
    assert bound == {}, bound
    assert len([n for n in pods if n.startswith("sentinel-")]) == SENTINELS
    assert live.bound() == before
    for fn in (live.binder, live.extender, live.sweeper):
        assert processes.is_running(fn.process), fn.label
        assert call(fn.url, "/healthz", method="GET").status == 200
        assert fn.counter("neurokube_http_requests_total", code="500") == 0, fn.label


def test_fuzz_binder(live, nothing_bound):
    outcomes: dict[str, int] = {}

    @FUZZ
    @given(event=binder_events(live))
    def run(event):
        headers, body = event
        answer = call(live.binder.url, "/", body, headers)
        assert_well_answered(answer, event)
        if answer.status == 200:
            assert answer.doc["outcome"] == "ignored", answer.body[:300]
        key = str(answer.status)
        outcomes[key] = outcomes.get(key, 0) + 1

    run()
    print(f"\nbinder fuzz: {outcomes}")
    assert outcomes.get("400", 0) > EXAMPLES // 2  # the fuzz mostly reached the validation, not just the envelope


def test_fuzz_extender_filter_and_prioritize(live, nothing_bound):
    outcomes: dict[str, int] = {}

    @FUZZ
    @given(verb=st.sampled_from(["filter", "prioritize"]), doc=extender_docs(live))
    def run(verb, doc):
        answer = call(live.extender.url, f"/{verb}", json.dumps(doc).encode(), {"Content-Type": "application/json"})
        assert_well_answered(answer, doc)
        if answer.status == 200 and verb == "prioritize":
            assert all(0 <= entry["Score"] <= 10 for entry in answer.doc), answer.doc
        elif answer.status == 200:
            assert answer.doc["Error"] == "" and set(answer.doc) >= {"Nodes", "NodeNames", "FailedNodes"}
        outcomes[f"{verb} {answer.status}"] = outcomes.get(f"{verb} {answer.status}", 0) + 1

    run()
    print(f"\nextender fuzz: {outcomes}")
    assert sum(v for k, v in outcomes.items() if k.endswith(" 200")) > 0  # some valid ones got through


def test_fuzz_extender_bind(live, nothing_bound):
    outcomes: dict[str, int] = {}

    @FUZZ
    @given(doc=binding_args(live))
    def run(doc):
        answer = call(live.extender.url, "/bind", json.dumps(doc).encode(), {"Content-Type": "application/json"})
        assert_well_answered(answer, doc)
        if answer.status == 200:
            assert answer.doc["Error"], answer.doc  # never a successful bind
        outcomes[str(answer.status)] = outcomes.get(str(answer.status), 0) + 1

    run()
    print(f"\nextender bind fuzz: {outcomes}")


def test_fuzz_sweeper(live, nothing_bound):
    outcomes: dict[str, int] = {}

    @FUZZ
    @given(event=sweeper_events())
    def run(event):
        headers, body = event
        answer = call(live.sweeper.url, "/", body, headers)
        assert_well_answered(answer, event)
        assert answer.status != 200, answer.body[:300]
        outcomes[str(answer.status)] = outcomes.get(str(answer.status), 0) + 1

    run()
    print(f"\nsweeper fuzz: {outcomes}")


def test_the_sentinels_were_bindable_all_along(live):
    """Valid events for pods made exactly as the sentinels are bind them: the fuzz had something to bind."""
    controls = live.fresh_pods("bindable", 2)
    before = live.bound()
    for pod in controls:
        answer = call(live.binder.url, "/", *reversed(binary_event(pod)))
        assert answer.status == 200 and answer.doc["outcome"] == "bound", answer.body[:300]
    assert live.bound() == before + 2
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pods = pods_in_namespace(live.cluster.client)
        if all(pods[p["metadata"]["name"]]["spec"].get("nodeName") for p in controls):
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the control pods were not bound")
