"""The decision-log schema: what a replay records, Parquet round trip, schema checks."""

import numpy as np
import pandas as pd
import pytest

from neurokube.adapters.decision_store import read_decisions, write_log
from neurokube.errors import InputError
from neurokube.learning.collect import run_episode
from neurokube.model.decision_log import CANDIDATE_COLUMNS, DECISION_COLUMNS
from neurokube.model.reward import RewardWeights
from neurokube.policies import make_policy


@pytest.fixture(scope="module")
def episode(small_trace):
    return run_episode(small_trace, make_policy("tlp", trace=small_trace), epsilon=0.3, seed=0,
                       weights=RewardWeights())


def test_every_decision_is_logged_with_candidates_and_propensity(episode, small_trace):
    d, c = episode.decisions, episode.candidates
    assert list(d.columns) == list(DECISION_COLUMNS)
    assert list(c.columns) == list(CANDIDATE_COLUMNS)
    bound = len(small_trace.pods) - episode.metrics["unscheduled_pods"]
    assert len(d) == bound
    per_decision = c.groupby("decision_id")
    assert (per_decision["chosen"].sum() == 1).all()
    np.testing.assert_allclose(per_decision["propensity"].sum(), 1.0)
    chosen = c[c.chosen].set_index("decision_id").loc[d.decision_id]
    np.testing.assert_allclose(chosen["propensity"].to_numpy(), d["propensity"].to_numpy())
    assert (chosen["node"].to_numpy() == d["node"].to_numpy()).all()
    assert ((d.propensity > 0.3 / 12 - 1e-9) & (d.propensity <= 1)).all()


def test_outcomes_are_attributed_and_add_up(episode):
    d = episode.decisions
    assert d[["added_contention_core_s", "added_node_h", "cost"]].notna().all().all()
    assert (d.added_contention_core_s >= -1e-9).all() and (d.added_node_h >= 0).all()
    # marginal contention over decisions never exceeds the replay's total contention
    assert d.added_contention_core_s.sum() <= episode.metrics["contention_core_s"] * 1.0001 + 1e-6
    assert d.added_node_h.sum() <= episode.metrics["node_hours"] + 1e-6


def test_parquet_round_trip_and_schema_check(episode, tmp_path):
    write_log(tmp_path, "ep", episode.decisions, episode.candidates)
    back = read_decisions(tmp_path)
    pd.testing.assert_frame_equal(back, episode.decisions.reset_index(drop=True), check_dtype=False)
    episode.decisions.drop(columns=["propensity"]).to_parquet(tmp_path / "bad.decisions.parquet")
    with pytest.raises(InputError, match="propensity"):
        read_decisions(tmp_path)
