"""The trainer function (functions/trainer/main.py), without a cluster.

* the mode comes from the environment: a cluster when KUBERNETES_SERVICE_HOST or a kubeconfig is set;
* in a cluster: a batch/v1 Job running ``python -m pipelines.nightly`` for yesterday, named from the
  day alone, POSTed to the namespace's jobs. At most one Job per night: a second event the same
  night (another event id, or a redelivery) gets 409 from an apiserver that keeps Jobs by name
  and is answered ``exists``; the next night is a new Job;
* no secret on the command line: the Job gets the store keys and MLflow's credentials from the
  Secret by ``secretKeyRef`` (never a value, never envFrom); a store or tracking URL with
  ``user:password@`` is refused in cluster mode, and moved to the environment locally;
  ``python -m pipelines.nightly`` then reads the keys from the environment;
* the Job's pod: non-root, read-only root file system with an emptyDir /tmp, no capabilities,
  RuntimeDefault seccomp, no service-account token, CPU and memory requests and limits, the CA
  bundle mounted and named for MinIO and MLflow;
* locally: the same command starts as a detached subprocess and the handler returns at once, once
  per day;
* other CloudEvent types are refused (InputError -> 400);
* callers need the event token (or an OIDC token): 401 without, and no start without either
  unless NEUROKUBE_INSECURE=1.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import functions_framework
import pytest
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent

from neurokube import envsettings
from neurokube.adapters.kube import KubeError
from neurokube.errors import InputError

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "functions" / "trainer" / "main.py"
EVENT_TOKEN = "trainer-token-for-the-unit-tests"
spec = importlib.util.spec_from_file_location("trainer_main", SOURCE)
trainer = importlib.util.module_from_spec(spec)
sys.modules["trainer_main"] = trainer
with mock.patch.dict(os.environ, {"NEUROKUBE_EVENT_TOKEN": EVENT_TOKEN}):  # read once, at import
    spec.loader.exec_module(trainer)

NOW = 1_710_000_000.0  # 2024-03-09T16:00:00Z -> trains on 2024-03-08


class FakeApi:
    """An apiserver's jobs collection: objects kept by namespace and name, 409 for a taken name."""

    def __init__(self, conflict: bool = False) -> None:
        self.calls: list[tuple[str, dict]] = []
        self.jobs: dict[tuple[str, str], dict] = {}
        self.conflict = conflict

    def create(self, path: str, body: dict):
        self.calls.append((path, body))
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        if self.conflict or key in self.jobs:
            raise KubeError(409, "AlreadyExists", f'jobs.batch "{key[1]}" already exists', "POST", path)
        self.jobs[key] = body
        return body


CLUSTER = dict(mode="cluster", store="minios://minio.nk.svc:9000/neurokube", tracking_uri="https://mlflow:5000",
               namespace="nk", image="reg/neurokube:1", secret="nightly-env", ca_configmap="nk-ca")


def container_of(job: dict) -> dict:
    (container,) = job["spec"]["template"]["spec"]["containers"]
    return container


def test_mode_from_environment():
    assert trainer.settings_from_env({}).mode == "local"
    assert trainer.settings_from_env({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}).mode == "cluster"
    explicit = {"KUBERNETES_SERVICE_HOST": "x", "NEUROKUBE_TRAINER_MODE": "local"}
    assert trainer.settings_from_env(explicit).mode == "local"
    with pytest.raises(InputError):
        trainer.settings_from_env({"NEUROKUBE_TRAINER_MODE": "cloud"})


