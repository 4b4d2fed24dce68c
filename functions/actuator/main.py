"""The actuator: a PingSource event (``dev.knative.sources.ping``, every minute) runs NeuroKube's
actuator on the running pods: in-place resizes and evictions (neurokube.live.acting, docs/ACTING.md).

Dry run by default (NEUROKUBE_ACTUATOR_DRY_RUN=true): the apiserver validates every action and
persists nothing. ``actuator`` (http, deployed) answers the tick's report as JSON (its actions,
their outcomes, dry_run) and serves /metrics, /healthz and /readyz; ``on_ping`` is the plain
cloud_event signature. Authentication and body limit as the sweeper's (functions/sweeper/main.py).
"""

from __future__ import annotations

import flask
import functions_framework
from cloudevents.http import CloudEvent

from neurokube.live import handlers, web
from neurokube.live.settings import from_env
from neurokube.live.telemetry import process_telemetry
from neurokube.logs import configure_logging

SETTINGS = from_env()
configure_logging(debug=SETTINGS.debug)
TELEMETRY = process_telemetry()
web.check_startup(SETTINGS, "actuator", TELEMETRY)  # no auth and no NEUROKUBE_INSECURE=1: refuse to start


@functions_framework.http
def actuator(request: flask.Request) -> flask.Response:
    return web.cloud_event_endpoint(request, SETTINGS, TELEMETRY, "actuator", "the ping CloudEvent",
                                    lambda ce, rid: handlers.on_actuator_ping(ce, SETTINGS, rid),
                                    ready=lambda: handlers.actuator_readiness(SETTINGS))


@functions_framework.cloud_event
def on_ping(ce: CloudEvent) -> None:
    web.plain_cloud_event(SETTINGS, TELEMETRY, "actuator", lambda: handlers.on_actuator_ping(ce, SETTINGS, ce["id"]))
