"""The project's Kubernetes client (neurokube/adapters/kube.py, on the official ``kubernetes`` package)
against a loopback HTTPS stand-in of the apiserver: what managed-cluster kubeconfigs need (exec
credential plugins, ``KUBECONFIG`` lists, relative certificate paths, ``tls-server-name``,
``proxy-url``), 429 ``Retry-After``, the client-side rate limit, error mapping and watch streams.
The real apiserver is exercised by the e2e suites (tests/e2e/test_kube_exec_plugin.py)."""

from __future__ import annotations

import json
import os
import ssl
import sys
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from neurokube.adapters.kube import KubeClient, KubeError, RateLimit
from neurokube.cluster import certs
from neurokube.errors import InputError, StatusDetails, TemporaryError

NODES = {"kind": "NodeList", "items": [{"metadata": {"name": "n1"}}]}


class Apiserver:
    """Answers from a script: a list of (status, headers, body) per path, the last one repeated."""

    def __init__(self, pki_dir: Path) -> None:
        self.pki = certs.generate(pki_dir, "10.0.0.1")
        self.script: dict[str, list[tuple[int, dict, bytes]]] = {}
        self.seen: list[tuple[str, str, dict]] = []
        self.connections = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                server.connections += 1

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                server.seen.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
                route = self.path.split("?")[0]
                answers = server.script.get(route) or [(404, {}, json.dumps(
                    {"kind": "Status", "reason": "NotFound", "message": f"{route} not found"}).encode())]
                status, headers, body = answers.pop(0) if len(answers) > 1 else answers[0]
                headers = dict(headers)
                hang_up = headers.pop("X-Hang-Up", None)  # close the kept-alive connection unannounced
                self.send_response(status)
                for key, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                if hang_up:
                    self.close_connection = True

            do_GET = do_POST = do_PATCH = do_DELETE = _answer

            def log_message(self, *args) -> None:
                pass

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.pki.serving_cert, self.pki.serving_key)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._server.handle_error = lambda *args: None
        self.url = f"https://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(params=[False, True], ids=["official", "lean"])
def lean(request):
    """Both transports of KubeClient: the official client's, and the live functions' lean one."""
    return request.param


@pytest.fixture
def apiserver(tmp_path):
    server = Apiserver(tmp_path / "pki")
    server.script["/api/v1/nodes"] = [(200, {}, json.dumps(NODES).encode())]
    yield server
    server.close()


def kubeconfig(path: Path, server: str, user: dict, cluster_extra: dict | None = None, ca: str | None = None) -> Path:
    doc = {
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "k", "cluster": {"server": server, **({"certificate-authority": ca} if ca else {}),
                                                **(cluster_extra or {})}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def exec_plugin(tmp_path: Path, token: str, exit_code: int = 0) -> dict:
    """A credential plugin as managed clusters ship them (gke-gcloud-auth-plugin, aws eks get-token):
    a program that prints an ExecCredential."""
    script = tmp_path / "plugin.py"
    script.write_text(textwrap.dedent(f"""
        import json, sys
        if {exit_code}:
            print("plugin: no credentials", file=sys.stderr)
            sys.exit({exit_code})
        print(json.dumps({{"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
                          "status": {{"token": "{token}"}}}}))
    """))
    return {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": sys.executable,
                     "args": [str(script)], "interactiveMode": "Never"}}


def authorization(server: Apiserver) -> str:
    return server.seen[-1][2].get("authorization", "")


def test_exec_credential_plugin_token_is_sent(apiserver, tmp_path, lean):
    config = kubeconfig(tmp_path / "kc", apiserver.url, exec_plugin(tmp_path, "from-the-plugin"),
                        ca=str(apiserver.pki.ca_cert))
    client = KubeClient.from_kubeconfig(config, lean=lean)
    assert client.transport == ("lean" if lean else "official")
    assert client.get("/api/v1/nodes")["items"][0]["metadata"]["name"] == "n1"
    assert authorization(apiserver) == "Bearer from-the-plugin"