def test_cluster_creates_the_nightly_job():
    s = trainer.TrainerSettings(**CLUSTER)
    api = FakeApi()
    answer = trainer.handle(trainer.PING_TYPE, "ev-1", s, now_s=NOW, client=lambda _s: api)
    assert answer == {"mode": "cluster", "day": "2024-03-08", "job": "neurokube-nightly-2024-03-08",
                      "outcome": "created"}
    (path, job), = api.calls
    assert path == "/apis/batch/v1/namespaces/nk/jobs"
    assert job["apiVersion"] == "batch/v1" and job["kind"] == "Job"
    assert job["metadata"]["namespace"] == "nk" and job["metadata"]["name"] == "neurokube-nightly-2024-03-08"
    assert job["metadata"]["annotations"]["neurokube.io/ping-event-id"] == "ev-1"
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and job["spec"]["backoffLimit"] == 1
    assert job["spec"]["activeDeadlineSeconds"] == 6 * 3600 and job["spec"]["ttlSecondsAfterFinished"] == 86400
    container = container_of(job)
    assert container["image"] == "reg/neurokube:1"
    assert container["command"] == ["python", "-m", "pipelines.nightly",
                                    "--store", "minios://minio.nk.svc:9000/neurokube",
                                    "--tracking-uri", "https://mlflow:5000", "--day", "2024-03-08"]


def test_one_job_per_night_whatever_the_event_ids():
    """Two different event ids the same night (and a redelivery) make one Job; both answers name it."""
    s = trainer.TrainerSettings(**CLUSTER)
    api = FakeApi()
    first = trainer.handle(trainer.PING_TYPE, "ev-1", s, now_s=NOW, client=lambda _s: api)
    second = trainer.handle(trainer.PING_TYPE, "ev-2", s, now_s=NOW + 300, client=lambda _s: api)
    again = trainer.handle(trainer.PING_TYPE, "ev-1", s, now_s=NOW + 600, client=lambda _s: api)
    assert [a["outcome"] for a in (first, second, again)] == ["created", "exists", "exists"]
    assert first["job"] == second["job"] == again["job"] == "neurokube-nightly-2024-03-08"
    assert list(api.jobs) == [("nk", "neurokube-nightly-2024-03-08")]
    assert api.jobs[("nk", "neurokube-nightly-2024-03-08")]["metadata"]["annotations"] == {
        "neurokube.io/ping-event-id": "ev-1"}  # the Job is the first event's, untouched
    assert trainer.job_name("2024-03-08") == first["job"]
    nxt = trainer.handle(trainer.PING_TYPE, "ev-3", s, now_s=NOW + 86400, client=lambda _s: api)
    assert nxt["outcome"] == "created" and nxt["job"] == "neurokube-nightly-2024-03-09" and len(api.jobs) == 2


def test_redelivered_ping_finds_its_job():
    s = trainer.TrainerSettings(mode="cluster")
    answer = trainer.handle(trainer.PING_TYPE, "ev-1", s, now_s=NOW, client=lambda _s: FakeApi(conflict=True))
    assert answer["outcome"] == "exists" and answer["job"] == "neurokube-nightly-2024-03-08"


def test_credentials_only_by_secret_key_ref():
    job = trainer.job_manifest(trainer.TrainerSettings(**CLUSTER), "2024-03-08", "ev-1")
    container = container_of(job)
    env = {e["name"]: e for e in container["env"]}
    for key in ("NEUROKUBE_STORE_ACCESS_KEY", "NEUROKUBE_STORE_SECRET_KEY"):
        assert env[key] == {"name": key, "valueFrom": {"secretKeyRef": {"name": "nightly-env", "key": key,
                                                                        "optional": False}}}
    for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        assert env[key]["valueFrom"]["secretKeyRef"] == {"name": "nightly-env", "key": key, "optional": True}
    assert "envFrom" not in container  # only the named keys, not whatever else the Secret holds
    secret_names = {e["name"] for e in container["env"] if "valueFrom" in e}
    assert not any("value" in env[name] for name in secret_names)
    text = " ".join(container["command"])
    assert "@" not in text and "SECRET" not in text.upper() and "KEY" not in text.upper()


