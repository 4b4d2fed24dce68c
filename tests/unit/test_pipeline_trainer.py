"""The trainer function (functions/trainer/main.py), without a cluster.

* the mode comes from the environment: a cluster when KUBERNETES_SERVICE_HOST or a kubeconfig is set;
* in a cluster: a batch/v1 Job running ``python -m pipelines.nightly`` for yesterday, named from the
  day and the event id, POSTed to the namespace's jobs; a redelivered event (409) is not an error;
* locally: the same command starts as a detached subprocess and the handler returns at once;
* other CloudEvent types are refused (InputError -> 400).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from pathlib import Path

import pytest

from neurokube.cluster.api import ApiError
from neurokube.errors import InputError

REPO = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("trainer_main", REPO / "functions" / "trainer" / "main.py")
trainer = importlib.util.module_from_spec(spec)
sys.modules["trainer_main"] = trainer
spec.loader.exec_module(trainer)

NOW = 1_710_000_000.0  # 2024-03-09T16:00:00Z -> trains on 2024-03-08


class FakeApi:
    def __init__(self, conflict: bool = False) -> None:
        self.calls: list[tuple[str, dict]] = []
        self.conflict = conflict

    def create(self, path: str, body: dict):
        self.calls.append((path, body))
        if self.conflict:
            raise ApiError(409, "AlreadyExists", "exists", "POST", path)
        return body


def test_mode_from_environment():
    assert trainer.settings_from_env({}).mode == "local"
    assert trainer.settings_from_env({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}).mode == "cluster"
    explicit = {"KUBERNETES_SERVICE_HOST": "x", "NEUROKUBE_TRAINER_MODE": "local"}
    assert trainer.settings_from_env(explicit).mode == "local"
    with pytest.raises(InputError):
        trainer.settings_from_env({"NEUROKUBE_TRAINER_MODE": "cloud"})


def test_cluster_creates_the_nightly_job():
    s = trainer.TrainerSettings(mode="cluster", store="minio://a:b@minio:9000/neurokube",
                                tracking_uri="http://mlflow:5000", namespace="nk", image="reg/neurokube:1",
                                secret="nightly-env")
    api = FakeApi()
    answer = trainer.handle(trainer.PING_TYPE, "ev-1", s, now_s=NOW, client=lambda _s: api)
    assert answer == {"mode": "cluster", "day": "2024-03-08", "job": trainer.job_name("2024-03-08", "ev-1"),
                      "outcome": "created"}
    (path, job), = api.calls
    assert path == "/apis/batch/v1/namespaces/nk/jobs"
    assert job["apiVersion"] == "batch/v1" and job["kind"] == "Job"
    assert job["metadata"]["namespace"] == "nk"
    assert job["metadata"]["name"].startswith("neurokube-nightly-2024-03-08-")
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and job["spec"]["backoffLimit"] == 1
    (container,) = pod["containers"]
    assert container["image"] == "reg/neurokube:1"
    assert container["command"] == ["python", "-m", "pipelines.nightly",
                                    "--store", "minio://a:b@minio:9000/neurokube",
                                    "--tracking-uri", "http://mlflow:5000", "--day", "2024-03-08"]
    assert container["envFrom"] == [{"secretRef": {"name": "nightly-env"}}]


def test_redelivered_ping_finds_its_job():
    s = trainer.TrainerSettings(mode="cluster")
    answer = trainer.handle(trainer.PING_TYPE, "ev-1", s, now_s=NOW, client=lambda _s: FakeApi(conflict=True))
    assert answer["outcome"] == "exists"
    assert trainer.job_name("2024-03-08", "ev-1") == answer["job"] != trainer.job_name("2024-03-08", "ev-2")


def test_local_starts_a_detached_subprocess_and_returns(tmp_path):
    started = []

    def popen(argv, **kwargs):
        started.append((argv, kwargs))
        return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"], **kwargs)

    s = trainer.TrainerSettings(mode="local", store=str(tmp_path / "store"), log_dir=str(tmp_path / "logs"))
    t0 = time.monotonic()
    answer = trainer.handle(trainer.PING_TYPE, "ev-9", s, now_s=NOW, popen=popen)
    assert time.monotonic() - t0 < 2.0  # did not wait for the 5 s child
    (argv, kwargs), = started
    assert argv[1:3] == ["-m", "pipelines.nightly"] and argv[argv.index("--day") + 1] == "2024-03-08"
    assert kwargs["start_new_session"] is True and Path(kwargs["cwd"]) == REPO
    assert answer["mode"] == "local" and answer["pid"] > 0
    (child,) = [c for c in trainer.CHILDREN if c.pid == answer["pid"]]
    child.terminate()
    child.wait(timeout=10)
    trainer.CHILDREN.clear()
    assert (tmp_path / "logs" / "nightly-2024-03-08.log").exists()


def test_other_event_types_are_refused():
    with pytest.raises(InputError, match="unexpected CloudEvent type"):
        trainer.handle("dev.knative.apiserver.resource.add", "x", trainer.TrainerSettings(), now_s=NOW)
