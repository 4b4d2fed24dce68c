"""The dead-letter sink: the Broker (and every Trigger, deploy/knative/eventing.yaml) delivers here
the events it gave up on after its retries, so that a lost pod event leaves a trace.

Each dead letter becomes one JSON warning log line with the event's attributes (``id``, ``type``,
``source``, ``subject``, ``time``), the size of its data (never the data: a pod may be large and
is not a log's business) and the extensions Knative adds to a dead-lettered event: the
destination that failed (``knativeerrordest``), its last HTTP status (``knativeerrorcode``) and the
start of its answer (``knativeerrordata``, base64, decoded and cut to 256 characters). Nothing
is retried from here: a pending pod whose event was lost is placed by the minute sweep anyway.

``POST /`` answers 200 ``{"logged": true}``; a request that is not a CloudEvent 400, a body over
1 MiB 413, another method 405; ``GET /`` and ``/healthz`` answer 200 (the readiness probe). The
sink needs no Kubernetes API, no secret and no writable file.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging

import flask
import functions_framework
from cloudevents import exceptions as ce_exceptions
from cloudevents.http import from_http

from neurokube.logs import configure_logging, event

log = logging.getLogger("neurokube.functions.deadletter")
MAX_BYTES = 1024 * 1024
ERROR_DATA_CHARS = 256
ATTRIBUTES = ("id", "type", "source", "subject", "time")


def answer(doc: dict, status: int = 200) -> flask.Response:
    return flask.Response(json.dumps(doc) + "\n", status=status, mimetype="application/json")


def error_data(value: object) -> str:
    """Knative's ``knativeerrordata`` (base64 of the failed answer's body), readable and short."""
    if not isinstance(value, str):
        return ""
    try:
        text = base64.b64decode(value, validate=True).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        text = value
    text = "".join(c if c.isprintable() else " " for c in text)
    return text[:ERROR_DATA_CHARS]


def record(ce, size: int) -> dict:
    """The log fields of one dead letter."""
    fields = {name: str(ce.get(name) or "")[:512] for name in ATTRIBUTES}
    fields.update(error_dest=str(ce.get("knativeerrordest") or "")[:512],
                  error_code=str(ce.get("knativeerrorcode") or ""),
                  error_data=error_data(ce.get("knativeerrordata")), data_bytes=size)
    return fields


configure_logging()


@functions_framework.http
def dead_letter(request: flask.Request) -> flask.Response:
    if request.method == "GET" and request.path in ("/", "/healthz"):
        return answer({"ok": True})
    if request.method != "POST":
        return answer({"error": "POST a CloudEvent"}, 405)
    if (request.content_length or 0) > MAX_BYTES:
        return answer({"error": f"body over {MAX_BYTES} bytes"}, 413)
    body = request.stream.read(MAX_BYTES + 1)
    if len(body) > MAX_BYTES:
        return answer({"error": f"body over {MAX_BYTES} bytes"}, 413)
    try:
        ce = from_http(dict(request.headers), body)
    except (ce_exceptions.GenericException, ValueError, TypeError) as exc:
        return answer({"error": f"not a CloudEvent: {type(exc).__name__}: {str(exc)[:200]}"}, 400)
    fields = record(ce, len(body))
    event(log, "dead letter", logging.WARNING, **fields)
    return answer({"logged": True, "id": fields["id"]})
