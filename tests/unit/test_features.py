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


def _plain_features(pod, view, nodes):
    """The features written column by column from their definitions (FEATURE_NAMES), with no
    shortcut: the reference the fast form must equal bit for bit."""
    from neurokube.features.placement import PRIOR_MEAN_OF_REQUEST, pod_usage_estimate

    m = view.metrics
    cap_c, cap_m = view.alloc_cpu[nodes].astype(np.float64), view.alloc_mem[nodes].astype(np.float64)
    est_c, peak_c, peak_m = pod_usage_estimate(pod.cpu_request_milli, pod.cpu_limit_milli, pod.memory_request_mib,
                                               pod.memory_limit_mib, np.array([pod.workload]), view.workloads)
    zeros = np.zeros(nodes.size)
    if view.recent_node.size:
        r_mean, _, r_mem = pod_usage_estimate(view.recent_cpu_request, view.recent_cpu_limit, view.recent_mem_request,
                                              view.recent_mem_limit, view.recent_workload, view.workloads)
        recent_c, recent_m = view.per_node(r_mean)[nodes], view.per_node(r_mem)[nodes]
        recent_n = np.bincount(view.recent_node, minlength=view.n_nodes)[nodes]
    else:
        recent_c = recent_m = recent_n = zeros
    hist = view.workloads
    wk = pod.workload if hist is not None and 0 <= pod.workload < hist.samples.size else -1
    wl_samples = float(hist.samples[wk]) if wk >= 0 else 0.0
    wl_ratio = float(hist.cpu_ratio_mean[wk]) if wk >= 0 and wl_samples > 0 else PRIOR_MEAN_OF_REQUEST
    lim = view.lim_cpu[nodes] if view.lim_cpu is not None else zeros
    unlimited = view.unlimited_pods[nodes] if view.unlimited_pods is not None else zeros
    hour = (view.now_s % 86400.0) / 3600.0
    cpu_mean, cpu_max, mem_max = m.cpu_mean[nodes] / cap_c, m.cpu_max[nodes] / cap_c, m.mem_max[nodes] / cap_m
    pod_est, pod_peak, pod_mem_peak = est_c[0] / cap_c, peak_c[0] / cap_c, peak_m[0] / cap_m
    proj_peak = cpu_max + recent_c / cap_c + pod_peak
    full = lambda v: np.full(nodes.size, v)  # noqa: E731
    columns = {
        "node_cpu_cores": cap_c / 1000.0, "node_mem_gib": cap_m / 1024.0,
        "req_cpu_frac_after": (view.req_cpu[nodes] + pod.cpu_request_milli) / cap_c,
        "req_mem_frac_after": (view.req_mem[nodes] + pod.memory_request_mib) / cap_m,
        "nz_req_cpu_frac_after": (view.nz_req_cpu[nodes] + pod.nonzero_cpu) / cap_c,
        "lim_cpu_frac": lim / cap_c, "unlimited_pods": unlimited, "pod_count": view.pod_count[nodes],
        "active": view.pod_count[nodes] > 0, "cpu_mean_frac": cpu_mean, "cpu_max_frac": cpu_max,
        "cpu_std_frac": m.cpu_std[nodes] / cap_c, "cpu_trend_frac_h": m.cpu_trend[nodes] * 3600.0 / cap_c,
        "mem_mean_frac": m.mem_mean[nodes] / cap_m, "mem_max_frac": mem_max,
        "metrics_age_s": np.where(np.isfinite(m.age_s[nodes]), m.age_s[nodes], 1e6),
        "metrics_samples": m.samples[nodes],
        "recent_pods": recent_n, "recent_cpu_est_frac": recent_c / cap_c, "recent_mem_est_frac": recent_m / cap_m,
        "pod_cpu_req_frac": pod.cpu_request_milli / cap_c, "pod_mem_req_frac": pod.memory_request_mib / cap_m,
        "pod_cpu_lim_frac": pod.cpu_limit_milli / cap_c, "pod_qos": full(float(pod.qos)),
        "pod_cpu_est_frac": pod_est, "pod_cpu_peak_frac": pod_peak, "pod_mem_peak_frac": pod_mem_peak,
        "wl_log_samples": full(np.log1p(wl_samples)), "wl_cpu_ratio_mean": full(wl_ratio),
        "proj_cpu_mean_frac": cpu_mean + recent_c / cap_c + pod_est, "proj_cpu_peak_frac": proj_peak,
        "proj_mem_peak_frac": mem_max + recent_m / cap_m + pod_mem_peak,
        "headroom_cpu_cores": (1.0 - proj_peak) * cap_c / 1000.0,
        "hour_sin": full(np.sin(2 * np.pi * hour / 24)), "hour_cos": full(np.cos(2 * np.pi * hour / 24)),
    }
    return np.stack([np.asarray(columns[name], dtype=np.float32) for name in FEATURE_NAMES], axis=1)


class Checking:
    """Wraps a policy; at every 7th decision compares the fast features with the plain ones, for
    every node in order, a permutation and a subset (the replay's view changes in place, so the
    comparison has to happen at decision time)."""

    def __init__(self, base):
        self.base, self.name = base, base.name
        self.rng, self.calls, self.checked, self.with_recent, self.with_history = np.random.default_rng(0), 0, 0, 0, 0

    def select(self, pod, view):
        self.calls += 1
        if self.calls % 7 == 0:
            n = view.n_nodes
            for nodes in (np.arange(n), self.rng.permutation(n),
                          np.sort(self.rng.choice(n, size=max(1, n // 3), replace=False))):
                np.testing.assert_array_equal(candidate_features(pod, view, nodes), _plain_features(pod, view, nodes))
            limited = replace(pod, cpu_limit_milli=300, memory_limit_mib=0, cpu_request_milli=0)
            np.testing.assert_array_equal(candidate_features(limited, view, np.arange(n)),
                                          _plain_features(limited, view, np.arange(n)))
            hist = view.workloads
            self.checked += 1
            self.with_recent += bool(view.recent_node.size)
            self.with_history += bool(hist is not None and 0 <= pod.workload < hist.samples.size
                                      and hist.samples[pod.workload] > 0)
        return self.base.select(pod, view)


def test_fast_features_equal_the_plain_definitions(small_trace):
    """candidate_features (a scalar path for the pod, no copies for all nodes in order) gives the
    same bits as the column-by-column definitions on the views of a whole replay (recent pods,
    workload history and limits included)."""
    spy = Checking(make_policy("default", trace=small_trace, seed=4))
    replay(small_trace, spy, SimConfig())
    assert spy.checked > 100
    assert spy.with_recent > 20 and spy.with_history > 20  # the cases that take the other branches were seen
