"""The recommender function: serves the per-workload recommendations written by
``neurokube recommend --csv`` (docs/FORECASTS.md).

``GET /recommendations?namespace=NS&workload=W`` answers one workload's requests, limits and
expected outcomes as JSON. A missing parameter is a 400, an unknown workload a 404, each with a
message; a missing or unreadable recommendations file a 503. The file (or a directory holding
``recommendations.csv``) is named by ``NEUROKUBE_RECOMMENDATIONS``, read at the edge only, and
re-read when its modification time changes. The settings (:class:`RecommenderFunctionSettings`)
are read once at start-up with :mod:`neurokube.envsettings`, like every function's.
"""

from __future__ import annotations

import csv
import json
import logging
import uuid
from dataclasses import dataclass
from pathlib import Path

import flask
import functions_framework

from neurokube import envsettings
from neurokube.envsettings import setting
from neurokube.logs import configure_logging, event

ENV = "NEUROKUBE_RECOMMENDATIONS"
FILE_NAME = "recommendations.csv"
NUMERIC = ("cpu_request_milli", "cpu_limit_milli", "memory_request_mib", "memory_limit_mib",
           "written_cpu_request_milli", "written_memory_request_mib", "expected_slack_core_h",
           "expected_throttled_share")


@dataclass(frozen=True)
class RecommenderFunctionSettings:
    recommendations: Path | None = setting(ENV, None,
                                           "the output of `neurokube recommend --csv`: the CSV, or a directory "
                                           "holding recommendations.csv; re-read when it changes; unset: every "
                                           "request answers 503")
    debug: bool = setting("NEUROKUBE_DEBUG", False, "debug logs")


SETTINGS = envsettings.from_env(RecommenderFunctionSettings)  # a bad value stops the start-up, naming it
configure_logging(debug=SETTINGS.debug)
log = logging.getLogger("neurokube.functions.recommender")
_cache: dict[str, object] = {"key": None, "table": {}}


class Unavailable(Exception):
    """The recommendations file cannot be read (HTTP 503)."""


def _path() -> Path:
    path = SETTINGS.recommendations
    if path is None:
        raise Unavailable(f"{ENV} is not set; point it at the output of `neurokube recommend --csv`")
    return path / FILE_NAME if path.is_dir() else path


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value else None  # NaN -> null


def load_table(path: Path) -> dict[tuple[str, str], dict]:
    """``{(namespace, workload): row}`` from a recommendations CSV."""
    table = {}
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            doc = dict(row)
            for key in NUMERIC:
                if key in doc:
                    doc[key] = _number(doc[key])
            table[(row["namespace"], row["workload"])] = doc
    return table


def _table() -> dict[tuple[str, str], dict]:
    path = _path()
    try:
        key = (str(path), path.stat().st_mtime_ns)
        if _cache["key"] != key:
            _cache["table"], _cache["key"] = load_table(path), key
    except (OSError, KeyError, csv.Error) as exc:
        raise Unavailable(f"cannot read recommendations at {path}: {exc}") from None
    return _cache["table"]  # type: ignore[return-value]


def _reply(status: int, doc: dict, request_id: str) -> flask.Response:
    return flask.Response(json.dumps(doc), status=status, mimetype="application/json",
                          headers={"X-Request-Id": request_id})


@functions_framework.http
def recommendations(request: flask.Request) -> flask.Response:
    request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex
    if request.path in ("/healthz", "/"):
        return _reply(200, {"ok": True}, request_id)
    if request.path != "/recommendations":
        return _reply(404, {"error": f"no such path {request.path}; use /recommendations"}, request_id)
    if request.method != "GET":
        return _reply(405, {"error": "use GET"}, request_id)
    namespace, workload = request.args.get("namespace", ""), request.args.get("workload", "")
    missing = [name for name, value in (("namespace", namespace), ("workload", workload)) if not value]
    if missing:
        return _reply(400, {"error": f"missing query parameter(s): {', '.join(missing)}",
                            "usage": "/recommendations?namespace=NS&workload=NAME"}, request_id)
    try:
        table = _table()
    except Unavailable as exc:
        event(log, "recommendations unavailable", logging.WARNING, request_id=request_id, error=str(exc))
        return _reply(503, {"error": str(exc)}, request_id)
    row = table.get((namespace, workload))
    if row is None:
        return _reply(404, {"error": f"no recommendation for workload {namespace}/{workload}",
                            "workloads": len(table)}, request_id)
    event(log, "recommendation served", request_id=request_id, namespace=namespace, workload=workload)
    return _reply(200, row, request_id)
