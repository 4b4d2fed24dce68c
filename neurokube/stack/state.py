"""The state directory of the local data stack and its record, ``stack.json``.

Layout::

    <state>/stack.json                  ports, pids, URLs of the running stack (this module)
    <state>/credentials.json            MinIO access and secret key, mode 0600, generated once
    <state>/logs/<component>.log        stdout and stderr of each process
    <state>/minio/                      MinIO data (the bucket lives here)
    <state>/prometheus/prometheus.yml   generated at every start
    <state>/prometheus/data/            Prometheus TSDB (backfilled blocks are moved in here)
    <state>/mlflow/mlflow.db            MLflow tracking and model registry (SQLite)
    <state>/mlflow/mlartifacts/         MLflow artifacts, served by the tracking server
    <state>/emulator/snapshot.json      the default usage snapshot of the metrics emulator
    <state>/backfill/                   OpenMetrics files and blocks being backfilled

Data, credentials and logs survive `down`; `down --purge` deletes the directory.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from neurokube.adapters import statedir
from neurokube.cluster.processes import Process
from neurokube.errors import InputError

RECORD = "stack.json"
MARKER = ".neurokube-stack"  # present in every state directory this tool manages
FORMAT = 1


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def record(self) -> Path:
        return self.root / RECORD

    @property
    def credentials(self) -> Path:
        return self.root / "credentials.json"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def log(self, component: str) -> Path:
        return self.logs / f"{component}.log"

    @property
    def minio_data(self) -> Path:
        return self.root / "minio"

    @property
    def prometheus_config(self) -> Path:
        return self.root / "prometheus" / "prometheus.yml"

    @property
    def prometheus_data(self) -> Path:
        return self.root / "prometheus" / "data"

    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow" / "mlflow.db"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.root / "mlflow" / "mlartifacts"

    @property
    def default_snapshot(self) -> Path:
        return self.root / "emulator" / "snapshot.json"

    @property
    def backfill(self) -> Path:
        return self.root / "backfill"


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str


@dataclass
class StackRecord:
    """What `up` started, for `status`, `down` and the clients."""

    state_dir: str
    ports: dict[str, int]
    bucket: str
    emulator_source: str
    scrape_interval: str
    scrape_targets: list[str]
    retention: str
    prometheus_version: str = ""
    minio_binary: str = ""
    ready: bool = False
    processes: list[Process] = field(default_factory=list)

    @property
    def minio_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['minio']}"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['prometheus']}"

    @property
    def mlflow_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['mlflow']}"

    @property
    def emulator_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['emulator']}/metrics"

    def process(self, name: str) -> Process | None:
        return next((p for p in self.processes if p.name == name), None)

    def to_json(self) -> dict:
        doc = {key: value for key, value in vars(self).items() if key != "processes"}
        doc["processes"] = [p.to_json() for p in self.processes]
        doc["format"] = FORMAT
        return doc

    @classmethod
    def from_json(cls, doc: dict) -> StackRecord:
        keys = ("state_dir", "ports", "bucket", "emulator_source", "scrape_interval", "scrape_targets", "retention")
        extra = {key: doc[key] for key in ("prometheus_version", "minio_binary", "ready") if key in doc}
        return cls(**{key: doc[key] for key in keys}, **extra,
                   processes=[Process.from_json(p) for p in doc.get("processes", [])])


def load(layout: Layout) -> StackRecord | None:
    return statedir.read_record(layout.record, "stack record", FORMAT, StackRecord.from_json)


def save(layout: Layout, record: StackRecord) -> None:
    statedir.write_record(layout.record, record.to_json())


def prepare(layout: Layout) -> None:
    """Create the state directory, refusing a non-empty one this tool did not create."""
    root = layout.root
    statedir.refuse_foreign(root, MARKER)
    for directory in (root, layout.logs, layout.minio_data, layout.prometheus_data,
                      layout.mlflow_artifacts, layout.default_snapshot.parent, layout.backfill):
        directory.mkdir(parents=True, exist_ok=True)
    (root / MARKER).touch()


def credentials(layout: Layout) -> Credentials:
    """The MinIO credentials of this state directory, generated (mode 0600) on first use."""
    path = layout.credentials
    if not path.exists():
        doc = {"access_key": f"neurokube-{secrets.token_hex(4)}", "secret_key": secrets.token_urlsafe(30)}
        partial = path.with_name(f".{path.name}.partial")
        partial.unlink(missing_ok=True)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(doc, handle)
            handle.write("\n")
        os.replace(partial, path)
    if path.stat().st_mode & 0o077:
        raise InputError("credentials file is readable by other users", where=str(path), why="chmod 600 it")
    try:
        doc = json.loads(path.read_text())
        return Credentials(doc["access_key"], doc["secret_key"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InputError("unreadable credentials", where=str(path), why=str(exc)) from None


def purge(layout: Layout) -> None:
    statedir.purge(layout.root, MARKER)


def locked(layout: Layout):
    """Serialise `up`, `down` and `backfill` on one state directory."""
    return statedir.locked(layout.root)
