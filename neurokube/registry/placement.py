"""``neurokube-placement`` as an MLflow Model: a pyfunc defined as code, the value model inside.

The logged model (:meth:`~neurokube.registry.mlflow_registry.RunLog.model`) is MLflow's own format:

* ``MLmodel`` with the ``python_function`` flavor whose model is the code file
  ``placement_pyfunc.py`` (MLflow "models from code": the file calls ``mlflow.models.set_model``;
  nothing is pickled);
* ``artifacts/value_model/``: the value model's own files (``manifest.json`` and LightGBM text,
  :func:`~neurokube.adapters.model_files.save_value_model`);
* a signature: one float input column per :data:`~neurokube.features.FEATURE_NAMES`, in order, and
  the outputs :data:`OUTPUTS`; an input example (three candidate rows of a small cluster);
* ``metadata``: ``feature_version`` and ``features``, the feature set the model was trained on.

``mlflow.pyfunc.load_model("models:/neurokube-placement@champion")`` and ``mlflow models serve``
run the code file, which needs the ``neurokube`` package in the serving environment. The live
functions never run it: :func:`read_model` reads the MLmodel file and the value model's files
directly (the binder executes no code from the registry, as it loads no pickle), after checking
the declared feature set against this build's (:class:`FeatureMismatch` otherwise).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from neurokube.adapters.model_files import load_value_model
from neurokube.errors import PermanentError
from neurokube.features import FEATURE_NAMES, FEATURE_VERSION, candidate_features
from neurokube.model.value_model import ModelError, ValueModel, combine
from neurokube.policies.base import ClusterView, NodeMetrics, PodSpec

CODE_FILE = Path(__file__).with_name("placement_pyfunc.py")
"""The pyfunc's code (``python_model=`` of ``mlflow.pyfunc.log_model``)."""
VALUE_MODEL = "value_model"
"""Key of the value model's directory in the pyfunc's ``artifacts``."""
OUTPUTS = ("contention", "occupancy", "overflow", "cost")
"""Prediction columns: added contention (core-s), node-hours, memory overflow (GiB-s) and their
weighted cost under the model's reward weights (lower is better)."""
MLMODEL = "MLmodel"
LEGACY_MANIFEST = "manifest.json"
"""A version registered before the MLflow Model format: the value model's files alone."""


class FeatureMismatch(PermanentError):
    """The model declares another feature set than this build computes."""

    def __init__(self, message: str, declared: object) -> None:
        super().__init__(message)
        self.declared = declared


@dataclass(frozen=True)
class LoadedModel:
    model: ValueModel
    feature_version: int
    format: str
    """``mlflow-pyfunc`` or ``legacy`` (loose files of a version logged before the MLflow Model)."""


def signature():
    """Inputs: the feature columns (float32, the dtype :func:`candidate_features` returns);
    outputs: :data:`OUTPUTS` (float64)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, DataType, Schema

    return ModelSignature(inputs=Schema([ColSpec(DataType.float, name) for name in FEATURE_NAMES]),
                          outputs=Schema([ColSpec(DataType.double, name) for name in OUTPUTS]))


def input_example() -> pd.DataFrame:
    """Three candidate rows: a 500m / 512 MiB pod on an idle, a half-used and a busy 4-core node."""
    n = 3
    metrics = NodeMetrics(cpu_mean=np.array([100.0, 1800.0, 3200.0]), cpu_max=np.array([300.0, 2400.0, 3700.0]),
                          cpu_std=np.array([50.0, 300.0, 200.0]), cpu_trend=np.array([0.0, 0.1, -0.05]),
                          mem_mean=np.array([1024.0, 4096.0, 6144.0]), mem_max=np.array([1536.0, 4608.0, 7168.0]),
                          mem_std=np.array([64.0, 256.0, 128.0]), mem_trend=np.zeros(n),
                          samples=np.full(n, 20, dtype=np.int64), age_s=np.full(n, 15.0))
    requested = np.array([250, 2000, 3000], dtype=np.int64)
    view = ClusterView(now_s=36000.0, alloc_cpu=np.full(n, 4000, dtype=np.int64),
                       alloc_mem=np.full(n, 8192, dtype=np.int64), req_cpu=requested,
                       req_mem=np.array([512, 4096, 6144], dtype=np.int64), nz_req_cpu=requested,
                       nz_req_mem=np.array([512, 4096, 6144], dtype=np.int64),
                       pod_count=np.array([1, 6, 9], dtype=np.int64), metrics=metrics)
    return frame(candidate_features(PodSpec(500, 512, 1000, 1024), view, np.arange(n)))


def frame(features: np.ndarray) -> pd.DataFrame:
    """Feature rows as the model's input: one column per feature name."""
    return pd.DataFrame(np.asarray(features, dtype=np.float32), columns=list(FEATURE_NAMES))


