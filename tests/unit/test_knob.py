"""The node-hour knob: ``neurokube:node_hour_cost=C`` combines the separately predicted components
at decision time, without retraining.

The guarantee the formulation gives: for one decision, the chosen node's *predicted* node-hours
never grow when ``node_hour_cost`` grows (the argmin of ``c + w o`` over a fixed candidate set has
a non-increasing ``o`` in ``w``; the near-tie tolerance bounds the slack). The replay outcome is
not guaranteed (placements change later states), so it is checked on the small trace for a much
higher rate only."""

import numpy as np
import pytest

from neurokube.adapters.model_files import load_learned_policy, load_value_model, save_value_model
from neurokube.cli.policy_specs import build_policy, check_specs
from neurokube.errors import InputError
from neurokube.learning.fit import FitSettings
from neurokube.learning.loop import TrainSettings, train
from neurokube.model.policy import LearnedArgs, LearnedPolicy
from neurokube.model.reward import RewardWeights
from neurokube.model.value_model import ValueModel
from neurokube.policies.base import PodSpec
from neurokube.policies.spec import parse_spec, typed_args
from neurokube.sim import SimConfig, replay
from neurokube.trace.assemble import ArrivalSettings
from neurokube.trace.synth import SynthSettings, synth_trace
from tests.conftest import make_view


class Fixed:
    """A stand-in booster that predicts given values for the rows it is shown."""

    def __init__(self, values):
        self.values = np.asarray(values, dtype=float)

    def predict(self, features, num_threads=1):
        return self.values[:features.shape[0]]


@pytest.mark.parametrize("seed", range(20))
def test_a_higher_rate_never_picks_a_node_with_more_predicted_node_hours(seed):
    rng = np.random.default_rng(seed)
    n = 30
    contention = rng.exponential(200.0, n) * (rng.random(n) < 0.6)
    occupancy = rng.random(n)
    view = make_view([10000] * n, [16000] * n)
    chosen = []
    for rate in (0.0, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5):
        model = ValueModel({"contention": Fixed(contention), "occupancy": Fixed(occupancy)},
                           RewardWeights(node_hour=rate))
        policy = LearnedPolicy(model, np.random.default_rng(0))
        policy.select(PodSpec(500, 100), view)
        candidates, _, cost = policy.last
        pick = int(np.argmin(cost)) if cost.min() < cost.max() else 0
        chosen.append(occupancy[candidates[pick]])
    assert all(b <= a + 1e-2 for a, b in zip(chosen, chosen[1:])), chosen
    assert chosen[-1] == pytest.approx(occupancy.min(), abs=1e-2)  # at a huge rate: fewest node-hours


def test_tie_core_s_widens_the_near_ties_that_go_to_the_most_requested_node():
    # node 0: the lowest predicted cost (contention 0), lightly requested; node 1: 5 core-s more,
    # the most requested; node 2: 50 core-s more, fuller still
    view = make_view([10000] * 3, [16000] * 3, req_cpu=[1000, 8000, 9000], req_mem=[100] * 3)
    model = ValueModel({"contention": Fixed([0.0, 5.0, 50.0]), "occupancy": Fixed([0.0, 0.0, 0.0])},
                       RewardWeights(node_hour=360.0))
    picks = {}
    for tie in (1e-3, 10.0, 100.0):
        policy = LearnedPolicy(model, np.random.default_rng(0), tie_core_s=tie)
        picks[tie] = policy.select(PodSpec(500, 100), view)
    assert picks == {1e-3: 0, 10.0: 1, 100.0: 2}  # the default only breaks exact ties
    assert LearnedArgs().tie_core_s == 1e-3
    assert typed_args(LearnedArgs, parse_spec("neurokube:node_hour_cost=1000,tie_core_s=10")) == LearnedArgs(
        node_hour_cost=1000.0, tie_core_s=10.0)
    with pytest.raises(InputError, match="tie_core_s must be in"):
        typed_args(LearnedArgs, parse_spec("neurokube:tie_core_s=-1"))


