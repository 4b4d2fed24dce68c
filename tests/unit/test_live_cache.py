"""The watch cache: per-node sums kept right through adds, updates, deletes and re-lists;
terminal pods free their node; assumed placements count until the watch confirms or they expire;
pods bound while watching are "recent"; pending pods of this scheduler are counted. Also the
ClusterView it feeds: MiB rounding on the safe side, and recent pods after the newest scrape."""

import threading
import time

import numpy as np

from neurokube.k8s.objects import parse_pod
from neurokube.live import cache as cache_module
from neurokube.live.cache import ClusterCache
from neurokube.live.prometheus import MetricsSnapshot
from neurokube.live.view import build_view
from neurokube.testing import node_doc, pod_doc

MI = 2**20


class Clock:
    def __init__(self, t=1000.0):
        self.t = t

    def __call__(self):
        return self.t


def cache_with(nodes=("a", "b"), pods=(), clock=None):
    c = ClusterCache(None, "neurokube", clock=clock or Clock())
    c.replace("nodes", [node_doc(n) for n in nodes])
    c.replace("pods", list(pods))
    return c


def used(c, name):
    s = c.snapshot()
    i = s.index()[name]
    return int(s.used_cpu[i]), int(s.used_memory[i]), int(s.used_pods[i])


def test_bound_pods_sum_per_node_through_watch_events():
    p1 = pod_doc("p1", "500m", "1Gi", node="a", uid="u1")
    c = cache_with(pods=[p1, pod_doc("p2", "1", "1Gi", node="b", uid="u2"), pod_doc("pending", uid="u3")])
    assert c.synced and used(c, "a") == (500, 1024 * MI, 1) and used(c, "b") == (1000, 1024 * MI, 1)
    c.apply("pods", "ADDED", pod_doc("p4", "250m", "64Mi", node="a", uid="u4"))
    assert used(c, "a") == (750, 1088 * MI, 2)
    c.apply("pods", "MODIFIED", {**p1, "status": {"phase": "Succeeded"}})  # terminal: frees the node
    assert used(c, "a") == (250, 64 * MI, 1)
    c.apply("pods", "DELETED", pod_doc("p4", "250m", "64Mi", node="a", uid="u4"))
    assert used(c, "a") == (0, 0, 0)
    assert c.pending_count() == 1 and c.bound_node("u2") == "b" and c.bound_node("u3") is None


def test_non_zero_requests_limits_and_unlimited_pods():
    c = cache_with(pods=[pod_doc("p", None, None, node="a", uid="u"),
                         pod_doc("q", "1", "1Gi", node="a", uid="v", limits={"cpu": "2", "memory": "2Gi"})])
    s = c.snapshot()
    i = s.index()["a"]
    assert s.used_nz_cpu[i] == 100 + 1000 and s.used_nz_memory[i] == 200 * MI + 1024 * MI
    assert s.lim_cpu[i] == 2000 and s.unlimited[i] == 1


def test_assume_counts_until_confirmed_or_forgotten():
    clock = Clock()
    c = cache_with(clock=clock)
    pod = parse_pod(pod_doc("p", "1", "1Gi", uid="u"))
    c.apply("pods", "ADDED", pod_doc("p", "1", "1Gi", uid="u"))
    assert c.pending_count() == 1
    c.assume(pod, "a")
    assert used(c, "a") == (1000, 1024 * MI, 1) and c.pending_count() == 0
    c.apply("pods", "MODIFIED", pod_doc("p", "1", "1Gi", uid="u", node="a"))  # the watch confirms
    assert used(c, "a") == (1000, 1024 * MI, 1)  # not twice
    other = parse_pod(pod_doc("q", "2", "1Gi", uid="w"))
    c.assume(other, "b")
    c.forget(other)
    assert used(c, "b") == (0, 0, 0)


def test_assumptions_expire(monkeypatch):
    c = cache_with()
    c.assume(parse_pod(pod_doc("p", "1", "1Gi", uid="u")), "a")
    monkeypatch.setattr(cache_module, "ASSUME_TTL_S", -1.0)
    c.assume(parse_pod(pod_doc("q", "1", "1Gi", uid="v")), "b")
    time.sleep(0.01)
    assert used(c, "a")[0] == 1000 and used(c, "b")[0] == 0


def test_relist_replaces_state_and_keeps_bind_times():
    clock = Clock()
    c = cache_with(clock=clock)
    clock.t = 2000.0
    c.apply("pods", "ADDED", pod_doc("p", "1", "1Gi", node="a", uid="u"))
    assert [r.bound_at for r in c.snapshot().recent] == [2000.0]
    clock.t = 2010.0
    c.replace("pods", [pod_doc("p", "1", "1Gi", node="a", uid="u"), pod_doc("q", "1", "1Gi", node="b", uid="v")])
    snap = c.snapshot()
    assert [(r.node, r.bound_at) for r in snap.recent] == [("a", 2000.0)]  # q was bound before we saw it
    assert used(c, "b")[0] == 1000
    c.replace("nodes", [node_doc("a")])
    assert [n.name for n in c.snapshot().nodes] == ["a"]


