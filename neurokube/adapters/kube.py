"""The one Kubernetes client of the project: the official ``kubernetes`` package, JSON decoded here.

Every Kubernetes access (the live functions, the cluster tooling, the trainer, the bench, the load
tests) goes through :class:`KubeClient`. Credentials and transport are the official client's:
``kubernetes.config`` reads kubeconfigs (``KUBECONFIG`` lists merged, exec credential plugins,
tokens and token files, relative certificate paths, ``tls-server-name``, ``insecure-skip-tls-verify``)
and the in-cluster service account (its rotating token re-read every minute); requests go through
its ``ApiClient`` and watches through its ``Watch``.

What is done here, and why:

* Requests use ``_preload_content=False`` and the JSON is decoded with :func:`json.loads`, never
  into the generated models. The hot paths (pod and node lists, watch events, Bindings) would pay
  for model deserialisation they do not use, and the Binding subresource answers with a ``Status``
  that the generated ``create_namespaced_binding`` fails to deserialise (kubernetes-client/python
  issues #547 and #825).
* A 429 answer (API Priority and Fairness) is retried after its ``Retry-After`` seconds (capped),
  like client-go; a client-side rate limit (token bucket: ``qps``, ``burst``) is optional. A caller
  for whom a 429 is an answer, not a throttle (the Eviction API refuses with 429 when a
  PodDisruptionBudget allows no disruption), passes ``retry_429=False``.
* ``proxy-url`` of a kubeconfig cluster is read here (the official loader ignores it), bearer
  tokens are trimmed (it keeps a token file's newline), and an exec plugin that fails is an error
  at start (it only logs the failure).
* ``lean=True`` (the live functions) sends the requests, not the watches, through
  :mod:`neurokube.adapters.kube_http`, a kept ``http.client`` connection per thread with the
  official client's configuration and credentials: about half the CPU per request (why it is
  hand-written is there). A configuration it does not handle (a proxy, for one) keeps the official
  transport.
* Errors: an apiserver answer >= 400 is an :class:`~neurokube.errors.ApiStatusError` with the
  ``Status`` reason, message and details (the kind and name of the object it is about); an
  unreachable apiserver (refused, reset, timed out, TLS failure) is a
  :class:`~neurokube.errors.TemporaryError`; an unusable kubeconfig or exec plugin is an
  :class:`~neurokube.errors.InputError`.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import urllib3
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch
from kubernetes.client.exceptions import ApiException
from kubernetes.client.rest import should_bypass_proxies
from kubernetes.config.config_exception import ConfigException
from kubernetes.config.incluster_config import InClusterConfigLoader

from neurokube.adapters.kube_http import LeanTransport, unsupported
from neurokube.errors import ApiStatusError, InputError, StatusDetails, TemporaryError

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
MAX_429_RETRIES = 5
MAX_RETRY_AFTER_S = 10.0
POOL_SIZE = 64  # concurrent connections kept to the apiserver (binder threads, watches, probes)

KubeError = ApiStatusError  # the error status of an apiserver answer (neurokube.errors)


class RateLimit:
    """A token bucket: at most ``qps`` requests a second on average, ``burst`` at once (0 = off)."""

    def __init__(self, qps: float, burst: int, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if qps < 0 or burst < 0:
            raise InputError("the Kubernetes client's rate limit must not be negative", why=f"qps={qps} burst={burst}")
        self.qps = qps
        self.burst = max(1, burst) if qps > 0 else 0
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(self.burst)
        self._stamp = clock()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take one token, sleeping until it is there; returns the seconds slept."""
        if self.qps <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.qps)
            self._stamp = now
            self._tokens -= 1.0
            wait = -self._tokens / self.qps if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
        return wait