def test_tie_from_requested_widens_the_ties_only_in_a_nearly_full_cluster():
    # the case above (node 1 is 5 core-s worse and the most requested), at cluster shares below
    # and above 0.8: 18,000 of 30,000 mCPU requested (0.6), then 27,000 (0.9)
    model = ValueModel({"contention": Fixed([0.0, 5.0, 50.0]), "occupancy": Fixed([0.0, 0.0, 0.0])},
                       RewardWeights(node_hour=360.0))
    emptier = make_view([10000] * 3, [16000] * 3, req_cpu=[1000, 8000, 9000], req_mem=[100] * 3)
    fuller = make_view([10000] * 3, [16000] * 3, req_cpu=[9000, 9500, 8500], req_mem=[100] * 3)
    assert emptier.requested_cpu_share() == pytest.approx(0.6)
    assert fuller.requested_cpu_share() == pytest.approx(0.9)
    gated = LearnedPolicy(model, np.random.default_rng(0), tie_core_s=10.0, tie_from_requested=0.8)
    assert gated.select(PodSpec(500, 100), emptier) == 0  # below the share: exact ties only
    assert gated.select(PodSpec(500, 100), fuller) == 1  # above it: the near-tie goes to the most requested
    always = LearnedPolicy(model, np.random.default_rng(0), tie_core_s=10.0)
    assert always.select(PodSpec(500, 100), emptier) == 1  # 0, the default: at any share
    # a view that holds only some nodes (the live views) answers with the share its source set
    emptier.cluster_cpu = (np.array([8500, 8500, 8500]), np.array([10000, 10000, 10000]))  # 0.85
    assert gated.select(PodSpec(500, 100), emptier) == 1
    assert typed_args(LearnedArgs, parse_spec("neurokube:tie_core_s=30,tie_from_requested=0.8")) == LearnedArgs(
        tie_core_s=30.0, tie_from_requested=0.8)
    with pytest.raises(InputError, match="tie_from_requested must be a share"):
        typed_args(LearnedArgs, parse_spec("neurokube:tie_from_requested=1.5"))


def test_tie_core_s_reaches_the_policy_from_its_spec(trained):
    spec = check_specs(["neurokube:tie_core_s=10"], trained)[0]
    policy = build_policy(spec, None, seed=0, step_s=60, model_dir=trained)
    assert policy.plugin.tie_core_s == 10.0 and policy.model is not None
    spec = check_specs(["neurokube:tie_core_s=30,tie_from_requested=0.8"], trained)[0]
    assert build_policy(spec, None, seed=0, step_s=60, model_dir=trained).plugin.tie_from_requested == 0.8
    assert build_policy(check_specs(["neurokube"], trained)[0], None, seed=0, step_s=60,
                        model_dir=trained).plugin.tie_core_s == 1e-3


def test_the_rate_is_applied_at_load_without_retraining(tmp_path):
    rng = np.random.default_rng(0)
    model = ValueModel({"contention": Fixed(rng.random(8)), "occupancy": Fixed(rng.random(8))},
                       RewardWeights(node_hour=360.0))
    x = np.zeros((8, 3))
    low, high = model.cost(x, RewardWeights(node_hour=1.0)), model.cost(x, RewardWeights(node_hour=1e4))
    np.testing.assert_allclose(high - low, (1e4 - 1.0) * model.components(x)["occupancy"])
    assert model.components(x)["overflow"].tolist() == [0.0] * 8  # a model without an overflow part


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small model trained on one small synthetic trace (seconds)."""
    trace = synth_trace("knob-train", SynthSettings(
        arrivals=ArrivalSettings(hours=3, target_load=0.7, warmup_hours=1, seed=11), nodes=8, workloads=30))
    result = train([trace], TrainSettings(iterations=0, fit=FitSettings(rounds=30, threads=1)))
    return save_value_model(result.model, tmp_path_factory.mktemp("knob") / "model")


def test_a_much_higher_rate_gives_no_more_node_hours_in_replay(trained):
    unseen = synth_trace("knob-eval", SynthSettings(
        arrivals=ArrivalSettings(hours=3, target_load=0.7, warmup_hours=1, seed=12), nodes=8, workloads=30))
    metrics = {}
    for rate in (0.0, 1e5):
        policy = load_learned_policy(trained, node_hour_cost=rate)
        assert policy.model.weights.node_hour == rate
        metrics[rate] = replay(unseen, policy, SimConfig()).metrics
        assert policy.fallbacks == 0
    assert metrics[1e5]["node_hours"] <= metrics[0.0]["node_hours"]
    assert load_value_model(trained).weights == RewardWeights()  # the manifest keeps the training rate
