"""The scheduler extender: kube-scheduler POSTs ExtenderArgs to /filter and /prioritize (and
ExtenderBindingArgs to /bind when configured); NeuroKube answers with its feasibility and its
learned scores 0..10 (neurokube.live.extender).

Malformed arguments answer 400 with a message, a /bind for a pod that does not exist 404; with
NEUROKUBE_TOKEN set, a request without the bearer token answers 401 (constant-time comparison),
before anything else is looked at; bodies above NEUROKUBE_MAX_BODY_BYTES 413. GET /metrics,
/healthz and /readyz need no token.
"""

from __future__ import annotations

import flask
import functions_framework

from neurokube.live import handlers, web
from neurokube.live.settings import from_env
from neurokube.live.telemetry import process_telemetry
from neurokube.logs import configure_logging

SETTINGS = from_env()
configure_logging(debug=SETTINGS.debug)
TELEMETRY = process_telemetry()


@functions_framework.http
def extender(request: flask.Request) -> flask.Response:
    answer = web.operational(request, SETTINGS, TELEMETRY, "extender")
    if answer is not None:
        return answer

    def handle(request_id: str) -> flask.Response:
        web.require_token(request, SETTINGS.token)
        verb = request.path.strip("/")
        if verb not in handlers.EXTENDER_VERBS:
            raise web.HttpError(404, f"no such verb {request.path}; use /filter, /prioritize or /bind")
        if request.method != "POST":
            raise web.HttpError(405, "POST ExtenderArgs", {"Allow": "POST"})
        doc = web.read_json(request, SETTINGS.max_body_bytes)
        with TELEMETRY.extender_seconds.labels(verb=verb).time():
            return web.json_response(handlers.extender_call(verb, doc, SETTINGS))

    return web.serve(request, TELEMETRY, handle, "extender")
