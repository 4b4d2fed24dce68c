"""Serve the ``champion`` and swap in a new one without dropping a request.

:class:`ServingPolicy` is what a binder holds: ``select`` reads one reference (the current
:class:`LearnedPolicy`) and uses it for the whole call; a swap builds the new policy aside and
replaces the reference under a lock. A request in flight finishes on the policy it started with.

:class:`ChampionWatcher` polls the registry alias. A new version is downloaded into a local cache
and loaded before the swap; a download or load that fails leaves the serving model in place. When
MLflow is down the cached model keeps serving (and, after a restart, the newest cached version is
loaded without MLflow).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Protocol

import numpy as np

from neurokube.errors import NeuroKubeError
from neurokube.logs import event
from neurokube.model.policy import LearnedPolicy
from neurokube.model.value_model import ModelError, ValueModel, load_model
from neurokube.policies.base import ClusterView, PodSpec

log = logging.getLogger("neurokube.registry.watcher")


class ChampionSource(Protocol):
    def load(self, cache_dir: Path, alias: str = "champion") -> tuple[str, ValueModel] | None: ...


class ServingPolicy:
    name = "neurokube"

    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._seed = seed
        self._policy = LearnedPolicy(None, np.random.default_rng(seed), "no_model")
        self.swaps = 0

    @property
    def policy(self) -> LearnedPolicy:
        return self._policy

    @property
    def version(self) -> str:
        return self._policy.version

    def swap(self, model: ValueModel) -> None:
        fresh = LearnedPolicy(model, np.random.default_rng(self._seed))
        with self._lock:
            self._policy = fresh
            self.swaps += 1

    def select(self, pod: PodSpec, view: ClusterView) -> int | None:
        return self._policy.select(pod, view)


class ChampionWatcher:
    def __init__(self, source: ChampionSource, serving: ServingPolicy, cache_dir: Path,
                 alias: str = "champion", interval_s: float = 30.0) -> None:
        self.source, self.serving, self.cache_dir = source, serving, Path(cache_dir)
        self.alias, self.interval_s = alias, interval_s
        self.version: str | None = None
        self.failures = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def warm_start(self) -> str | None:
        """Serve the newest cached version (no MLflow needed); its number, or None."""
        cached = sorted((p for p in self.cache_dir.glob("v*") if p.name[1:].isdigit()),
                        key=lambda p: int(p.name[1:]))
        for path in reversed(cached):
            try:
                self.serving.swap(load_model(path))
            except ModelError as exc:
                event(log, "cached model unusable", level=logging.WARNING, path=str(path), error=str(exc))
                continue
            self.version = path.name[1:]
            return self.version
        return None

    def poll_once(self) -> bool:
        """Check the alias; swap if it moved. True when a new model is serving."""
        try:
            found = self.source.load(self.cache_dir, self.alias)
        except NeuroKubeError as exc:
            self.failures += 1
            event(log, "champion check failed, keeping the serving model", level=logging.WARNING,
                  serving=self.serving.version, error=str(exc))
            return False
        if found is None or found[0] == self.version:
            return False
        version, model = found
        self.serving.swap(model)
        event(log, "champion swapped in", version=version, previous=self.version)
        self.version = version
        return True

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="champion-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.poll_once()
            self._stop.wait(self.interval_s)
