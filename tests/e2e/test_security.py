"""Security of the live functions (issue 7, "Security"), on the real processes beside the session
cluster, authenticated as the ServiceAccount of deploy/knative/rbac.yaml:

* with tokens configured (NEUROKUBE_TOKEN for the extender, NEUROKUBE_EVENT_TOKEN for the binder
  and sweeper), a POST without the right bearer token answers 401 -- no header, another scheme, a
  wrong token, one differing only in its last character, the other function's token -- and binds
  nothing; the right one places the pod. GET /healthz, /readyz and /metrics are exempt;
* the comparison hashes both sides and uses ``hmac.compare_digest`` (checked by spying on it: a
  timing test would be flaky on a shared machine);
* a body over the limit answers 413 without being read: the request announces limit + 1 bytes and
  sends almost none of them, and the answer still comes; a chunked body is cut at the limit;
* no module under neurokube/ or functions/ imports a pickle-based loader (AST), and a model
  directory holding a pickle is refused with a clear error, never unpickled (a malicious pickle's
  payload never runs), while the binder keeps placing pods on default scoring;
* what each function's ServiceAccount may do is tests/e2e/test_rbac.py's; which callers and
  which requests are refused is also tests/e2e/test_forged_events.py's.
"""

from __future__ import annotations

import ast
import hmac
import json
import pickle
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from neurokube.adapters.kube import KubeError
from neurokube.adapters.model_files import load_value_model
from neurokube.cluster.livekit import Function, create_pods, ensure_namespace, neurokube_pod, packing_env
from neurokube.cluster.session import RunningCluster
from neurokube.live import auth
from neurokube.model.value_model import ModelError
from neurokube.testing import write_packing_model

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "nk-security"
EXTENDER_TOKEN = "extender-token-" + uuid.uuid4().hex
EVENT_TOKEN = "event-token-" + uuid.uuid4().hex
ADD = "dev.knative.apiserver.resource.add"
PING = "dev.knative.sources.ping"
MIB = 1024 * 1024
LIMITS = {"binder": MIB, "sweeper": MIB, "extender": 16 * MIB}  # the defaults
ENV = {"NEUROKUBE_TOKEN": EXTENDER_TOKEN, "NEUROKUBE_EVENT_TOKEN": EVENT_TOKEN, "NEUROKUBE_SWEEP_MIN_AGE_S": "86400",
       "NEUROKUBE_EXTENDER_SCHEDULERS": "neurokube",  # the token tests' /bind binds a pod made like the others
       "NEUROKUBE_PROM_REFRESH_S": "1", "NEUROKUBE_PROM_STALE_AFTER_S": "4", "NEUROKUBE_DEBUG": "false"}


# -- raw HTTP ------------------------------------------------------------------------------------


