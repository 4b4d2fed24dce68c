"""The live per-workload usage history (issue 12, feature parity with the replay):

* per-pod summaries added up by ``features.history.workload_usage`` give exactly the replay's
  ``WorkloadHistory`` on the same samples (counts, means, population std, maxima, usage/request);
* the watch cache gives workloads dense ids that never change, carries them on recent pods, and
  remembers deleted pods (watch event or re-list) for the history window, then forgets them;
* the metrics thread queries the six per-pod statistics, maps series to workloads through the
  cache, and a failing query leaves no history (every workload unseen), counted;
* the live ClusterView carries the history and the recent pods' workload ids, so the features of
  a pod of a known workload use its history as the replay's do.
"""

import numpy as np
import pytest

from neurokube.features import FEATURE_NAMES, candidate_features
from neurokube.features.history import PodSummaries, workload_usage
from neurokube.k8s.objects import parse_pod
from neurokube.live.cache import ClusterCache
from neurokube.live.prometheus import MetricsSnapshot, PrometheusSource, history_queries
from neurokube.live.scheduler import pod_spec
from neurokube.live.settings import Settings
from neurokube.live.telemetry import Telemetry
from neurokube.live.view import build_view
from neurokube.policies.base import PodSpec
from neurokube.sim.workloads import WorkloadHistory
from neurokube.testing import FakePrometheus, node_doc, pod_doc


class Clock:
    def __init__(self, t=1000.0):
        self.t = t

    def __call__(self):
        return self.t


def owned(doc: dict, owner: str, kind: str = "ReplicaSet") -> dict:
    doc["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": kind, "name": owner, "uid": "x",
                                           "controller": True}]
    return doc


# -- the arithmetic ------------------------------------------------------------------------------


def test_pod_summaries_add_up_to_the_replays_history():
    rng = np.random.default_rng(5)
    n_workloads, n_pods = 4, 30
    workload = rng.integers(0, n_workloads - 1, n_pods)  # the last workload has no pods
    request = np.where(rng.random(n_pods) < 0.3, 0.0, rng.choice([100.0, 250.0, 1000.0], n_pods))
    samples = rng.integers(1, 12, n_pods)
    replay = WorkloadHistory(n_workloads)
    per_pod_cpu = [rng.gamma(2.0, 150.0, k) for k in samples]
    per_pod_mem = [rng.gamma(3.0, 100.0, k) for k in samples]
    for scrape in range(samples.max()):  # the replay: one sample per running pod per scrape
        running = np.flatnonzero(samples > scrape)
        replay.add(workload[running], np.array([per_pod_cpu[p][scrape] for p in running]),
                   np.array([per_pod_mem[p][scrape] for p in running]), request[running])
    live = workload_usage(PodSummaries(
        workload=workload, samples=samples, cpu_mean=np.array([c.mean() for c in per_pod_cpu]),
        cpu_sq_mean=np.array([(c * c).mean() for c in per_pod_cpu]), cpu_max=np.array([c.max() for c in per_pod_cpu]),
        mem_mean=np.array([m.mean() for m in per_pod_mem]), mem_max=np.array([m.max() for m in per_pod_mem]),
        cpu_request=request), n_workloads)
    expected = replay.view()
    for name in ("samples", "cpu_mean", "cpu_std", "cpu_max", "mem_mean", "mem_max", "cpu_ratio_mean"):
        np.testing.assert_allclose(getattr(live, name), getattr(expected, name), rtol=1e-9, atol=1e-9, err_msg=name)
    assert live.samples[-1] == 0


def test_unknown_workloads_and_empty_pods_are_ignored():
    live = workload_usage(PodSummaries(
        workload=np.array([0, 5, -1, 1]), samples=np.array([2, 3, 3, 0]), cpu_mean=np.array([100.0, 1, 1, 1]),
        cpu_sq_mean=np.array([10000.0, 1, 1, 1]), cpu_max=np.array([100.0, 1, 1, 1]), mem_mean=np.ones(4),
        mem_max=np.ones(4), cpu_request=np.array([200.0, 1, 1, 1])), 2)
    assert live.samples.tolist() == [2, 0] and live.cpu_mean.tolist() == [100.0, 0.0]
    assert live.cpu_ratio_mean.tolist() == [0.5, 0.0]


# -- the watch cache -----------------------------------------------------------------------------


def test_workload_ids_are_stable_and_deleted_pods_are_remembered_then_forgotten():
    clock = Clock(1000.0)
    c = ClusterCache(None, "neurokube", clock=clock, gone_keep_s=600.0)
    c.replace("nodes", [node_doc("a")])
    c.replace("pods", [owned(pod_doc("web-1", "200m", node="a", uid="u1"), "web"),
                       owned(pod_doc("web-2", "300m", node="a", uid="u2"), "web")])
    web = c.workload_id("default/web")
    assert c.workload_id("default/web") == web  # the same id every time
    c.apply("pods", "ADDED", owned(pod_doc("job-1", "1", node="a", uid="u3"), "job", "Job"))
    job = c.workload_id("default/job")
    assert job != web
    c.apply("pods", "DELETED", owned(pod_doc("web-1", "200m", node="a", uid="u1"), "web"))
    clock.t = 1100.0
    c.replace("pods", [owned(pod_doc("job-1", "1", node="a", uid="u3"), "job", "Job")])  # web-2 gone while not watching
    pods, n = c.workload_pods()
    assert n == 2
    assert pods == {"default/web-1": (web, 200), "default/web-2": (web, 300), "default/job-1": (job, 1000)}
    clock.t = 1650.0  # web-1 deleted 650 s ago, web-2 550 s ago
    assert set(c.workload_pods()[0]) == {"default/web-2", "default/job-1"}
    assert c.workload_id("default/web") == web  # ids outlive the pods


