"""The MLflow Project (mlflow/MLproject) run by MLflow's own ``mlflow run`` against the real stack.

* ``mlflow run mlflow/ -e nightly --env-manager local`` on one small simulated day in the session
  MinIO bucket trains a night: the project's run (its own experiment) finishes with the entry
  point's parameters; the night's run (experiment ``neurokube-nightly``) finishes with its params,
  metrics and its MLflow Model (the run's logged model output); a new version of the model it names (``model_name``, one of its own here) is registered and tagged for
  that day, and the ``champion`` alias names it exactly when it was promoted;
* a day that is not a date fails the project run (exit code and run status), and no new version
  is registered.
"""

from __future__ import annotations

import calendar
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from mlflow.tracking import MlflowClient

from neurokube.adapters.objectstore import open_store
from neurokube.model.reward import RewardWeights
from neurokube.registry import Registry
from neurokube.trace.assemble import ArrivalSettings
from neurokube.trace.synth import SynthSettings, synth_trace
from pipelines import keys, loop, snapshot
from pipelines.settings import DAY_S, NightlySettings, SnapshotSettings
from pipelines.simulate import day_trace, run_day
from pipelines.spool import Spool
from pipelines.usage import SimulatorUsage

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
DAY = "2023-06-14"  # a day no other test of the session writes (its 7-day lookback is empty too)
PROJECT_EXPERIMENT = "neurokube-projects-it"
MODEL = "neurokube-placement-project-it"  # a model of its own: the session's champion stays test_nightly's


def seed_day(store, day: str, spool_dir: Path) -> None:
    """One small simulated day in the store, as the loop leaves it: decision logs, outcomes, snapshots."""
    world = synth_trace("project-world", SynthSettings(
        arrivals=ArrivalSettings(hours=24, target_load=0.9, warmup_hours=3, seed=2), nodes=6, workloads=40))
    start = calendar.timegm(time.strptime(day, "%Y-%m-%d"))
    simulated = run_day(day_trace(world, 0), None, start_epoch_s=start, epsilon=0.1, seed=2, weights=RewardWeights())
    spool = Spool(spool_dir)
    for kind, table, frame in (("decisions", "decisions", simulated.decisions),
                               ("decisions", "candidates", simulated.candidates),
                               ("outcomes", "outcomes", simulated.outcomes)):
        loop.put_table(spool, store, keys.sim_key(kind, table, day), frame)
    snapshot.run(SimulatorUsage(simulated.usage), store, start, start + DAY_S, SnapshotSettings(), spool_dir)


def store_url(stack) -> str:
    """The session bucket as a ``minio://`` URL without keys (the keys travel in the environment)."""
    m = stack.endpoints["minio"]
    return f"minio://{urlsplit(m['endpoint']).netloc}/{m['bucket']}"


def mlflow_run(stack, *params: str) -> subprocess.CompletedProcess:
    m = stack.endpoints["minio"]
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "MLFLOW_TRACKING_URI": stack.endpoints["mlflow"]["url"],
           "NEUROKUBE_STORE_ACCESS_KEY": m["access_key"], "NEUROKUBE_STORE_SECRET_KEY": m["secret_key"]}
    argv = [str(VENV_BIN / "mlflow"), "run", str(REPO / "mlflow"), "-e", "nightly", "--env-manager", "local",
            "--experiment-name", PROJECT_EXPERIMENT, "-P", f"store={store_url(stack)}", "-P", f"model_name={MODEL}"]
    for p in params:
        argv += ["-P", p]
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)


def project_runs(client: MlflowClient) -> list:
    experiment = client.get_experiment_by_name(PROJECT_EXPERIMENT)
    return list(client.search_runs([experiment.experiment_id])) if experiment else []


def test_the_nightly_entry_point_trains_and_registers_a_night(stack, tmp_path: Path) -> None:
    seed_day(open_store(stack.endpoints), DAY, tmp_path / "spool")
    settings = NightlySettings()
    url = stack.endpoints["mlflow"]["url"]
    registry = Registry(url, MODEL)
    client = MlflowClient(tracking_uri=url, registry_uri=url)
    before = set(registry.versions())

    done = mlflow_run(stack, f"day={DAY}")
    assert done.returncode == 0, done.stderr[-3000:]
    [summary] = [line for line in done.stdout.splitlines() if line.startswith("{")]  # the Job's one JSON line
    night = json.loads(summary)
    assert night["day"] == DAY and night["quarantined"] == 0

    [project] = [r for r in project_runs(client) if r.data.params.get("day") == DAY]
    assert project.info.status == "FINISHED"
    assert project.data.params == {"store": store_url(stack), "day": DAY, "seed": "0", "model_name": MODEL}
    assert project.data.tags["mlflow.project.entryPoint"] == "nightly"

    run = client.get_run(night["run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == f"nightly-{DAY}"
    assert client.get_experiment(run.info.experiment_id).name == settings.experiment
    assert run.data.params["day"] == DAY and run.data.params["model_name"] == MODEL
    assert run.data.metrics["data.decisions"] > 100 and "replay.candidate.cost" in run.data.metrics
    [output] = run.outputs.model_outputs  # the night's MLflow Model, logged as the run's output
    logged = client.get_logged_model(output.model_id)
    assert logged.name == "model" and logged.source_run_id == run.info.run_id
    assert run.data.tags["neurokube.version"] == night["version"]
    assert client.get_model_version(MODEL, night["version"]).source == f"models:/{output.model_id}"
    files = registry.download(tmp_path / "version", version=night["version"])
    assert (files / "MLmodel").is_file() and (files / "artifacts" / "value_model" / "manifest.json").is_file()

    assert set(registry.versions()) - before == {night["version"]}
    tags = registry.version_tags(night["version"])
    assert tags["day"] == DAY and tags["promoted"] == str(night["promoted"]).lower()
    assert tags["reason"] == night["reason"]
    if night["promoted"]:
        assert registry.alias(settings.alias) == night["version"]
    else:
        assert registry.alias(settings.alias) != night["version"]


def test_a_bad_day_fails_the_project_run(stack) -> None:
    url = stack.endpoints["mlflow"]["url"]
    registry = Registry(url, MODEL)
    client = MlflowClient(tracking_uri=url, registry_uri=url)
    before = registry.versions()
    done = mlflow_run(stack, "day=2023-02-30")
    assert done.returncode != 0
    assert "'2023-02-30' is not a day" in done.stderr
    [project] = [r for r in project_runs(client) if r.data.params.get("day") == "2023-02-30"]
    assert project.info.status == "FAILED"
    assert registry.versions() == before
