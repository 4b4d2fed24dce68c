"""The trainer: answers the nightly PingSource CloudEvent by starting one night of training.

``dev.knative.sources.ping`` arrives once a night. The request never waits for training, and a
night is trained at most once, whatever the number of events:

* in a cluster (``NEUROKUBE_TRAINER_MODE=cluster``, or ``KUBERNETES_SERVICE_HOST`` /
  ``NEUROKUBE_KUBECONFIG`` set) it creates a Kubernetes Job running ``python -m pipelines.nightly``
  through the API server's REST API (:class:`neurokube.adapters.kube.KubeClient`: the service account's
  token, or a kubeconfig). The Job's name is
  ``neurokube-nightly-<day>``, from the day alone: a second event the same night (a redelivery, or
  another event id) gets 409 from the apiserver and is answered ``exists`` without a new Job;
* locally it starts the same command as a detached subprocess and answers at once; a marker file
  per day in the log directory makes a second event the same day answer ``exists`` too.

No secret is ever on the command line (``kubectl get pod -o yaml`` and ``ps`` show it). The Job
gets the object-store keys (``NEUROKUBE_STORE_ACCESS_KEY``, ``NEUROKUBE_STORE_SECRET_KEY``) and
MLflow's optional credentials as ``secretKeyRef`` environment variables from the Secret
``NEUROKUBE_TRAINER_SECRET``; the trainer itself never reads them. A store or tracking URL that
embeds credentials is refused in cluster mode, and moved from argv to the environment locally.
TLS: the CA bundle of the ConfigMap ``NEUROKUBE_TRAINER_CA_CONFIGMAP`` (key ``ca.crt``) is
mounted into the Job and named by ``NEUROKUBE_STORE_CA_BUNDLE`` and MLflow's own
``MLFLOW_TRACKING_SERVER_CERT_PATH``. The Job's pod runs as non-root with a read-only root file
system (scratch space: an emptyDir at /tmp), no capabilities, RuntimeDefault seccomp and no
service-account token, with CPU and memory requests and limits.

Callers are authenticated as the binder's are (neurokube.live.auth): ``Authorization: Bearer``
with NEUROKUBE_EVENT_TOKEN or a Knative OIDC token for NEUROKUBE_OIDC_AUDIENCE (the nightly
PingSource's, from NEUROKUBE_OIDC_SUBJECTS); 401 otherwise, and the function refuses to start
with neither unless NEUROKUBE_INSECURE=1.

Settings come from the environment, read once at start-up (:func:`settings_from_env`, with
:mod:`neurokube.envsettings`: every field names its variable; docs/FUNCTIONS.md renders them).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

import functions_framework
from cloudevents.http import CloudEvent

from neurokube import envsettings
from neurokube.adapters.kube import KubeClient
from neurokube.adapters.objectstore import ACCESS_KEY_ENV, CA_BUNDLE_ENV, SECRET_KEY_ENV
from neurokube.envsettings import setting
from neurokube.errors import ApiStatusError, InputError, TemporaryError
from neurokube.live import settings as live_settings
from neurokube.live import web
from neurokube.live.telemetry import process_telemetry
from neurokube.logs import configure_logging, event

log = logging.getLogger("neurokube.functions.trainer")
PING_TYPE = "dev.knative.sources.ping"
CHILDREN: list[Any] = []
"""Local runs started by this process; reaped (``poll``) at the next start, so none stays a zombie."""
JOB_PREFIX = "neurokube-nightly-"
UID = 10001
"""The image's non-root user (deploy/knative/Dockerfile)."""
TLS_DIR = "/etc/neurokube/tls"
"""Where the CA bundle ConfigMap is mounted in the Job (its key ``ca.crt``)."""
STORE_SECRET_KEYS = (ACCESS_KEY_ENV, SECRET_KEY_ENV)
"""Keys of the trainer Secret given to the Job as these environment variables (required)."""
MLFLOW_SECRET_KEYS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")
"""Keys of the trainer Secret given to the Job as MLflow's own variables when present (optional)."""


