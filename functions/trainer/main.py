"""The trainer: answers the nightly PingSource CloudEvent by starting one night of training.

``dev.knative.sources.ping`` arrives once a night. The request never waits for training:

* in a cluster (``NEUROKUBE_TRAINER_MODE=cluster``, or ``KUBERNETES_SERVICE_HOST`` /
  ``NEUROKUBE_KUBECONFIG`` set) it creates a Kubernetes Job running ``python -m pipelines.nightly``
  through the API server's REST API (the service account's token, or a client-certificate
  kubeconfig through :class:`neurokube.cluster.api.Client`). The Job's name derives from the
  day and the event id, so a redelivered event finds its Job (409) instead of starting a second;
* locally it starts the same command as a detached subprocess and answers at once.

Settings come from the environment, read once at start-up (:func:`settings_from_env`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import functions_framework
from cloudevents.http import CloudEvent

from neurokube.errors import InputError, TemporaryError
from neurokube.logs import configure_logging, event

log = logging.getLogger("neurokube.functions.trainer")
PING_TYPE = "dev.knative.sources.ping"
SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
CHILDREN: list[Any] = []
"""Local runs started by this process; reaped (``poll``) at the next start, so none stays a zombie."""


@dataclass(frozen=True)
class TrainerSettings:
    mode: str = "local"
    """``cluster`` (create a Job) or ``local`` (start a subprocess)."""
    store: str = "out/nightly/store"
    """Object store of the loop (path, file:// or minio://...)."""
    tracking_uri: str = "sqlite:///out/nightly/mlflow.db"
    namespace: str = "neurokube-system"
    image: str = "neurokube:dev"
    service_account: str = "neurokube-trainer"
    secret: str = ""
    """Secret whose keys become the Job's environment (e.g. MinIO credentials); none if empty."""
    kubeconfig: str = ""
    job_ttl_s: int = 86400
    backoff_limit: int = 1
    cpu: str = "1"
    memory: str = "2Gi"
    python: str = sys.executable
    log_dir: str = "out/nightly/trainer-logs"
    extra_args: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.mode not in ("cluster", "local"):
            raise InputError(f"NEUROKUBE_TRAINER_MODE must be cluster or local, not {self.mode!r}")


def settings_from_env(env: Mapping[str, str] = os.environ) -> TrainerSettings:
    in_cluster = bool(env.get("KUBERNETES_SERVICE_HOST") or env.get("NEUROKUBE_KUBECONFIG"))
    d = TrainerSettings()
    return TrainerSettings(
        mode=env.get("NEUROKUBE_TRAINER_MODE", "cluster" if in_cluster else "local"),
        store=env.get("NEUROKUBE_STORE", d.store), tracking_uri=env.get("MLFLOW_TRACKING_URI", d.tracking_uri),
        namespace=env.get("NEUROKUBE_NAMESPACE", d.namespace), image=env.get("NEUROKUBE_TRAINER_IMAGE", d.image),
        service_account=env.get("NEUROKUBE_TRAINER_SERVICE_ACCOUNT", d.service_account),
        secret=env.get("NEUROKUBE_TRAINER_SECRET", d.secret), kubeconfig=env.get("NEUROKUBE_KUBECONFIG", ""),
        log_dir=env.get("NEUROKUBE_TRAINER_LOG_DIR", d.log_dir))


def nightly_argv(s: TrainerSettings, day: str, python: str = "python") -> list[str]:
    return [python, "-m", "pipelines.nightly", "--store", s.store, "--tracking-uri", s.tracking_uri,
            "--day", day, *s.extra_args]


def day_of(now_s: float) -> str:
    """The day to train on: the UTC day before the ping (the ping fires after midnight)."""
    return time.strftime("%Y-%m-%d", time.gmtime(now_s - 86400))


def job_name(day: str, event_id: str) -> str:
    return f"neurokube-nightly-{day}-{hashlib.sha256(event_id.encode()).hexdigest()[:8]}"


def job_manifest(s: TrainerSettings, day: str, event_id: str) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "nightly", "image": s.image, "command": nightly_argv(s, day),
        "resources": {"requests": {"cpu": s.cpu, "memory": s.memory}, "limits": {"memory": s.memory}},
        "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False,
                            "readOnlyRootFilesystem": False, "capabilities": {"drop": ["ALL"]}},
    }
    if s.secret:
        container["envFrom"] = [{"secretRef": {"name": s.secret}}]
    labels = {"app.kubernetes.io/name": "neurokube-nightly", "app.kubernetes.io/part-of": "neurokube",
              "neurokube.io/day": day}
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": job_name(day, event_id), "namespace": s.namespace, "labels": labels,
                     "annotations": {"neurokube.io/ping-event-id": event_id}},
        "spec": {
            "backoffLimit": s.backoff_limit, "ttlSecondsAfterFinished": s.job_ttl_s,
            "template": {"metadata": {"labels": labels},
                         "spec": {"restartPolicy": "Never", "serviceAccountName": s.service_account,
                                  "containers": [container]}},
        },
    }


