"""State-aware targets (neurokube/learning/lookahead.py): a decision's successor is the next decision
on the same node while its pod still runs there, and its target adds the discounted predicted cost
of that successor, component by component; off (discount 0) they are today's one-step targets."""

import numpy as np
import pandas as pd
import pytest

from neurokube.errors import InputError
from neurokube.learning.collect import MEM_OVERFLOW_COLUMN, run_episode
from neurokube.learning.fit import FitSettings, fit_value_model
from neurokube.learning.lookahead import SUCCESSOR_COLUMN, bootstrapped_targets, fit_state_aware, successors
from neurokube.learning.loop import TrainSettings, train
from neurokube.model.decision_log import FEATURE_COLUMNS
from neurokube.model.reward import RewardWeights
from neurokube.model.value_model import ValueModel
from neurokube.policies import make_policy
from neurokube.trace.assemble import ArrivalSettings
from neurokube.trace.synth import SynthSettings, synth_trace

FIT = FitSettings(rounds=30, threads=1)


class Linear:
    """A stand-in booster: ``scale`` x the first feature."""

    def __init__(self, scale):
        self.scale = scale

    def predict(self, features, num_threads=1):
        return self.scale * np.asarray(features, dtype=float)[:, 0]


def test_the_successor_is_the_next_decision_on_the_node_while_the_pod_runs():
    ts = [0, 10, 20, 30, 40, 45]
    node = [0, 1, 0, 1, 0, 2]
    end = [25, 15, 100, 35, 50, 60]
    # 0 -> 2 (node 0, at 20 < 25); 1: the next on node 1 comes at 30, after its pod ended at 15;
    # 2 -> 4 (the next on node 0, not any later one); 3, 4, 5: nothing later on their node
    assert successors(ts, end, node).tolist() == [2, -1, 4, -1, -1, -1]
    with pytest.raises(InputError, match="order"):
        successors([10, 0], [20, 20], [0, 0])


def _decisions(first_feature, succ, contention, node_h):
    n = len(first_feature)
    x = np.zeros((n, len(FEATURE_COLUMNS)))
    x[:, 0] = first_feature
    frame = pd.DataFrame(x, columns=list(FEATURE_COLUMNS))
    return frame.assign(decision_id=[f"d{i}" for i in range(n)], added_contention_core_s=contention,
                        added_node_h=node_h, **{SUCCESSOR_COLUMN: ["" if s < 0 else f"d{s}" for s in succ]})


def test_a_target_adds_the_discounted_predicted_cost_of_its_successor_per_component():
    d = _decisions([1.0, 2.0, 4.0, 8.0], succ=[2, -1, 3, -1], contention=[10.0, 20.0, 30.0, 40.0],
                   node_h=[0.5, 0.0, 0.25, 0.0])
    model = ValueModel({"contention": Linear(100.0), "occupancy": Linear(0.01)})
    y = bootstrapped_targets(d, model, 0.5, FIT)
    # d0 -> d2 (feature 4): 10 + 0.5 x 400 contention, 0.5 + 0.5 x 0.04 node-hours; d2 -> d3 (feature 8)
    np.testing.assert_allclose(y["added_contention_core_s"], [210.0, 20.0, 430.0, 40.0])
    np.testing.assert_allclose(y["added_node_h"], [0.52, 0.0, 0.29, 0.0])
    # no successor: the one-step target; discount 0: the one-step targets exactly
    same = bootstrapped_targets(d, model, 0.0, FIT)
    pd.testing.assert_frame_equal(same, d)
    with pytest.raises(InputError, match="discount"):
        bootstrapped_targets(d, model, 1.5, FIT)
    with pytest.raises(InputError, match=SUCCESSOR_COLUMN):
        bootstrapped_targets(d.drop(columns=[SUCCESSOR_COLUMN]), model, 0.5, FIT)


@pytest.fixture(scope="module")
def episode(small_trace):
    trace = small_trace
    ep = run_episode(trace, make_policy("most-allocated", trace=trace, seed=0), epsilon=0.2, seed=0,
                     weights=RewardWeights(), successors_on_node=True)
    names = np.char.add(np.char.add(trace.pods.namespace.astype(str), "/"), trace.pods.name.astype(str))
    duration = dict(zip(names.tolist(), trace.pods.duration_s.tolist()))
    return ep, duration