@dataclass(frozen=True)
class TrainerSettings:
    mode: str = setting("NEUROKUBE_TRAINER_MODE", "local", "create a Job (`cluster`), or start a local subprocess "
                        "(`local`)", shown="`cluster` in a cluster (`KUBERNETES_SERVICE_HOST` or "
                                          "`NEUROKUBE_KUBECONFIG` set), else `local`")
    store: str = setting("NEUROKUBE_STORE", "out/nightly/store",
                         "object store of the loop (path, `file://`, `minio://` or `minios://`), without credentials "
                         "in cluster mode: the Job gets the keys from NEUROKUBE_TRAINER_SECRET")
    tracking_uri: str = setting("MLFLOW_TRACKING_URI", "sqlite:///out/nightly/mlflow.db",
                                "MLflow; `https://` in the manifests")
    namespace: str = setting("NEUROKUBE_NAMESPACE", "neurokube-system", "the Job's namespace")
    image: str = setting("NEUROKUBE_TRAINER_IMAGE", "neurokube:dev",
                         "the Job's image (the overlay pins it by digest)")
    service_account: str = setting("NEUROKUBE_TRAINER_SERVICE_ACCOUNT", "neurokube-trainer",
                                   "the Job's ServiceAccount")
    secret: str = setting("NEUROKUBE_TRAINER_SECRET", "",
                          "Secret with the keys NEUROKUBE_STORE_ACCESS_KEY and NEUROKUBE_STORE_SECRET_KEY (and "
                          "optionally MLFLOW_TRACKING_USERNAME / _PASSWORD / _TOKEN), given to the Job by "
                          "`secretKeyRef`; required in cluster mode with a MinIO store")
    ca_configmap: str = setting("NEUROKUBE_TRAINER_CA_CONFIGMAP", "",
                                "ConfigMap whose `ca.crt` signs MinIO's and MLflow's certificates, mounted into "
                                "the Job")
    mlflow_insecure_tls: bool = setting("MLFLOW_TRACKING_INSECURE_TLS", False,
                                        "pass `MLFLOW_TRACKING_INSECURE_TLS=true` to the Job (certificate not "
                                        "checked); never in the shipped manifests, for a test server only")
    kubeconfig: str = setting("NEUROKUBE_KUBECONFIG", "",
                              "kubeconfig of the cluster the Job is created in; unset: the pod's service account")
    log_dir: str = setting("NEUROKUBE_TRAINER_LOG_DIR", "out/nightly/trainer-logs",
                           "local mode: the nights' logs and the once-per-day markers")
    job_ttl_s: int = setting(None, 86400, "a finished Job is deleted after this many seconds")
    backoff_limit: int = setting(None, 1, "retries of a failed night's pod")
    active_deadline_s: int = setting(None, 6 * 3600,
                                     "a night that runs longer is stopped (and fails): the Job never holds its "
                                     "CPU for a day")
    cpu: str = setting(None, "1", "the Job's CPU request")
    cpu_limit: str = setting(None, "2", "the Job's CPU limit")
    memory: str = setting(None, "2Gi", "the Job's memory request and limit")
    scratch: str = setting(None, "4Gi", "size limit of the Job's /tmp (emptyDir): work directory, MLflow's "
                                        "staging, matplotlib's cache")
    python: str = setting(None, sys.executable, "local mode: the interpreter of the night")
    extra_args: tuple[str, ...] = setting(None, (), "more arguments of `python -m pipelines.nightly`")

    def __post_init__(self) -> None:
        if self.mode not in ("cluster", "local"):
            raise InputError(f"NEUROKUBE_TRAINER_MODE must be cluster or local, not {self.mode!r}")
        if self.mode != "cluster":
            return
        for name, url in (("NEUROKUBE_STORE", self.store), ("MLFLOW_TRACKING_URI", self.tracking_uri)):
            if _password(url) is not None:
                raise InputError(f"{name} must not embed credentials in cluster mode",
                                 why="they would be on the Job's command line; put them in the Secret "
                                     f"NEUROKUBE_TRAINER_SECRET (keys {', '.join(STORE_SECRET_KEYS + MLFLOW_SECRET_KEYS)})")
        if self.store.startswith(("minio://", "minios://")) and not self.secret:
            raise InputError("NEUROKUBE_TRAINER_SECRET is not set",
                             why=f"the Job needs the MinIO keys ({', '.join(STORE_SECRET_KEYS)}) from a Secret")


def settings_from_env(env: Mapping[str, str] = os.environ) -> TrainerSettings:
    """The trainer's settings from ``env``; the mode defaults to ``cluster`` inside a cluster."""
    in_cluster = bool(env.get("KUBERNETES_SERVICE_HOST") or env.get("NEUROKUBE_KUBECONFIG"))
    return envsettings.from_env(TrainerSettings, env, defaults={"mode": "cluster" if in_cluster else "local"})


def _password(url: str) -> str | None:
    try:
        return urlsplit(url).password if "://" in url else None
    except ValueError:
        return None


