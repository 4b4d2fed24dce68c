"""A small value model with a known preference, for tests and benchmarks that need a real model
(LightGBM boosters saved in the registry's format) whose choices can be predicted."""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np

from neurokube.adapters.model_files import save_value_model
from neurokube.features import FEATURE_NAMES
from neurokube.model.reward import RewardWeights
from neurokube.model.value_model import ValueModel


def write_packing_model(directory: Path, version: str = "packing-test") -> Path:
    """A valid LightGBM value model that prefers the node with the most requested CPU (packing):
    its cost falls as ``req_cpu_frac_after`` rises, the opposite of kube-scheduler's LeastAllocated."""
    rng = np.random.default_rng(7)
    x = rng.random((3000, len(FEATURE_NAMES))).astype(np.float32)
    packed = x[:, FEATURE_NAMES.index("req_cpu_frac_after")]
    targets = {"contention": np.zeros(len(x)), "occupancy": 1.0 - packed}
    boosters = {name: lgb.train({"objective": "regression", "verbosity": -1, "num_leaves": 15, "num_threads": 1},
                                lgb.Dataset(x, y), num_boost_round=40)
                for name, y in targets.items()}
    return save_value_model(ValueModel(boosters, RewardWeights(), version=version), directory)

