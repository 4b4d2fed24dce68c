"""The stack's MLflow tracking server and model registry, used from 127.0.0.1 by the Python client.

* an experiment, a run with a parameter, a metric and an artifact, read back through the server;
* artifacts travel through the server's artifact proxy (mlflow-artifacts:/) into the state dir;
* a model version registered from the run's artifacts gets the alias `champion`, and
  ``models:/<name>@champion`` resolves to it and downloads the model file;
* the placement model as the nightly logs it (an MLflow Model: pyfunc from code, LightGBM text
  inside) goes through the server's artifact proxy, and the binder's champion thread loads it
  from ``models:/<name>@champion`` into a Decider that had no model directory.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

import mlflow
from neurokube.adapters.model_files import load_value_model
from neurokube.live.champion import ChampionSync
from neurokube.live.decide import Decider
from neurokube.live.telemetry import Telemetry
from neurokube.registry import Registry
from neurokube.testing import write_packing_model

pytestmark = pytest.mark.integration


@pytest.fixture
def tracking(stack) -> Iterator[str]:
    url = stack.endpoints["mlflow"]["url"]
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(url)
    mlflow.set_registry_uri(url)
    try:
        yield url
    finally:
        mlflow.set_tracking_uri(previous)


def test_run_artifact_and_registry_alias(tracking: str, stack, tmp_path: Path) -> None:
    client = MlflowClient(tracking_uri=tracking, registry_uri=tracking)
    suffix = uuid.uuid4().hex[:8]
    experiment_id = client.create_experiment(f"it-experiment-{suffix}")
    assert client.get_experiment(experiment_id).artifact_location.startswith("mlflow-artifacts:/")

    model_file = tmp_path / "model.txt"
    model_file.write_text("weights: 0.25, 0.75\n")
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_param("learning_rate", 0.1)
        mlflow.log_metric("auc", 0.91, step=1)
        mlflow.log_metric("auc", 0.93, step=2)
        mlflow.log_artifact(str(model_file), artifact_path="model")
    run_id = run.info.run_id

    fetched = client.get_run(run_id)
    assert fetched.data.params == {"learning_rate": "0.1"}
    assert fetched.data.metrics["auc"] == pytest.approx(0.93)
    assert [m.value for m in client.get_metric_history(run_id, "auc")] == pytest.approx([0.91, 0.93])
    assert [a.path for a in client.list_artifacts(run_id, "model")] == ["model/model.txt"]
    # The artifact went through the server's proxy into the stack's state directory.
    stored = list((stack.layout.mlflow_artifacts).rglob("model.txt"))
    assert any(p.read_text() == model_file.read_text() for p in stored)

    name = f"it-model-{suffix}"
    client.create_registered_model(name)
    version = client.create_model_version(name, source=f"{fetched.info.artifact_uri}/model", run_id=run_id)
    client.set_registered_model_alias(name, "champion", version.version)

    champion = client.get_model_version_by_alias(name, "champion")
    assert champion.version == version.version and champion.run_id == run_id
    downloaded = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}@champion",
                                                          dst_path=str(tmp_path / "download")))
    assert (downloaded / "model.txt").read_text() == "weights: 0.25, 0.75\n"


def test_the_placement_champion_through_the_server(stack, tmp_path: Path) -> None:
    url = stack.endpoints["mlflow"]["url"]
    registry = Registry(url, f"it-placement-{uuid.uuid4().hex[:8]}")
    model = load_value_model(write_packing_model(tmp_path / "packing", version="it-champion"))
    with registry.run("it-placement", "champion") as run:
        uri = run.model(model)
    registry.set_alias(registry.register(run.run_id))
    assert registry.client.get_model_version(registry.model_name, registry.alias()).source == uri
    assert any(p.name == "MLmodel" for p in stack.layout.mlflow_artifacts.rglob("MLmodel"))  # via the proxy

    telemetry = Telemetry()
    decider = Decider(None, telemetry)
    assert ChampionSync(registry, decider.install, telemetry=telemetry).poll_once() is True
    assert decider.model_version == "it-champion"
    assert telemetry.champion_checks.labels(result="installed")._value.get() == 1
