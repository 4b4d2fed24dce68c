"""The scheduling framework (neurokube/policies/framework.py) and the peers ported onto it.

Covered:
* a pod that fits nowhere: the cycle's Status names the plugin and the enum reason, and the
  diagnosis charges each node to the first filter that rejected it (kube-scheduler's FitError);
* NodeResourcesFit's filter is exactly ``fits``; Koordinator's reasons (threshold, expired metrics);
* NormalizeScore (kube-scheduler's DefaultNormalizeScore) and its place in the cycle;
* the tie-break: one uniform draw among tied nodes, no draw at all for a single best node;
* weights, Skip, Error, the fallback rule for fallback-eligible reasons, Reserve;
* the ported default, most-allocated and random policies choose as the pre-framework functions
  (``profile_score`` + ``pick_best``) do, with the same random stream, on random views.
"""

from __future__ import annotations

import numpy as np
import pytest

from neurokube.policies.base import ClusterView, NodeMetrics, PodSpec
from neurokube.policies.common import fits, pick_best
from neurokube.policies.default import (
    FIT_FILTER,
    MOST_ALLOCATED,
    DefaultArgs,
    DefaultPolicy,
    FitArgs,
    most_allocated,
    profile_score,
)
from neurokube.policies.framework import (
    FALLBACK_REASONS,
    Code,
    CycleState,
    Profile,
    Reason,
    Status,
    Weighted,
    default_normalize_score,
    run_cycle,
    score_cycle,
    select_host,
)
from neurokube.policies.koordinator import KoordinatorPolicy
from neurokube.policies.most_allocated import MostAllocatedPolicy
from neurokube.policies.random_policy import RandomPolicy
from tests.conftest import make_view


class Fixed:
    """A score plugin with given scores per view node (and optional normalisation)."""

    def __init__(self, name, scores, normalize=None):
        self.name = name
        self.values = np.asarray(scores)
        self.normalize = normalize

    def score(self, pod, view, nodes, state):
        return self.values[nodes]

    def __getattr__(self, item):  # normalize_score only when asked for
        if item == "normalize_score" and self.__dict__.get("normalize") is not None:
            return lambda pod, scores, state: self.normalize(scores)
        raise AttributeError(item)


class Failing:
    def __init__(self, status):
        self.name = "Failing"
        self.status = status

    def score(self, pod, view, nodes, state):
        return self.status


def four_nodes() -> ClusterView:
    return make_view([4000] * 4, [8000] * 4)


def rng_state(rng):
    return rng.bit_generator.state["state"]


# -- Status and diagnosis -----------------------------------------------------------------------

def test_unschedulable_pod_names_plugin_and_reasons():
    # node 0 short of CPU, node 1 of memory, node 2 of both
    view = make_view([4000, 4000, 4000], [8000, 8000, 8000], [3800, 0, 3800], [0, 7900, 7900])
    result = DefaultPolicy(np.random.default_rng(0)).cycle(PodSpec(500, 200), view)
    assert result.choice is None
    assert result.status.code is Code.UNSCHEDULABLE
    assert result.status.plugin == "NodeResourcesFit"
    assert result.status.reason is Reason.INSUFFICIENT_CPU  # first of the largest counts
    assert result.diagnosis == {("NodeResourcesFit", Reason.INSUFFICIENT_CPU): 2,
                                ("NodeResourcesFit", Reason.INSUFFICIENT_MEMORY): 2}
    assert result.status.message == "0/3 nodes are available: 2 Insufficient cpu, 2 Insufficient memory."


