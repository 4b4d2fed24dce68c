"""The binder follows the MLflow champion: the alias moves, the model directory follows (manifest
last), the binder's hot reload serves the new version, and an MLflow outage keeps the current
model serving. Uses a real MLflow registry on SQLite (no server needed)."""

import time

import pytest

from neurokube.live.champion import ChampionSync
from neurokube.live.decide import Decider
from neurokube.live.telemetry import Telemetry
from neurokube.model.value_model import load_model
from neurokube.registry import Registry
from tests.unit.test_pipeline_registry import busy_trace, models, publish  # noqa: F401 - fixtures


@pytest.fixture()
def registry(tmp_path):
    return Registry(f"sqlite:///{tmp_path / 'mlflow.db'}", "champion-test", tmp_path / "artifacts")


def test_model_dir_follows_the_champion_and_the_binder_reloads(registry, models, tmp_path):  # noqa: F811
    model_dir = tmp_path / "model"
    sync = ChampionSync(registry, model_dir, tmp_path / "cache", poll_s=0.1)
    assert sync.poll_once() is False  # no champion yet: nothing written
    assert not model_dir.exists()

    publish(registry, models[0])
    assert sync.poll_once() is True
    assert load_model(model_dir).version == "m0"
    decider = Decider(model_dir, Telemetry(), reload_s=0.01)
    assert decider.model_version == "m0"

    publish(registry, models[1])
    assert sync.poll_once() is True
    assert sync.poll_once() is False  # same version: no rewrite
    time.sleep(0.05)
    decider.maybe_reload()
    assert decider.model_version == "m1"


def test_mlflow_outage_keeps_the_current_model(registry, models, tmp_path):  # noqa: F811
    model_dir = tmp_path / "model"
    publish(registry, models[0])
    ChampionSync(registry, model_dir, tmp_path / "cache").poll_once()
    telemetry = Telemetry()
    down = ChampionSync(Registry("http://127.0.0.1:9", "champion-test"), model_dir, tmp_path / "cache2",
                        telemetry=telemetry)
    assert down.poll_once() is False and down.failures == 1
    assert load_model(model_dir).version == "m0"
    assert telemetry.champion_checks.labels(result="failed")._value.get() == 1


def test_champion_checks_are_counted_by_result(registry, models, tmp_path):  # noqa: F811
    telemetry = Telemetry()
    sync = ChampionSync(registry, tmp_path / "model", tmp_path / "cache", telemetry=telemetry)
    publish(registry, models[0])
    assert sync.poll_once() is True
    assert sync.poll_once() is False
    counts = {r: telemetry.champion_checks.labels(result=r)._value.get() for r in ("installed", "unchanged", "failed")}
    assert counts == {"installed": 1, "unchanged": 1, "failed": 0}
