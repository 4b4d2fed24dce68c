"""The MLflow adapter on an embedded (SQLite) MLflow (the live champion hot swap: test_live_champion.py).

* versions are registered from a run's model files (LightGBM text + manifest, no pickle); the alias
  is read back and ``models:/neurokube-placement@champion`` downloads a loadable model;
* a night against an unreachable MLflow fails with a TemporaryError naming it, promoting nothing.
"""

from __future__ import annotations

import numpy as np
import pytest

from neurokube.adapters.objectstore import LocalDirStore
from neurokube.errors import TemporaryError
from neurokube.learning.collect import run_episode
from neurokube.learning.fit import FitSettings, fit_value_model
from neurokube.model.policy import LearnedPolicy
from neurokube.model.reward import RewardWeights
from neurokube.registry import Registry
from neurokube.trace.assemble import ArrivalSettings
from neurokube.trace.synth import SynthSettings, synth_trace
from pipelines import nightly

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
