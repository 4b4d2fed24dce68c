"""MLflow tracking and model registry behind a small interface with NeuroKube's errors.

* ``Registry(tracking_uri)``: a server URL (``http://...``) or an embedded store
  (``sqlite:///path/mlflow.db``, with ``artifact_root`` for the artifacts).
* Unavailable server -> :class:`TemporaryError` (checked up front by :meth:`Registry.check`,
  and for every call); a request MLflow rejects -> :class:`InputError`.
* ``neurokube-placement`` versions are MLflow Models (:mod:`neurokube.registry.placement`): a
  pyfunc defined as code with the value model's files as artifacts, logged by :meth:`RunLog.model`
  as the run's output and registered from ``models:/<model_id>``. ``models:/<name>@champion`` is a
  URI ``mlflow.pyfunc.load_model`` and ``mlflow models serve`` take.
* Other models (``neurokube-forecast``) are plain files under the run's ``model/`` artifacts
  (:meth:`RunLog.files`); a version is registered from that directory, as placement versions were
  before the MLflow Model format (:meth:`Registry.load` still reads those).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from neurokube.adapters.model_files import save_value_model
from neurokube.errors import InputError, TemporaryError
from neurokube.features import FEATURE_NAMES, FEATURE_VERSION
from neurokube.logs import event
from neurokube.model.value_model import ValueModel
from neurokube.registry import placement

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

    def __init__(self, client: Any, run_id: str, tracking_uri: str) -> None:
        self._client, self.run_id, self._uri = client, run_id, tracking_uri

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

    def model(self, model: ValueModel) -> str:
        """The value model as an MLflow Model named ``model``, the run's output; its ``models:/`` URI.

        A pyfunc from code (:data:`placement.CODE_FILE`), the value model's files as the artifact
        ``value_model``, the feature signature, an input example and the feature version as
        metadata. MLflow loads it once and predicts the example before it is stored.
        """
        import lightgbm
        import numpy
        import pandas
        from mlflow.entities import LoggedModelOutput

        with warnings.catch_warnings():  # importing mlflow.pyfunc warns about MLflow's own type hints
            warnings.simplefilter("ignore", UserWarning)
            import mlflow.pyfunc

        run = _call("get run", lambda: self._client.get_run(self.run_id))
        logged = _call("create logged model", lambda: self._client.create_logged_model(
            run.info.experiment_id, name=MODEL_ARTIFACT, source_run_id=self.run_id, model_type="neurokube-placement",
            params={"value_model_version": model.version}))
        with tempfile.TemporaryDirectory() as tmp:
            save_value_model(model, Path(tmp) / placement.VALUE_MODEL)
            previous = _set_uris(self._uri)
            try:
                _call("log model", lambda: mlflow.pyfunc.log_model(
                    name=MODEL_ARTIFACT, model_id=logged.model_id, python_model=str(placement.CODE_FILE),
                    artifacts={placement.VALUE_MODEL: str(Path(tmp) / placement.VALUE_MODEL)},
                    signature=placement.signature(), input_example=placement.input_example(),
                    metadata={"feature_version": FEATURE_VERSION, "features": list(FEATURE_NAMES),
                              "value_model_version": model.version},
                    pip_requirements=[f"mlflow=={mlflow.__version__}", f"lightgbm=={lightgbm.__version__}",
                                      f"numpy=={numpy.__version__}", f"pandas=={pandas.__version__}"]))
            finally:
                _set_uris(*previous)
        _call("link model to run", lambda: self._client.log_outputs(
            self.run_id, [LoggedModelOutput(logged.model_id, step=0)]))
        return f"models:/{logged.model_id}"

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
            yield RunLog(self.client, run.info.run_id, self.uri)
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
        """A new version of the model from the run; returns its number.

        The run's logged model (:meth:`RunLog.model`, ``models:/<model_id>``) when it has one, else
        its ``model/`` artifact directory (:meth:`RunLog.files`)."""
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(self.model_name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise _mapped("get registered model", exc) from None
            _call("create registered model", lambda: self.client.create_registered_model(self.model_name))
        run = _call("get run", lambda: self.client.get_run(run_id))
        outputs = run.outputs.model_outputs if run.outputs is not None else []
        model_id = max(outputs, key=lambda o: o.step).model_id if outputs else None
        source = f"models:/{model_id}" if model_id else f"{run.info.artifact_uri}/{MODEL_ARTIFACT}"
        previous = _set_uris(self.uri)  # an embedded registry looks the logged model up in the global store
        try:
            version = _call("create model version", lambda: self.client.create_model_version(
                self.model_name, source=source, run_id=run_id, model_id=model_id))
        finally:
            _set_uris(*previous)
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

    def model_uri(self, alias: str | None = "champion", version: str | None = None) -> str:
        """``models:/<name>/<version>`` or ``models:/<name>@<alias>``."""
        return f"models:/{self.model_name}/{version}" if version else f"models:/{self.model_name}@{alias}"

    def download(self, dest: Path, alias: str | None = "champion", version: str | None = None) -> Path:
        """The files of ``models:/<name>@<alias>`` (or ``/<version>``) in ``dest``: an MLflow Model
        (``MLmodel``, the code file, ``artifacts/value_model/``), or a version's plain files."""
        import mlflow.artifacts

        uri = self.model_uri(alias, version)
        dest.mkdir(parents=True, exist_ok=True)
        previous = _set_uris(self.uri)  # models:/ resolves through the global registry URI
        try:
            return Path(_call(f"download {uri}", lambda: mlflow.artifacts.download_artifacts(
                artifact_uri=uri, dst_path=str(dest))))
        finally:
            _set_uris(*previous)

    def fetch(self, version: str, work_dir: Path | None = None) -> placement.LoadedModel:
        """Version ``version`` loaded into memory (:func:`placement.read_model`: no code is run), its
        files removed again. :class:`placement.FeatureMismatch` when it declares other features,
        :class:`~neurokube.model.value_model.ModelError` when its files are corrupt,
        :class:`TemporaryError` when MLflow does not answer."""
        staging = Path(tempfile.mkdtemp(prefix=f"neurokube-v{version}-", dir=work_dir))
        try:
            return placement.read_model(self.download(staging, version=version))
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def load(self, cache_dir: Path, alias: str = "champion") -> tuple[str, ValueModel] | None:
        """The aliased version and its model, cached in ``cache_dir/<version>``; None without alias."""
        version = self.alias(alias)
        if version is None:
            return None
        target = cache_dir / f"v{version}"
        if not any((target / name).is_file() for name in (placement.MLMODEL, placement.LEGACY_MANIFEST)):
            cache_dir.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".v{version}-", dir=cache_dir))
            try:
                files = self.download(staging, version=version)
                shutil.rmtree(target, ignore_errors=True)
                files.rename(target)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        return version, placement.read_model(target).model


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