class KubeClient:
    """JSON over the official client's ``ApiClient``: ``get``/``create``/``merge_patch``/``delete``/
    ``request`` and ``watch``. Thread-safe (one connection pool shared by all threads)."""

    def __init__(self, configuration: k8s.Configuration, timeout_s: float = 10.0,
                 user_agent: str = "neurokube", qps: float = 0.0, burst: int = 0,
                 sleep: Callable[[float], None] = time.sleep, lean: bool = False) -> None:
        """``lean``: requests (not watches) over :mod:`neurokube.adapters.kube_http` when it
        handles the configuration (:attr:`transport` says which is used)."""
        configuration.connection_pool_maxsize = max(configuration.connection_pool_maxsize or 0, POOL_SIZE)
        # One retry on a fresh connection when a kept-alive one was closed by the server; every
        # write here is idempotent or guarded (a second Binding answers 409).
        configuration.retries = urllib3.Retry(total=1, connect=1, read=1, redirect=0, status=0,
                                              allowed_methods=None, raise_on_status=False)
        self.configuration = configuration
        self.server = configuration.host.rstrip("/")
        self.timeout_s = timeout_s
        self.api = k8s.ApiClient(configuration)
        self.api.user_agent = user_agent
        self.rate_limit = RateLimit(qps, burst)
        self._sleep = sleep
        proxied = bool(configuration.proxy) and not should_bypass_proxies(configuration.host,
                                                                          no_proxy=configuration.no_proxy or "")
        self._lean = (LeanTransport(configuration, user_agent) if lean and not unsupported(configuration, proxied)
                      else None)
        self.transport = "lean" if self._lean is not None else "official"

    # -- construction ----------------------------------------------------------------------------

    @classmethod
    def from_kubeconfig(cls, path: str | Path | None = None, timeout_s: float = 10.0, context: str | None = None,
                        **options: Any) -> KubeClient:
        """The (current or named) context of a kubeconfig; ``path`` may be a ``KUBECONFIG``-style list
        (``a:b``), merged as kubectl does. None reads ``$KUBECONFIG`` or ``~/.kube/config``."""
        where = str(path) if path is not None else os.environ.get("KUBECONFIG", "~/.kube/config")
        where = os.pathsep.join(os.path.expanduser(p) for p in where.split(os.pathsep))
        if not any(Path(p).is_file() for p in where.split(os.pathsep) if p):
            raise InputError("unreadable kubeconfig", where=where, why="no such file")
        configuration = k8s.Configuration()
        try:
            k8s_config.load_kube_config(config_file=where, context=context, client_configuration=configuration,
                                        persist_config=False)
        except (ConfigException, OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
            raise InputError("unusable kubeconfig", where=where, why=_one_line(exc)) from None
        cluster, user = _chosen(where, context)
        if not cluster.get("server"):
            raise InputError("unusable kubeconfig", where=where, why="its cluster has no server")
        if user.get("exec") and not configuration.api_key.get("BearerToken") and not configuration.cert_file:
            raise InputError("unusable kubeconfig", where=where,
                             why=f"the exec credential plugin {user['exec'].get('command')!r} gave no credentials "
                                 "(its error is logged above)")
        if cluster.get("proxy-url"):
            configuration.proxy = cluster["proxy-url"]
        _strip_tokens(configuration)
        return cls(configuration, timeout_s, **options)

    @classmethod
    def in_cluster(cls, timeout_s: float = 10.0, sa_dir: Path = SA_DIR, **options: Any) -> KubeClient:
        """The pod's service account (its projected token re-read every minute)."""
        configuration = k8s.Configuration()
        try:
            InClusterConfigLoader(
                token_filename=str(sa_dir / "token"), cert_filename=str(sa_dir / "ca.crt"),
            ).load_and_set(configuration)
        except (ConfigException, OSError) as exc:
            raise InputError("not running in a cluster and no kubeconfig is set",
                             why=f"{_one_line(exc)}; set KUBECONFIG or run with a service account") from None
        _strip_tokens(configuration)
        return cls(configuration, timeout_s, **options)

    @classmethod
    def from_settings(cls, kubeconfig: Path | None, timeout_s: float, **options: Any) -> KubeClient:
        return cls.from_kubeconfig(kubeconfig, timeout_s, **options) if kubeconfig else cls.in_cluster(timeout_s,
                                                                                                      **options)

    # -- verbs ------------------------------------------------------------------------------------

    def get(self, path: str, **query: str) -> Any:
        return self.request("GET", path, query=query)

    def create(self, path: str, body: dict) -> Any:
        return self.request("POST", path, body)

    def merge_patch(self, path: str, body: dict) -> Any:
        return self.request("PATCH", path, body, content_type=MERGE_PATCH)

    def delete(self, path: str, body: dict | None = None) -> Any:
        return self.request("DELETE", path, body)

    def request(self, method: str, path: str, body: Any = None, query: dict[str, str] | None = None,
                content_type: str = JSON, accept: str = JSON, raw: bool = False, retry_429: bool = True) -> Any:
        """One request; the decoded JSON answer (None when empty), or its text with ``raw``.
        ``accept`` is for the few documents that are not plain JSON (the issuer's ``/openid/v1/jwks``
        is served only as ``application/jwk-set+json``). ``retry_429=False``: a 429 is raised at once."""
        payload = self._call(method, path, body, query, content_type, accept, self.timeout_s, retry_429)
        if raw:
            return payload.decode()
        return json.loads(payload) if payload else None

    def watch(self, path: str, query: dict[str, str], read_timeout_s: float) -> Iterator[dict]:
        """Stream watch events (dicts with ``type`` and ``object``) until the server ends the watch.

        An ``ERROR`` event (e.g. ``410 Gone``) is passed on as an event, as the apiserver sent it.
        """
        query = dict(query)
        seconds = query.pop("timeoutSeconds", None)

        def open_stream(watch: bool, _preload_content: bool, timeout_seconds: int | str | None = None,
                        resource_version: str | None = None) -> urllib3.BaseHTTPResponse:
            params = {**query, "watch": "true"}
            if timeout_seconds is not None:
                params["timeoutSeconds"] = str(timeout_seconds)
            if resource_version is not None:
                params["resourceVersion"] = resource_version
            return self._open("GET", path, None, params, JSON, JSON, (self.timeout_s, read_timeout_s))

        # With timeout_seconds the official Watch never re-opens on its own: one server-side watch,
        # then the caller decides (re-list or re-watch), as the watch cache does.
        options: dict[str, Any] = {"timeout_seconds": seconds if seconds is not None else int(read_timeout_s)}
        if "resourceVersion" in query:
            options["resource_version"] = query.pop("resourceVersion")
        watcher = k8s_watch.Watch()
        try:
            for item in watcher.stream(open_stream, **options):
                yield {"type": item["type"], "object": item["raw_object"]}
        except ApiException as exc:
            if exc.status and exc.status >= 400 and exc.body is None and exc.reason:
                # The official Watch turns an ERROR event into an exception; give it back as the event.
                yield {"type": "ERROR", "object": {"kind": "Status", "code": exc.status, "message": exc.reason}}
                return
            raise _status_error(exc, "WATCH", path) from None
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            raise TemporaryError(f"watch {path} broke: {_one_line(exc)}") from None
        finally:
            watcher.stop()

    # -- plumbing ---------------------------------------------------------------------------------

    def _call(self, method: str, path: str, body: Any, query: dict[str, str] | None, content_type: str,
              accept: str, timeout: float | tuple[float, float], retry_429: bool = True) -> bytes:
        if self._lean is not None and isinstance(timeout, (int, float)):
            return self._lean_call(method, path, body, query, content_type, accept, float(timeout), retry_429)
        response = self._open(method, path, body, query, content_type, accept, timeout, retry_429)
        try:
            return response.data
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise TemporaryError(f"kube-apiserver at {self.server}: {method} {path}: {_one_line(exc)}") from None
        finally:
            response.release_conn()

    def _lean_call(self, method: str, path: str, body: Any, query: dict[str, str] | None, content_type: str,
                   accept: str, timeout_s: float, retry_429: bool) -> bytes:
        """:meth:`_call` over the lean transport: the same retries, errors and answers."""
        assert self._lean is not None
        target = urllib.parse.quote(path, safe="/:@!$&'()*+,;=-._~%") + (
            "?" + urllib.parse.urlencode(query) if query else "")
        payload = None if body is None else json.dumps(body, separators=(",", ":"), default=_jsonable).encode()
        for attempt in range(MAX_429_RETRIES + 1):
            self.rate_limit.acquire()
            try:
                answer = self._lean.send(method, target, payload, content_type, accept, timeout_s)
            except ConfigException as exc:  # an exec plugin that fails on a token refresh
                raise TemporaryError(f"Kubernetes credentials could not be refreshed: {_one_line(exc)}") from None
            except (OSError, http.client.HTTPException) as exc:
                raise TemporaryError(f"kube-apiserver at {self.server} unreachable: {method} {path}: "
                                     f"{_one_line(exc)}") from None
            if answer.status == 429 and retry_429 and attempt < MAX_429_RETRIES:
                self._sleep(_retry_after_value(answer.retry_after))
                continue
            if answer.status >= 400:
                raise _status_from(answer.status, answer.reason, answer.body, method, path)
            return answer.body
        raise AssertionError("unreachable")  # the loop returns or raises

    def _open(self, method: str, path: str, body: Any, query: dict[str, str] | None, content_type: str,
              accept: str, timeout: float | tuple[float, float], retry_429: bool = True) -> urllib3.BaseHTTPResponse:
        headers = {"Accept": accept, "Content-Type": content_type}
        params = list(query.items()) if query else None
        for attempt in range(MAX_429_RETRIES + 1):
            self.rate_limit.acquire()
            try:
                return self.api.call_api(path, method, query_params=params, header_params=dict(headers),
                                         body=body, auth_settings=["BearerToken"], _preload_content=False,
                                         _return_http_data_only=True, _request_timeout=timeout)
            except ApiException as exc:
                if exc.status == 429 and retry_429 and attempt < MAX_429_RETRIES:
                    self._sleep(_retry_after(exc))
                    continue
                if not exc.status:
                    raise TemporaryError(f"kube-apiserver at {self.server}: {method} {path}: "
                                         f"{_one_line(exc.reason)}") from None
                raise _status_error(exc, method, path) from None
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise TemporaryError(f"kube-apiserver at {self.server} unreachable: {method} {path}: "
                                     f"{_one_line(exc)}") from None
            except ConfigException as exc:  # an exec plugin that fails on a token refresh
                raise TemporaryError(f"Kubernetes credentials could not be refreshed: {_one_line(exc)}") from None
        raise AssertionError("unreachable")  # the loop returns or raises


def _status_error(exc: ApiException, method: str, path: str) -> ApiStatusError:
    """The apiserver's ``Status`` answer as an :class:`ApiStatusError`."""
    return _status_from(int(exc.status), str(exc.reason or ""), exc.body, method, path)


def _jsonable(value: object) -> object:
    """What the official client's serialiser makes of a date in a body (ISO 8601); the rest is refused."""
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _status_from(status: int, reason: str, body: bytes | str | None, method: str, path: str) -> ApiStatusError:
    """An answer >= 400 (its HTTP reason phrase and body, a ``Status`` or not) as an :class:`ApiStatusError`."""
    try:
        doc = json.loads(body) if body else {}
        if not isinstance(doc, dict):
            doc = {}
    except ValueError:
        text = body.decode(errors="replace") if isinstance(body, bytes) else str(body)
        doc = {"message": text[:200]}
    return ApiStatusError(status, doc.get("reason") or reason, doc.get("message", ""), method, path,
                          _details(doc.get("details")))


def _details(doc: object) -> StatusDetails:
    """A Status's ``details`` (which object the answer is about); empty fields where it has none."""
    if not isinstance(doc, dict):
        return StatusDetails()
    kind, name, group = (doc.get(key) for key in ("kind", "name", "group"))
    return StatusDetails(kind if isinstance(kind, str) else "", name if isinstance(name, str) else "",
                         group if isinstance(group, str) else "")


def _retry_after(exc: ApiException) -> float:
    """Seconds to wait after a 429: its ``Retry-After`` (capped), else one second."""
    return _retry_after_value((exc.headers or {}).get("Retry-After") if exc.headers is not None else None)


def _retry_after_value(raw: str | None) -> float:
    """A ``Retry-After`` header's seconds (capped; one second when absent or not a number)."""
    if raw is None:
        return 1.0
    try:
        return min(MAX_RETRY_AFTER_S, max(0.0, float(raw)))
    except ValueError:
        return 1.0


def _chosen(where: str, context: str | None) -> tuple[dict, dict]:
    """The cluster and user entries of the chosen context, first file first (kubectl's merge rule)."""
    docs = []
    for name in where.split(os.pathsep):
        try:
            doc = yaml.safe_load(Path(name).read_text())
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(doc, dict):
            docs.append(doc)

    def first(section: str, name: str | None) -> dict:
        for doc in docs:
            for item in doc.get(section) or []:
                if isinstance(item, dict) and item.get("name") == name:
                    return item.get(section[:-1]) or {}
        return {}

    wanted = context or next((d["current-context"] for d in docs if d.get("current-context")), None)
    chosen = first("contexts", wanted)
    return first("clusters", chosen.get("cluster")), first("users", chosen.get("user"))


def _strip_tokens(configuration: k8s.Configuration) -> None:
    """Trim whitespace around bearer tokens, as kubectl does: the official loader keeps the newline
    that ends most token files, and http.client refuses a header value with a newline."""
    inner = [configuration.refresh_api_key_hook]

    def refresh(config: k8s.Configuration) -> None:
        if inner[0] is not None:
            inner[0](config)
        if config.refresh_api_key_hook is not refresh:  # the loaders re-install their hook on each call
            inner[0] = config.refresh_api_key_hook
            config.refresh_api_key_hook = refresh
        token = config.api_key.get("BearerToken")
        if token:
            config.api_key["BearerToken"] = token.strip()

    configuration.refresh_api_key_hook = refresh
    token = configuration.api_key.get("BearerToken")
    if token:
        configuration.api_key["BearerToken"] = token.strip()


def _one_line(exc: object) -> str:
    return " ".join(str(exc).split())[:300]
