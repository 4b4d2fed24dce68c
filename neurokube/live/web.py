"""The HTTP edge shared by the function entry points: parsing, limits, auth and error mapping.

Errors are mapped to HTTP here and only here: an :class:`~neurokube.errors.InputError` (bad input,
retrying is useless) answers 400 with ``{"error": message}`` (a
:class:`~neurokube.errors.NotFoundError`, input naming an object that does not exist, 404; a
:class:`~neurokube.errors.RefusedError`, a request the apiserver's own objects contradict, its
403/409/410 with a ``reason``); an apiserver's refusal (a 4xx other than 408/429 that the code did
not handle) answers 422: final, never retried; a :class:`~neurokube.errors.TemporaryError` (a
dependency is down, an apiserver 5xx or 429) answers 503 with ``Retry-After``, which Knative's
delivery retries; :class:`HttpError` carries the few other statuses (401, 404, 405, 413, 415).
Anything else is a bug: it is logged with its traceback and answers 500. Every answer is JSON and
carries the request id, which is also in every log line of the request. Who may call at all is
:mod:`neurokube.live.auth`.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable

import flask
from cloudevents import exceptions as ce_exceptions
from cloudevents.http import CloudEvent, from_http

from neurokube.errors import ApiStatusError, InputError, NotFoundError, RefusedError, TemporaryError
from neurokube.live import auth
from neurokube.live.telemetry import Telemetry
from neurokube.logs import event

log = logging.getLogger("neurokube.live.web")


class HttpError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def request_id(request: flask.Request) -> str:
    given = request.headers.get("X-Request-Id") or request.headers.get("ce-id") or ""
    return given[:64] if given and given.isprintable() else uuid.uuid4().hex


def json_response(doc: object, status: int = 200, headers: dict[str, str] | None = None) -> flask.Response:
    return json_text_response(json.dumps(doc, separators=(",", ":")), status, headers)


def json_text_response(text: str, status: int = 200, headers: dict[str, str] | None = None) -> flask.Response:
    """An answer whose JSON is already encoded (``text``)."""
    response = flask.Response(text + "\n", status=status, mimetype="application/json")
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def unread_body_response(doc: object, status: int, headers: dict[str, str] | None = None) -> flask.Response:
    """An answer given before the request body was read (401, 404, 405, 413, 415), which must stay
    unread: functions-framework reads the whole remaining body after every non-streamed response
    (an ``after_request`` hook, with no limit), so the answer is a stream; and ``Connection: close``
    keeps gunicorn from reading it to reach a next request on the connection. The sender may see
    the connection closed while it is still sending; the answer has already been written."""
    payload = (json.dumps(doc, separators=(",", ":")) + "\n").encode()
    response = flask.Response(iter([payload]), status=status, mimetype="application/json")
    response.headers["Content-Length"] = str(len(payload))
    response.headers["Connection"] = "close"
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def read_body(request: flask.Request, max_bytes: int) -> bytes:
    """The request body, refusing more than ``max_bytes`` (413) before reading it all."""
    length = request.content_length
    if length is not None and length > max_bytes:
        raise HttpError(413, f"request body of {length} bytes exceeds the limit of {max_bytes}")
    body = request.stream.read(max_bytes + 1)
    if len(body) > max_bytes:
        raise HttpError(413, f"request body exceeds the limit of {max_bytes} bytes")
    return body


def read_json(request: flask.Request, max_bytes: int) -> object:
    content_type = (request.mimetype or "").lower()
    if content_type and content_type != "application/json":
        raise HttpError(415, f"expected application/json, got {content_type}")
    body = read_body(request, max_bytes)
    if not body.strip():
        raise InputError("empty request body", why="expected a JSON document")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError("request body is not valid JSON", why=str(exc)[:300]) from None
    except RecursionError:
        raise InputError("request body is not valid JSON", why="nested too deeply") from None


def parse_cloud_event(request: flask.Request, max_bytes: int) -> CloudEvent:
    """A CloudEvent in binary or structured content mode (cloudevents SDK); InputError if it is not
    one, or if a required attribute is not a string (structured mode lets JSON numbers through)."""
    body = read_body(request, max_bytes)
    try:
        ce = from_http(dict(request.headers), body)
    except ce_exceptions.GenericException as exc:
        raise InputError("not a valid CloudEvent", why=str(exc).splitlines()[0][:300]) from None
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise InputError("not a valid CloudEvent", why=f"{type(exc).__name__}: {exc}"[:300]) from None
    except RecursionError:
        raise InputError("not a valid CloudEvent", why="JSON nested too deeply") from None
    for attribute in ("specversion", "type", "source", "id"):
        if not isinstance(ce.get(attribute), str):
            raise InputError("not a valid CloudEvent",
                             why=f"attribute {attribute} must be a string, got {type(ce.get(attribute)).__name__}")
    return ce


def authenticate(request: flask.Request, authenticator: auth.Authenticator, telemetry: Telemetry) -> auth.Principal:
    """The caller of ``request``, or 401 with ``WWW-Authenticate`` and the reason (counted)."""
    try:
        return authenticator.check(request.headers.get("Authorization"))
    except auth.Unauthorized as exc:
        telemetry.auth_failures.labels(reason=exc.reason).inc()
        raise HttpError(401, f"unauthorized: {exc.message}", {"WWW-Authenticate": 'Bearer realm="neurokube"'}) \
            from None


def plain_cloud_event(settings, telemetry: Telemetry, function: str, handle: Callable[[], object]) -> None:
    """A ``@functions_framework.cloud_event`` target's body: authenticate the caller of ``function``,
    run ``handle``, and answer what goes wrong through ``flask.abort`` (that signature has no
    response of its own): an :class:`HttpError` with its status, bad input 400, a temporary
    failure 503."""
    try:
        authenticate(flask.request, authenticator(settings, function), telemetry)
        handle()
    except HttpError as exc:
        flask.abort(exc.status, description=exc.message)
    except InputError as exc:
        flask.abort(400, description=str(exc))
    except TemporaryError as exc:
        flask.abort(503, description=str(exc))


_authenticators: dict[tuple[object, str], auth.Authenticator] = {}
_authenticators_lock = threading.Lock()


def authenticator(settings, function: str) -> auth.Authenticator:
    """The process's authenticator of ``function`` (built once per distinct settings).

    The issuer's keys are read with the function's own Kubernetes credentials (a client of its
    own, so that checking a caller never waits for or starts the watch cache)."""
    key = (settings, function)  # frozen, hashable settings: equal settings share one authenticator
    with _authenticators_lock:
        found = _authenticators.get(key)
        if found is None:
            keys = None
            if settings.oidc_audience is not None:
                keys = auth.IssuerKeys(_issuer_fetcher(settings), settings.oidc_issuer)
            found = auth.Authenticator(token=settings.static_token(function), audience=settings.oidc_audience,
                                       keys=keys, subjects=settings.oidc_subject_list, insecure=settings.insecure)
            _authenticators[key] = found
        return found


def _issuer_fetcher(settings):
    client = None

    def fetch(path: str) -> dict:
        nonlocal client
        if client is None:
            from neurokube.adapters.kube import KubeClient

            client = KubeClient.from_settings(settings.kubeconfig, settings.request_timeout_s)
        return client.request("GET", path, accept="application/jwk-set+json, application/json")

    return fetch


def check_startup(settings, function: str, telemetry: Telemetry) -> None:
    """At import of a function: refuse to start without a way to authenticate callers (InputError,
    the function's start-up fails with the reason), warn and set ``neurokube_insecure`` when
    NEUROKUBE_INSECURE=1 leaves it open."""
    problem = settings.auth_problem(function)
    if problem is not None:
        raise InputError("refusing to start", where="environment", why=problem)
    open_ = authenticator(settings, function).open
    telemetry.insecure.set(1 if open_ else 0)
    if open_:
        event(log, "accepting unauthenticated requests (NEUROKUBE_INSECURE=1)", logging.WARNING, function=function)


def metrics_response(telemetry: Telemetry) -> flask.Response:
    return flask.Response(telemetry.exposition(), status=200, headers={"Content-Type": telemetry.content_type})


def readiness_response(settings, ready: Callable[[], tuple[dict, bool]] | None = None) -> flask.Response:
    """``GET /readyz``: 200 once the watch cache has listed (metrics may be stale: scheduling
    degrades, it does not stop), 503 before; the body says what is missing. It also starts the
    runtime, so a launcher polling it warms the function up. ``ready``: the function's own check
    instead (the actuator has no runtime)."""
    from neurokube.live.handlers import readiness

    doc, ok = ready() if ready is not None else readiness(settings)
    return json_response(doc, 200 if ok else 503)


def operational(request: flask.Request, settings, telemetry: Telemetry, function: str,
                ready: Callable[[], tuple[dict, bool]] | None = None) -> flask.Response | None:
    """The GET endpoints every function serves the same way: /metrics, / and /healthz (alive,
    needs no cluster), /readyz (the watch cache has listed); None for any other request."""
    if request.method != "GET":
        return None
    if request.content_length or "chunked" in request.headers.get("Transfer-Encoding", "").lower():
        return unread_body_response({"error": "a GET request takes no body"}, 400)  # never read one
    if request.path == "/metrics":
        return metrics_response(telemetry)
    if request.path in ("/", "/healthz"):
        return json_response({"ok": True})
    if request.path == "/readyz":
        return serve(request, telemetry, lambda _: readiness_response(settings, ready), function)
    return None


def serve(request: flask.Request, telemetry: Telemetry, handler: Callable[[str], flask.Response],
          function: str) -> flask.Response:
    """Run ``handler(request_id)`` and map whatever it raises to an HTTP answer."""
    rid = request_id(request)
    started = time.perf_counter()
    try:
        response = handler(rid)
    except HttpError as exc:
        response = unread_body_response({"error": exc.message, "request_id": rid}, exc.status, exc.headers)
    except InputError as exc:
        event(log, "bad request", logging.INFO, function=function, path=request.path, error=str(exc),
              request_id=rid)
        status = 404 if isinstance(exc, NotFoundError) else exc.status if isinstance(exc, RefusedError) else 400
        doc = {"error": str(exc), "request_id": rid}
        if isinstance(exc, RefusedError):
            doc["reason"] = exc.reason
        response = json_response(doc, status)
    except ApiStatusError as exc:
        if not exc.permanent:
            event(log, "temporarily unable to serve", logging.WARNING, function=function, path=request.path,
                  error=str(exc), request_id=rid)
            response = json_response({"error": str(exc), "request_id": rid}, 503, {"Retry-After": "1"})
        else:
            # The apiserver refused (403, 422, ...): the same request would be refused again, so the
            # answer is final (4xx), not a 503 that Knative would retry.
            event(log, "the apiserver refused", logging.WARNING, function=function, path=request.path,
                  error=str(exc), status=exc.status, request_id=rid)
            response = json_response({"error": f"the apiserver refused: {exc}", "request_id": rid}, 422)
    except TemporaryError as exc:
        event(log, "temporarily unable to serve", logging.WARNING, function=function, path=request.path,
              error=str(exc), request_id=rid)
        retry = str(max(1, math.ceil(getattr(exc, "delay_s", 1.0))))
        response = json_response({"error": str(exc), "request_id": rid}, 503, {"Retry-After": retry})
    except Exception as exc:  # noqa: BLE001 - a bug: log it, answer 500 without internals
        log.exception("unexpected error", extra={"fields": {"function": function, "path": request.path,
                                                            "request_id": rid}})
        response = json_response({"error": f"internal error ({type(exc).__name__})", "request_id": rid}, 500)
    response.headers["X-Request-Id"] = rid
    telemetry.requests.labels(path=_path_label(request.path), code=str(response.status_code)).inc()
    event(log, "request", logging.DEBUG, function=function, method=request.method, path=request.path,
          status=response.status_code, ms=round((time.perf_counter() - started) * 1000, 2), request_id=rid)
    return response


def _path_label(path: str) -> str:
    known = ("/", "/metrics", "/healthz", "/readyz", "/filter", "/prioritize", "/bind")
    return path if path in known else "other"


def cloud_event_endpoint(request: flask.Request, settings, telemetry: Telemetry, function: str, what: str,
                         on_event: Callable[[CloudEvent, str], object],
                         ready: Callable[[], tuple[dict, bool]] | None = None) -> flask.Response:
    """The whole HTTP entry of a CloudEvent function (binder, sweeper, actuator): the GET endpoints
    (``ready``: the function's own readiness check), then token, path, method and body limit, then
    ``on_event(event, request_id)`` answered as JSON."""
    answer = operational(request, settings, telemetry, function, ready)
    if answer is not None:
        return answer

    def handle(request_id: str) -> flask.Response:
        authenticate(request, authenticator(settings, function), telemetry)
        if request.path != "/":
            raise HttpError(404, f"no such path {request.path}; POST {what} to /")
        if request.method != "POST":
            raise HttpError(405, "POST a CloudEvent", {"Allow": "GET, POST"})
        ce = parse_cloud_event(request, settings.max_event_bytes)
        return json_response(on_event(ce, request_id))

    return serve(request, telemetry, handle, function)
