"""The decision step on its own: a new champion is picked up without a restart, a broken one
leaves the current model serving, extender scores map expected costs onto 0..10 (10 = cheapest),
and the reasons for not using the model are counted."""

import json
import os
import shutil

import numpy as np
import pytest

from neurokube.live.decide import Decider
from neurokube.live.telemetry import Telemetry
from neurokube.policies.base import PodSpec
from neurokube.policies.framework import Reason
from neurokube.policies.spec import parse_spec
from neurokube.testing import write_packing_model
from tests.conftest import make_view


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return write_packing_model(root / "v1", version="v1"), write_packing_model(root / "v2", version="v2")


def view():
    return make_view([8000, 8000, 8000], [16384, 16384, 16384], [0, 4000, 7900], [0, 0, 0])


def test_a_new_champion_is_loaded_and_a_broken_one_is_not(trained, tmp_path):
    v1, v2 = trained
    champion = tmp_path / "champion"
    shutil.copytree(v1, champion)
    telemetry = Telemetry()
    decider = Decider(champion, telemetry, reload_s=0.0)
    assert decider.model_version == "v1"
    shutil.rmtree(champion)
    shutil.copytree(v2, champion)
    os.utime(champion / "manifest.json", ns=(1, 1))  # a different stamp, whatever the clock
    decider.choose(PodSpec(100, 64), view(), metrics_fresh=True)
    assert decider.model_version == "v2"
    assert telemetry.model_reloads.labels(result="loaded")._value.get() == 1
    (champion / "manifest.json").write_text(json.dumps({"format": "something else"}))
    decider.choose(PodSpec(100, 64), view(), metrics_fresh=True)
    assert decider.model_version == "v2"  # still serving
    assert telemetry.model_reloads.labels(result="failed")._value.get() == 1


def test_extender_scores_span_zero_to_ten(trained):
    decider = Decider(trained[0], Telemetry())
    scores, reason = decider.scores(PodSpec(100, 64), view(), metrics_fresh=True)
    assert reason == "" and scores.dtype == np.int64
    assert scores.tolist()[2] == 10 and scores.min() == 0 and scores.tolist() == sorted(scores.tolist())
    unfit, _ = decider.scores(PodSpec(500, 64), view(), metrics_fresh=True)
    assert unfit[2] == 0  # 7900 + 500 > 8000: infeasible nodes score 0


@pytest.mark.parametrize("model, fresh, configured, reason", [
    ("v1", False, True, "prometheus_unavailable"),
    ("v1", True, False, "prometheus_disabled"),
    (None, True, True, "no_model"),
    ("missing", True, True, "model_missing"),
])
def test_fallback_reasons_are_counted(trained, tmp_path, model, fresh, configured, reason):
    directory = {"v1": trained[0], None: None, "missing": tmp_path / "nothing"}[model]
    telemetry = Telemetry()
    decider = Decider(directory, telemetry, metrics_configured=configured)
    choice = decider.choose(PodSpec(100, 64), view(), metrics_fresh=fresh)
    assert choice.policy == "default" and choice.fallback == reason and choice.index == 0  # LeastAllocated
    scores, why = decider.scores(PodSpec(100, 64), view(), metrics_fresh=fresh)
    assert why == reason and not scores.any()
    assert telemetry.fallbacks.labels(reason=reason)._value.get() == 2


@pytest.mark.parametrize("failure, reason", [("raise", Reason.PREDICT_ERROR), ("nan", Reason.NON_FINITE_SCORE)])
def test_a_failing_model_is_counted_under_the_cycles_enum_reason(trained, monkeypatch, failure, reason):
    """The Decider catches nothing: the value plugin fails with an enum reason, and choose and the
    extender's scores count that reason's label."""
    telemetry = Telemetry()
    decider = Decider(trained[0], telemetry)

    def broken(features):
        if failure == "raise":
            raise RuntimeError("boom")
        return {"contention": np.full(len(features), np.nan), "occupancy": np.zeros(len(features))}

    monkeypatch.setattr(decider.policy.model, "components", broken)
    choice = decider.choose(PodSpec(100, 64), view(), metrics_fresh=True)
    assert choice.policy == "default" and choice.fallback == reason.value and choice.index == 0  # LeastAllocated
    scores, why = decider.scores(PodSpec(100, 64), view(), metrics_fresh=True)
    assert why == reason.value and not scores.any()
    assert telemetry.fallbacks.labels(reason=reason.value)._value.get() == 2




@pytest.mark.parametrize("learned", [False, True])
def test_the_live_view_is_filtered_once_at_the_edge(trained, learned):
    """The node has room in bytes but not in the view's conservatively rounded MiB (the pod asks
    for 1 MiB more than the rounded free memory). The edge's exact filter passed it and says so
    (``prefiltered``), so the policy's fit filter must not reject it again: the pod is placed
    there by the policy itself, not by a ``policy_declined`` fallback."""
    pod = PodSpec(100, 385)  # 16000 + 385 > 16384 in the view's MiB
    spec = None if learned else parse_spec("default")
    decider = Decider(trained[0] if learned else None, Telemetry(), spec=spec, metrics_configured=learned)
    replayed = make_view([8000], [16384], [0], [16000])
    assert decider.choose(pod, replayed, metrics_fresh=True) is None  # a replay view: the cycle filters
    live = make_view([8000], [16384], [0], [16000])
    live.prefiltered = True
    choice = decider.choose(pod, live, metrics_fresh=True)
    assert choice is not None and (choice.index, choice.candidates.tolist(), choice.fallback) == (0, [0], "")


def test_the_record_takes_every_candidates_features_from_the_cycle(trained, monkeypatch):
    """Beyond the shortlist (64 nodes) the model scores a subset, yet the decision record holds
    every candidate's features: those the cycle computed, not a second computation."""
    import neurokube.live.decide as decide_module
    import neurokube.model.policy as policy_module
    from neurokube.features import candidate_features

    n = 150
    rng = np.random.default_rng(3)
    wide = make_view([8000] * n, [16384] * n, rng.integers(0, 7000, n).tolist(), [0] * n,
                     cpu_mean=rng.uniform(0, 4000, n).tolist())
    calls = []

    def counted(*args):
        calls.append(args[2].size)
        return candidate_features(*args)

    monkeypatch.setattr(policy_module, "candidate_features", counted)
    monkeypatch.setattr(decide_module, "candidate_features", counted)
    pod = PodSpec(500, 64)
    choice = Decider(trained[0], Telemetry()).choose(pod, wide, metrics_fresh=True)
    assert choice.fallback == "" and choice.candidates.size > 64
    assert calls == [choice.candidates.size]  # one computation, over every candidate
    np.testing.assert_array_equal(choice.features, candidate_features(pod, wide, choice.candidates))
    assert choice.index in choice.candidates