def test_koordinator_reasons_and_first_failing_plugin_only():
    # node 0: requests do not fit (also over the CPU threshold: charged to NodeResourcesFit only);
    # node 1, 2: estimated CPU over 65 %; node 3: metrics 400 s old
    view = make_view([4000] * 4, [8000] * 4, [3900, 0, 0, 0], cpu_mean=[3900, 3000, 3000, 0])
    view.metrics.age_s = np.array([60.0, 60.0, 60.0, 400.0])
    result = KoordinatorPolicy(np.random.default_rng(0)).cycle(PodSpec(500, 100), view)
    assert result.choice is None
    assert result.diagnosis == {("NodeResourcesFit", Reason.INSUFFICIENT_CPU): 1,
                                ("LoadAwareScheduling", Reason.CPU_LOAD_THRESHOLD_EXCEEDED): 2,
                                ("LoadAwareScheduling", Reason.METRICS_EXPIRED): 1}
    assert (result.status.plugin, result.status.reason) == ("LoadAwareScheduling",
                                                            Reason.CPU_LOAD_THRESHOLD_EXCEEDED)
    assert "2 node(s) cpu usage exceed threshold" in result.status.message


def test_reasons_are_labels_and_fallback_reasons_are_the_models():
    assert Reason.PREDICT_ERROR == "predict_error" and Reason.PREDICT_ERROR.text
    assert Reason.NO_MODEL in FALLBACK_REASONS and Reason.INSUFFICIENT_CPU not in FALLBACK_REASONS


def test_fit_filter_is_exactly_fits():
    rng = np.random.default_rng(5)
    for _ in range(200):
        n = int(rng.integers(1, 8))
        alloc = rng.integers(1, 5, n) * 1000
        view = make_view(alloc, alloc * 2, rng.integers(0, 5000, n), rng.integers(0, 10000, n))
        pod = PodSpec(int(rng.integers(0, 3000)), int(rng.integers(0, 6000)))
        assert np.array_equal(FIT_FILTER.filter(pod, view, CycleState()).feasible, fits(pod, view))


# -- scores: normalise, weigh, skip, fail, fall back ---------------------------------------------

def test_default_normalize_score():
    assert default_normalize_score(np.array([0, 5, 10])).tolist() == [0, 50, 100]
    assert default_normalize_score(np.array([1, 3])).tolist() == [33, 100]  # integer division
    assert default_normalize_score(np.array([0, 5, 10]), reverse=True).tolist() == [100, 50, 0]
    assert default_normalize_score(np.array([0, 0])).tolist() == [0, 0]
    assert default_normalize_score(np.array([0, 0]), reverse=True).tolist() == [100, 100]


def test_normalisation_runs_over_feasible_nodes_before_weights():
    view = make_view([4000] * 3, [8000] * 3, [4000, 0, 0])  # node 0 full: not feasible
    # raw [1000, 2, 4]: over the feasible nodes normalised to [50, 100]; the full node's 1000 is ignored
    plugin = Fixed("N", [1000, 2, 4], normalize=default_normalize_score)
    other = Fixed("O", [0, 70, 0])
    result = run_cycle(Profile((FIT_FILTER,), (Weighted(plugin), Weighted(other))), PodSpec(100, 100), view,
                       np.random.default_rng(0))
    assert result.plugin_scores["N"].tolist() == [50, 100]
    assert result.totals.tolist() == [120, 100]  # without normalisation node 2 would win 4 to 72
    assert result.choice == 1


@pytest.mark.parametrize("wb, expected", [(1, 0), (2, 1)])
def test_weights(wb, expected):
    a, b = Fixed("A", [10, 0, 0, 0]), Fixed("B", [0, 6, 0, 0])
    result = run_cycle(Profile((FIT_FILTER,), (Weighted(a, 1), Weighted(b, wb))), PodSpec(100, 100),
                       four_nodes(), np.random.default_rng(0))
    assert result.choice == expected
    assert result.totals.tolist() == [10, 6 * wb, 0, 0]


