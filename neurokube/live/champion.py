"""Follow the MLflow champion: poll the registry, load the new version, hot-swap it in memory.

With ``NEUROKUBE_MLFLOW_URI`` set, the functions serve ``models:/<NEUROKUBE_MODEL_NAME>@champion``
from the tracking server; no model volume is involved:
1. Every ``poll_s`` (the first check at start) this thread asks MLflow which version the
   ``champion`` alias names.
2. When that version is new, it downloads the MLflow Model into a temporary directory (``TMPDIR``)
   and reads the value model out of it (:meth:`Registry.fetch`; the model's code file is never
   run), checking the feature set the model declares against this build's
   (:data:`neurokube.features.FEATURE_VERSION`).
3. It hands the model to :meth:`Decider.install`, which swaps it in atomically: the next decision
   uses it, without a restart.

Each check is counted in ``neurokube_champion_checks_total`` by result: ``installed``,
``unchanged``, ``failed`` (MLflow unreachable or refusing: the current model, or default scoring
when there is none yet, keeps serving), ``feature_mismatch`` (the champion declares another
feature version or feature names: refused, the current model keeps serving) and ``invalid`` (its
files are missing or corrupt: refused likewise). A refused version is not downloaded again; the
next promotion is.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from neurokube.errors import NeuroKubeError
from neurokube.logs import event
from neurokube.model.value_model import ModelError, ValueModel
from neurokube.registry.placement import FeatureMismatch

log = logging.getLogger("neurokube.live.champion")


class ChampionSync:
    def __init__(self, registry, install: Callable[[ValueModel, str], None], *, poll_s: float = 60.0,
                 alias: str = "champion", telemetry=None, work_dir: Path | None = None) -> None:
        """``install(model, source)`` receives each new champion (``source``: its ``models:/`` URI)."""
        self.registry, self.install = registry, install
        self.poll_s, self.alias, self.telemetry, self.work_dir = poll_s, alias, telemetry, work_dir
        self.version: str | None = None
        self.refused: dict[str, str] = {}  # version -> result (feature_mismatch, invalid)
        self.failures = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll_once(self) -> bool:
        """One check; True when a new champion was installed."""
        try:
            version = self.registry.alias(self.alias)
            if version is None or version == self.version:
                self._count("unchanged")
                return False
            if version in self.refused:
                self._count(self.refused[version])
                return False
            loaded = self.registry.fetch(version, self.work_dir)
        except FeatureMismatch as exc:
            return self._refuse(version, "feature_mismatch", str(exc))
        except ModelError as exc:
            return self._refuse(version, "invalid", str(exc))
        except NeuroKubeError as exc:
            self.failures += 1
            self._count("failed")
            event(log, "champion check failed, the current model keeps serving", level=logging.WARNING,
                  error=str(exc), failures=self.failures)
            return False
        source = self.registry.model_uri(version=version)
        self.install(loaded.model, source)
        event(log, "champion installed", version=version, previous=self.version, source=source,
              model_version=loaded.model.version, format=loaded.format)
        self.version = version
        self._count("installed")
        return True

    def _refuse(self, version: str, result: str, why: str) -> bool:
        self.refused[version] = result
        self._count(result)
        event(log, "champion refused, the current model keeps serving", level=logging.WARNING, version=version,
              result=result, error=why, serving=self.version)
        return False

    def _count(self, result: str) -> None:
        if self.telemetry is not None:
            self.telemetry.champion_checks.labels(result=result).inc()

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="champion-sync", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception as exc:  # noqa: BLE001 - the thread must outlive any one check
                self.failures += 1
                self._count("failed")
                event(log, "champion check crashed, the current model keeps serving", level=logging.ERROR,
                      error=f"{type(exc).__name__}: {exc}", failures=self.failures)
            self._stop.wait(self.poll_s)


def from_settings(settings, decider, telemetry) -> ChampionSync:
    """The champion thread of a function: ``NEUROKUBE_MLFLOW_URI``'s ``NEUROKUBE_MODEL_NAME``."""
    from neurokube.registry import Registry

    return ChampionSync(Registry(settings.mlflow_uri, settings.model_name), decider.install,
                        poll_s=settings.champion_poll_s, telemetry=telemetry)