def test_failing_exec_plugin_is_a_clear_input_error(apiserver, tmp_path):
    config = kubeconfig(tmp_path / "kc", apiserver.url, exec_plugin(tmp_path, "x", exit_code=3),
                        ca=str(apiserver.pki.ca_cert))
    with pytest.raises(InputError) as info:
        KubeClient.from_kubeconfig(config)
    assert str(config) in str(info.value) and "exec" in str(info.value)


def test_kubeconfig_list_is_merged_and_relative_paths_resolve(apiserver, tmp_path, lean):
    # The cluster (with a CA path relative to its own file) in one file, the user's token in another.
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "ca.crt").write_bytes(apiserver.pki.ca_cert.read_bytes())
    first = kubeconfig(tmp_path / "a" / "config", apiserver.url, {"token": "first-file-token"}, ca="ca.crt")
    second = tmp_path / "second"
    second.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "users": [
        {"name": "other", "user": {"token": "unused"}}]}))
    client = KubeClient.from_kubeconfig(f"{first}{os.pathsep}{second}", lean=lean)
    client.get("/api/v1/nodes")
    assert authorization(apiserver) == "Bearer first-file-token"


def test_token_file_user(apiserver, tmp_path, lean):
    (tmp_path / "token").write_text("token-from-a-file\n")
    config = kubeconfig(tmp_path / "kc", apiserver.url, {"tokenFile": str(tmp_path / "token")},
                        ca=str(apiserver.pki.ca_cert))
    client = KubeClient.from_kubeconfig(config, lean=lean)
    for _ in range(3):  # the loader's refresh hook runs before every request
        client.get("/api/v1/nodes")
        assert authorization(apiserver) == "Bearer token-from-a-file"


def test_in_cluster_service_account(apiserver, tmp_path, monkeypatch, lean):
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text("projected-token\n")
    (sa / "ca.crt").write_bytes(apiserver.pki.ca_cert.read_bytes())
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", apiserver.url.rsplit(":", 1)[1])
    client = KubeClient.in_cluster(sa_dir=sa, lean=lean)
    for _ in range(2):
        client.get("/api/v1/nodes")
        assert authorization(apiserver).lower() == "bearer projected-token"
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    with pytest.raises(InputError) as info:
        KubeClient.in_cluster(sa_dir=sa, lean=lean)
    assert "KUBECONFIG" in str(info.value)


def test_tls_server_name_is_checked(apiserver, tmp_path, lean):
    # The serving certificate names kubernetes.default; the URL is an IP, as behind a tunnel.
    good = kubeconfig(tmp_path / "good", apiserver.url, {"token": "t"}, {"tls-server-name": "kubernetes.default"},
                      ca=str(apiserver.pki.ca_cert))
    KubeClient.from_kubeconfig(good, lean=lean).get("/api/v1/nodes")
    bad = kubeconfig(tmp_path / "bad", apiserver.url, {"token": "t"}, {"tls-server-name": "not-the-apiserver.example"},
                     ca=str(apiserver.pki.ca_cert))
    with pytest.raises(TemporaryError):
        KubeClient.from_kubeconfig(bad, lean=lean).get("/api/v1/nodes")


def test_certificate_is_verified_by_default(apiserver, tmp_path, lean):
    config = kubeconfig(tmp_path / "kc", apiserver.url, {"token": "t"})  # no CA: the system bundle
    with pytest.raises(TemporaryError):
        KubeClient.from_kubeconfig(config, lean=lean).get("/api/v1/nodes")


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")  # the official transport's
def test_insecure_skip_tls_verify_is_honoured(apiserver, tmp_path, lean):
    config = kubeconfig(tmp_path / "kc", apiserver.url, {"token": "t"}, {"insecure-skip-tls-verify": True})
    client = KubeClient.from_kubeconfig(config, lean=lean)
    assert client.get("/api/v1/nodes")["kind"] == "NodeList" and client.transport == ("lean" if lean else "official")


def test_proxy_url_is_honoured(tmp_path):
    config = kubeconfig(tmp_path / "kc", "https://10.1.2.3:6443", {"token": "t"},
                        {"proxy-url": "http://127.0.0.1:3128"})
    assert KubeClient.from_kubeconfig(config).configuration.proxy == "http://127.0.0.1:3128"
    assert KubeClient.from_kubeconfig(config, lean=True).transport == "official"  # the lean one has no proxy


