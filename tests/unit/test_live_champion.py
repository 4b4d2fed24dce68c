"""The binder follows the MLflow champion without a restart and without a model volume: the alias
moves, the champion thread loads the new MLflow Model and swaps it into the Decider, whose next
decision uses it. A champion declaring another feature version, or with corrupt files, is refused
and counted; an MLflow outage keeps the current model serving, counted. Uses a real MLflow registry
on SQLite (no server needed)."""

import numpy as np
import pytest

from neurokube.adapters.model_files import save_value_model
from neurokube.features import FEATURE_VERSION
from neurokube.live.champion import ChampionSync
from neurokube.live.decide import Decider
from neurokube.live.settings import Settings, from_env
from neurokube.live.telemetry import Telemetry
from neurokube.policies.base import ClusterView, NodeMetrics, PodSpec
from neurokube.registry import Registry, mlflow_registry
from neurokube.testing import FakeKube, fake_runtime
from tests.unit.test_pipeline_registry import busy_trace, models, publish  # noqa: F401 - fixtures

RESULTS = ("installed", "unchanged", "failed", "feature_mismatch", "invalid")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One embedded MLflow for the module (creating its database takes seconds)."""
    root = tmp_path_factory.mktemp("mlflow")
    return Registry(f"sqlite:///{root / 'mlflow.db'}", "champion-test", root / "artifacts")


@pytest.fixture()
def registry(store, request):
    """A registered model of the test's own in the module's MLflow."""
    return store.for_model(f"champion-{request.node.name.removeprefix('test_')[:60]}")


def counts(telemetry: Telemetry) -> dict[str, float]:
    return {r: telemetry.champion_checks.labels(result=r)._value.get() for r in RESULTS}


def views(n_views: int = 40, n_nodes: int = 6, seed: int = 3) -> list[ClusterView]:
    """Random loaded clusters with fresh metrics: the learned policy decides (no fallback)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_views):
        alloc = np.full(n_nodes, 8000, dtype=np.int64)
        req = rng.integers(0, 6000, n_nodes)
        mean = rng.uniform(0, 7000, n_nodes)
        metrics = NodeMetrics(mean, mean * rng.uniform(1, 1.3, n_nodes), rng.uniform(0, 500, n_nodes),
                              np.zeros(n_nodes), rng.uniform(1000, 12000, n_nodes), rng.uniform(1000, 14000, n_nodes),
                              np.zeros(n_nodes), np.zeros(n_nodes), np.full(n_nodes, 20), np.full(n_nodes, 10.0))
        out.append(ClusterView(0.0, alloc, np.full(n_nodes, 16384, dtype=np.int64), req,
                               rng.integers(0, 12000, n_nodes), req, rng.integers(0, 12000, n_nodes),
                               rng.integers(0, 30, n_nodes), metrics))
    return out


def decisions(decider: Decider) -> tuple[list[int], set[str]]:
    chosen, versions = [], set()
    for view in views():
        choice = decider.choose(PodSpec(1000, 1024), view, metrics_fresh=True)
        assert choice.fallback == ""
        chosen.append(choice.index)
        versions.add(choice.model_version)
    return chosen, versions


def test_a_promoted_version_is_served_without_restart(registry, models):  # noqa: F811
    telemetry = Telemetry()
    decider = Decider(None, telemetry, reload_s=3600.0)
    sync = ChampionSync(registry, decider.install, telemetry=telemetry)
    assert sync.poll_once() is False  # no champion yet: default scoring, counted as no_model
    assert decider.choose(PodSpec(1000, 1024), views()[0], metrics_fresh=True).fallback == "no_model"

    publish(registry, models[0])
    assert sync.poll_once() is True
    first, served = decisions(decider)
    assert served == {"m0"}

    version = publish(registry, models[1])  # the nightly promotes a second version
    assert sync.poll_once() is True and sync.version == version
    second, served = decisions(decider)
    assert served == {"m1"}
    assert first != second, "the two champions should not decide alike on 40 random clusters"
    assert sync.poll_once() is False  # same version: nothing downloaded, nothing swapped
    assert counts(telemetry) == {"installed": 2, "unchanged": 2, "failed": 0, "feature_mismatch": 0, "invalid": 0}
    assert telemetry.model_reloads.labels(result="loaded")._value.get() == 2


