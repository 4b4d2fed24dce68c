"""The value model: two LightGBM regressors and a manifest, kept as text (never pickle).

``contention.txt`` predicts a decision's added contention (core-seconds), ``occupancy.txt``
its added node-hours and the optional ``overflow.txt`` its added memory overflow (GiB-seconds;
a model without it predicts 0). A candidate's expected cost is their weighted sum. The weights
live in the manifest and can be overridden at load time or per policy spec
(``neurokube:node_hour_cost=C``), so the trade-off is chosen at decision time without retraining.

A model is a set of named texts, as a model directory holds them: ``manifest.json``,
``contention.txt``, ``occupancy.txt`` and possibly ``overflow.txt``. The manifest records the
format, the version, the feature names and their order, the reward weights, and training facts.
This module builds a model from those texts and gives them back (:meth:`ValueModel.from_texts`,
:meth:`ValueModel.to_texts`) and touches no file: a directory is read and written by
:mod:`neurokube.adapters.model_files`, an MLflow artifact by :mod:`neurokube.registry`.

Loading never unpickles: a model text may come as bytes and must be UTF-8 LightGBM text, parsed by
``lgb.Booster(model_str=...)``. A pickle (by its name or its leading opcode) is refused with a
:class:`ModelError` before anything is parsed, and the manifest may only name plain files inside
the model directory.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
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
MANIFEST = "manifest.json"


class ModelError(PermanentError):
    """A model directory is missing, incomplete, corrupt or for other features.

    ``reason`` says which, as the framework's enum (``model_missing``: no manifest at all;
    ``model_corrupt``: anything else), so no caller reads the message to tell.
    """

    def __init__(self, message: str, reason: Reason = Reason.MODEL_CORRUPT) -> None:
        super().__init__(message)
        self.reason = reason


Predictor = Callable[[np.ndarray], np.ndarray]
"""Rows of features -> one prediction per row: a booster compiled to machine code, say."""


@dataclass
class ValueModel:
    boosters: dict[str, lgb.Booster]
    weights: RewardWeights = field(default_factory=RewardWeights)
    version: str = "unversioned"
    info: dict[str, Any] = field(default_factory=dict)
    compiled: Mapping[str, Predictor] = field(default_factory=dict, compare=False, repr=False)
    """Faster stand-ins for some boosters, the same trees (:mod:`neurokube.adapters.compiled_model`
    checks that they predict what the booster predicts); a booster without one predicts itself."""

    def predict(self, features: np.ndarray) -> dict[str, np.ndarray]:
        out = {}
        for name, booster in self.boosters.items():
            fast = self.compiled.get(name)
            raw = fast(features) if fast is not None else booster.predict(features, num_threads=1)
            out[name] = np.maximum(raw, 0.0)
        return out

    def with_compiled(self, predictors: Mapping[str, Predictor]) -> ValueModel:
        """This model, predicting through ``predictors`` (by target name) where it has one."""
        return replace(self, compiled=dict(predictors))

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

    def to_texts(self) -> dict[str, str]:
        """The model as named texts: each booster's LightGBM text (``contention.txt``, ...) and,
        last, ``manifest.json`` with their checksums. :meth:`from_texts` reads them back."""
        texts, digests = {}, {}
        names = [n for n in (*TARGETS, *OPTIONAL_TARGETS) if n in self.boosters]
        for name in names:
            text = self.boosters[name].model_to_string()
            texts[f"{name}.txt"] = text
            digests[name] = hashlib.sha256(text.encode()).hexdigest()
        manifest = {
            "format": FORMAT, "version": self.version, "feature_version": FEATURE_VERSION,
            "features": list(FEATURE_NAMES), "targets": {n: f"{n}.txt" for n in names},
            "sha256": digests, "reward_weights": self.weights.to_dict(), "info": self.info,
        }
        texts[MANIFEST] = json.dumps(manifest, indent=2, default=str) + "\n"
        return texts

    @classmethod
    def from_texts(cls, texts: Mapping[str, str | bytes], weights: RewardWeights | None = None, *,
                   source: str = "") -> ValueModel:
        """The model of named ``texts`` (as :meth:`to_texts` gives them, a text as str or bytes),
        checked; raises :class:`ModelError` saying what is wrong.

        Checked: the manifest's format and features, plain target file names, no pickle (by name
        before its text is asked for, by content after), UTF-8 text, the sha256 checksums, the
        LightGBM text, the boosters' feature count and the reward weights. ``weights`` replaces the
        manifest's. ``source`` (a model directory, say) prefixes the names in messages. A name
        missing from ``texts`` is a missing file: ``manifest.json`` means no model at all
        (``model_missing``)."""
        path = _located(source, MANIFEST)
        try:
            manifest = json.loads(_decoded(texts[MANIFEST]))
        except KeyError:
            raise ModelError(f"no model at {source or 'these texts'} ({MANIFEST} missing)",
                             Reason.MODEL_MISSING) from None
        except ValueError as exc:
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
            file_name = _plain_file_name(targets.get(name, f"{name}.txt"), path)
            file = _located(source, file_name)
            text = _model_text(texts, file_name, file)
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
        return cls(boosters=boosters, weights=weights or saved, version=str(manifest.get("version")),
                   info=manifest.get("info", {}))


def combine(components: dict[str, np.ndarray], weights: RewardWeights) -> np.ndarray:
    """The weighted cost of predicted components (see :meth:`ValueModel.components`)."""
    return weights.cost(components["contention"], components["occupancy"],
                        components.get("overflow", 0.0))


def _located(source: str, name: str) -> str:
    """``name`` inside ``source`` as messages show it (as a path joins: ``.`` and no source add nothing)."""
    if not source or source == ".":
        return name
    return f"{source.rstrip('/')}/{name}"


def _suffix(name: str) -> str:
    """The suffix of a plain file name, as a path has it (``.PKL`` of ``a.PKL``; none for ``a.``)."""
    dot = name.rfind(".")
    return name[dot:] if 0 < dot < len(name) - 1 else ""


def _plain_file_name(value: object, manifest: str) -> str:
    """A manifest's target file: a plain name inside the model directory (no path, not hidden)."""
    if not isinstance(value, str) or not value or "/" in value or "\\" in value or value.startswith("."):
        raise ModelError(f"{manifest}: a target must be a plain file name in the model directory, not {value!r}")
    return value


def _model_text(texts: Mapping[str, str | bytes], name: str, file: str) -> str:
    """The LightGBM text of target file ``name`` (``file`` in messages); a pickle or any other binary
    is refused, never loaded, and a name that looks like a pickle is not even asked for."""
    if _suffix(name).lower() in PICKLE_SUFFIXES:
        raise ModelError(f"{file}: a pickle file; models are LightGBM text (pickles are never loaded)")
    try:
        data = texts[name]
    except KeyError:
        raise ModelError(f"{file}: cannot be read (missing)") from None
    if data.startswith(PICKLE_PROTO if isinstance(data, bytes) else PICKLE_PROTO.decode("latin-1")):
        raise ModelError(f"{file}: a pickle, not LightGBM text (pickles are never loaded)")
    try:
        return _decoded(data)
    except UnicodeDecodeError:
        raise ModelError(f"{file}: not a text file; models are LightGBM text") from None


def _decoded(data: str | bytes) -> str:
    """``data`` as text: bytes must be UTF-8 (a :class:`UnicodeDecodeError` otherwise)."""
    return data if isinstance(data, str) else bytes(data).decode("utf-8")
