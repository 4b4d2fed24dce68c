"""Settings of the local data stack, declared and validated in one place.

One frozen dataclass whose fields carry their meaning in ``metadata`` (neurokube.envsettings, the
convention every settings class follows), set by the options of ``neurokube stack up``. The
state directory's default comes from ``$NEUROKUBE_STATE_DIR`` / ``$XDG_STATE_HOME``
(:func:`default_state_dir`); the other variables the stack honours locate tools, not settings
(``NEUROKUBE_PROMETHEUS_DIR``, and the MinIO build's ``NEUROKUBE_GO`` / ``NEUROKUBE_CACHE_DIR``;
docs/STACK.md, "Settings").
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from neurokube.envsettings import setting
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
    """How `neurokube stack up` starts MinIO, Prometheus, MLflow and the metrics emulator.

    Set by the options of `neurokube stack up` (each field names its ``flag``); the reference in
    docs/STACK.md is rendered from these fields by :func:`neurokube.envsettings.table`."""

    state_dir: Path = setting(None, doc="credentials, configs, data, pids and logs; data survives `down`, "
                                        "`down --purge` deletes it",
                              factory=default_state_dir, flag="--state-dir",
                              shown="`$NEUROKUBE_STATE_DIR/stack`, else `$XDG_STATE_HOME/neurokube/stack` "
                                    "(`~/.local/state/neurokube/stack`)")
    bucket: str = setting(None, "neurokube", "MinIO bucket created at start-up (S3 naming rules: 3-63 of a-z, 0-9, "
                                             "'.', '-')", flag="--bucket")
    scrape_interval_s: float = setting(None, 15.0, "Prometheus scrape and rule-evaluation interval, seconds",
                                       flag="--scrape-interval")
    scrape_targets: tuple[str, ...] = setting(None, (), "an extra `host:port` target Prometheus scrapes (job "
                                                        "\"extra\") besides the metrics emulator; repeatable",
                                              flag="--scrape-target")
    retention: str = setting(None, "30d", "Prometheus `--storage.tsdb.retention.time`; backfilled samples older "
                                          "than this are dropped", flag="--retention")
    emulator_source: Path | None = setting(None, None, "JSON usage snapshot the metrics emulator serves (format in "
                                                       "neurokube/emulator/filesource.py); unset: a small example "
                                                       "cluster written to `<state>/emulator/snapshot.json` on first "
                                                       "start", flag="--emulator-snapshot")
    mlflow_workers: int = setting(None, 1, "uvicorn workers of the MLflow server (MLflow's default, 4, is too many "
                                           "for a laptop)", flag="--mlflow-workers")
    start_timeout_s: float = setting(None, 120.0, "how long each component may take to answer its health check")
    install_prometheus: bool = setting(None, True, "given: a missing Prometheus is an error; else the Debian "
                                                   "`prometheus` package is installed when prometheus/promtool are "
                                                   "missing (needs root)", flag="--no-install", shown="")

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
