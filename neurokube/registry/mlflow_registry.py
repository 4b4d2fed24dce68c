"""MLflow tracking and model registry behind a small interface with NeuroKube's errors.

* ``Registry(tracking_uri)``: a server URL (``http://...``) or an embedded store
  (``sqlite:///path/mlflow.db``, with ``artifact_root`` for the artifacts).
* Unavailable server -> :class:`TemporaryError` (checked up front by :meth:`Registry.check`,
  and for every call); a request MLflow rejects -> :class:`InputError`.
* Model versions point at a run's ``model/`` artifact directory: ``manifest.json``,
  ``contention.txt``, ``occupancy.txt`` as written by :meth:`ValueModel.save`.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from neurokube.errors import InputError, TemporaryError
from neurokube.logs import event
from neurokube.model.value_model import ValueModel, load_model

log = logging.getLogger("neurokube.registry")
T = TypeVar("T")
MODEL_ARTIFACT = "model"

# The client's defaults retry a dead server for minutes; fail within seconds instead.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


class RunLog:
    """What a pipeline may log to its run."""

    def __init__(self, client: Any, run_id: str) -> None:
        self._client, self.run_id = client, run_id

    def params(self, values: dict[str, Any]) -> None:
        from mlflow.entities import Param

        _call("log params", lambda: self._client.log_batch(
            self.run_id, params=[Param(k, str(v)[:6000]) for k, v in values.items()]))

    def metrics(self, values: dict[str, float], step: int = 0) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        finite = {k: float(v) for k, v in values.items() if v == v and abs(float(v)) != float("inf")}
        _call("log metrics", lambda: self._client.log_batch(
            self.run_id, metrics=[Metric(k, v, now, step) for k, v in finite.items()]))

    def artifact(self, path: Path, directory: str | None = None) -> None:
        _call("log artifact", lambda: self._client.log_artifact(self.run_id, str(path), directory))

    def model(self, model: ValueModel) -> None:
        """The model's own files under ``model/`` (no pickle)."""
        with tempfile.TemporaryDirectory() as tmp:
            model.save(Path(tmp) / MODEL_ARTIFACT)
            _call("log model", lambda: self._client.log_artifacts(self.run_id, str(Path(tmp) / MODEL_ARTIFACT),
                                                                  MODEL_ARTIFACT))

    def files(self, directory: Path, artifact_path: str = MODEL_ARTIFACT) -> None:
        """Every file of ``directory`` under ``artifact_path`` (a model that is not a ValueModel)."""
        _call("log files", lambda: self._client.log_artifacts(self.run_id, str(directory), artifact_path))

    def tags(self, values: dict[str, str]) -> None:
        for k, v in values.items():
            _call("tag run", lambda k=k, v=v: self._client.set_tag(self.run_id, k, v))


