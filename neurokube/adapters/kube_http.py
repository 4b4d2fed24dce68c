"""A lean HTTP/1.1 transport for Kubernetes API requests: one kept-alive connection per thread.

Why hand-written (the house rule is the field's own library unless a benchmark or a bug says
otherwise): on 2 cores the scheduling bench's throughput is the whole machine's CPU per bound pod,
and the binder makes two to three requests per pod (the Binding, the ``Scheduled`` Event, a share of
a Lease write). Through the official client's ``ApiClient`` and urllib3 each cost about twice the
CPU of the same request on a kept ``http.client`` connection: ``python benchmarks/kube_transport.py``
(docs/BENCHMARKS.md, "kube-transport") measures both side by side on the local control plane.

What stays the official client's: the ``Configuration`` it loaded (server, CA bundle, client
certificate, TLS server name, the verify flag) and the credentials, read for every request through
``Configuration.auth_settings()``, which refreshes exec-plugin and in-cluster tokens exactly as the
official transport does. Watches stay on the official client. A configuration this transport does
not handle (a proxy, ``assert_hostname``, socket options, a scheme other than http/https) keeps the
official transport: :func:`unsupported` says why, and :class:`~neurokube.adapters.kube.KubeClient`
decides.

Semantics kept from the official path as :class:`~neurokube.adapters.kube.KubeClient` configures it
(urllib3 ``Retry(total=1)`` for every method): a request that fails (the server hung up a kept-alive
connection while it was idle, a reset, a timeout) is sent once more on a fresh connection. Every
write the project makes is idempotent or guarded: a second Binding answers 409 (the binder asks the
pod which decision bound it), a Lease write is conditional. A second failure surfaces as
:class:`OSError` or :class:`http.client.HTTPException` for the caller to turn into a TemporaryError;
a connection that failed or timed out is closed, never reused.
"""

from __future__ import annotations

import http.client
import ssl
import threading
import weakref
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Response:
    status: int
    reason: str
    retry_after: str | None
    body: bytes


def unsupported(configuration: Any, proxied: bool) -> str:
    """Why this transport cannot carry the requests of ``configuration`` (the official client's
    ``Configuration``; ``proxied``: its requests go through a proxy) ("" when it can)."""
    scheme = urlsplit(configuration.host).scheme
    if scheme not in ("https", "http"):
        return f"server scheme {scheme!r}"
    if proxied:
        return "a proxy"
    if configuration.assert_hostname is not None:
        return "assert_hostname"
    if configuration.socket_options:
        return "socket options"
    return ""


class _TlsConnection(http.client.HTTPSConnection):
    """An HTTPS connection whose TLS server name may differ from the host it dials (kubeconfig's
    ``tls-server-name``)."""

    def __init__(self, host: str, port: int, *, timeout: float, context: ssl.SSLContext, server_name: str) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._server_name = server_name

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self._server_name)


class LeanTransport:
    def __init__(self, configuration: Any, user_agent: str) -> None:
        """``configuration``: the official client's ``Configuration``, one :func:`unsupported`
        accepts (this module does not import the official package: the one-kube-client rule)."""
        url = urlsplit(configuration.host)
        self.configuration = configuration
        self.user_agent = user_agent
        self.https = url.scheme == "https"
        self.host = url.hostname or ""
        self.port = url.port or (443 if self.https else 80)
        self.prefix = url.path.rstrip("/")
        self.server_name = configuration.tls_server_name or self.host
        self.context = _tls_context(configuration) if self.https else None
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: set[http.client.HTTPConnection] = set()  # every thread's, closed with the transport
        weakref.finalize(self, _close_all, self._open, self._lock)

    def send(self, method: str, target: str, body: bytes | None, content_type: str, accept: str,
             timeout_s: float) -> Response:
        """One request (``target``: path and query) and its whole answer."""
        headers = {"Accept": accept, "User-Agent": self.user_agent}
        if body is not None:
            headers["Content-Type"] = content_type
        for setting in self.configuration.auth_settings().values():
            if setting.get("in") == "header" and setting.get("value"):
                headers[setting["key"]] = setting["value"]
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None or conn.sock is None:  # none kept (a closed one would reopen untracked)
            conn = self._connect(timeout_s)
        try:
            return self._exchange(conn, method, target, body, headers, timeout_s)
        except (OSError, http.client.HTTPException):
            pass  # hung up while idle, reset, timed out: once more on a fresh connection
        return self._exchange(self._connect(timeout_s), method, target, body, headers, timeout_s)

    def _connect(self, timeout_s: float) -> http.client.HTTPConnection:
        if self.context is not None:
            conn: http.client.HTTPConnection = _TlsConnection(self.host, self.port, timeout=timeout_s,
                                                              context=self.context, server_name=self.server_name)
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout_s)
        self._local.conn = conn
        with self._lock:
            self._open.add(conn)
        return conn

    def _exchange(self, conn: http.client.HTTPConnection, method: str, target: str, body: bytes | None,
                  headers: dict[str, str], timeout_s: float) -> Response:
        try:
            if conn.sock is not None:
                conn.sock.settimeout(timeout_s)
            else:
                conn.timeout = timeout_s
            conn.request(method, self.prefix + target, body=body, headers=headers)
            answer = conn.getresponse()
            data = answer.read()
        except BaseException:
            self._drop(conn)  # in an unknown state: never reused
            raise
        if answer.will_close:
            self._drop(conn)
        return Response(answer.status, answer.reason, answer.getheader("Retry-After"), data)

    def _drop(self, conn: http.client.HTTPConnection) -> None:
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None
        with self._lock:
            self._open.discard(conn)
        _close_quietly(conn)


def _close_all(conns: set[http.client.HTTPConnection], lock: threading.Lock) -> None:
    with lock:
        found = list(conns)
        conns.clear()
    for conn in found:
        _close_quietly(conn)


def _close_quietly(conn: http.client.HTTPConnection) -> None:
    try:
        conn.close()
    except OSError:
        pass


def _tls_context(configuration: Any) -> ssl.SSLContext:
    """TLS as the official transport sets it up: the CA bundle (the system's when none is given),
    the client certificate, and no verification only when the kubeconfig says so."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if configuration.verify_ssl:
        if configuration.ssl_ca_cert:
            context.load_verify_locations(cafile=configuration.ssl_ca_cert)
        else:
            context.load_default_certs()
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, configuration.key_file or None)
    return context

