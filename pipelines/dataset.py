"""Step 3: join decisions to their outcomes; summarise what the snapshots observed.

A decision without an outcome (its pod has not finished, or the outcome object was lost) is
left out of the training set and counted. The snapshot summary (contention and node-hours as
the metrics pipeline saw them) is what the learning curve reports per day.
"""

from __future__ import annotations

import pandas as pd

from neurokube.model.decision_log import OUTCOME_COLUMNS
from neurokube.model.reward import RewardWeights


def join(decisions: pd.DataFrame, outcomes: pd.DataFrame, weights: RewardWeights) -> tuple[pd.DataFrame, dict]:
    base = decisions.drop(columns=[c for c in OUTCOME_COLUMNS if c in decisions.columns])
    base = base.drop_duplicates("decision_id", keep="last")
    outcome = outcomes.drop_duplicates("decision_id", keep="last")
    data = base.merge(outcome, on="decision_id", how="inner", validate="one_to_one")
    data = data.dropna(subset=["added_contention_core_s", "added_node_h"]).reset_index(drop=True)
    data["cost"] = weights.cost(data["added_contention_core_s"].astype(float), data["added_node_h"].astype(float))
    stats = {"decisions": int(len(base)), "with_outcome": int(len(data)),
             "without_outcome": int(len(base) - len(data))}
    return data, stats


def observed(snapshots: pd.DataFrame, step_s: int) -> dict[str, float]:
    """Contention (core-s above allocatable) and busy node-hours in the snapshots."""
    if snapshots.empty:
        return {"observed_contention_core_s": 0.0, "observed_node_hours": 0.0, "snapshot_rows": 0.0}
    used = snapshots["cpu_used_milli"].astype(float)
    over = (used - snapshots["cpu_alloc_milli"].astype(float)).clip(lower=0.0)
    return {"observed_contention_core_s": float(over.sum() * step_s / 1000.0),
            "observed_node_hours": float((used > 0).sum() * step_s / 3600.0),
            "snapshot_rows": float(len(snapshots))}