class Registry:
    def __init__(self, tracking_uri: str, model_name: str = "neurokube-placement",
                 artifact_root: str | Path | None = None) -> None:
        from mlflow.tracking import MlflowClient

        self.uri = tracking_uri
        self.model_name = model_name
        self.artifact_root = Path(artifact_root).resolve().as_uri() if artifact_root else None
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def __repr__(self) -> str:
        return f"Registry({self.uri!r}, {self.model_name!r})"

    def for_model(self, model_name: str) -> "Registry":
        """The same tracking server and artifact root, another registered model."""
        twin = Registry.__new__(Registry)
        twin.uri, twin.model_name, twin.artifact_root, twin.client = self.uri, model_name, self.artifact_root, self.client
        return twin

    def check(self) -> None:
        """Fail fast with a :class:`TemporaryError` when a tracking server does not answer."""
        if not self.uri.startswith(("http://", "https://")):
            return
        import ssl

        # The CA bundle MLflow's own client verifies an https:// server with (the Job sets it).
        context = ssl.create_default_context(cafile=os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or None)
        try:
            with urllib.request.urlopen(self.uri.rstrip("/") + "/health", timeout=5, context=context) as response:
                response.read()
        except (urllib.error.URLError, OSError) as exc:
            raise TemporaryError(f"MLflow at {self.uri} is unavailable: {getattr(exc, 'reason', exc)}") from None

    # -- runs ----------------------------------------------------------------------------------

    def experiment(self, name: str) -> str:
        found = _call("get experiment", lambda: self.client.get_experiment_by_name(name))
        if found is not None:
            return found.experiment_id
        location = f"{self.artifact_root}/{name}" if self.artifact_root else None
        return _call("create experiment", lambda: self.client.create_experiment(name, artifact_location=location))

    @contextmanager
    def run(self, experiment: str, run_name: str) -> Iterator[RunLog]:
        experiment_id = self.experiment(experiment)
        run = _call("start run", lambda: self.client.create_run(experiment_id, run_name=run_name))
        status = "FAILED"
        try:
            yield RunLog(self.client, run.info.run_id)
            status = "FINISHED"
        finally:
            try:
                self.client.set_terminated(run.info.run_id, status)
            except Exception as exc:  # noqa: BLE001 - the run's own error matters more
                event(log, "could not close the MLflow run", level=logging.WARNING, run_id=run.info.run_id,
                      error=str(exc))

    def runs(self, experiment: str) -> list[Any]:
        found = _call("get experiment", lambda: self.client.get_experiment_by_name(experiment))
        if found is None:
            return []
        return list(_call("search runs", lambda: self.client.search_runs([found.experiment_id])))

    # -- registry ------------------------------------------------------------------------------

    def register(self, run_id: str) -> str:
        """A new version of the model from the run's ``model/`` artifacts; returns its number."""
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(self.model_name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise _mapped("get registered model", exc) from None
            _call("create registered model", lambda: self.client.create_registered_model(self.model_name))
        source = _call("get run", lambda: self.client.get_run(run_id)).info.artifact_uri + f"/{MODEL_ARTIFACT}"
        version = _call("create model version", lambda: self.client.create_model_version(
            self.model_name, source=source, run_id=run_id))
        return str(version.version)

    def alias(self, alias: str = "champion") -> str | None:
        """Version the alias points at, None when unset (or the model is not registered yet)."""
        from mlflow.exceptions import MlflowException

        try:
            return str(self.client.get_model_version_by_alias(self.model_name, alias).version)
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
                return None
            raise _mapped("get alias", exc) from None

    def set_alias(self, version: str, alias: str = "champion") -> None:
        _call("set alias", lambda: self.client.set_registered_model_alias(self.model_name, alias, version))

    def tag_version(self, version: str, tags: dict[str, str]) -> None:
        for k, v in tags.items():
            _call("tag version", lambda k=k, v=v: self.client.set_model_version_tag(self.model_name, version, k, v))

    def version_tags(self, version: str) -> dict[str, str]:
        return dict(_call("get version", lambda: self.client.get_model_version(self.model_name, version)).tags)

    def versions(self) -> list[str]:
        found = _call("search versions", lambda: self.client.search_model_versions(f"name='{self.model_name}'"))
        return sorted((str(v.version) for v in found), key=int)

    def download(self, dest: Path, alias: str | None = "champion", version: str | None = None) -> Path:
        """The model files of ``models:/<name>@<alias>`` (or ``/<version>``) in ``dest``."""
        import mlflow.artifacts

        uri = f"models:/{self.model_name}/{version}" if version else f"models:/{self.model_name}@{alias}"
        dest.mkdir(parents=True, exist_ok=True)
        previous = _set_uris(self.uri)
        try:
            return Path(_call(f"download {uri}", lambda: mlflow.artifacts.download_artifacts(
                artifact_uri=uri, dst_path=str(dest))))
        finally:
            _set_uris(*previous)

    def load(self, cache_dir: Path, alias: str = "champion") -> tuple[str, ValueModel] | None:
        """The aliased version and its model, cached in ``cache_dir/<version>``; None without alias."""
        version = self.alias(alias)
        if version is None:
            return None
        target = cache_dir / f"v{version}"
        if not (target / "manifest.json").is_file():
            cache_dir.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".v{version}-", dir=cache_dir))
            try:
                files = self.download(staging, version=version)
                shutil.rmtree(target, ignore_errors=True)
                files.rename(target)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        return version, load_model(target)


def _set_uris(tracking: str, registry: str | None = None) -> tuple[str, str]:
    import mlflow

    previous = (mlflow.get_tracking_uri(), mlflow.get_registry_uri())
    mlflow.set_tracking_uri(tracking)
    mlflow.set_registry_uri(registry or tracking)
    return previous


def _mapped(action: str, exc: Exception) -> Exception:
    code = getattr(exc, "error_code", "")
    if code in ("INVALID_PARAMETER_VALUE", "BAD_REQUEST", "RESOURCE_ALREADY_EXISTS"):
        return InputError(f"MLflow refused to {action}", why=str(exc).splitlines()[0])
    return TemporaryError(f"MLflow: {action} failed: {str(exc).splitlines()[0][:300]}")


def _call(action: str, fn: Callable[[], T]) -> T:
    from mlflow.exceptions import MlflowException

    try:
        return fn()
    except MlflowException as exc:
        raise _mapped(action, exc) from None
    except OSError as exc:
        raise TemporaryError(f"MLflow: {action} failed: {exc}") from None