def test_lean_transport_keeps_one_connection_and_resends_once_when_the_server_hung_up(apiserver, tmp_path):
    """Requests of one thread share a kept-alive connection; when the server has closed it meanwhile
    (unannounced, as an idle timeout does), the request goes once more on a fresh one."""
    config = kubeconfig(tmp_path / "kc", apiserver.url, {"token": "t"}, ca=str(apiserver.pki.ca_cert))
    client = KubeClient.from_kubeconfig(config, lean=True)
    for _ in range(3):
        assert client.get("/api/v1/nodes")["kind"] == "NodeList"
    assert apiserver.connections == 1
    apiserver.script["/api/v1/nodes"] = [(200, {"X-Hang-Up": "1"}, json.dumps(NODES).encode()),
                                         (200, {}, json.dumps(NODES).encode())]
    client.get("/api/v1/nodes")  # answered, then the server hangs up
    time.sleep(0.2)
    body = {"apiVersion": "v1", "kind": "Event", "message": "ünïcode"}
    apiserver.script["/api/v1/namespaces/default/events"] = [(201, {}, json.dumps(body).encode())]
    assert client.create("/api/v1/namespaces/default/events", body)["message"] == "ünïcode"
    assert apiserver.connections == 2 and apiserver.seen[-1][:2] == ("POST", "/api/v1/namespaces/default/events")
    assert apiserver.seen[-1][2]["content-type"] == "application/json"
    assert apiserver.seen[-1][2]["authorization"] == "Bearer t"


def test_lean_transport_sends_the_query_and_a_not_json_answer_is_a_typed_error(apiserver, tmp_path):
    config = kubeconfig(tmp_path / "kc", apiserver.url, {"token": "t"}, ca=str(apiserver.pki.ca_cert))
    client = KubeClient.from_kubeconfig(config, lean=True)
    client.get("/api/v1/nodes", labelSelector="a=b,c", limit="500")
    assert apiserver.seen[-1][1] == "/api/v1/nodes?labelSelector=a%3Db%2Cc&limit=500"
    apiserver.script["/api/v1/pods"] = [(502, {"Content-Type": "text/plain"}, b"bad gateway")]
    with pytest.raises(KubeError) as info:
        client.get("/api/v1/pods")
    assert info.value.status == 502 and "bad gateway" in str(info.value)


def test_429_is_retried_after_retry_after(apiserver, tmp_path, lean):
    slept: list[float] = []
    apiserver.script["/api/v1/nodes"] = [
        (429, {"Retry-After": "2"}, b'{"kind":"Status","reason":"TooManyRequests","message":"slow down"}'),
        (429, {"Retry-After": "900"}, b'{"kind":"Status","reason":"TooManyRequests","message":"slow down"}'),
        (200, {}, json.dumps(NODES).encode()),
    ]
    config = kubeconfig(tmp_path / "kc", apiserver.url, {"token": "t"}, ca=str(apiserver.pki.ca_cert))
    client = KubeClient.from_kubeconfig(config, sleep=slept.append, lean=lean)
    assert client.get("/api/v1/nodes")["kind"] == "NodeList"
    assert slept == [2.0, 10.0]  # the second is capped


def test_429_gives_up_after_a_bound(apiserver, tmp_path, lean):
    apiserver.script["/api/v1/nodes"] = [(429, {"Retry-After": "1"}, b'{"reason":"TooManyRequests"}')]
    config = kubeconfig(tmp_path / "kc", apiserver.url, {"token": "t"}, ca=str(apiserver.pki.ca_cert))
    with pytest.raises(KubeError) as info:
        KubeClient.from_kubeconfig(config, sleep=lambda s: None, lean=lean).get("/api/v1/nodes")
    assert info.value.status == 429