def test_successors_in_a_replay_are_later_on_the_same_node_and_within_the_pods_life(episode, small_trace):
    ep, duration = episode
    rows = ep.training_rows()
    one_step = run_episode(small_trace, make_policy("most-allocated", trace=small_trace, seed=0), epsilon=0.2,
                           seed=0, weights=RewardWeights())
    assert SUCCESSOR_COLUMN not in one_step.training_rows()  # off: today's training rows
    by_id = rows.set_index("decision_id")
    with_succ = rows[rows[SUCCESSOR_COLUMN] != ""]
    assert 0 < len(with_succ) < len(rows)
    nxt = by_id.loc[with_succ[SUCCESSOR_COLUMN]]
    assert (nxt["node"].to_numpy() == with_succ["node"].to_numpy()).all()
    start = with_succ["ts_s"].to_numpy()
    end = start + np.array([duration[p] for p in with_succ["pod"]])
    assert ((nxt["ts_s"].to_numpy() >= start) & (nxt["ts_s"].to_numpy() < end)).all()
    # and nothing else came to the node in between: the successor is the first one
    for i, row in with_succ.head(50).iterrows():
        between = rows[(rows["node"] == row["node"]) & (rows.index > i)]
        assert between.iloc[0]["decision_id"] == row[SUCCESSOR_COLUMN]


def test_state_aware_targets_raise_exactly_the_decisions_that_shape_a_later_one(episode):
    ep, _ = episode
    rows = ep.training_rows()
    one_step = fit_value_model(rows, RewardWeights(), FIT)
    y = bootstrapped_targets(rows, one_step, 0.5, FIT)
    has = (rows[SUCCESSOR_COLUMN] != "").to_numpy()
    for column in ("added_contention_core_s", "added_node_h", MEM_OVERFLOW_COLUMN):
        extra = y[column].to_numpy() - rows[column].to_numpy()
        assert (extra[~has] == 0).all() and (extra[has] >= 0).all()
    extra = y["added_contention_core_s"].to_numpy() - rows["added_contention_core_s"].to_numpy()
    assert (extra[has] > 0).mean() > 0.5  # most later decisions on a node are predicted some cost
    # the fitted Q iteration's model prices that: higher predicted cost where a later pod comes
    x = rows[list(FEATURE_COLUMNS)].to_numpy(dtype=np.float32)
    aware = fit_state_aware(rows, RewardWeights(), 0.5, FIT, sweeps=2)
    assert aware.info["state_aware"] == {"discount": 0.5, "sweeps": 2}
    assert aware.cost(x)[has].mean() > 1.2 * one_step.cost(x)[has].mean()


def test_training_with_the_option_fits_other_values_and_without_it_today_s():
    trace = synth_trace("lookahead-train", SynthSettings(
        arrivals=ArrivalSettings(hours=3, target_load=0.7, warmup_hours=1, seed=11), nodes=8, workloads=30))
    base = train([trace], TrainSettings(iterations=0, fit=FIT))
    aware = train([trace], TrainSettings(iterations=0, fit=FIT, state_aware_discount=0.5))
    assert "state_aware" not in base.model.info and aware.model.info["state_aware"]["discount"] == 0.5
    assert SUCCESSOR_COLUMN not in base.decisions and SUCCESSOR_COLUMN in aware.decisions
    rows = base.decisions.dropna(subset=["added_contention_core_s", "added_node_h"])
    today = fit_value_model(rows, RewardWeights(), FIT, version="it0", info=base.model.info)
    assert base.model.boosters["contention"].model_to_string() == today.boosters["contention"].model_to_string()
    x = rows[list(FEATURE_COLUMNS)].to_numpy(dtype=np.float32)
    assert not np.allclose(aware.model.cost(x), base.model.cost(x))
    with pytest.raises(InputError, match="discount"):  # refused before any replay
        train([trace], TrainSettings(iterations=0, fit=FIT, state_aware_discount=1.5))


@pytest.mark.parametrize("value", ["1.5", "-0.1", "nan"])
def test_the_cli_refuses_a_discount_outside_0_1(tmp_path, capsys, value):
    from neurokube.cli import main as cli

    with pytest.raises(SystemExit) as exc:
        cli.main(["train", "--trace", str(tmp_path), "--out", str(tmp_path / "m"), "--state-aware-discount", value])
    assert exc.value.code == 2
    assert "--state-aware-discount" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
