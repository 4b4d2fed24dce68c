"""Settings of the local data stack, validated in one place."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from neurokube.errors import InputError

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_TARGET = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")
_RETENTION = re.compile(r"^\d+(ms|s|m|h|d|w|y)$")


def default_state_dir() -> Path:
    """``$NEUROKUBE_STATE_DIR/stack``, else ``$XDG_STATE_HOME/neurokube/stack`` (~/.local/state/...)."""
    override = os.environ.get("NEUROKUBE_STATE_DIR")
    if override:
        return Path(override) / "stack"
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "neurokube" / "stack"


@dataclass(frozen=True)
class StackSettings:
    """How `neurokube stack up` starts MinIO, Prometheus, MLflow and the metrics emulator."""

    state_dir: Path = field(default_factory=default_state_dir)
    """Credentials, configs, data, pids and logs. Data survives `down`; `down --purge` deletes it."""

    bucket: str = "neurokube"
    """MinIO bucket created at start-up (S3 naming rules: 3-63 of a-z, 0-9, '.', '-')."""

    scrape_interval_s: float = 15.0
    """Prometheus scrape and rule-evaluation interval, seconds."""

    scrape_targets: tuple[str, ...] = ()
    """Extra ``host:port`` targets Prometheus scrapes (job "extra") besides the metrics emulator."""

    retention: str = "30d"
    """Prometheus ``--storage.tsdb.retention.time``; backfilled samples older than this are dropped."""

    emulator_source: Path | None = None
    """JSON usage snapshot the metrics emulator serves (format in neurokube/emulator/filesource.py).
    None: a small example cluster written to ``<state>/emulator/snapshot.json`` on first start."""

    mlflow_workers: int = 1
    """uvicorn workers of the MLflow server (MLflow's default, 4, is too many for a laptop)."""

    start_timeout_s: float = 120.0
    """How long each component may take to answer its health check."""

    install_prometheus: bool = True
    """Install the Debian ``prometheus`` package when prometheus/promtool are missing (needs root)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "state_dir", Path(self.state_dir).expanduser().absolute())
        if self.emulator_source is not None:
            source = Path(self.emulator_source).expanduser().absolute()
            if not source.is_file():
                raise InputError("emulator snapshot not found", where=str(source))
            object.__setattr__(self, "emulator_source", source)
        if not _BUCKET.match(self.bucket) or ".." in self.bucket:
            raise InputError(f"invalid bucket name {self.bucket!r}", why="3-63 characters of a-z, 0-9, '.', '-'")
        if not 0.1 <= self.scrape_interval_s <= 3600:
            raise InputError(f"scrape interval {self.scrape_interval_s}s is out of range", why="0.1 s to 1 h")
        for target in self.scrape_targets:
            if not _TARGET.match(target):
                raise InputError(f"invalid scrape target {target!r}", why="expected host:port")
        if not _RETENTION.match(self.retention):
            raise InputError(f"invalid retention {self.retention!r}", why="a duration such as 30d or 12h")
        if self.mlflow_workers < 1:
            raise InputError("the MLflow server needs at least one worker")
        if self.start_timeout_s <= 0:
            raise InputError("the start-up timeout must be positive")

    @property
    def scrape_interval(self) -> str:
        """The interval as a Prometheus duration (``15s``, ``500ms``)."""
        ms = round(self.scrape_interval_s * 1000)
        return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"
