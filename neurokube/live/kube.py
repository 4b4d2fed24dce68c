"""A small Kubernetes REST client for the live functions: raw JSON over keep-alive HTTPS.

Not the official Python client, on purpose: the Binding subresource answers with a ``Status``
that kubernetes-client/python fails to deserialise (issues #547, #825), and the functions need
only a handful of verbs. Credentials come from a kubeconfig (client certificate or bearer token,
embedded or as files) or from the in-cluster service account, whose token file is re-read every
minute because the kubelet rotates it.

Each thread keeps its own persistent connection. :meth:`KubeClient.watch` streams a watch on a
connection of its own and yields the decoded events. Errors: :class:`KubeError` carries the
apiserver's status code, reason and message; an unreachable apiserver is a
:class:`~neurokube.errors.TemporaryError`.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import ssl
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from neurokube.errors import ApiStatusError, InputError, TemporaryError

JSON = "application/json"
SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_REREAD_S = 60.0


KubeError = ApiStatusError  # the error status of an apiserver answer (neurokube.errors)


class KubeClient:
    def __init__(self, server: str, context: ssl.SSLContext | None, token: Callable[[], str | None] | None = None,
                 timeout_s: float = 10.0, user_agent: str = "neurokube-live") -> None:
        parts = urllib.parse.urlsplit(server)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise InputError(f"bad apiserver URL {server!r}")
        self.server = server.rstrip("/")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._context = context
        self._token = token or (lambda: None)
        self.timeout_s = timeout_s
        self.user_agent = user_agent
        self._local = threading.local()

    # -- construction ----------------------------------------------------------------------------

    @classmethod
    def from_kubeconfig(cls, path: str | Path, timeout_s: float = 10.0) -> KubeClient:
        try:
            doc = yaml.safe_load(Path(path).read_text())
            context = _named(doc["contexts"], doc["current-context"])["context"]
            cluster = _named(doc["clusters"], context["cluster"])["cluster"]
            user = _named(doc["users"], context["user"])["user"] or {}
        except (OSError, yaml.YAMLError, KeyError, TypeError, StopIteration) as exc:
            raise InputError("unreadable kubeconfig", where=str(path), why=str(exc)) from None
        ssl_context = ssl.create_default_context()
        temporary: list[str] = []
        try:
            if cluster.get("insecure-skip-tls-verify"):
                ssl_context.check_hostname = False
                ssl_context.verify_mode = ssl.CERT_NONE
            else:
                ca = _material(cluster, "certificate-authority", temporary)
                if ca:
                    ssl_context.load_verify_locations(cafile=ca)
            cert = _material(user, "client-certificate", temporary)
            key = _material(user, "client-key", temporary)
            if cert and key:
                ssl_context.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise InputError("kubeconfig credentials are unusable", where=str(path), why=str(exc)) from None
        finally:
            for name in temporary:
                os.unlink(name)
        token = user.get("token")
        token_file = user.get("tokenFile")
        if token:
            source: Callable[[], str | None] = lambda: token  # noqa: E731
        elif token_file:
            source = _FileToken(Path(token_file))
        elif cert and key:
            source = lambda: None  # noqa: E731
        else:
            raise InputError("kubeconfig user needs a client certificate or a token", where=str(path),
                             why="exec and auth-provider plugins are not supported")
        return cls(cluster["server"], ssl_context, source, timeout_s)

    @classmethod
    def in_cluster(cls, timeout_s: float = 10.0, sa_dir: Path = SA_DIR) -> KubeClient:
        host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
        if not host or not (sa_dir / "token").is_file():
            raise InputError("not running in a cluster and KUBECONFIG is not set",
                             why="set KUBECONFIG or run with a service account")
        context = ssl.create_default_context(cafile=str(sa_dir / "ca.crt"))
        host = f"[{host}]" if ":" in host else host
        return cls(f"https://{host}:{port or 443}", context, _FileToken(sa_dir / "token"), timeout_s)

    @classmethod
    def from_settings(cls, kubeconfig: Path | None, timeout_s: float) -> KubeClient:
        return cls.from_kubeconfig(kubeconfig, timeout_s) if kubeconfig else cls.in_cluster(timeout_s)

    # -- requests ---------------------------------------------------------------------------------

    def get(self, path: str, **query: str) -> Any:
        return self.request("GET", path, query=query)

    def request(self, method: str, path: str, body: Any = None, query: dict[str, str] | None = None,
                content_type: str = JSON, accept: str = JSON) -> Any:
        """One request; ``accept`` for the few documents that are not plain JSON (the issuer's
        ``/openid/v1/jwks`` is served only as ``application/jwk-set+json``)."""
        target = path + ("?" + urllib.parse.urlencode(query) if query else "")
        data = None if body is None else json.dumps(body).encode()
        headers = self._headers(content_type if data is not None else None)
        headers["Accept"] = accept
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.request(method, target, body=data, headers=headers)
                response = conn.getresponse()
                payload = response.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError,
                    http.client.CannotSendRequest, http.client.ResponseNotReady) as exc:
                # A kept-alive connection the server closed: retry once on a fresh one. Every
                # write here is idempotent or guarded (bindings answer 409 the second time).
                self._drop_connection()
                if attempt == 2:
                    raise TemporaryError(f"kube-apiserver at {self.server}: {method} {path}: {exc}") from None
            except (OSError, http.client.HTTPException) as exc:
                self._drop_connection()
                raise TemporaryError(f"kube-apiserver at {self.server} unreachable: {method} {path}: {exc}") from None
        if response.status >= 400:
            raise _error(response.status, response.reason, payload, method, path)
        return json.loads(payload) if payload else None

    def watch(self, path: str, query: dict[str, str], read_timeout_s: float) -> Iterator[dict]:
        """Stream ``?watch=1`` events (dicts with ``type`` and ``object``) until the server ends it."""
        conn = self._new_connection(read_timeout_s)
        try:
            target = path + "?" + urllib.parse.urlencode({**query, "watch": "1"})
            conn.request("GET", target, headers=self._headers(None))
            response = conn.getresponse()
            if response.status >= 400:
                raise _error(response.status, response.reason, response.read(), "WATCH", path)
            while True:
                line = response.readline()
                if not line:
                    return
                if line.strip():
                    yield json.loads(line)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise TemporaryError(f"watch {path} broke: {exc}") from None
        finally:
            conn.close()

    # -- plumbing ---------------------------------------------------------------------------------

    def _headers(self, content_type: str | None) -> dict[str, str]:
        headers = {"Accept": JSON, "User-Agent": self.user_agent}
        if content_type:
            headers["Content-Type"] = content_type
        token = self._token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def _new_connection(self, timeout_s: float) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(self._host, self._port, timeout=timeout_s, context=self._context)
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout_s)

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._new_connection(self.timeout_s)
        return conn

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


class _FileToken:
    """A bearer token read from a file, re-read once a minute (projected tokens rotate)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._value: str | None = None
        self._read_at = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> str | None:
        with self._lock:
            if self._value is None or time.monotonic() - self._read_at > TOKEN_REREAD_S:
                try:
                    self._value = self.path.read_text().strip()
                except OSError as exc:
                    raise TemporaryError(f"cannot read the service-account token {self.path}: {exc}") from None
                self._read_at = time.monotonic()
            return self._value


def _error(status: int, reason: str, payload: bytes, method: str, path: str) -> KubeError:
    try:
        doc = json.loads(payload)
        return KubeError(status, doc.get("reason", reason), doc.get("message", ""), method, path)
    except (ValueError, AttributeError):
        return KubeError(status, reason, payload[:200].decode(errors="replace"), method, path)


def _named(items: list[dict], name: str) -> dict:
    return next(item for item in items if item["name"] == name)


def _material(section: dict, key: str, temporary: list[str]) -> str | None:
    """A file path for ``key`` or ``key-data`` (decoded into a private file, listed in ``temporary``)."""
    if section.get(key):
        return section[key]
    data = section.get(f"{key}-data")
    if not data:
        return None
    fd, name = tempfile.mkstemp(prefix="neurokube-live-", suffix=".pem")
    temporary.append(name)
    with os.fdopen(fd, "wb") as handle:
        handle.write(base64.b64decode(data))
    return name