def without_credentials(url: str) -> tuple[str, dict[str, str]]:
    """``url`` without ``user:password@``, and the environment that gives them instead (the object
    store's keys for a ``minio(s)://`` URL, MLflow's basic-auth variables for an ``http(s)://`` one)."""
    parts = urlsplit(url) if "://" in url else None
    if parts is None or parts.password is None:
        return url, {}
    netloc = parts.hostname or ""
    netloc = f"[{netloc}]" if ":" in netloc else netloc
    netloc += f":{parts.port}" if parts.port else ""
    clean = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    user, password = unquote(parts.username or ""), unquote(parts.password)
    if parts.scheme in ("minio", "minios"):
        return clean, {ACCESS_KEY_ENV: user, SECRET_KEY_ENV: password}
    return clean, {"MLFLOW_TRACKING_USERNAME": user, "MLFLOW_TRACKING_PASSWORD": password}


def nightly_argv(s: TrainerSettings, day: str, python: str = "python") -> list[str]:
    """The command of one night; never a credential (URLs are stripped of them)."""
    return [python, "-m", "pipelines.nightly", "--store", without_credentials(s.store)[0],
            "--tracking-uri", without_credentials(s.tracking_uri)[0], "--day", day, *s.extra_args]


def day_of(now_s: float) -> str:
    """The day to train on: the UTC day before the ping (the ping fires after midnight)."""
    return time.strftime("%Y-%m-%d", time.gmtime(now_s - 86400))


def job_name(day: str) -> str:
    """The night's Job: from the day alone, so every event of that night names the same Job."""
    return JOB_PREFIX + day


def job_env(s: TrainerSettings) -> list[dict[str, Any]]:
    """The Job's environment: scratch locations on the writable /tmp, the Secret's keys by
    ``secretKeyRef`` (never their values), the CA bundle's path for MinIO and MLflow."""
    env: list[dict[str, Any]] = [{"name": "HOME", "value": "/tmp"}, {"name": "TMPDIR", "value": "/tmp"},
                                 {"name": "MPLCONFIGDIR", "value": "/tmp/matplotlib"}]
    if s.secret:
        env += [{"name": key, "valueFrom": {"secretKeyRef": {"name": s.secret, "key": key, "optional": False}}}
                for key in STORE_SECRET_KEYS]
        env += [{"name": key, "valueFrom": {"secretKeyRef": {"name": s.secret, "key": key, "optional": True}}}
                for key in MLFLOW_SECRET_KEYS]
    if s.ca_configmap:
        env += [{"name": CA_BUNDLE_ENV, "value": f"{TLS_DIR}/ca.crt"},
                {"name": "MLFLOW_TRACKING_SERVER_CERT_PATH", "value": f"{TLS_DIR}/ca.crt"}]
    if s.mlflow_insecure_tls:
        env.append({"name": "MLFLOW_TRACKING_INSECURE_TLS", "value": "true"})
    return env


def job_manifest(s: TrainerSettings, day: str, event_id: str) -> dict[str, Any]:
    mounts = [{"name": "tmp", "mountPath": "/tmp"}]
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {"sizeLimit": s.scratch}}]
    if s.ca_configmap:
        mounts.append({"name": "tls", "mountPath": TLS_DIR, "readOnly": True})
        volumes.append({"name": "tls", "configMap": {"name": s.ca_configmap,
                                                     "items": [{"key": "ca.crt", "path": "ca.crt"}]}})
    container: dict[str, Any] = {
        "name": "nightly", "image": s.image, "command": nightly_argv(s, day), "env": job_env(s),
        "resources": {"requests": {"cpu": s.cpu, "memory": s.memory},
                      "limits": {"cpu": s.cpu_limit, "memory": s.memory}},
        "securityContext": {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID,
                            "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}},
        "volumeMounts": mounts,
    }
    labels = {"app.kubernetes.io/name": "neurokube-nightly", "app.kubernetes.io/part-of": "neurokube",
              "neurokube.io/day": day}
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": job_name(day), "namespace": s.namespace, "labels": labels,
                     "annotations": {"neurokube.io/ping-event-id": event_id}},
        "spec": {
            "backoffLimit": s.backoff_limit, "ttlSecondsAfterFinished": s.job_ttl_s,
            "activeDeadlineSeconds": s.active_deadline_s,
            "template": {"metadata": {"labels": labels},
                         "spec": {"restartPolicy": "Never", "serviceAccountName": s.service_account,
                                  "automountServiceAccountToken": False,
                                  "securityContext": {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID,
                                                      "fsGroup": UID,
                                                      "seccompProfile": {"type": "RuntimeDefault"}},
                                  "containers": [container], "volumes": volumes}},
        },
    }