def predict(model: ValueModel, rows: pd.DataFrame) -> pd.DataFrame:
    """The pyfunc's predictions: :data:`OUTPUTS` per row, exactly ``model.components`` and
    ``model.cost`` of the same feature matrix."""
    missing = [name for name in FEATURE_NAMES if name not in rows.columns]
    if missing:
        raise ValueError(f"input lacks the feature columns {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    features = rows[list(FEATURE_NAMES)].to_numpy(dtype=np.float32)
    parts = model.components(features)
    return pd.DataFrame({"contention": parts["contention"], "occupancy": parts["occupancy"],
                         "overflow": parts["overflow"], "cost": combine(parts, model.weights)})


def read_model(directory: Path) -> LoadedModel:
    """The value model of a downloaded model version, without running its code.

    ``directory`` holds an MLflow Model (``MLmodel``) or, for versions registered before it, the
    value model's files. Raises :class:`FeatureMismatch` when the declared feature version or
    feature names differ from this build's, :class:`~neurokube.model.value_model.ModelError` when
    the files are missing or corrupt (checksums, pickles: :func:`~neurokube.adapters.model_files.load_value_model`)."""
    directory = Path(directory)
    if (directory / MLMODEL).is_file():
        from mlflow.models import Model

        try:
            mlmodel = Model.load(str(directory / MLMODEL))
            metadata = mlmodel.metadata or {}
            names = mlmodel.signature.inputs.input_names() if mlmodel.signature is not None else None
        except Exception as exc:  # noqa: BLE001 - YAML, schema or type errors of a foreign file alike
            raise ModelError(f"{directory / MLMODEL}: not a readable MLmodel file ({type(exc).__name__}: "
                             f"{str(exc)[:200]})") from None
        _check_features(metadata.get("feature_version"), names, f"{directory / MLMODEL}")
        artifacts = (mlmodel.flavors.get("python_function") or {}).get("artifacts") or {}
        entry = artifacts.get(VALUE_MODEL)
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            raise ModelError(f"{directory / MLMODEL}: no {VALUE_MODEL!r} artifact in the python_function flavor")
        target = (directory / entry["path"]).resolve()
        if not target.is_relative_to(directory.resolve()):
            raise ModelError(f"{directory / MLMODEL}: the {VALUE_MODEL!r} artifact points outside the model")
        return LoadedModel(load_value_model(target), int(metadata["feature_version"]), "mlflow-pyfunc")
    manifest = directory / LEGACY_MANIFEST
    if manifest.is_file():
        try:
            declared = json.loads(manifest.read_text())
        except (OSError, ValueError):
            declared = {}
        declared = declared if isinstance(declared, dict) else {}
        _check_features(declared.get("feature_version"), declared.get("features"), str(manifest))
        return LoadedModel(load_value_model(directory), int(declared["feature_version"]), "legacy")
    raise ModelError(f"{directory}: neither an MLflow Model (MLmodel) nor a value model (manifest.json)")


def _check_features(version: object, names: object, where: str) -> None:
    if version != FEATURE_VERSION or list(names or ()) != list(FEATURE_NAMES):
        raise FeatureMismatch(f"{where}: the model declares feature_version {version!r} with "
                              f"{len(names or ())} features; this build computes feature_version "
                              f"{FEATURE_VERSION} with {len(FEATURE_NAMES)}", declared=version)
