"""Fit the value model's two LightGBM regressors on logged decisions."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd

from neurokube.model.decision_log import FEATURE_COLUMNS
from neurokube.model.reward import RewardWeights
from neurokube.model.value_model import ValueModel

OVERFLOW_COLUMN = "added_mem_overflow_gib_s"
MIN_OVERFLOW = 1e-6
MIN_OVERFLOW_ROWS = 20
"""The memory-overflow model is fitted when at least this many decisions added some overflow;
otherwise the model predicts none (the logs of the live binder do not carry it)."""


@dataclass(frozen=True)
class FitSettings:
    rounds: int = 200
    learning_rate: float = 0.06
    num_leaves: int = 31
    min_data_in_leaf: int = 40
    feature_fraction: float = 0.9
    bagging_fraction: float = 0.8
    tweedie_variance_power: float = 1.3
    """Contention is zero for most decisions and heavy-tailed for the rest: a Tweedie loss models
    that mean directly."""
    threads: int = 2
    seed: int = 0
    contention_target: str = "added_contention_core_s"
    """Label of the contention model: the decision's marginal contention, or
    ``node_contention_core_s``, the contention the pod experienced on its node."""


def _params(s: FitSettings, objective: str) -> dict:
    params = {
        "objective": objective, "learning_rate": s.learning_rate, "num_leaves": s.num_leaves,
        "min_data_in_leaf": s.min_data_in_leaf, "feature_fraction": s.feature_fraction,
        "bagging_fraction": s.bagging_fraction, "bagging_freq": 1, "lambda_l2": 1.0,
        "num_threads": s.threads, "seed": s.seed, "verbosity": -1, "deterministic": True,
    }
    if objective == "tweedie":
        params["tweedie_variance_power"] = s.tweedie_variance_power
    return params


def fit_value_model(decisions: pd.DataFrame, weights: RewardWeights, settings: FitSettings = FitSettings(),
                    version: str = "dev", info: dict | None = None) -> ValueModel:
    usable = decisions.dropna(subset=["added_contention_core_s", "added_node_h"])
    if len(usable) < 100:
        raise ValueError(f"need at least 100 decisions with outcomes to fit, have {len(usable)}")
    x = usable[list(FEATURE_COLUMNS)].to_numpy(dtype=np.float32)
    boosters = {}
    targets = [("contention", settings.contention_target, "tweedie"), ("occupancy", "added_node_h", "tweedie")]
    if OVERFLOW_COLUMN in usable and (usable[OVERFLOW_COLUMN].fillna(0) > MIN_OVERFLOW).sum() >= MIN_OVERFLOW_ROWS:
        targets.append(("overflow", OVERFLOW_COLUMN, "tweedie"))
    constant = []
    for name, column, objective in targets:
        y = np.maximum(usable[column].fillna(0.0).to_numpy(dtype=np.float64), 0.0)
        if not (y > 0).any():
            # Nothing to learn (a live day without any contention, say), and a Tweedie fit of all-zero
            # labels fails (its starting score is log 0). A squared-error fit of them is a valid
            # booster that predicts 0, so the other targets still train and the model keeps its form.
            objective = "regression"
            constant.append(name)
        data = lgb.Dataset(x, label=y, free_raw_data=True)
        boosters[name] = lgb.train(_params(settings, objective), data, num_boost_round=settings.rounds)
    facts = {"decisions": int(len(usable)), "fit": asdict(settings), **(info or {})}
    if constant:
        facts["zero_targets"] = constant  # every logged outcome was 0: these predict 0
    return ValueModel(boosters=boosters, weights=weights, version=version, info=facts)
