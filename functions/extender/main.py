"""The scheduler extender: kube-scheduler POSTs ExtenderArgs to /filter and /prioritize (and
ExtenderBindingArgs to /bind when configured); NeuroKube answers with its feasibility and its
learned scores 0..10 (neurokube.live.extender).

Malformed arguments answer 400 with a message, a /bind for a pod that does not exist 404, one
for an unknown node, another scheduler's pod or a wrong UID 403/410 (neurokube.live.trust). A
request without ``Authorization: Bearer`` NEUROKUBE_TOKEN (or an OIDC token for
NEUROKUBE_OIDC_AUDIENCE) answers 401, before anything else is looked at; kube-scheduler's extender
client cannot send either, so a deployment behind a NetworkPolicy that admits only kube-scheduler
sets NEUROKUBE_INSECURE=1 on purpose (the function refuses to start with none of the three).
Bodies above NEUROKUBE_MAX_BODY_BYTES answer 413. GET /metrics, /healthz and /readyz need no token.
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
web.check_startup(SETTINGS, "extender", TELEMETRY)  # no auth and no NEUROKUBE_INSECURE=1: refuse to start


@functions_framework.http
def extender(request: flask.Request) -> flask.Response:
    answer = web.operational(request, SETTINGS, TELEMETRY, "extender")
    if answer is not None:
        return answer

    def handle(request_id: str) -> flask.Response:
        web.authenticate(request, web.authenticator(SETTINGS, "extender"), TELEMETRY)
        verb = request.path.strip("/")
        if verb not in handlers.EXTENDER_VERBS:
            raise web.HttpError(404, f"no such verb {request.path}; use /filter, /prioritize or /bind")
        if request.method != "POST":
            raise web.HttpError(405, "POST ExtenderArgs", {"Allow": "POST"})
        doc = web.read_json(request, SETTINGS.max_body_bytes)
        with TELEMETRY.extender_seconds.labels(verb=verb).time():
            return web.json_text_response(handlers.extender_reply(verb, doc, SETTINGS))

    return web.serve(request, TELEMETRY, handle, "extender")
