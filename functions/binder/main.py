"""The binder: places pods of ``schedulerName: neurokube`` as the ApiServerSource reports them.

Two targets over the same handler (neurokube.live.handlers.on_pod_event):

* ``binder`` (``--signature-type http``, the one deployed): parses the CloudEvent itself with the
  cloudevents SDK, answers JSON (4xx for bad input, 503 for a dependency that is down, never 500
  for bad input) and serves ``GET /metrics`` and ``GET /healthz`` on the same port. A POST needs
  ``Authorization: Bearer`` with NEUROKUBE_EVENT_TOKEN or a Knative OIDC token for
  NEUROKUBE_OIDC_AUDIENCE (401 otherwise; neurokube.live.auth), and the function refuses to start
  with neither unless NEUROKUBE_INSECURE=1; bodies above NEUROKUBE_MAX_EVENT_BYTES (1 MiB) answer
  413. The event only names the pod: the apiserver's pod is placed (neurokube.live.trust);
* ``on_pod_event`` (``--signature-type cloudevent``): the plain functions-framework signature,
  which answers 4xx through ``flask.abort`` but cannot serve /metrics (only POST is routed).

docs/FUNCTIONS.md explains the choice.
"""

from __future__ import annotations

import flask
import functions_framework
from cloudevents.http import CloudEvent

from neurokube.live import handlers, web
from neurokube.live.settings import from_env
from neurokube.live.telemetry import process_telemetry
from neurokube.logs import configure_logging

SETTINGS = from_env()  # validated at start-up: a bad setting stops the function here, with the reason
configure_logging(debug=SETTINGS.debug)
TELEMETRY = process_telemetry()
web.check_startup(SETTINGS, "binder", TELEMETRY)  # no auth and no NEUROKUBE_INSECURE=1: refuse to start


@functions_framework.http
def binder(request: flask.Request) -> flask.Response:
    return web.cloud_event_endpoint(request, SETTINGS, TELEMETRY, "binder", "CloudEvents",
                                    lambda ce, rid: handlers.on_pod_event(ce, SETTINGS, rid).to_json())


@functions_framework.cloud_event
def on_pod_event(ce: CloudEvent) -> None:
    web.plain_cloud_event(SETTINGS, TELEMETRY, "binder", lambda: handlers.on_pod_event(ce, SETTINGS, ce["id"]))
