"""The value model: two LightGBM regressors and a manifest, saved as text (never pickle).

``contention.txt`` predicts a decision's added contention (core-seconds), ``occupancy.txt``
its added node-hours and the optional ``overflow.txt`` its added memory overflow (GiB-seconds;
a model without it predicts 0). A candidate's expected cost is their weighted sum. The weights
live in the manifest and can be overridden at load time or per policy spec
(``neurokube:node_hour_cost=C``), so the trade-off is chosen at decision time without retraining.

A model directory holds ``manifest.json``, ``contention.txt``, ``occupancy.txt`` and possibly
``overflow.txt``. The manifest
records the format, the version, the feature names and their order, the reward weights, and
training facts.

Loading never unpickles: a model file is read as bytes and must be UTF-8 LightGBM text, parsed by
``lgb.Booster(model_str=...)``. A pickle (by its name or its leading opcode) is refused with a
:class:`ModelError` before anything is parsed, and the manifest may only name plain files inside
the model directory.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from neurokube.errors import PermanentError
from neurokube.features import FEATURE_NAMES, FEATURE_VERSION
from neurokube.model.reward import RewardWeights
from neurokube.policies.framework import Reason

FORMAT = "neurokube-placement-v1"
TARGETS = ("contention", "occupancy")
"""Every model predicts these."""
OPTIONAL_TARGETS = ("overflow",)
"""Predicted when the model was trained with memory-overflow outcomes; 0 otherwise."""
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".dill", ".pt", ".pth", ".sav")
PICKLE_PROTO = b"\x80"  # the PROTO opcode that starts every pickle of protocol 2 and later


class ModelError(PermanentError):
    """A model directory is missing, incomplete, corrupt or for other features.

    ``reason`` says which, as the framework's enum (``model_missing``: no manifest at all;
    ``model_corrupt``: anything else), so no caller reads the message to tell.
    """

    def __init__(self, message: str, reason: Reason = Reason.MODEL_CORRUPT) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class ValueModel:
    boosters: dict[str, lgb.Booster]
    weights: RewardWeights = field(default_factory=RewardWeights)
    version: str = "unversioned"
    info: dict[str, Any] = field(default_factory=dict)

    def predict(self, features: np.ndarray) -> dict[str, np.ndarray]:
        out = {}
        for name, booster in self.boosters.items():
            out[name] = np.maximum(booster.predict(features, num_threads=1), 0.0)
        return out

    def components(self, features: np.ndarray) -> dict[str, np.ndarray]:
        """The predicted cost components of each row: contention (core-s), occupancy (node-hours)
        and overflow (memory GiB-s, zeros without an overflow model)."""
        p = self.predict(features)
        if "overflow" not in p:
            p["overflow"] = np.zeros(features.shape[0])
        return p

    def cost(self, features: np.ndarray, weights: RewardWeights | None = None) -> np.ndarray:
        """Expected cost of each row (lower is better), under ``weights`` (default: the model's)."""
        return combine(self.components(features), weights or self.weights)

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        digests = {}
        names = [n for n in (*TARGETS, *OPTIONAL_TARGETS) if n in self.boosters]
        for name in names:
            text = self.boosters[name].model_to_string()
            (directory / f"{name}.txt").write_text(text)
            digests[name] = hashlib.sha256(text.encode()).hexdigest()
        manifest = {
            "format": FORMAT, "version": self.version, "feature_version": FEATURE_VERSION,
            "features": list(FEATURE_NAMES), "targets": {n: f"{n}.txt" for n in names},
            "sha256": digests, "reward_weights": self.weights.to_dict(), "info": self.info,
        }
        (directory / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str) + "\n")
        return directory


def load_model(directory: str | Path, weights: RewardWeights | None = None) -> ValueModel:
    """Load and check a model directory; raises :class:`ModelError` saying what is wrong."""
    directory = Path(directory)
    path = directory / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(f"no model at {directory} (manifest.json missing)", Reason.MODEL_MISSING) from None
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: unreadable manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ModelError(f"{path}: not a {FORMAT} manifest")
    if manifest.get("features") != list(FEATURE_NAMES):
        raise ModelError(f"{path}: the model was trained on other features "
                         f"(feature_version {manifest.get('feature_version')}, this build {FEATURE_VERSION})")
    targets, digests = manifest.get("targets", {}), manifest.get("sha256", {})
    if not isinstance(targets, dict) or not isinstance(digests, dict):
        raise ModelError(f"{path}: targets and sha256 must be objects")
    boosters = {}
    for name in (*TARGETS, *(n for n in OPTIONAL_TARGETS if n in targets)):
        file = directory / _plain_file_name(targets.get(name, f"{name}.txt"), path)
        text = _model_text(file)
        expected = digests.get(name)
        if expected and hashlib.sha256(text.encode()).hexdigest() != expected:
            raise ModelError(f"{file}: checksum mismatch, the file is corrupt or was replaced")
        try:
            booster = lgb.Booster(model_str=text)
        except lgb.basic.LightGBMError as exc:
            raise ModelError(f"{file}: not a LightGBM model ({str(exc).splitlines()[0]})") from None
        if booster.num_feature() != len(FEATURE_NAMES):
            raise ModelError(f"{file}: expects {booster.num_feature()} features, not {len(FEATURE_NAMES)}")
        boosters[name] = booster
    try:
        saved = RewardWeights(**manifest.get("reward_weights", {}))
    except TypeError as exc:
        raise ModelError(f"{path}: bad reward_weights ({exc})") from None
    return ValueModel(boosters=boosters, weights=weights or saved, version=str(manifest.get("version")),
                      info=manifest.get("info", {}))


def combine(components: dict[str, np.ndarray], weights: RewardWeights) -> np.ndarray:
    """The weighted cost of predicted components (see :meth:`ValueModel.components`)."""
    return weights.cost(components["contention"], components["occupancy"],
                        components.get("overflow", 0.0))


def _plain_file_name(value: object, manifest: Path) -> str:
    """A manifest's target file: a plain name inside the model directory (no path, not hidden)."""
    if not isinstance(value, str) or not value or "/" in value or "\\" in value or value.startswith("."):
        raise ModelError(f"{manifest}: a target must be a plain file name in the model directory, not {value!r}")
    return value


def _model_text(file: Path) -> str:
    """The LightGBM text of ``file``; a pickle or any other binary file is refused, never loaded."""
    if file.suffix.lower() in PICKLE_SUFFIXES:
        raise ModelError(f"{file}: a pickle file; models are LightGBM text (pickles are never loaded)")
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise ModelError(f"{file}: cannot be read ({exc.strerror or exc})") from None
    if data.startswith(PICKLE_PROTO):
        raise ModelError(f"{file}: a pickle, not LightGBM text (pickles are never loaded)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ModelError(f"{file}: not a text file; models are LightGBM text") from None