class JobApi(Protocol):
    def create(self, path: str, body: dict) -> Any: ...


class KubeJobs:
    """Creates Jobs with the live functions' Kubernetes client (a kubeconfig, or the pod's
    service-account token, re-read as it rotates)."""

    def __init__(self, kube: KubeClient) -> None:
        self.kube = kube

    def create(self, path: str, body: dict) -> Any:
        return self.kube.request("POST", path, body)


def cluster_client(s: TrainerSettings) -> JobApi:
    return KubeJobs(KubeClient.from_settings(Path(s.kubeconfig) if s.kubeconfig else None, 10.0))


def create_job(api: JobApi, manifest: dict) -> str:
    """``created``, or ``exists`` when the night's Job is there already (409). The apiserver's
    other refusals propagate as ApiStatusError (``permanent`` for a 4xx)."""
    path = f"/apis/batch/v1/namespaces/{manifest['metadata']['namespace']}/jobs"
    try:
        answer = api.create(path, manifest)
    except ApiStatusError as exc:
        if not exc.conflict:
            raise
        answer = {"conflict": True}
    return "exists" if isinstance(answer, dict) and answer.get("conflict") else "created"


def start_local(s: TrainerSettings, day: str, popen: Callable[..., Any] = subprocess.Popen) -> int | None:
    """Start the night as a detached subprocess (own session, output to a log file); its pid, or
    None when this day was started already (the marker ``nightly-<day>.started`` exists)."""
    logs = Path(s.log_dir)
    logs.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(logs / f"nightly-{day}.started", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    except FileExistsError:
        return None
    secrets = {**without_credentials(s.store)[1], **without_credentials(s.tracking_uri)[1]}
    with open(logs / f"nightly-{day}.log", "ab") as out:
        proc = popen(nightly_argv(s, day, s.python), stdout=out, stderr=subprocess.STDOUT,
                     stdin=subprocess.DEVNULL, start_new_session=True,
                     cwd=str(Path(__file__).resolve().parents[2]), env={**os.environ, **secrets})
    CHILDREN[:] = [c for c in CHILDREN if c.poll() is None]
    CHILDREN.append(proc)
    return int(proc.pid)


def handle(ce_type: str, event_id: str, s: TrainerSettings, *, now_s: float | None = None,
           client: Callable[[TrainerSettings], JobApi] = cluster_client,
           popen: Callable[..., Any] = subprocess.Popen) -> dict[str, Any]:
    if ce_type != PING_TYPE:
        raise InputError(f"unexpected CloudEvent type {ce_type!r}", why=f"the trainer answers {PING_TYPE}")
    day = day_of(time.time() if now_s is None else now_s)
    if s.mode == "cluster":
        manifest = job_manifest(s, day, event_id)
        outcome = create_job(client(s), manifest)
        event(log, "nightly job " + outcome, job=manifest["metadata"]["name"], day=day, event_id=event_id)
        return {"mode": "cluster", "day": day, "job": manifest["metadata"]["name"], "outcome": outcome}
    pid = start_local(s, day, popen)
    if pid is None:
        event(log, "nightly already started locally", day=day, event_id=event_id)
        return {"mode": "local", "day": day, "outcome": "exists"}
    event(log, "nightly started locally", pid=pid, day=day, event_id=event_id)
    return {"mode": "local", "day": day, "pid": pid, "outcome": "created"}


SETTINGS = settings_from_env()
AUTH_SETTINGS = live_settings.from_env()  # who may call: the same settings as the binder's
configure_logging()
TELEMETRY = process_telemetry()
web.check_startup(AUTH_SETTINGS, "trainer", TELEMETRY)  # no auth and no NEUROKUBE_INSECURE=1: refuse to start


@functions_framework.cloud_event
def on_ping(ce: CloudEvent) -> None:
    import flask

    try:
        web.authenticate(flask.request, web.authenticator(AUTH_SETTINGS, "trainer"), TELEMETRY)
        handle(ce["type"], ce["id"], SETTINGS)
    except web.HttpError as exc:
        flask.abort(exc.status, description=exc.message)
    except InputError as exc:
        flask.abort(400, description=str(exc))
    except ApiStatusError as exc:  # a 4xx (RBAC, admission) is final: not a 503 for Knative to redeliver
        flask.abort(422 if exc.permanent else 503, description=str(exc))
    except TemporaryError as exc:
        flask.abort(503, description=str(exc))