def test_status_answer_becomes_a_typed_error(apiserver, tmp_path, lean):
    config = kubeconfig(tmp_path / "kc", apiserver.url, {"token": "t"}, ca=str(apiserver.pki.ca_cert))
    apiserver.script["/api/v1/namespaces/default/pods/p/binding"] = [(409, {}, json.dumps(
        {"kind": "Status", "reason": "Conflict", "message": "pod p is already assigned to node n1"}).encode())]
    with pytest.raises(KubeError) as info:
        KubeClient.from_kubeconfig(config, lean=lean).create("/api/v1/namespaces/default/pods/p/binding",
                                                             {"target": {}})
    assert (info.value.status, info.value.reason) == (409, "Conflict")
    assert "already assigned" in str(info.value) and info.value.details == StatusDetails()


@pytest.mark.parametrize("details, kept", [
    ({"name": "team", "kind": "namespaces"}, StatusDetails("namespaces", "team")),
    ({"name": "l", "group": "coordination.k8s.io", "kind": "leases"},
     StatusDetails("leases", "l", "coordination.k8s.io")),
    ({"name": 7, "kind": ["x"]}, StatusDetails()),
    ("not an object", StatusDetails()),
])
def test_status_details_are_kept(apiserver, tmp_path, details, kept, lean):
    config = kubeconfig(tmp_path / "kc", apiserver.url, {"token": "t"}, ca=str(apiserver.pki.ca_cert))
    apiserver.script["/api/v1/namespaces/team/pods/p/binding"] = [(404, {}, json.dumps(
        {"kind": "Status", "reason": "NotFound", "message": 'namespaces "team" not found', "details": details,
         "code": 404}).encode())]
    with pytest.raises(KubeError) as info:
        KubeClient.from_kubeconfig(config, lean=lean).create("/api/v1/namespaces/team/pods/p/binding",
                                                             {"target": {}})
    assert info.value.not_found and info.value.details == kept


def test_unreachable_apiserver_is_temporary(tmp_path, lean):
    config = kubeconfig(tmp_path / "kc", "https://127.0.0.1:9", {"token": "t"})
    with pytest.raises(TemporaryError):
        KubeClient.from_kubeconfig(config, timeout_s=2, lean=lean).get("/api/v1/nodes")


def test_unusable_kubeconfig_names_the_file(tmp_path):
    broken = tmp_path / "kc"
    broken.write_text("clusters: [")
    with pytest.raises(InputError) as info:
        KubeClient.from_kubeconfig(broken)
    assert str(broken) in str(info.value)


def test_watch_streams_events_and_passes_on_errors(apiserver, tmp_path):
    lines = [
        {"type": "ADDED", "object": {"metadata": {"name": "a", "resourceVersion": "5"}}},
        {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "6"}}},
        {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"}},
    ]
    apiserver.script["/api/v1/pods"] = [(200, {}, b"".join(json.dumps(x).encode() + b"\n" for x in lines))]
    config = kubeconfig(tmp_path / "kc", apiserver.url, {"token": "t"}, ca=str(apiserver.pki.ca_cert))
    events = list(KubeClient.from_kubeconfig(config).watch(
        "/api/v1/pods", {"resourceVersion": "4", "allowWatchBookmarks": "true", "timeoutSeconds": "30"}, 5))
    assert [e["type"] for e in events] == ["ADDED", "BOOKMARK", "ERROR"]
    assert events[0]["object"]["metadata"]["name"] == "a"
    assert events[2]["object"]["code"] == 410
    query = apiserver.seen[-1][1]
    assert "watch=true" in query and "resourceVersion=4" in query and "timeoutSeconds=30" in query


def test_rate_limit_token_bucket():
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limit = RateLimit(qps=10, burst=2, clock=lambda: now[0], sleep=sleep)
    assert [limit.acquire() for _ in range(2)] == [0.0, 0.0]  # the burst
    assert limit.acquire() == pytest.approx(0.1)
    now[0] += 1.0  # refills to the burst, not beyond
    assert [limit.acquire() for _ in range(2)] == [0.0, 0.0]
    assert limit.acquire() > 0
    assert RateLimit(qps=0, burst=0).acquire() == 0.0
    with pytest.raises(InputError):
        RateLimit(qps=-1, burst=1)
