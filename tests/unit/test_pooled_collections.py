"""Pooled collections (``neurokube train --collections K``): iteration 0 runs every behaviour
policy on every trace K times, each run with its own exploration seed, and fits one model on all of
it. Collection 1 is exactly the single collection's data; the others are new data."""

import pandas as pd
import pytest

from neurokube.errors import InputError
from neurokube.learning.fit import FitSettings
from neurokube.learning.loop import BEHAVIOUR_POLICIES, TrainSettings, train
from neurokube.model.decision_log import FEATURE_COLUMNS
from neurokube.trace.assemble import ArrivalSettings
from neurokube.trace.synth import SynthSettings, synth_trace

FIT = FitSettings(rounds=20, threads=1)


@pytest.fixture(scope="module")
def trace():
    return synth_trace("pooled", SynthSettings(
        arrivals=ArrivalSettings(hours=2, target_load=0.7, warmup_hours=1, seed=5), nodes=6, workloads=20))


def test_k_collections_pool_k_runs_of_each_policy_and_the_first_is_the_single_run(trace):
    messages: list[str] = []
    single = train([trace], TrainSettings(iterations=0, fit=FIT))
    pooled = train([trace], TrainSettings(iterations=0, fit=FIT, collections=2), progress=messages.append)
    assert sum("collection" in m for m in messages) == 2 * len(BEHAVIOUR_POLICIES)
    assert "collection 2 of 2" in messages[len(BEHAVIOUR_POLICIES)]

    one, two = single.decisions, pooled.decisions
    assert len(two) > 1.9 * len(one)
    columns = list(FEATURE_COLUMNS) + ["node", "added_contention_core_s"]
    first = two.iloc[:len(one)].reset_index(drop=True)
    pd.testing.assert_frame_equal(first[columns], one[columns].reset_index(drop=True))
    # the second collection explores with other seeds: other choices, so other rows
    second = two.iloc[len(one):].reset_index(drop=True)
    assert not second[columns].head(len(one)).equals(one[columns].reset_index(drop=True))
    assert pooled.model.info["decisions"] > single.model.info["decisions"]


def test_zero_collections_is_refused_before_any_replay(trace):
    calls: list[str] = []
    with pytest.raises(InputError, match="collection"):
        train([trace], TrainSettings(iterations=0, fit=FIT, collections=0), progress=calls.append)
    assert calls == []
