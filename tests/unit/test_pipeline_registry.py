"""The MLflow adapter on an embedded (SQLite) MLflow, and the champion hot swap.

* versions are registered from a run's model files (LightGBM text + manifest, no pickle); the alias
  is read back and ``models:/neurokube-placement@champion`` downloads a loadable model;
* the watcher swaps the serving model when the alias moves, while another thread keeps placing
  pods: no request fails and every answer is a feasible node;
* MLflow down: the watcher keeps serving the cached model and counts the failure; after a restart
  the newest cached version serves without MLflow;
* a night against an unreachable MLflow fails with a TemporaryError naming it, promoting nothing.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from neurokube.adapters.objectstore import LocalDirStore
from neurokube.errors import TemporaryError
from neurokube.learning.collect import run_episode
from neurokube.learning.fit import FitSettings, fit_value_model
from neurokube.model.policy import LearnedPolicy
from neurokube.model.reward import RewardWeights
from neurokube.policies.common import fits
from neurokube.registry import ChampionWatcher, Registry, ServingPolicy
from neurokube.sim.engine import pod_specs
from pipelines import nightly
from neurokube.trace.assemble import ArrivalSettings
from neurokube.trace.synth import SynthSettings, synth_trace
from tests.conftest import make_view

WEIGHTS = RewardWeights()


@pytest.fixture(scope="module")
def busy_trace():
    """Loaded enough that placements cause contention (the regressors need non-zero labels)."""
    arrivals = ArrivalSettings(hours=6, target_load=1.0, warmup_hours=2, seed=5)
    return synth_trace("busy", SynthSettings(arrivals=arrivals, nodes=6, workloads=40))


@pytest.fixture(scope="module")
def models(busy_trace):
    ep = run_episode(busy_trace, LearnedPolicy(None, np.random.default_rng(0)), epsilon=0.3, seed=0,
                     weights=WEIGHTS)
    return [fit_value_model(ep.decisions, WEIGHTS, FitSettings(rounds=3 + i, min_data_in_leaf=20, seed=i),
                            version=f"m{i}") for i in range(2)]


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow")
    return Registry(f"sqlite:///{root / 'mlflow.db'}", "test-placement", root / "artifacts")


def publish(registry: Registry, model, alias: bool = True) -> str:
    with registry.run("unit", f"publish-{model.version}") as run:
        run.model(model)
    version = registry.register(run.run_id)
    if alias:
        registry.set_alias(version)
    return version


def test_register_alias_and_download(registry, models, tmp_path):
    version = publish(registry, models[0])
    assert registry.alias() == version
    files = registry.download(tmp_path / "dl")
    assert sorted(p.name for p in files.iterdir()) == ["contention.txt", "manifest.json", "occupancy.txt"]
    got_version, model = registry.load(tmp_path / "cache")
    assert got_version == version and model.version == "m0"
    registry.tag_version(version, {"promoted": "true"})
    assert registry.version_tags(version)["promoted"] == "true"


def test_hot_swap_under_load_and_mlflow_outage(registry, models, small_trace, tmp_path):
    v0 = publish(registry, models[0])
    serving = ServingPolicy(seed=1)
    watcher = ChampionWatcher(registry, serving, tmp_path / "cache", interval_s=0.05)
    assert watcher.poll_once() and serving.version == "m0"
    specs = pod_specs(small_trace)[:50]
    alloc = small_trace.nodes.cpu_milli
    mem = small_trace.nodes.memory_mib
    view = make_view(alloc, mem, req_cpu=alloc // 2, req_mem=mem // 4)
    answers, errors, stop = [], [], threading.Event()

    def place() -> None:
        while not stop.is_set():
            for spec in specs:
                try:
                    answers.append((spec, serving.select(spec, view)))
                except Exception as exc:  # noqa: BLE001 - the test counts every failure
                    errors.append(exc)

    worker = threading.Thread(target=place)
    worker.start()
    try:
        watcher.start()
        v1 = publish(registry, models[1])
        for _ in range(200):
            if serving.version == "m1":
                break
            threading.Event().wait(0.05)
    finally:
        watcher.stop()
        stop.set()
        worker.join()
    assert serving.version == "m1" and watcher.version == v1 != v0
    assert errors == [] and len(answers) > 100
    assert all(node is not None and fits(spec, view)[node] for spec, node in answers)
    assert serving.policy.fallbacks == 0

    class Down:
        def load(self, cache_dir, alias="champion"):
            raise TemporaryError("MLflow at http://127.0.0.1:9 is unavailable")

    offline = ChampionWatcher(Down(), serving, tmp_path / "cache")
    offline.version = watcher.version
    assert not offline.poll_once() and offline.failures == 1 and serving.version == "m1"
    restarted = ServingPolicy()
    assert ChampionWatcher(Down(), restarted, tmp_path / "cache").warm_start() == v1
    assert restarted.version == "m1"


def test_night_with_mlflow_down_fails_cleanly(tmp_path, small_trace):
    store = LocalDirStore(tmp_path / "store")
    down = Registry("http://127.0.0.1:9", "test-placement")
    with pytest.raises(TemporaryError, match="MLflow at http://127.0.0.1:9"):
        nightly.run_night(store, down, "2024-03-02", small_trace, tmp_path)
    assert store.list("") == []


def test_night_with_store_down_fails_cleanly_and_promotes_nothing(tmp_path, small_trace, registry):
    class DownStore(LocalDirStore):
        def list(self, prefix=""):
            raise TemporaryError("MinIO at http://127.0.0.1:9 is unreachable")

    before = registry.alias()
    with pytest.raises(TemporaryError, match="MinIO"):
        nightly.run_night(DownStore(tmp_path / "s"), registry, "2024-03-02", small_trace, tmp_path)
    assert registry.alias() == before
