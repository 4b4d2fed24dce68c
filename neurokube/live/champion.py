"""Keep the binder's model directory on the MLflow champion.

The binder already hot-reloads its model directory when ``manifest.json`` changes (see
:mod:`neurokube.live.decide`). This thread closes the loop with the registry:
1. Every ``poll_s`` it asks MLflow which version the ``champion`` alias names.
2. When that version is new, it downloads it into a local cache (:meth:`Registry.load`).
3. It copies it into the model directory, the boosters first and ``manifest.json`` last (an
   atomic rename).

The binder therefore never sees a manifest whose model files are not in place. If MLflow is
down, the current model keeps serving and the failure is logged and counted. A version that
fails to load is refused by the binder's own reload, which also keeps the current model.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from pathlib import Path

from neurokube.errors import NeuroKubeError
from neurokube.logs import event

log = logging.getLogger("neurokube.live.champion")
MANIFEST = "manifest.json"


class ChampionSync:
    def __init__(self, registry, model_dir: Path, cache_dir: Path, poll_s: float = 60.0,
                 alias: str = "champion", telemetry=None) -> None:
        self.registry, self.model_dir, self.cache_dir = registry, Path(model_dir), Path(cache_dir)
        self.poll_s, self.alias, self.telemetry = poll_s, alias, telemetry
        self.version: str | None = None
        self.failures = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll_once(self) -> bool:
        """One check; True when a new champion was written to the model directory."""
        try:
            found = self.registry.load(self.cache_dir, self.alias)
        except NeuroKubeError as exc:
            self.failures += 1
            self._count("failed")
            event(log, "champion check failed, the current model keeps serving", level=logging.WARNING,
                  error=str(exc), failures=self.failures)
            return False
        if found is None or found[0] == self.version:
            self._count("unchanged")
            return False
        version, _model = found
        self._install(self.cache_dir / f"v{version}")
        event(log, "champion installed", version=version, previous=self.version, model_dir=str(self.model_dir))
        self.version = version
        self._count("installed")
        return True

    def _count(self, result: str) -> None:
        if self.telemetry is not None:
            self.telemetry.champion_checks.labels(result=result).inc()

    def _install(self, source: Path) -> None:
        self.model_dir.mkdir(parents=True, exist_ok=True)
        for path in sorted(source.iterdir()):
            if path.name != MANIFEST and path.is_file():
                self._replace(path, self.model_dir / path.name)
        self._replace(source / MANIFEST, self.model_dir / MANIFEST)

    @staticmethod
    def _replace(src: Path, dst: Path) -> None:
        tmp = dst.with_name(f".{dst.name}.tmp")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)

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
            self.poll_once()
            self._stop.wait(self.poll_s)
