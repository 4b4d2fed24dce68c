"""A day whose logged outcomes are all zero for one target (a live day without any contention) still
trains: that target predicts 0 and the others learn (the live loop's nights failed on it before)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neurokube.learning.fit import FitSettings, fit_value_model
from neurokube.model.decision_log import FEATURE_COLUMNS
from neurokube.model.reward import RewardWeights
from neurokube.model.value_model import ValueModel


def decisions(contention: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    n = contention.size
    frame = pd.DataFrame(rng.random((n, len(FEATURE_COLUMNS))), columns=list(FEATURE_COLUMNS))
    frame["added_contention_core_s"] = contention
    # occupancy that depends on the first feature, so there is something to learn
    frame["added_node_h"] = np.where(frame[FEATURE_COLUMNS[0]] > 0.5, 1.0, 0.0) + 0.01 * rng.random(n)
    return frame


def test_all_zero_contention_trains_a_model_that_predicts_none_and_still_learns_occupancy():
    rng = np.random.default_rng(0)
    frame = decisions(np.zeros(400), rng)
    model = fit_value_model(frame, RewardWeights(), FitSettings(rounds=20, min_data_in_leaf=20), version="z")
    x = frame[list(FEATURE_COLUMNS)].to_numpy(np.float32)
    parts = model.components(x)
    assert np.all(parts["contention"] == 0.0)
    high = frame[FEATURE_COLUMNS[0]].to_numpy() > 0.5
    assert parts["occupancy"][high].mean() > 0.8 > 0.2 > parts["occupancy"][~high].mean()
    assert model.info["zero_targets"] == ["contention"]
    again = ValueModel.from_texts(model.to_texts())  # the usual model format: saved and loaded as any other
    assert np.all(again.components(x[:10])["contention"] == 0.0)


def test_a_few_decisions_with_contention_are_fitted_as_usual():
    rng = np.random.default_rng(1)
    contention = np.zeros(400)
    contention[:50] = 30.0
    model = fit_value_model(decisions(contention, rng), RewardWeights(), FitSettings(rounds=20, min_data_in_leaf=20))
    assert "zero_targets" not in model.info
    assert model.components(np.zeros((1, len(FEATURE_COLUMNS)), np.float32))["contention"][0] > 0


def test_too_few_decisions_are_still_refused():
    with pytest.raises(ValueError, match="at least 100"):
        fit_value_model(decisions(np.zeros(99), np.random.default_rng(2)), RewardWeights())
