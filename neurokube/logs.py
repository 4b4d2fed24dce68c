"""Structured logging, configured once at an edge (CLI or function start-up).

Use ``log.info("message", extra={"fields": {"pod": ..., "node": ...}})`` or the helper
:func:`event`. Every record is one line on stderr: a JSON object (the functions, and the CLI when
stderr is not a terminal), or for a person at a terminal ``12:03:04 INFO  logger  message
key=value ...`` (:class:`TextFormatter`). Libraries' INFO chatter (:data:`NOISY_LOGGERS`) is held
at WARNING unless debugging.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any, Literal

#: Third-party loggers that talk at INFO (MLflow's store migrations, HTTP connection pools, font
#: caches, ...); held at WARNING unless ``debug``. A logger's level covers its children.
NOISY_LOGGERS: tuple[str, ...] = (
    "mlflow", "alembic", "huey", "sqlalchemy", "urllib3", "requests", "werkzeug", "botocore", "boto3",
    "s3transfer", "minio", "matplotlib", "PIL", "lightgbm", "kubernetes", "git", "docker", "skops",
)
LogFormat = Literal["json", "text"]


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            doc.update(fields)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


class TextFormatter(logging.Formatter):
    """One line for a person: local time, level, logger, message, then the structured fields as
    ``key=value`` (strings with spaces, quotes or ``=`` quoted; floats to 6 significant digits),
    then a traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{self.formatTime(record, '%H:%M:%S')} {record.levelname:<5} {record.name}  {record.getMessage()}"
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict) and fields:
            line += "  " + " ".join(f"{key}={_text_value(value)}" for key, value in fields.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _text_value(value: Any) -> str:
    if isinstance(value, float):
        return format(value, ".6g")
    if isinstance(value, str):
        plain = value and not any(c.isspace() or c in "\"'=" for c in value)
        return value if plain else json.dumps(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return json.dumps(value, default=str, separators=(",", ":"))


def choose_format(requested: str, is_tty: bool) -> LogFormat:
    """``auto`` is text for a terminal and JSON otherwise (a pipe, a file, a log collector)."""
    if requested == "auto":
        return "text" if is_tty else "json"
    if requested not in ("json", "text"):
        raise ValueError(f"unknown log format {requested!r} (auto, text or json)")
    return requested  # type: ignore[return-value]


def configure_logging(debug: bool = False, stream: Any = None, fmt: LogFormat = "json") -> None:
    """One handler on the root logger writing ``fmt`` lines to ``stream`` (stderr). NeuroKube's
    loggers at INFO, everything else at WARNING; with ``debug`` everything at DEBUG."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(TextFormatter() if fmt == "text" else JsonFormatter())
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.WARNING)
    logging.getLogger("neurokube").setLevel(logging.DEBUG if debug else logging.INFO)
    for name in NOISY_LOGGERS:  # some set their own level (MLflow's to INFO): override, or inherit when debugging
        logging.getLogger(name).setLevel(logging.NOTSET if debug else logging.WARNING)


def event(logger: logging.Logger, msg: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log ``msg`` with structured ``fields``."""
    logger.log(level, msg, extra={"fields": fields})


