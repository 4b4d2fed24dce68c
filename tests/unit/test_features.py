"""Placement features see no future: changing what happens after a decision time leaves every
feature computed up to then unchanged. Also: shape, order and scale-freeness."""

from dataclasses import replace

import numpy as np

from neurokube.features import FEATURE_NAMES, candidate_features
from neurokube.policies import make_policy
from neurokube.policies.base import PodSpec
from neurokube.sim import SimConfig, replay
from tests.conftest import make_view


class Spy:
    """Wraps a policy and keeps the features of every decision."""

    def __init__(self, base):
        self.base, self.name, self.seen = base, base.name, []

    def select(self, pod, view):
        self.seen.append((view.now_s, pod.index, candidate_features(pod, view, np.arange(view.n_nodes))))
        return self.base.select(pod, view)


def _future_changed(trace, t_cut):
    """The same trace up to ``t_cut``; afterwards different: later pods gone, running pods live longer."""
    p = trace.pods
    keep = p.creation_s <= t_cut
    ends_after = p.creation_s + p.duration_s > t_cut - 3600  # lives past the cut, even if it waited an hour
    duration = np.where(ends_after, p.duration_s + 7200.0, p.duration_s)
    return replace(trace, pods=replace(p.take(keep), duration_s=duration[keep]))


def test_no_future_information_leaks_into_features(small_trace):
    t_cut = 3 * 3600.0
    a, b = Spy(make_policy("default", trace=small_trace, seed=4)), None
    replay(small_trace, a, SimConfig())
    changed = _future_changed(small_trace, t_cut)
    b = Spy(make_policy("default", trace=changed, seed=4))
    replay(changed, b, SimConfig())
    before_a = [(t, i, f) for t, i, f in a.seen if t <= t_cut - 3600]
    before_b = [(t, i, f) for t, i, f in b.seen if t <= t_cut - 3600]
    assert len(before_a) == len(before_b) > 100
    for (ta, ia, fa), (tb, ib, fb) in zip(before_a, before_b):
        assert (ta, ia) == (tb, ib)
        np.testing.assert_array_equal(fa, fb)
    # and the change is real: later decisions differ
    assert len(a.seen) != len(b.seen)


def test_feature_matrix_shape_and_order():
    view = make_view([4000, 8000], [8192, 16384], [1000, 0], [1024, 0], cpu_mean=[2000, 0], cpu_std=[100, 0])
    x = candidate_features(PodSpec(500, 512, 1000, 0), view, np.array([1, 0]))
    assert x.shape == (2, len(FEATURE_NAMES)) and x.dtype == np.float32
    col = {n: i for i, n in enumerate(FEATURE_NAMES)}
    assert x[1, col["req_cpu_frac_after"]] == np.float32(1500 / 4000)
    assert x[0, col["req_cpu_frac_after"]] == np.float32(500 / 8000)
    assert x[1, col["cpu_mean_frac"]] == np.float32(0.5)
    assert x[0, col["active"]] == 0 and x[1, col["active"]] == 1


def test_fractions_do_not_depend_on_node_size():
    small = make_view([4000], [8192], [1000], [2048], cpu_mean=[1000])
    big = make_view([40000], [81920], [10000], [20480], cpu_mean=[10000])
    fs = candidate_features(PodSpec(400, 800), small, np.array([0]))
    fb = candidate_features(PodSpec(4000, 8000), big, np.array([0]))
    for name in ("req_cpu_frac_after", "req_mem_frac_after", "cpu_mean_frac", "pod_cpu_req_frac"):
        j = FEATURE_NAMES.index(name)
        assert fs[0, j] == fb[0, j], name