def test_unreadable_objects_are_skipped():
    c = cache_with()
    bad = pod_doc("bad", node="a", uid="x")
    bad["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "lots"
    c.apply("pods", "ADDED", bad)
    assert used(c, "a") == (0, 0, 0)


def test_a_pod_is_absent_only_if_a_list_begun_after_it_was_seen_did_not_show_it():
    clock = Clock(1000.0)
    c = ClusterCache(None, "neurokube", clock=clock)
    assert not c.absent_since("gone", 0.0)  # never listed: the cache cannot say
    bad = pod_doc("bad", node="a", uid="unreadable")
    bad["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "lots"
    c.replace("pods", [pod_doc("p", node="a", uid="listed"), bad], listed_at=900.0)
    skew = cache_module.LIST_SKEW_S
    assert c.absent_since("gone", 900.0 - skew - 1)
    assert not c.absent_since("gone", 900.0 - skew + 1)  # perhaps written after the list began
    assert not c.absent_since("listed", 0.0)
    assert not c.absent_since("unreadable", 0.0)  # in the list, though the cache could not read it
    c.apply("pods", "ADDED", pod_doc("later", uid="watched"))
    assert not c.absent_since("watched", 0.0)
    c.apply("pods", "DELETED", pod_doc("p", node="a", uid="listed"))
    assert c.absent_since("listed", 0.0)  # deleted since: absent too
    clock.t = 5000.0
    c.replace("pods", [])  # a re-list dates the proof anew, and forgets what was unreadable
    assert c.absent_since("unreadable", 5000.0 - skew - 1) and not c.absent_since("gone", 5000.0 - skew + 1)


def test_view_rounds_memory_safely_and_takes_recent_pods():
    clock = Clock(5000.0)
    c = cache_with(nodes=("a", "b", "c"), clock=clock)
    doc = node_doc("c", memory=str(8 * 2**30 + 100))  # not a whole MiB
    c.apply("nodes", "MODIFIED", doc)
    c.apply("pods", "ADDED", pod_doc("old", "1", str(MI + 1), node="a", uid="u1"))  # 1 MiB + 1 byte
    clock.t = 5100.0
    c.apply("pods", "ADDED", pod_doc("new", "2", "1Gi", node="c", uid="u2"))
    snap = c.snapshot()
    metrics = MetricsSnapshot(refreshed_at=5150.0, values={"cpu_mean": {"a": 1.0}})
    view = build_view(snap, np.array([0, 2]), metrics, now=5160.0, recent_lag_s=60.0)
    assert view.alloc_mem.tolist() == [8192, 8192]  # rounded down
    assert view.req_mem.tolist() == [2, 1024]  # rounded up
    assert view.recent_node.tolist() == [1] and view.recent_cpu_request.tolist() == [2000]
    assert view.metrics.cpu_mean.tolist() == [1000.0, 0.0] and view.metrics.samples.tolist() == [1, 0]
    assert np.isinf(view.metrics.age_s[1]) and view.metrics.age_s[0] == 10.0
    later = build_view(snap, np.array([0, 2]), MetricsSnapshot(refreshed_at=5300.0), now=5300.0, recent_lag_s=60.0)
    assert later.recent_node.size == 0  # the metrics have caught up with it


def test_a_view_of_the_feasible_nodes_carries_the_whole_clusters_requested_cpu_share():
    """The policy's near-tie gate (``tie_from_requested``) reads the cluster's share, not the share of
    the nodes that passed the filter: those are the emptier ones by construction."""
    c = cache_with(nodes=("a", "b", "c"), pods=[pod_doc("p1", "4", "1Gi", node="a", uid="u1"),
                                                pod_doc("p2", "2", "1Gi", node="b", uid="u2")])
    view = build_view(c.snapshot(), np.array([2]), None, now=1000.0, recent_lag_s=60.0)  # only the empty node "c"
    assert view.requested_cpu_share() == 6 / 12
    assert float(view.req_cpu.sum()) / float(view.alloc_cpu.sum()) == 0.0  # what the view's own nodes say


def test_wait_pod_returns_the_pod_the_watch_reports_while_it_waits():
    """An event can arrive before the watch reports its pod: the lookup waits for the watch."""
    c = cache_with()
    timer = threading.Timer(0.05, c.apply, args=("pods", "ADDED", pod_doc("late", uid="u-late")))
    timer.start()
    started = time.monotonic()
    pod = c.wait_pod("u-late", 10.0)
    timer.join()
    assert pod is not None and pod.key == "default/late"
    assert time.monotonic() - started < 5.0  # woken by the watch event, not by the 10 s timeout
    assert c._waiting == {}


def test_wait_pod_gives_up_after_its_timeout_and_leaves_no_waiter_behind():
    c = cache_with(pods=[pod_doc("here", uid="u-here")])
    assert c.wait_pod("u-here", 10.0).key == "default/here"  # known: no wait
    assert c.wait_pod("u-never", 0.02) is None
    assert c._waiting == {}  # a flood of made-up UIDs leaves nothing behind


def test_wait_pod_does_not_wait_before_the_first_list_and_a_relist_wakes_waiters():
    unlisted = ClusterCache(None, "neurokube", clock=Clock())
    started = time.monotonic()
    assert unlisted.wait_pod("u", 10.0) is None and time.monotonic() - started < 5.0
    c = cache_with()
    doc = pod_doc("relisted", uid="u-relisted")
    timer = threading.Timer(0.05, c.replace, args=("pods", [doc]))
    timer.start()
    started = time.monotonic()
    assert c.wait_pod("u-relisted", 10.0).key == "default/relisted"
    timer.join()
    assert time.monotonic() - started < 5.0 and c._waiting == {}


def test_a_deleted_pod_ends_the_wait_with_none():
    c = cache_with()
    timer = threading.Timer(0.05, c.apply, args=("pods", "DELETED", pod_doc("gone", uid="u-gone")))
    timer.start()
    started = time.monotonic()
    assert c.wait_pod("u-gone", 10.0) is None
    timer.join()
    assert time.monotonic() - started < 5.0