def test_the_thread_swaps_the_model_in_the_background(registry, models):  # noqa: F811
    decider = Decider(None, Telemetry())
    publish(registry, models[0])
    sync = ChampionSync(registry, decider.install, poll_s=0.05)
    sync.start()
    try:
        import time

        deadline = time.monotonic() + 20
        while decider.model_version != "m0":
            assert time.monotonic() < deadline, "the champion thread never installed the champion"
            time.sleep(0.05)
        publish(registry, models[1])
        while decider.model_version != "m1":
            assert time.monotonic() < deadline, "the champion thread never installed the promoted version"
            time.sleep(0.05)
    finally:
        sync.close()


def test_a_champion_of_another_feature_version_is_refused(registry, models, monkeypatch):  # noqa: F811
    telemetry = Telemetry()
    decider = Decider(None, telemetry)
    sync = ChampionSync(registry, decider.install, telemetry=telemetry)
    publish(registry, models[0])
    assert sync.poll_once() is True
    monkeypatch.setattr(mlflow_registry, "FEATURE_VERSION", FEATURE_VERSION + 1)  # trained by another build
    foreign = publish(registry, models[1])
    monkeypatch.undo()
    assert sync.poll_once() is False and sync.poll_once() is False
    assert decider.model_version == "m0" and sync.refused == {foreign: "feature_mismatch"}
    assert counts(telemetry)["feature_mismatch"] == 2
    publish(registry, models[1])  # the next promotion, of this build's features, is taken
    assert sync.poll_once() is True and decider.model_version == "m1"


def test_a_corrupt_champion_is_refused(registry, models, tmp_path):  # noqa: F811
    telemetry = Telemetry()
    decider = Decider(None, telemetry)
    sync = ChampionSync(registry, decider.install, telemetry=telemetry)
    publish(registry, models[0])
    sync.poll_once()
    broken = tmp_path / "broken"
    save_value_model(models[1], broken)
    (broken / "occupancy.txt").write_text("tree\nnot a model\n")
    with registry.run("unit", "broken") as run:
        run.files(broken)
    registry.set_alias(registry.register(run.run_id))
    assert sync.poll_once() is False
    assert decider.model_version == "m0" and counts(telemetry)["invalid"] == 1


def test_mlflow_outage_keeps_the_current_model(registry, models):  # noqa: F811
    telemetry = Telemetry()
    decider = Decider(None, telemetry)
    publish(registry, models[0])
    ChampionSync(registry, decider.install).poll_once()
    down = ChampionSync(Registry("http://127.0.0.1:9", "champion-test"), decider.install, telemetry=telemetry)
    assert down.poll_once() is False and down.failures == 1
    assert decider.model_version == "m0"
    assert decider.choose(PodSpec(1000, 1024), views()[0], metrics_fresh=True).fallback == ""
    assert counts(telemetry)["failed"] == 1


def test_the_champion_replaces_the_start_up_directory(registry, models, tmp_path):  # noqa: F811
    save_value_model(models[0], tmp_path / "local")
    decider = Decider(tmp_path / "local", Telemetry(), reload_s=0.0)
    assert decider.model_version == "m0"
    publish(registry, models[1])
    ChampionSync(registry, decider.install).poll_once()
    save_value_model(models[0], tmp_path / "local")  # a change there no longer matters
    decider.maybe_reload()
    assert decider.model_version == "m1"


def test_the_runtime_follows_the_champion_of_its_settings(store, models, tmp_path):  # noqa: F811
    registry = store.for_model("champion-runtime")
    publish(registry, models[1])
    settings = Settings(mlflow_uri=store.uri, model_name=registry.model_name, replica="r1")
    runtime = fake_runtime(FakeKube(), settings, Telemetry())
    assert runtime.decider.model_version == "none" and runtime.champion.registry.model_name == registry.model_name
    assert runtime.champion.poll_once() is True
    assert runtime.decider.model_version == "m1"


def test_mlflow_needs_no_model_directory():
    s = from_env({"NEUROKUBE_MLFLOW_URI": "https://mlflow.neurokube.svc:5000"})
    assert s.mlflow_uri == "https://mlflow.neurokube.svc:5000" and s.model_dir is None
    with pytest.raises(Exception, match="NEUROKUBE_MLFLOW_URI: 'mlflow:5000' is not an MLflow tracking URI"):
        from_env({"NEUROKUBE_MLFLOW_URI": "mlflow:5000"})
