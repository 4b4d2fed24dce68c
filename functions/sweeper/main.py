"""The sweeper: a PingSource event (``dev.knative.sources.ping``, every minute) places the pods of
``schedulerName: neurokube`` that are still pending (neurokube.live.sweeper).

``sweeper`` (http, deployed) answers the sweep report as JSON and serves /metrics and /healthz;
``on_ping`` is the plain cloud_event signature. See functions/binder/main.py for why both, and for
the authentication (NEUROKUBE_EVENT_TOKEN or NEUROKUBE_OIDC_AUDIENCE, else NEUROKUBE_INSECURE=1) and
body limit (NEUROKUBE_MAX_EVENT_BYTES) it shares with the binder.
"""

from __future__ import annotations

import dataclasses

import flask
import functions_framework
from cloudevents.http import CloudEvent

from neurokube.live import handlers, web
from neurokube.live.settings import from_env
from neurokube.live.telemetry import process_telemetry
from neurokube.logs import configure_logging

# A credit (NEUROKUBE_LEDGER_CREDIT_SHARE) would hold room that the binders need for up to the
# reservation TTL, for the few pods a minute the sweeper places: it takes none.
SETTINGS = dataclasses.replace(from_env(), ledger_credit_share=0.0)
configure_logging(debug=SETTINGS.debug)
TELEMETRY = process_telemetry()
web.check_startup(SETTINGS, "sweeper", TELEMETRY)  # no auth and no NEUROKUBE_INSECURE=1: refuse to start


@functions_framework.http
def sweeper(request: flask.Request) -> flask.Response:
    return web.cloud_event_endpoint(request, SETTINGS, TELEMETRY, "sweeper", "the ping CloudEvent",
                                    lambda ce, rid: handlers.on_ping(ce, SETTINGS, rid))


@functions_framework.cloud_event
def on_ping(ce: CloudEvent) -> None:
    web.plain_cloud_event(SETTINGS, TELEMETRY, "sweeper", lambda: handlers.on_ping(ce, SETTINGS, ce["id"]))
