"""The snapshot function: a PingSource tick (``dev.knative.sources.ping``, every 15 minutes) writes
this cluster's node and pod usage from Prometheus to the object store, as hourly Parquet partitions
(``snapshots/`` and ``pod_usage/``) in the schema of the nightly loop's snapshot step (pipelines/snapshot.py).

Every tick rewrites, whole, the last NEUROKUBE_SNAPSHOT_HOURS (2) completed hours and the current
hour up to the tick (pipelines.snapshot.tick_window): the window follows the event's ``time`` (the
tick PingSource scheduled), not the clock, so a redelivered event writes the same partitions again.
A tick older than NEUROKUBE_SNAPSHOT_MAX_EVENT_AGE_S or in the future is refused (400). A store
outage spools the partitions in /tmp; the next tick delivers them first. Prometheus unreachable:
503 (Knative retries).

``snapshot`` (http, deployed) answers the run as JSON and serves /metrics and /healthz; ``on_ping``
is the plain cloud_event signature. Callers are authenticated as the sweeper's are
(functions/sweeper/main.py); settings: neurokube/live/settings.py (Prometheus, authentication) and
pipelines/settings.py (SnapshotFunctionSettings: store, selector, hours).
"""

from __future__ import annotations

import os
import time

import flask
import functions_framework
from cloudevents.http import CloudEvent

from neurokube.adapters.objectstore import open_store
from neurokube.errors import InputError
from neurokube.live import web
from neurokube.live.settings import from_env
from neurokube.live.telemetry import process_telemetry
from neurokube.logs import configure_logging
from pipelines import snapshot as step
from pipelines.settings import snapshot_function_settings
from pipelines.usage import PrometheusUsage

PING = "dev.knative.sources.ping"
SETTINGS = from_env()
SNAPSHOT = snapshot_function_settings(os.environ)
configure_logging(debug=SETTINGS.debug)
TELEMETRY = process_telemetry()
web.check_startup(SETTINGS, "snapshot", TELEMETRY)  # no auth and no NEUROKUBE_INSECURE=1: refuse to start
if SETTINGS.prometheus_url is None:
    raise InputError("refusing to start", where="environment", why="NEUROKUBE_PROMETHEUS_URL is not set")


def _verify() -> bool | str:
    """Prometheus' certificate: checked against the system trust store, or NEUROKUBE_PROM_CA_FILE."""
    if SETTINGS.prom_insecure_skip_verify:
        return False
    return True if SETTINGS.prom_ca_file is None else str(SETTINGS.prom_ca_file)


READER = PrometheusUsage(SETTINGS.prometheus_url, SNAPSHOT.snapshot.queries, SETTINGS.prom_timeout_s,
                         verify=_verify(), token_file=SETTINGS.prom_token_file)
STORE = open_store(SNAPSHOT.store)  # a bad URL or missing keys fail the start-up


def on_tick(ce: CloudEvent, request_id: str) -> dict:
    tick = step.tick_time(ce["type"], ce.get("time"), PING, time.time(), SNAPSHOT.max_event_age_s,
                          SNAPSHOT.max_event_skew_s)
    start, end, until = step.tick_window(tick, SNAPSHOT.hours, SNAPSHOT.snapshot.step_s)
    result = step.run(READER, STORE, start, end, SNAPSHOT.snapshot, until_s=until)
    TELEMETRY.events.labels(type=PING, result="handled").inc()
    TELEMETRY.snapshot_partitions.labels(result="written").inc(len(result.partitions) - len(result.spooled))
    TELEMETRY.snapshot_partitions.labels(result="spooled").inc(len(result.spooled))
    TELEMETRY.snapshot_partitions.labels(result="delivered").inc(result.delivered)
    TELEMETRY.snapshot_rows.inc(result.rows)
    return {"start_s": start, "end_s": end, "until_s": until, "rows": result.rows, "pod_rows": result.pod_rows,
            "partitions": result.partitions,
            "spooled": result.spooled, "delivered": result.delivered, "cpu_core_s": result.cpu_core_s,
            "request_id": request_id}


def _rejecting(ce: CloudEvent, request_id: str) -> dict:
    try:
        return on_tick(ce, request_id)
    except InputError:
        TELEMETRY.events.labels(type="other" if ce["type"] != PING else PING, result="rejected").inc()
        raise


@functions_framework.http
def snapshot(request: flask.Request) -> flask.Response:
    return web.cloud_event_endpoint(request, SETTINGS, TELEMETRY, "snapshot", "the ping CloudEvent", _rejecting)


@functions_framework.cloud_event
def on_ping(ce: CloudEvent) -> None:
    web.plain_cloud_event(SETTINGS, TELEMETRY, "snapshot", lambda: _rejecting(ce, ce["id"]))
