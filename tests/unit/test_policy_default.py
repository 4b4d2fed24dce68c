"""kube-scheduler default scoring (v1.35.4), worked by hand from the formulas in the source.

Covers: LeastAllocated and MostAllocated integer arithmetic, non-zero request defaults for
scoring, BalancedAllocation (actual requests, truncation, BestEffort skip), the request filter,
and uniform tie-breaking.
"""

import numpy as np

from neurokube.policies.base import PodSpec
from neurokube.policies.common import pick_best
from neurokube.policies.default import (
    DefaultPolicy,
    balanced_allocation,
    fit_score,
    least_allocated,
    most_allocated,
)
from neurokube.policies.most_allocated import MostAllocatedPolicy
from tests.conftest import make_view


def test_least_allocated_integer_division():
    # (4000-3000)*100//4000 = 25; (10000-5000)*100//10000 = 50
    assert least_allocated(np.array([3000, 5000]), np.array([4000, 10000])).tolist() == [25, 50]
    # 1/3 free -> 33 (floor), over capacity -> 0
    assert least_allocated(np.array([2000, 5000]), np.array([3000, 4000])).tolist() == [33, 0]


def test_most_allocated_caps_at_capacity():
    assert most_allocated(np.array([3000, 5000]), np.array([4000, 4000])).tolist() == [75, 100]


def test_fit_score_uses_nonzero_defaults_for_scoring():
    view = make_view([1000], [1000])
    pod = PodSpec(0, 0)  # BestEffort: scored as 100m / 200 MiB
    # cpu (1000-100)*100//1000 = 90, mem (1000-200)*100//1000 = 80 -> (90+80)//2 = 85
    assert fit_score(pod, view).tolist() == [85]


def test_balanced_allocation_truncates_and_uses_actual_requests():
    view = make_view([4000, 4000], [8000, 8000], [0, 1000], [0, 6000])
    pod = PodSpec(1000, 2000)
    # node 0: f = 0.25, 0.25 -> std 0 -> 100; node 1: f = 0.5, 1.0 -> std .25 -> 75
    assert balanced_allocation(pod, view).tolist() == [100, 75]
    # f = 0.3, 0.2 -> std 0.05 -> int(95.0000...) = 94 or 95 depending on float; Go truncates
    view2 = make_view([10000], [10000])
    got = balanced_allocation(PodSpec(3000, 2000), view2)[0]
    assert got == int((1 - abs(0.3 - 0.2) / 2) * 100)


def test_balanced_allocation_skips_best_effort():
    view = make_view([4000], [8000], [3000], [100])
    assert balanced_allocation(PodSpec(0, 0), view).tolist() == [0]


def test_default_prefers_least_allocated_and_balanced():
    view = make_view([4000, 4000, 4000], [8000, 8000, 8000], [3000, 1000, 500], [2000, 2000, 7000])
    pol = DefaultPolicy(np.random.default_rng(0))
    scores = pol.scores(PodSpec(500, 1000), view)
    # node 1: cpu 1500/4000 -> 62, mem 3000/8000 -> 62 -> 62; balanced std |.375-.375|/2 -> 100
    assert scores[1] == 62 + 100
    assert pol.select(PodSpec(500, 1000), view) == 1


def test_filter_rejects_nodes_where_requests_do_not_fit():
    view = make_view([4000, 4000], [8000, 8000], [3800, 0], [0, 7900])
    assert DefaultPolicy(np.random.default_rng(0)).select(PodSpec(500, 200), view) is None


def test_most_allocated_packs():
    view = make_view([4000, 4000], [8000, 8000], [3000, 0], [6000, 0])
    assert MostAllocatedPolicy(np.random.default_rng(0)).select(PodSpec(500, 1000), view) == 0


def test_ties_are_broken_uniformly():
    rng = np.random.default_rng(1)
    picks = [pick_best(np.array([5, 7, 7, 7]), np.ones(4, bool), rng) for _ in range(3000)]
    counts = np.bincount(picks, minlength=4)
    assert counts[0] == 0
    assert all(900 < c < 1100 for c in counts[1:])