def test_tls_settings_reach_the_job():
    job = trainer.job_manifest(trainer.TrainerSettings(**CLUSTER), "2024-03-08", "ev-1")
    container, pod = container_of(job), job["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["NEUROKUBE_STORE_CA_BUNDLE"] == env["MLFLOW_TRACKING_SERVER_CERT_PATH"] == "/etc/neurokube/tls/ca.crt"
    assert "MLFLOW_TRACKING_INSECURE_TLS" not in env  # verified unless someone asks otherwise
    assert {"name": "tls", "mountPath": "/etc/neurokube/tls", "readOnly": True} in container["volumeMounts"]
    assert {"name": "tls", "configMap": {"name": "nk-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]}} \
        in pod["volumes"]
    insecure = trainer.settings_from_env({"NEUROKUBE_TRAINER_MODE": "local", "MLFLOW_TRACKING_INSECURE_TLS": "true"})
    assert insecure.mlflow_insecure_tls
    assert {"name": "MLFLOW_TRACKING_INSECURE_TLS", "value": "true"} in trainer.job_env(insecure)
    with pytest.raises(InputError, match="MLFLOW_TRACKING_INSECURE_TLS='sometimes': expected true or false"):
        trainer.settings_from_env({"MLFLOW_TRACKING_INSECURE_TLS": "sometimes"})


def test_the_job_pod_is_locked_down():
    job = trainer.job_manifest(trainer.TrainerSettings(**CLUSTER), "2024-03-08", "ev-1")
    container, pod = container_of(job), job["spec"]["template"]["spec"]
    sc = container["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"} and sc["runAsUser"] == 10001
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False and pod["serviceAccountName"] == "neurokube-trainer"
    resources = container["resources"]
    assert resources == {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}}
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "4Gi"}} in pod["volumes"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["HOME"] == env["TMPDIR"] == "/tmp" and env["MPLCONFIGDIR"].startswith("/tmp/")


@pytest.mark.parametrize("field, url", [("store", "minio://AKIA:s3cr3t@minio:9000/neurokube"),
                                        ("tracking_uri", "https://user:s3cr3t@mlflow:5000")])
def test_cluster_mode_refuses_credentials_in_urls(field, url):
    with pytest.raises(InputError, match="must not embed credentials in cluster mode") as info:
        trainer.TrainerSettings(**{**CLUSTER, field: url})
    assert "s3cr3t" not in str(info.value) and "NEUROKUBE_TRAINER_SECRET" in str(info.value)


def test_cluster_mode_needs_the_secret_for_minio():
    with pytest.raises(InputError, match="NEUROKUBE_TRAINER_SECRET is not set"):
        trainer.TrainerSettings(**{**CLUSTER, "secret": ""})


def test_settings_from_the_service_environment():
    s = trainer.settings_from_env({"KUBERNETES_SERVICE_HOST": "10.0.0.1", "NEUROKUBE_STORE": CLUSTER["store"],
                                   "MLFLOW_TRACKING_URI": "https://mlflow:5000", "NEUROKUBE_TRAINER_SECRET": "s",
                                   "NEUROKUBE_TRAINER_CA_CONFIGMAP": "ca", "NEUROKUBE_NAMESPACE": "nk"})
    assert (s.mode, s.secret, s.ca_configmap, s.namespace, s.mlflow_insecure_tls) == ("cluster", "s", "ca", "nk", False)


def test_every_bad_variable_is_reported_at_once_and_the_reference_is_the_code_s():
    with pytest.raises(InputError) as info:
        trainer.settings_from_env({"MLFLOW_TRACKING_INSECURE_TLS": "sometimes", "NEUROKUBE_NAMESPACE": " "})
    assert "MLFLOW_TRACKING_INSECURE_TLS='sometimes': expected true or false" in str(info.value)
    assert trainer.settings_from_env({"NEUROKUBE_NAMESPACE": " "}).namespace == "neurokube-system"  # blank: default
    docs = (REPO / "docs" / "FUNCTIONS.md").read_text()
    assert envsettings.table(trainer.TrainerSettings) in docs  # regenerate it when a setting changes


def test_the_job_command_reads_the_keys_from_the_environment(monkeypatch, tmp_path, capsys):
    """``python -m pipelines.nightly --store minios://host/bucket`` (no keys in argv): without the
    variables it stops with a message naming them (exit 2); with them it gets past the store and
    fails only on the unreachable MLflow (exit 1)."""
    from pipelines import nightly

    argv = ["--store", "minio://127.0.0.1:9/neurokube", "--tracking-uri", "http://127.0.0.1:9", "--day",
            "2024-03-08", "--work-dir", str(tmp_path / "work")]
    monkeypatch.delenv("NEUROKUBE_STORE_ACCESS_KEY", raising=False)
    monkeypatch.delenv("NEUROKUBE_STORE_SECRET_KEY", raising=False)
    assert nightly.main(argv) == 2
    err = capsys.readouterr().err
    assert "NEUROKUBE_STORE_ACCESS_KEY and NEUROKUBE_STORE_SECRET_KEY unset" in err
    monkeypatch.setenv("NEUROKUBE_STORE_ACCESS_KEY", "a")
    monkeypatch.setenv("NEUROKUBE_STORE_SECRET_KEY", "b")
    assert nightly.main(argv) == 1
    assert "MLflow at http://127.0.0.1:9 is unavailable" in capsys.readouterr().err


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
    assert answer["mode"] == "local" and answer["pid"] > 0 and answer["outcome"] == "created"
    again = trainer.handle(trainer.PING_TYPE, "ev-10", s, now_s=NOW + 60, popen=popen)
    assert again == {"mode": "local", "day": "2024-03-08", "outcome": "exists"} and len(started) == 1
    (child,) = [c for c in trainer.CHILDREN if c.pid == answer["pid"]]
    child.terminate()
    child.wait(timeout=10)
    trainer.CHILDREN.clear()
    assert (tmp_path / "logs" / "nightly-2024-03-08.log").exists()


def test_local_moves_url_credentials_to_the_environment(tmp_path):
    started = []

    class Done:
        pid = 4242

        def poll(self):
            return 0

    def popen(argv, **kwargs):
        started.append((argv, kwargs))
        return Done()

    s = trainer.TrainerSettings(mode="local", store="minio://AK:S%2Fcret@127.0.0.1:9000/nk",
                                tracking_uri="https://mluser:mlpass@mlflow:5000", log_dir=str(tmp_path / "logs"))
    trainer.handle(trainer.PING_TYPE, "ev-1", s, now_s=NOW, popen=popen)
    (argv, kwargs), = started
    trainer.CHILDREN.clear()
    assert argv[argv.index("--store") + 1] == "minio://127.0.0.1:9000/nk"
    assert argv[argv.index("--tracking-uri") + 1] == "https://mlflow:5000"
    assert not any(secret in " ".join(argv) for secret in ("AK", "cret", "mluser", "mlpass"))
    env = kwargs["env"]
    assert (env["NEUROKUBE_STORE_ACCESS_KEY"], env["NEUROKUBE_STORE_SECRET_KEY"]) == ("AK", "S/cret")
    assert (env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"]) == ("mluser", "mlpass")


def test_other_event_types_are_refused():
    with pytest.raises(InputError, match="unexpected CloudEvent type"):
        trainer.handle("dev.knative.apiserver.resource.add", "x", trainer.TrainerSettings(), now_s=NOW)


def test_callers_need_the_token(monkeypatch):
    monkeypatch.setenv("NEUROKUBE_EVENT_TOKEN", EVENT_TOKEN)
    client = functions_framework.create_app("on_ping", str(SOURCE), "cloudevent").test_client()
    headers, body = to_binary(CloudEvent({"type": "com.example.not-a-ping", "source": "s"}, {"x": 1}))
    for authorization in (None, "Bearer wrong-token-of-some-length", "Basic " + EVENT_TOKEN):
        sent = {**headers, **({"Authorization": authorization} if authorization else {})}
        assert client.post("/", headers=sent, data=body).status_code == 401, authorization
    right = client.post("/", headers={**headers, "Authorization": "Bearer " + EVENT_TOKEN}, data=body)
    assert right.status_code == 400  # past authentication, refused for its type: nothing started


def test_no_auth_refuses_to_start(monkeypatch):
    for name in ("NEUROKUBE_EVENT_TOKEN", "NEUROKUBE_OIDC_AUDIENCE", "NEUROKUBE_INSECURE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(InputError, match="the trainer would accept requests from anyone"):
        functions_framework.create_app("on_ping", str(SOURCE), "cloudevent")
