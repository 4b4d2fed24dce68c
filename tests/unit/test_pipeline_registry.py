"""The MLflow adapter on an embedded (SQLite) MLflow (the live champion hot swap: test_live_champion.py).

* a version is an MLflow Model (a pyfunc from code, the LightGBM text and manifest as artifacts, a
  feature signature, an input example, the feature version as metadata; no pickle); the alias is
  read back and ``models:/<name>@champion`` downloads it and loads the value model;
* ``mlflow.pyfunc.load_model("models:/<name>@champion")`` predicts what the value model predicts;
* a version registered before the MLflow Model format (loose files) is still read;
* a model declaring another feature version is refused with FeatureMismatch;
* a night against an unreachable MLflow fails with a TemporaryError naming it, promoting nothing.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import yaml

from neurokube.adapters.model_files import save_value_model
from neurokube.adapters.objectstore import LocalDirStore
from neurokube.errors import TemporaryError
from neurokube.features import FEATURE_NAMES, FEATURE_VERSION
from neurokube.learning.collect import run_episode
from neurokube.learning.fit import FitSettings, fit_value_model
from neurokube.model.policy import LearnedPolicy
from neurokube.model.reward import RewardWeights
from neurokube.model.value_model import PICKLE_PROTO, PICKLE_SUFFIXES, ModelError
from neurokube.registry import Registry, mlflow_registry, placement
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


def pyfunc(registry: Registry, uri: str):
    """``mlflow.pyfunc.load_model(uri)`` against the registry (runs the model's code file)."""
    with warnings.catch_warnings():  # importing mlflow.pyfunc warns about MLflow's own type hints
        warnings.simplefilter("ignore", UserWarning)
        import mlflow.pyfunc
    previous = mlflow_registry._set_uris(registry.uri)
    try:
        return mlflow.pyfunc.load_model(uri)
    finally:
        mlflow_registry._set_uris(*previous)


def test_register_alias_and_download(registry, models, tmp_path):
    version = publish(registry, models[0])
    assert registry.alias() == version
    assert registry.client.get_model_version(registry.model_name, version).source.startswith("models:/m-")
    files = registry.download(tmp_path / "dl")
    names = {str(p.relative_to(files)) for p in files.rglob("*") if p.is_file()}
    assert {"MLmodel", "placement_pyfunc.py", "input_example.json", "artifacts/value_model/manifest.json",
            "artifacts/value_model/contention.txt", "artifacts/value_model/occupancy.txt"} <= names
    for path in files.rglob("*"):  # nothing pickled, by name or by content
        assert path.suffix not in PICKLE_SUFFIXES and not (path.is_file() and path.read_bytes().startswith(PICKLE_PROTO))
    mlmodel = yaml.safe_load((files / "MLmodel").read_text())
    assert mlmodel["flavors"]["python_function"]["loader_module"] == "mlflow.pyfunc.loaders.code_model"
    assert mlmodel["metadata"]["feature_version"] == FEATURE_VERSION
    got_version, model = registry.load(tmp_path / "cache")
    assert got_version == version and model.version == "m0"
    registry.tag_version(version, {"promoted": "true"})
    assert registry.version_tags(version)["promoted"] == "true"


def test_the_champion_is_a_pyfunc_predicting_what_the_value_model_predicts(registry, models):
    publish(registry, models[1])
    loaded = pyfunc(registry, registry.model_uri("champion"))
    signature = loaded.metadata.signature
    assert signature.inputs.input_names() == list(FEATURE_NAMES)
    assert signature.outputs.input_names() == list(placement.OUTPUTS)
    rows = placement.input_example()
    got = loaded.predict(rows)
    components = models[1].components(rows.to_numpy())
    np.testing.assert_array_equal(got["contention"].to_numpy(), components["contention"])
    np.testing.assert_array_equal(got["occupancy"].to_numpy(), components["occupancy"])
    np.testing.assert_array_equal(got["cost"].to_numpy(), models[1].cost(rows.to_numpy()))
    assert got["cost"].nunique() > 1  # the example tells the nodes apart


def test_a_version_in_the_old_format_is_still_read(registry, models, tmp_path):
    with registry.run("unit", "legacy") as run:
        save_value_model(models[0], tmp_path / "legacy")
        run.files(tmp_path / "legacy")  # what RunLog.model logged before the MLflow Model format
    version = registry.register(run.run_id)
    loaded = registry.fetch(version)
    assert loaded.format == "legacy" and loaded.model.version == "m0"


def test_a_model_declaring_other_features_is_refused(registry, models, monkeypatch):
    monkeypatch.setattr(mlflow_registry, "FEATURE_VERSION", FEATURE_VERSION + 1)  # a model from another build
    version = publish(registry, models[0], alias=False)
    monkeypatch.undo()
    with pytest.raises(placement.FeatureMismatch, match=f"feature_version {FEATURE_VERSION + 1}"):
        registry.fetch(version)
    assert registry.fetch(publish(registry, models[0], alias=False)).feature_version == FEATURE_VERSION


def test_a_tampered_mlflow_model_is_refused(registry, models, tmp_path):
    files = registry.download(tmp_path / "dl", version=publish(registry, models[0], alias=False))
    assert placement.read_model(files).model.version == "m0"
    text = (files / "MLmodel").read_text()
    (files / "MLmodel").write_text(text.replace("path: artifacts/value_model", "path: ../../outside"))
    with pytest.raises(ModelError, match="the 'value_model' artifact points outside the model"):
        placement.read_model(files)
    (files / "MLmodel").write_text("flavors: [unclosed\n")
    with pytest.raises(ModelError, match="not a readable MLmodel file"):
        placement.read_model(files)


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
