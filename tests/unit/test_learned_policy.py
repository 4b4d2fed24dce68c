"""The learned policy: model files (LightGBM text + manifest, never pickle), the fallback to
default scoring with a counter (missing, corrupt, wrong features, failing predictions), the
shortlist, and that it never picks an infeasible node."""

import json
import pickle

import lightgbm as lgb
import numpy as np
import pytest

from neurokube.adapters.model_files import load_learned_policy, load_value_model, save_value_model
from neurokube.features import FEATURE_NAMES
from neurokube.model.policy import LearnedPolicy
from neurokube.model.reward import RewardWeights
from neurokube.model.value_model import ModelError, ValueModel
from neurokube.policies import make_policy
from neurokube.policies.base import PodSpec
from neurokube.sim import SimConfig, replay
from tests.conftest import make_view


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A model that prefers nodes with a low projected CPU peak."""
    rng = np.random.default_rng(0)
    x = rng.random((2000, len(FEATURE_NAMES))).astype(np.float32)
    peak = x[:, FEATURE_NAMES.index("proj_cpu_peak_frac")]
    boosters = {}
    for name, y in (("contention", np.maximum(peak - 0.5, 0) * 100), ("occupancy", 1 - x[:, 8])):
        boosters[name] = lgb.train({"objective": "regression", "verbosity": -1, "num_leaves": 7},
                                   lgb.Dataset(x, y), num_boost_round=20)
    model = ValueModel(boosters, RewardWeights(), version="t1")
    return model, save_value_model(model, tmp_path_factory.mktemp("model") / "m")


def test_model_files_are_text_and_round_trip(tiny_model):
    model, path = tiny_model
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["features"] == list(FEATURE_NAMES)
    assert manifest["reward_weights"] == {"contention_per_core_s": 1.0, "node_hour": 360.0,
                                          "memory_overflow_per_gib_s": 4.0}
    assert (path / "contention.txt").read_text().startswith("tree")
    x = np.random.default_rng(1).random((5, len(FEATURE_NAMES))).astype(np.float32)
    np.testing.assert_allclose(load_value_model(path).cost(x), model.cost(x), rtol=1e-6)
    with pytest.raises(pickle.UnpicklingError):  # nothing in a model directory is a pickle
        pickle.loads((path / "contention.txt").read_bytes())


def test_weights_can_be_overridden_at_load(tiny_model):
    _, path = tiny_model
    assert load_value_model(path, RewardWeights(node_hour=1.0)).weights.node_hour == 1.0


@pytest.mark.parametrize("damage, reason", [
    (lambda p: (p / "manifest.json").unlink(), "model_missing"),
    (lambda p: (p / "contention.txt").write_text("garbage"), "model_corrupt"),
    (lambda p: (p / "manifest.json").write_text("{not json"), "model_corrupt"),
    (lambda p: (p / "manifest.json").write_text(json.dumps(
        {**json.loads((p / "manifest.json").read_text()), "features": ["a", "b"]})), "model_corrupt"),
])
def test_broken_models_fall_back_to_default_and_count(tiny_model, tmp_path, damage, reason, small_trace):
    import shutil

    _, path = tiny_model
    broken = tmp_path / "broken"
    shutil.copytree(path, broken)
    damage(broken)
    policy = load_learned_policy(broken, seed=3)
    result = replay(small_trace, policy, SimConfig())
    reference = replay(small_trace, make_policy("default", trace=small_trace, seed=3), SimConfig())
    np.testing.assert_array_equal(result.node_of, reference.node_of)  # exactly default's choices
    # every decision fell back, for this one reason (a pod that had to wait is decided again)
    assert set(policy.fallbacks_by_reason) == {reason}
    assert policy.fallbacks_by_reason[reason] >= len(small_trace.pods) - reference.metrics["unscheduled_pods"]


def test_missing_directory_falls_back(tmp_path):
    policy = load_learned_policy(tmp_path / "nowhere")
    view = make_view([4000, 4000], [8000, 8000], [3000, 0], [0, 0])
    assert policy.select(PodSpec(500, 100), view) == 1  # default's least-allocated choice
    assert policy.fallbacks_by_reason["model_missing"] == 1


def test_prediction_failure_falls_back_per_decision(tiny_model):
    model, _ = tiny_model

    class Exploding:
        def predict(self, *_a, **_k):
            raise RuntimeError("boom")

    broken = ValueModel({"contention": Exploding(), "occupancy": Exploding()}, RewardWeights())
    policy = LearnedPolicy(broken, np.random.default_rng(0))
    view = make_view([4000, 4000], [8000, 8000], [3000, 0], [0, 0])
    assert policy.select(PodSpec(500, 100), view) == 1
    assert policy.fallbacks_by_reason == {"predict_error": 1}


def test_learned_policy_follows_its_model_and_never_picks_infeasible(tiny_model, small_trace):
    model, _ = tiny_model
    policy = LearnedPolicy(model, np.random.default_rng(0))
    view = make_view([10000, 10000, 10000], [8000] * 3, [9800, 0, 0], [0, 0, 0], cpu_mean=[0, 9000, 1000])
    assert policy.select(PodSpec(500, 100), view) == 2  # 0 does not fit; 1 runs hot
    result = replay(small_trace, policy, SimConfig())  # the engine raises on an infeasible choice
    assert policy.fallbacks == 0
    assert result.metrics["unscheduled_pods"] <= replay(
        small_trace, make_policy("default", trace=small_trace), SimConfig()).metrics["unscheduled_pods"] + 5


def test_shortlist_bounds_the_model_rows(tiny_model):
    model, _ = tiny_model
    policy = LearnedPolicy(model, np.random.default_rng(0), shortlist=16)
    n = 500
    view = make_view([10000] * n, [8000] * n, cpu_mean=np.linspace(0, 9000, n))
    view.metrics.cpu_max = view.metrics.cpu_mean
    chosen = policy.select(PodSpec(500, 100), view)
    candidates, features, cost = policy.last
    assert len(candidates) <= 16 and chosen in candidates
    assert chosen < 100  # one of the least loaded nodes


def test_value_score_fails_with_enum_reasons_and_the_cycle_falls_back(tiny_model):
    from neurokube.model.policy import ValueScore
    from neurokube.policies.framework import Code, CycleState, Reason

    model, _ = tiny_model

    class Exploding:
        def predict(self, *_a, **_k):
            raise RuntimeError("boom")

    class NaN:
        def predict(self, x, *_a, **_k):
            return np.full(len(x), np.nan)

    view = make_view([4000, 4000], [8000, 8000], [3000, 0], [0, 0])
    pod, nodes = PodSpec(500, 100), np.array([0, 1])
    for plugin, reason, message in [
        (ValueScore(None), Reason.NO_MODEL, ""),
        (ValueScore(None, Reason.MODEL_CORRUPT), Reason.MODEL_CORRUPT, ""),
        (ValueScore(ValueModel({"contention": Exploding(), "occupancy": Exploding()}, RewardWeights())),
         Reason.PREDICT_ERROR, "RuntimeError: boom"),
        (ValueScore(ValueModel({"contention": NaN(), "occupancy": NaN()}, RewardWeights())),
         Reason.NON_FINITE_SCORE, ""),
    ]:
        status = plugin.score(pod, view, nodes, CycleState())
        assert (status.code, status.reason, status.message, status.plugin) == (
            Code.ERROR, reason, message, "NeuroKubeValue")
    scored = ValueScore(model).score(pod, view, np.array([1]), CycleState())
    assert scored.shape == (1,) and np.isfinite(scored).all()

    policy = LearnedPolicy(ValueModel({"contention": NaN(), "occupancy": NaN()}, RewardWeights()),
                           np.random.default_rng(0))
    result = policy.cycle(pod, view)
    assert result.choice == 1 and result.status.ok
    assert result.fallback.reason is Reason.NON_FINITE_SCORE and policy.last_fallback is Reason.NON_FINITE_SCORE
    assert policy.fallbacks_by_reason == {"non_finite_score": 1} and policy.last is None
    full = make_view([4000, 4000], [8000, 8000], [4000, 4000], [0, 0])
    assert policy.cycle(pod, full).fallback is None  # nothing fits: no score plugin ran, no fallback
    no_model = LearnedPolicy(None, np.random.default_rng(0), "model_missing")
    assert no_model.select(pod, full) is None
    assert no_model.fallbacks_by_reason == {"model_missing": 1}  # without a model every decision counts


def test_scores_give_the_fallback_as_a_status_and_count_nothing(tiny_model):
    """The extender's API: the value scores over the fitting nodes, or the cycle's fallback Status
    with its enum reason; no pick, no draw, no accounting."""
    from neurokube.policies.framework import Code, Reason

    model, _ = tiny_model

    class Exploding:
        def predict(self, *_a, **_k):
            raise RuntimeError("boom")

    view = make_view([4000, 4000, 4000], [8000] * 3, [3800, 0, 1000], [0, 0, 0])
    pod = PodSpec(500, 100)
    rng = np.random.default_rng(0)
    policy = LearnedPolicy(model, rng)
    state = rng.bit_generator.state
    scores, failed = policy.scores(pod, view)
    assert failed is None and scores[0] == -np.inf and np.isfinite(scores[1:]).all()  # node 0 does not fit
    kept, _, cost = LearnedPolicy(model, np.random.default_rng(1)).cycle(pod, view).state["NeuroKubeValue"]
    assert np.array_equal(scores[kept], -cost)
    assert policy.scores(pod, make_view([4000], [8000], [4000], [0]))[0].tolist() == [-np.inf]  # nothing fits

    broken = LearnedPolicy(ValueModel({"contention": Exploding(), "occupancy": Exploding()}, RewardWeights()), rng)
    scores, failed = broken.scores(pod, view)
    assert scores is None and (failed.code, failed.reason, failed.message) == (
        Code.ERROR, Reason.PREDICT_ERROR, "RuntimeError: boom")
    missing = LearnedPolicy(None, rng, "model_missing")
    full = make_view([4000], [8000], [4000], [0])
    assert missing.scores(pod, full)[1].reason is Reason.MODEL_MISSING  # no model: a fallback even if nothing fits
    assert broken.fallbacks_by_reason == {} and missing.fallbacks_by_reason == {} and broken.last_fallback is None
    assert rng.bit_generator.state == state  # the tie-break draws only in a cycle that picks


def test_model_error_carries_its_reason(tiny_model, tmp_path):
    from neurokube.policies.framework import Reason

    with pytest.raises(ModelError) as missing:
        load_value_model(tmp_path / "nowhere")
    assert missing.value.reason is Reason.MODEL_MISSING
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "manifest.json").write_text("{not json")
    with pytest.raises(ModelError) as corrupt:
        load_value_model(tmp_path / "bad")
    assert corrupt.value.reason is Reason.MODEL_CORRUPT