def exchange(url: str, head: bytes, body_parts: list[bytes] = (), timeout_s: float = 10.0) -> tuple[int, dict, bytes]:
    """Send ``head`` and then ``body_parts`` on one socket (stopping if the server hangs up) and
    read the answer; a server that waited for more body would time out here."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout_s) as sock:
        sock.sendall(head)
        for part in body_parts:
            try:
                sock.sendall(part)
            except (BrokenPipeError, ConnectionResetError):
                break
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed without an answer: {data!r}"
            data += chunk
        header, _, rest = data.partition(b"\r\n\r\n")
        lines = header.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        return status, headers, rest[:length]


def request_head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    return "\r\n".join(lines).encode()


def post(url: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict, bytes]:
    return exchange(url, request_head("POST", path, {**headers, "Content-Length": str(len(body)),
                                                     "Connection": "close"}), [body])


def get(url: str, path: str) -> int:
    return exchange(url, request_head("GET", path, {"Connection": "close"}))[0]


def ce_headers(kind: str = ADD) -> dict[str, str]:
    return {"ce-specversion": "1.0", "ce-type": kind, "ce-source": "https://kube-apiserver", "ce-id": str(uuid.uuid4()),
            "Content-Type": "application/json"}


# -- the functions -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def secured(cluster: RunningCluster, tmp_path_factory):
    """The three functions with tokens configured, as the ServiceAccount."""
    client = cluster.client
    names = [n["metadata"]["name"] for n in client.get("/api/v1/nodes")["items"]]
    env, prometheus = packing_env(cluster, tmp_path_factory.mktemp("model"), ENV)
    ensure_namespace(client, NAMESPACE)
    logs = tmp_path_factory.mktemp("security-logs")
    fns = {name: Function(name, env, logs, f"{name}-security") for name in ("binder", "extender", "sweeper")}
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(Function.start, fns.values()))
    try:
        yield {"env": env, "logs": logs, "nodes": names, "cluster": cluster, **fns}
    finally:
        for fn in fns.values():
            fn.stop()
        prometheus.close()
        delete_namespace(client)


def delete_namespace(client) -> None:
    try:
        client.delete(f"/api/v1/namespaces/{NAMESPACE}", {"gracePeriodSeconds": 0})
    except KubeError:
        pass
    for pod in client.get(f"/api/v1/namespaces/{NAMESPACE}/pods")["items"]:
        client.delete(f"/api/v1/namespaces/{NAMESPACE}/pods/{pod['metadata']['name']}", {"gracePeriodSeconds": 0})


def pending_pod(cluster: RunningCluster, name: str) -> dict:
    manifest = neurokube_pod(f"{name}-{uuid.uuid4().hex[:6]}", 100, 64, "security")
    manifest["metadata"]["namespace"] = NAMESPACE
    [pod] = create_pods(cluster.client, [manifest])
    return pod


def node_of(cluster: RunningCluster, pod: dict) -> str:
    current = cluster.client.get(f"/api/v1/namespaces/{NAMESPACE}/pods/{pod['metadata']['name']}")
    return current["spec"].get("nodeName") or ""


# -- tokens --------------------------------------------------------------------------------------

WRONG = {
    "no header": lambda token, other: None,
    "empty header": lambda token, other: "",
    "Basic scheme": lambda token, other: f"Basic {token}",
    "Token scheme": lambda token, other: f"Token {token}",
    "no scheme": lambda token, other: token,
    "Bearer without a token": lambda token, other: "Bearer",
    "a wrong token": lambda token, other: "Bearer " + "x" * len(token),
    "only the last character differs": lambda token, other: f"Bearer {token[:-1]}{'0' if token[-1] != '0' else '1'}",
    "the token without its last character": lambda token, other: f"Bearer {token[:-1]}",
    "the token and one more character": lambda token, other: f"Bearer {token}x",
    "the other function's token": lambda token, other: f"Bearer {other}",
}


def _with(headers: dict[str, str], authorization: str | None) -> dict[str, str]:
    return headers if authorization is None else {**headers, "Authorization": authorization}


def assert_401(answer: tuple[int, dict, bytes], case: str) -> None:
    status, headers, body = answer
    assert status == 401, (case, status, body[:300])
    assert headers["www-authenticate"] == 'Bearer realm="neurokube"'
    assert json.loads(body)["error"].startswith("unauthorized: "), body


@pytest.mark.parametrize("case", list(WRONG))
def test_the_binder_refuses_a_wrong_token_and_binds_nothing(secured, case):
    pod = pending_pod(secured["cluster"], "token")
    body = json.dumps(pod).encode()
    assert_401(post(secured["binder"].url, "/", body, _with(ce_headers(), WRONG[case](EVENT_TOKEN, EXTENDER_TOKEN))),
               case)
    assert node_of(secured["cluster"], pod) == ""


@pytest.mark.parametrize("case", list(WRONG))
def test_the_extender_refuses_a_wrong_token_and_binds_nothing(secured, case):
    pod = pending_pod(secured["cluster"], "ext-token")
    authorization = WRONG[case](EXTENDER_TOKEN, EVENT_TOKEN)
    args = {"Pod": pod, "Nodes": None, "NodeNames": secured["nodes"][:3]}
    for verb, doc in (("filter", args), ("prioritize", args),
                      ("bind", {"PodName": pod["metadata"]["name"], "PodNamespace": NAMESPACE,
                                "PodUID": pod["metadata"]["uid"], "Node": secured["nodes"][0]})):
        assert_401(post(secured["extender"].url, f"/{verb}", json.dumps(doc).encode(),
                        _with({"Content-Type": "application/json"}, authorization)), f"{verb}: {case}")
    assert node_of(secured["cluster"], pod) == ""


@pytest.mark.parametrize("case", ["no header", "a wrong token", "only the last character differs",
                                  "the other function's token"])
def test_the_sweeper_refuses_a_wrong_token(secured, case):
    assert_401(post(secured["sweeper"].url, "/", b"{}", _with(ce_headers(PING), WRONG[case](EVENT_TOKEN,
                                                                                             EXTENDER_TOKEN))), case)


def test_nothing_is_answered_before_the_token(secured):
    """Unknown paths and methods answer 401 too: an unauthenticated client learns nothing."""
    for name, path in (("binder", "/nope"), ("extender", "/preempt"), ("sweeper", "/x")):
        assert_401(post(secured[name].url, path, b"{}", {"Content-Type": "application/json"}), name)
        status, _, _ = exchange(secured[name].url, request_head("PUT", "/", {"Connection": "close",
                                                                          "Content-Length": "0"}))
        assert status == 401, name


def test_the_right_token_places_pods(secured):
    cluster = secured["cluster"]
    pod = pending_pod(cluster, "right")
    status, _, body = post(secured["binder"].url, "/", json.dumps(pod).encode(),
                           {**ce_headers(), "Authorization": f"Bearer {EVENT_TOKEN}"})
    assert status == 200 and json.loads(body)["outcome"] == "bound", body
    assert node_of(cluster, pod)
    scheme_case = pending_pod(cluster, "scheme")  # the scheme is case-insensitive (RFC 7235)
    status, _, body = post(secured["binder"].url, "/", json.dumps(scheme_case).encode(),
                           {**ce_headers(), "Authorization": f"bearer {EVENT_TOKEN}"})
    assert status == 200 and json.loads(body)["outcome"] == "bound", body
    other = pending_pod(cluster, "ext-right")
    authorized = {"Content-Type": "application/json", "Authorization": f"Bearer {EXTENDER_TOKEN}"}
    args = json.dumps({"Pod": other, "Nodes": None, "NodeNames": secured["nodes"][:3]}).encode()
    status, _, body = post(secured["extender"].url, "/filter", args, authorized)
    assert status == 200 and json.loads(body)["NodeNames"] == secured["nodes"][:3], body
    status, _, body = post(secured["extender"].url, "/prioritize", args, authorized)
    assert status == 200 and isinstance(json.loads(body), list), body  # the nodes scoring 1..10; 0s left out
    assert {entry["Host"] for entry in json.loads(body)} <= set(secured["nodes"][:3]), body
    bind = {"PodName": other["metadata"]["name"], "PodNamespace": NAMESPACE, "PodUID": other["metadata"]["uid"],
            "Node": secured["nodes"][0]}
    status, _, body = post(secured["extender"].url, "/bind", json.dumps(bind).encode(), authorized)
    assert status == 200 and json.loads(body) == {"Error": ""}, body
    assert node_of(cluster, other) == secured["nodes"][0]
    status, _, body = post(secured["sweeper"].url, "/", b"{}", {**ce_headers(PING),
                                                               "Authorization": f"Bearer {EVENT_TOKEN}"})
    assert status == 200 and "pending" in json.loads(body), body


@pytest.mark.parametrize("name", ["binder", "extender", "sweeper"])
def test_health_readiness_and_metrics_need_no_token(secured, name):
    """Kubelet probes and Prometheus scrapes carry no token; these answers hold no pod data."""
    for path in ("/healthz", "/readyz", "/metrics"):
        assert get(secured[name].url, path) == 200, path


def test_the_comparison_is_constant_time(monkeypatch):
    """Both sides are hashed to 32 bytes and compared with hmac.compare_digest, whatever is sent
    (compare_digest alone returns early when the lengths differ)."""
    seen: list[tuple[int, int]] = []
    compare = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        seen.append((len(a), len(b)))
        return compare(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    authenticator = auth.Authenticator(token=EVENT_TOKEN)
    for given in ("x", "x" * 1000, EVENT_TOKEN[:-1] + "0", EVENT_TOKEN):
        try:
            authenticator.check(f"Bearer {given}")
            accepted = True
        except auth.Unauthorized as exc:
            assert exc.reason == auth.WRONG_TOKEN
            accepted = False
        assert accepted == (given == EVENT_TOKEN)
    assert seen == [(32, 32)] * 4


# -- body limits -----------------------------------------------------------------------------------

AUTH = {"binder": EVENT_TOKEN, "sweeper": EVENT_TOKEN, "extender": EXTENDER_TOKEN}


@pytest.mark.parametrize("name", ["binder", "extender", "sweeper"])
def test_an_announced_body_over_the_limit_is_refused_unread(secured, name):
    limit = LIMITS[name]
    headers = {**(ce_headers(PING if name == "sweeper" else ADD)), "Authorization": f"Bearer {AUTH[name]}",
               "Content-Length": str(limit + 1), "Connection": "close"}
    path = "/filter" if name == "extender" else "/"
    started = time.monotonic()
    status, _, body = exchange(secured[name].url, request_head("POST", path, headers), [b"{"])  # 1 of limit+1 bytes
    assert status == 413, body[:300]
    assert json.loads(body)["error"] == f"request body of {limit + 1} bytes exceeds the limit of {limit}"
    assert time.monotonic() - started < 5  # answered at once, not after waiting for the rest


@pytest.mark.parametrize("name", ["binder", "extender", "sweeper"])
def test_a_chunked_body_over_the_limit_is_cut_at_the_limit(secured, name):
    limit = LIMITS[name]
    headers = {**(ce_headers(PING if name == "sweeper" else ADD)), "Authorization": f"Bearer {AUTH[name]}",
               "Transfer-Encoding": "chunked", "Connection": "close"}
    chunk = b" " * 65536
    parts = [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * (limit // len(chunk) + 2) + [b"0\r\n\r\n"]
    path = "/filter" if name == "extender" else "/"
    status, _, body = exchange(secured[name].url, request_head("POST", path, headers), parts, timeout_s=30)
    assert status == 413 and json.loads(body)["error"] == f"request body exceeds the limit of {limit} bytes", body


@pytest.mark.parametrize("path", ["/healthz", "/metrics"])
def test_a_get_with_a_body_is_refused_unread(secured, path):
    """The exempt endpoints do not read a body either (functions-framework would read it all)."""
    headers = {"Content-Length": str(100 * MIB), "Connection": "close"}
    status, _, body = exchange(secured["binder"].url, request_head("GET", path, headers), [b"x"])
    assert status == 400 and json.loads(body)["error"] == "a GET request takes no body", body


def test_an_unauthenticated_large_body_is_refused_before_its_size(secured):
    headers = {**ce_headers(), "Content-Length": str(100 * MIB), "Connection": "close"}
    status, _, body = exchange(secured["binder"].url, request_head("POST", "/", headers), [b"{"])
    assert status == 401, body[:300]


# -- no pickle -------------------------------------------------------------------------------------

PICKLE_MODULES = {"pickle", "_pickle", "cPickle", "cloudpickle", "dill", "joblib", "shelve", "marshal", "torch"}
PICKLE_CALLS = {"load_pickle", "read_pickle", "Unpickler", "loads", "load"}  # checked on pickle-ish receivers
MLFLOW_PICKLE_LOADERS = ("mlflow.pyfunc.load", "mlflow.sklearn.load", "mlflow.lightgbm.load")


def pickle_uses(source: str, filename: str = "<source>") -> list[str]:
    """Imports of pickle-based modules, and calls that unpickle (np.load with allow_pickle=True,
    pandas.read_pickle, mlflow's pyfunc/sklearn loaders)."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.split(".")[0] in PICKLE_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PICKLE_MODULES:
            found.append(f"from {node.module} import ...")
        elif isinstance(node, ast.Call):
            name = ast.unparse(node.func)
            if any(k.arg == "allow_pickle" and not (isinstance(k.value, ast.Constant) and k.value.value is False)
                   for k in node.keywords):
                found.append(f"{name}(allow_pickle=...)")
            if name.endswith(("read_pickle", "to_pickle")) or name.startswith(MLFLOW_PICKLE_LOADERS):
                found.append(name)
            if name.split(".")[0] in PICKLE_MODULES and name.split(".")[-1] in PICKLE_CALLS:
                found.append(name)
    return found


def test_the_pickle_scanner_finds_what_it_looks_for():
    source = ("import pickle\nfrom joblib import load\nimport numpy as np\nimport pandas as pd\nimport mlflow\n"
              "pickle.loads(b'')\nnp.load('x.npy', allow_pickle=True)\npd.read_pickle('p')\n"
              "mlflow.pyfunc.load_model('m')\nnp.load('y.npy')\nnp.load('z.npy', allow_pickle=False)\n")
    assert pickle_uses(source) == ["import pickle", "from joblib import ...", "pickle.loads",
                                   "np.load(allow_pickle=...)", "pd.read_pickle", "mlflow.pyfunc.load_model"]


@pytest.mark.parametrize("package", ["neurokube", "functions"])
def test_no_module_unpickles(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert len(files) >= 5
    found = {str(f.relative_to(ROOT)): uses for f in files if (uses := pickle_uses(f.read_text(), str(f)))}
    assert found == {}


class Payload:
    """A pickle whose loading creates a file: proof that it was never unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def pickled_model(directory: Path, marker: Path, protocol: int) -> Path:
    model = write_packing_model(directory)
    (model / "contention.txt").write_bytes(pickle.dumps(Payload(marker), protocol=protocol))
    return model


@pytest.mark.parametrize("protocol, message", [(pickle.HIGHEST_PROTOCOL, "a pickle, not LightGBM text"),
                                               (0, "not a LightGBM model")])
def test_a_model_that_is_a_pickle_is_refused(tmp_path, protocol, message):
    marker = tmp_path / "unpickled"
    model = pickled_model(tmp_path / "champion", marker, protocol)
    manifest = json.loads((model / "manifest.json").read_text())
    manifest["sha256"] = {}  # no checksum to trip over first: the content itself is refused
    (model / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match=message):
        load_value_model(model)
    assert not marker.exists()


@pytest.mark.parametrize("target, message", [("model.pkl", "a pickle file"), ("model.joblib", "a pickle file"),
                                             ("../outside.txt", "a plain file name"),
                                             ("/etc/hostname", "a plain file name")])
def test_a_manifest_cannot_point_at_a_pickle_or_outside(tmp_path, target, message):
    model = write_packing_model(tmp_path / "champion")
    manifest = json.loads((model / "manifest.json").read_text())
    manifest["targets"]["contention"] = target
    (model / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match=message):
        load_value_model(model)


def test_the_binder_refuses_a_pickled_model_and_keeps_placing(secured, tmp_path):
    """A binder pointed at a pickled model runs on default scoring (counted), logs why, and never
    runs the pickle."""
    marker = tmp_path / "unpickled"
    model = pickled_model(tmp_path / "champion", marker, pickle.HIGHEST_PROTOCOL)
    env = {**secured["env"], "NEUROKUBE_MODEL_DIR": str(model)}
    binder = Function("binder", env, secured["logs"], "binder-pickled-model").start()
    try:
        binder.wait_metrics_fresh()  # else the fallback would be counted as prometheus_unavailable
        status, _, body = exchange(binder.url, request_head("GET", "/readyz", {"Connection": "close"}))
        assert status == 200 and json.loads(body)["model_version"] == "none", body
        pod = pending_pod(secured["cluster"], "pickled")
        status, _, body = post(binder.url, "/", json.dumps(pod).encode(),
                               {**ce_headers(), "Authorization": f"Bearer {EVENT_TOKEN}"})
        reply = json.loads(body)
        assert status == 200 and reply["outcome"] == "bound" and reply["policy"] == "default", reply
        assert binder.counter("neurokube_fallbacks_total", reason="model_corrupt") >= 1
    finally:
        binder.stop()
    log = (secured["logs"] / "binder-pickled-model.log").read_text()
    assert "a pickle, not LightGBM text (pickles are never loaded)" in log
    assert not marker.exists()