def test_recent_pods_carry_their_workload_ids_into_the_view():
    clock = Clock(5000.0)
    c = ClusterCache(None, "neurokube", clock=clock)
    c.replace("nodes", [node_doc("a"), node_doc("b")])
    c.replace("pods", [])
    c.apply("pods", "ADDED", owned(pod_doc("api-1", "500m", node="b", uid="u1"), "api"))
    c.apply("pods", "ADDED", pod_doc("lone", "100m", node="a", uid="u2"))
    api, lone = c.workload_id("default/api"), c.workload_id("default/lone")
    history = workload_usage(PodSummaries(np.array([api]), np.array([4]), np.array([250.0]), np.array([62500.0]),
                                          np.array([250.0]), np.array([300.0]), np.array([300.0]),
                                          np.array([500.0])), 2)
    metrics = MetricsSnapshot(refreshed_at=5010.0, values={"cpu_mean": {"a": 1.0, "b": 1.0}}, workloads=history)
    view = build_view(c.snapshot(), np.array([0, 1]), metrics, now=5020.0, recent_lag_s=60.0)
    assert view.recent_workload.tolist() == [api, lone] and view.recent_node.tolist() == [1, 0]
    assert view.workloads is history
    # The api pod's usage estimate is its history (250m), not half its request; lone has none.
    features = candidate_features(PodSpec(500, 128, workload=api), view, np.array([0, 1]))
    col = {name: features[:, i] for i, name in enumerate(FEATURE_NAMES)}
    assert col["wl_log_samples"][0] == pytest.approx(np.log1p(4))
    assert col["pod_cpu_est_frac"][0] == pytest.approx(250 / 4000)
    assert col["recent_cpu_est_frac"].tolist() == pytest.approx([50 / 4000, 250 / 4000])
    spec = pod_spec(parse_pod(owned(pod_doc("api-2", "500m", uid="u9"), "api")), c.workload_id("default/api"))
    assert spec.workload == api


# -- the metrics thread --------------------------------------------------------------------------


class HistoryPrometheus(FakePrometheus):
    """Answers the six per-pod history queries (and the node queries as the base class does)."""

    def __init__(self, pods: dict[tuple[str, str], dict[str, float]]) -> None:
        super().__init__({"a": (1.0, 2.0**30)})
        self.pods = pods
        self.history_up = True

    def answer(self, query: str) -> dict:
        if "container_" not in query:
            return super().answer(query)
        if not self.history_up:
            return {"status": "error", "error": "history down"}
        stat = next(s for s, q in self.expected.items() if q == query)
        result = [{"metric": {"namespace": ns, "pod": name}, "value": [0, str(values[stat])]}
                  for (ns, name), values in self.pods.items() if stat in values]
        return {"status": "success", "data": {"resultType": "vector", "result": result}}


def test_the_metrics_thread_reads_the_history_per_workload_and_degrades_to_none():
    cores = {"samples": 10.0, "cpu_mean": 0.2, "cpu_sq_mean": 0.05, "cpu_max": 0.4, "mem_mean": 100 * 2**20,
             "mem_max": 150 * 2**20}
    other = dict(cores, samples=5.0, cpu_mean=0.5, cpu_sq_mean=0.25, cpu_max=0.5)
    prom = HistoryPrometheus({("default", "web-1"): cores, ("default", "web-2"): other,
                              ("default", "stranger"): cores,  # not a pod the cache knows: ignored
                              ("default", "half"): {"samples": 3.0}})  # lacks statistics: ignored
    clock = Clock(1000.0)
    settings = Settings(prometheus_url=prom.url, prom_history_window="2h", prom_history_step="30s",
                        prom_history_refresh_s=60.0)
    prom.expected = history_queries(settings)
    assert prom.expected["samples"].startswith("count_over_time((sum by (namespace, pod) (container_memory")
    assert prom.expected["samples"].endswith("[2h:30s])")
    assert "^ 2" in prom.expected["cpu_sq_mean"]
    mapping = {"default/web-1": (0, 400), "default/web-2": (0, 0), "default/half": (1, 100)}
    telemetry = Telemetry()
    source = PrometheusSource(settings, lambda: {"a": "a"}, clock=clock, pods=lambda: (mapping, 2),
                              telemetry=telemetry)
    try:
        history = source.refresh().workloads
        assert history.samples.tolist() == [15, 0]
        assert history.cpu_mean[0] == pytest.approx((10 * 200 + 5 * 500) / 15)
        assert history.cpu_max[0] == pytest.approx(500.0) and history.mem_max[0] == pytest.approx(150.0)
        assert history.cpu_ratio_mean[0] == pytest.approx(0.5)  # only web-1 has a request: 200m / 400m
        clock.t = 1030.0  # within the history refresh period: the same history, no queries
        asked = len(prom.queries)
        assert source.refresh().workloads is history and len(prom.queries) == asked + 9
        prom.history_up = False
        clock.t = 1061.0
        degraded = source.refresh()
        assert degraded.workloads is None and degraded.refreshed_at == 1061.0  # node metrics are unaffected
        assert telemetry.workload_history.labels(result="failed")._value.get() == 1
        assert telemetry.workload_history.labels(result="refreshed")._value.get() == 1
        prom.history_up = True
        clock.t = 1062.0  # a failure is retried at the next node refresh
        assert source.refresh().workloads.samples.tolist() == [15, 0]
    finally:
        prom.close()
