"""The nightly forecast step: nothing before two days; then trained on the earlier days, evaluated
on the newest, registered in MLflow (text files, no pickle), the alias moved only when the
forecast beats persistence."""

import numpy as np
import pytest

from neurokube.policies import make_policy
from neurokube.registry import Registry
from neurokube.sim import SimConfig, replay
from neurokube.trace.assemble import ArrivalSettings
from neurokube.trace.synth import SynthSettings, synth_trace
from pipelines import forecasts


def day(seed: int):
    arrivals = ArrivalSettings(hours=6, warmup_hours=2, target_load=0.9, seed=seed)
    trace = synth_trace(f"day{seed}", SynthSettings(arrivals=arrivals, nodes=8, workloads=30))
    r = replay(trace, make_policy("most-allocated", trace=trace), SimConfig())  # packs: some nodes run hot
    return forecasts.day_data(trace, r.node_of, np.where(r.node_of >= 0, np.rint(r.bind_s / 60), -1).astype(int), 60)


@pytest.fixture(scope="module")
def history():
    return [day(11), day(12)]


def test_forecast_models_are_registered_and_promoted_by_the_rule(history, tmp_path):
    registry = Registry(f"sqlite:///{tmp_path / 'mlflow.db'}", "neurokube-placement", tmp_path / "artifacts")
    assert forecasts.run(registry, history[:1], "2026-01-01") is None  # one day: nothing to evaluate on
    result = forecasts.run(registry, history, "2026-01-02")
    models = registry.for_model("neurokube-forecast")
    version = result["forecast_version"].removeprefix("v")
    tags = models.version_tags(version)
    assert tags["promoted"] == str(result["forecast_promoted"]).lower() and "persistence" in tags["reason"]
    assert (models.alias() == version) is result["forecast_promoted"]
    files = models.download(tmp_path / "dl", version=version)
    names = {p.name for p in files.iterdir()}
    assert "manifest.json" in names and all(not n.endswith((".pkl", ".pickle")) for n in names)
    assert registry.alias() is None  # the placement model's registry entry is untouched


def test_a_night_without_anything_to_learn_skips_training_instead_of_failing(history, tmp_path, monkeypatch):
    from neurokube.errors import InputError

    def no_hot_node(_data):
        raise InputError("no bottleneck in the training traces", "bottleneck")

    monkeypatch.setattr(forecasts, "train", no_hot_node)
    registry = Registry(f"sqlite:///{tmp_path / 'mlflow.db'}", "neurokube-placement", tmp_path / "artifacts")
    result = forecasts.run(registry, history, "2026-01-03")
    assert result["forecast_version"] is None and result["forecast_reason"].startswith("not trained:")
    assert registry.for_model("neurokube-forecast").alias() is None  # nothing registered, nothing promoted