def test_skip_contributes_nothing_and_error_fails_the_cycle():
    a = Fixed("A", [1, 2, 3, 0])
    skip = Failing(Status.skip(Reason.BEST_EFFORT_POD))
    result = run_cycle(Profile((FIT_FILTER,), (Weighted(a), Weighted(skip, 50))), PodSpec(100, 100), four_nodes(),
                       np.random.default_rng(0))
    assert result.choice == 2 and result.status.ok and result.totals.tolist() == [1, 2, 3, 0]
    broken = Failing(Status.error(Reason.NO_METRICS, "not eligible for fallback"))
    result = run_cycle(Profile((FIT_FILTER,), (Weighted(broken),), fallback=(Weighted(a),)), PodSpec(100, 100),
                       four_nodes(), np.random.default_rng(0))
    assert result.choice is None
    assert (result.status.code, result.status.reason, result.status.plugin) == (Code.ERROR, Reason.NO_METRICS,
                                                                                 "Failing")


def test_fallback_eligible_failure_scores_with_the_fallback_plugins():
    broken = Failing(Status.error(Reason.PREDICT_ERROR, "ValueError: bad input"))
    fallback = Fixed("F", [0, 0, 9, 1])
    profile = Profile((FIT_FILTER,), (Weighted(broken),), fallback=(Weighted(fallback),))
    result = run_cycle(profile, PodSpec(100, 100), four_nodes(), np.random.default_rng(0))
    assert result.choice == 2 and result.status.ok
    assert result.fallback.reason is Reason.PREDICT_ERROR and result.fallback.message == "ValueError: bad input"
    no_fallback = run_cycle(Profile((FIT_FILTER,), (Weighted(broken),)), PodSpec(100, 100), four_nodes(),
                            np.random.default_rng(0))
    assert no_fallback.choice is None and no_fallback.status.reason is Reason.PREDICT_ERROR


def test_score_cycle_is_the_cycle_without_the_pick():
    """What the extender's prioritize runs: the same candidates, totals and fallback as the cycle,
    no choice and no draw, even when nodes tie."""
    broken = Failing(Status.error(Reason.PREDICT_ERROR, "ValueError: bad input"))
    tied = Fixed("T", [5, 5, 5, 1])
    view = make_view([4000] * 4, [8000] * 4, [0, 0, 3950, 0], [0, 0, 0, 0])
    for profile, fallback in [(Profile((FIT_FILTER,), (Weighted(tied),)), None),
                              (Profile((FIT_FILTER,), (Weighted(broken),), fallback=(Weighted(tied),)),
                               Reason.PREDICT_ERROR)]:
        scored = score_cycle(profile, PodSpec(100, 100), view)
        picked = run_cycle(profile, PodSpec(100, 100), view, np.random.default_rng(0))
        assert scored.choice is None and scored.status.ok and picked.choice in (0, 1)
        assert scored.candidates.tolist() == picked.candidates.tolist() == [0, 1, 3]
        assert scored.totals.tolist() == picked.totals.tolist() == [5, 5, 1]
        assert (scored.fallback and scored.fallback.reason) == (picked.fallback and picked.fallback.reason) \
            == fallback
    rng = np.random.default_rng(0)
    policy = DefaultPolicy(rng)
    before = rng_state(rng)
    assert policy.score_cycle(PodSpec(100, 100), four_nodes()).totals.size == 4 and rng_state(rng) == before
    nowhere = score_cycle(Profile((FIT_FILTER,), (Weighted(tied),)), PodSpec(5000, 100), view)
    assert nowhere.totals is None and nowhere.status.reason is Reason.INSUFFICIENT_CPU


def test_reserve_can_refuse_and_earlier_reservations_are_undone():
    log = []

    class Keep:
        name = "Keep"

        def reserve(self, pod, view, node, state):
            log.append(("reserve", node))
            return Status()

        def unreserve(self, pod, view, node, state):
            log.append(("unreserve", node))

    class Refuse(Keep):
        name = "Refuse"

        def reserve(self, pod, view, node, state):
            return Status(Code.UNSCHEDULABLE, Reason.RESERVE_REFUSED)

    scores = (Weighted(Fixed("A", [0, 5, 0, 0])),)
    ok = run_cycle(Profile((FIT_FILTER,), scores, reserves=(Keep(),)), PodSpec(1, 1), four_nodes(),
                   np.random.default_rng(0))
    assert ok.choice == 1 and log == [("reserve", 1)]
    refused = run_cycle(Profile((FIT_FILTER,), scores, reserves=(Keep(), Refuse())), PodSpec(1, 1), four_nodes(),
                        np.random.default_rng(0))
    assert refused.choice is None
    assert (refused.status.reason, refused.status.plugin) == (Reason.RESERVE_REFUSED, "Refuse")
    assert log == [("reserve", 1), ("reserve", 1), ("unreserve", 1)]