class JobApi(Protocol):
    def create(self, path: str, body: dict) -> Any: ...


class InClusterClient:
    """POST with the pod's service-account token (the REST API, no Kubernetes client library)."""

    def __init__(self, env: Mapping[str, str] = os.environ, sa_dir: Path = SA_DIR) -> None:
        host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT", "443")
        if not host:
            raise InputError("not in a cluster (KUBERNETES_SERVICE_HOST unset)")
        self.server = f"https://{host}:{port}"
        self._token = (sa_dir / "token").read_text().strip()
        self._ssl = ssl.create_default_context(cafile=str(sa_dir / "ca.crt"))

    def create(self, path: str, body: dict) -> Any:
        request = urllib.request.Request(self.server + path, data=json.dumps(body).encode(), method="POST",
                                         headers={"Authorization": f"Bearer {self._token}",
                                                  "Content-Type": "application/json", "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, context=self._ssl, timeout=10) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            if exc.code == 409:
                return {"conflict": True}
            if 400 <= exc.code < 500:
                raise InputError(f"the API server refused the Job ({exc.code})", why=exc.read()[:300].decode()) \
                    from None
            raise TemporaryError(f"kube-apiserver at {self.server}: {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise TemporaryError(f"kube-apiserver at {self.server} unreachable: {getattr(exc, 'reason', exc)}") \
                from None


def cluster_client(s: TrainerSettings) -> JobApi:
    if s.kubeconfig:
        from neurokube.cluster.api import Client

        return Client.from_kubeconfig(s.kubeconfig, timeout_s=10)
    return InClusterClient()


def create_job(api: JobApi, manifest: dict) -> str:
    from neurokube.cluster.api import ApiError

    path = f"/apis/batch/v1/namespaces/{manifest['metadata']['namespace']}/jobs"
    try:
        answer = api.create(path, manifest)
    except ApiError as exc:
        if not exc.conflict:
            raise
        answer = {"conflict": True}
    return "exists" if isinstance(answer, dict) and answer.get("conflict") else "created"


def start_local(s: TrainerSettings, day: str, popen: Callable[..., Any] = subprocess.Popen) -> int:
    """Start the night as a detached subprocess (own session, output to a log file); its pid."""
    logs = Path(s.log_dir)
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / f"nightly-{day}.log", "ab") as out:
        proc = popen(nightly_argv(s, day, s.python), stdout=out, stderr=subprocess.STDOUT,
                     stdin=subprocess.DEVNULL, start_new_session=True,
                     cwd=str(Path(__file__).resolve().parents[2]))
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
    event(log, "nightly started locally", pid=pid, day=day, event_id=event_id)
    return {"mode": "local", "day": day, "pid": pid}


SETTINGS = settings_from_env()
configure_logging()


@functions_framework.cloud_event
def on_ping(ce: CloudEvent) -> None:
    import flask

    try:
        handle(ce["type"], ce["id"], SETTINGS)
    except InputError as exc:
        flask.abort(400, description=str(exc))
    except TemporaryError as exc:
        flask.abort(503, description=str(exc))
