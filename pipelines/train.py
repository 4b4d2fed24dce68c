"""Step 4: fit the value model on the joined dataset (:func:`neurokube.learning.fit.fit_value_model`)."""

from __future__ import annotations

import lightgbm as lgb
import pandas as pd

from neurokube.errors import InputError
from neurokube.features import FEATURE_NAMES
from neurokube.learning.fit import FitSettings, fit_value_model
from neurokube.model.reward import RewardWeights
from neurokube.model.value_model import ValueModel


def fit(dataset: pd.DataFrame, weights: RewardWeights, settings: FitSettings, version: str,
        days: list[str]) -> ValueModel:
    try:
        return fit_value_model(dataset, weights, settings, version=version,
                               info={"days": days, "features": len(FEATURE_NAMES)})
    except ValueError as exc:
        raise InputError("not enough data to train", "nightly", str(exc)) from None
    except lgb.basic.LightGBMError as exc:  # all-zero labels are not this: fit_value_model fits them as 0
        raise InputError("the logged outcomes cannot be fitted", "nightly", str(exc).splitlines()[0]) from None