# -- the tie-break ------------------------------------------------------------------------------

def test_tie_break_draws_only_on_ties_and_uniformly():
    rng = np.random.default_rng(3)
    before = rng_state(rng)
    assert select_host(np.array([2, 5, 7]), np.array([1, 9, 3]), rng) == 5
    assert rng_state(rng) == before  # a single best node costs no draw
    assert select_host(np.array([], dtype=np.int64), np.array([]), rng) is None
    picks = [select_host(np.array([2, 5, 7, 8]), np.array([4, 9, 9, 9]), rng) for _ in range(3000)]
    counts = {node: picks.count(node) for node in (2, 5, 7, 8)}
    assert counts[2] == 0 and all(900 < counts[n] < 1100 for n in (5, 7, 8))
    twin = np.random.default_rng(3)
    assert [int(np.array([5, 7, 8])[twin.integers(3)]) for _ in range(3000)] == picks  # one integers(k) per tie


# -- ported policies choose as before -----------------------------------------------------------

def random_view(rng) -> ClusterView:
    n = int(rng.integers(1, 9))
    alloc_cpu = rng.choice([2000, 4000, 8000], n).astype(np.int64)
    alloc_mem = rng.choice([4096, 8192, 16384], n).astype(np.int64)
    req_cpu = (alloc_cpu * rng.choice([0, .5, .75, 1.0], n)).astype(np.int64)
    req_mem = (alloc_mem * rng.choice([0, .5, .75, 1.0], n)).astype(np.int64)
    if rng.random() < 0.4:  # identical nodes: ties
        alloc_cpu[:], alloc_mem[:], req_cpu[:], req_mem[:] = alloc_cpu[0], alloc_mem[0], req_cpu[0], req_mem[0]
    return ClusterView(0.0, alloc_cpu, alloc_mem, req_cpu, req_mem, req_cpu + 100, req_mem + 200,
                       np.zeros(n, dtype=np.int64), NodeMetrics.empty(n))


@pytest.mark.parametrize("make, reference", [
    (lambda rng: DefaultPolicy(rng), lambda p, v: profile_score(p, v, DefaultArgs())),
    (lambda rng: DefaultPolicy(rng, DefaultArgs(fit_weight=3, balanced_weight=0, cpu_weight=2)),
     lambda p, v: profile_score(p, v, DefaultArgs(fit_weight=3, balanced_weight=0, cpu_weight=2))),
    (lambda rng: MostAllocatedPolicy(rng), lambda p, v: profile_score(p, v, DefaultArgs(), most_allocated)),
    (lambda rng: RandomPolicy(rng), lambda p, v: np.zeros(v.n_nodes)),
], ids=["default", "default-tuned", "most-allocated", "random"])
def test_ported_policy_chooses_as_before(make, reference):
    views = np.random.default_rng(9)
    policy, twin = make(np.random.default_rng(4)), np.random.default_rng(4)
    for _ in range(400):
        view = random_view(views)
        pod = PodSpec(int(views.choice([0, 500, 1500])), int(views.choice([0, 1024, 4096])))
        assert policy.select(pod, view) == pick_best(reference(pod, view), fits(pod, view), twin)
        if hasattr(policy, "scores"):
            assert np.array_equal(policy.scores(pod, view), reference(pod, view))
    assert rng_state(policy.rng) == rng_state(twin)


def test_fit_args_are_validated():
    with pytest.raises(ValueError):
        FitArgs(strategy="Balanced")
    assert FitArgs(MOST_ALLOCATED, 2, 1).cpu_weight == 2
