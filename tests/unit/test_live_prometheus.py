"""Node metrics from Prometheus: series mapped to nodes by a configurable label (port stripped,
node addresses accepted), statistics in millicores and MiB, staleness, and the fallback to
default scoring counted as prometheus_unavailable when Prometheus is down."""

import numpy as np
import pytest

from neurokube.k8s.objects import parse_pod
from neurokube.live.prometheus import PrometheusSource, node_key
from neurokube.live.settings import Settings
from neurokube.testing import FakeKube, FakePrometheus, fake_runtime, node_doc, pod_doc, write_packing_model

NODES = {"n0": "n0", "n1": "n1", "10.0.0.2": "n2", "n2": "n2"}


@pytest.fixture
def prom():
    server = FakePrometheus({"n0": (1.5, 2 * 2**30), "n1": (0.25, 2**30), "10.0.0.2": (3.0, 0.0)})
    yield server
    server.close()


@pytest.mark.parametrize("raw, key", [("n1:9100", "n1"), ("10.0.0.2:9100", "10.0.0.2"), ("[fd00::1]:9100", "fd00::1"),
                                      ("n1", "n1"), ("fd00::1", "fd00::1")])
def test_node_key(raw, key):
    assert node_key(raw, strip_port=True) == key


def test_refresh_maps_series_to_nodes(prom):
    source = PrometheusSource(Settings(prometheus_url=prom.url), lambda: NODES, clock=lambda: 100.0)
    snap = source.refresh()
    assert snap.refreshed_at == 100.0 and not snap.error
    assert snap.values["cpu_mean"] == {"n0": 1.5, "n1": 0.25, "n2": 3.0}  # n2 by its address
    metrics = snap.node_metrics(["n0", "n1", "n2", "n3"], now=130.0)
    assert metrics.cpu_mean.tolist() == [1500.0, 250.0, 3000.0, 0.0]
    assert metrics.mem_mean[0] == 2048.0 and metrics.samples.tolist() == [10, 10, 10, 0]
    assert metrics.age_s[0] == 30.0 and np.isinf(metrics.age_s[3])
    assert any("avg_over_time" in q and "node_cpu_seconds_total" in q for q in prom.queries)


def test_another_label(prom):
    prom.label, prom.suffix = "node", ""
    settings = Settings(prometheus_url=prom.url, prom_node_label="node", prom_strip_port=False)
    snap = PrometheusSource(settings, lambda: NODES).refresh()
    assert snap.values["cpu_mean"]["n0"] == 1.5


def test_failure_keeps_old_values_which_go_stale(prom):
    clock = [100.0]
    source = PrometheusSource(Settings(prometheus_url=prom.url), lambda: NODES, clock=lambda: clock[0])
    source.refresh()
    prom.up = False
    clock[0] = 160.0
    snap = source.refresh()
    assert snap.error and snap.refreshed_at == 100.0 and snap.values["cpu_mean"]["n0"] == 1.5
    assert snap.fresh(160.0, 120.0) and not snap.fresh(260.0, 120.0)


def test_unreachable_prometheus_is_reported_not_raised():
    source = PrometheusSource(Settings(prometheus_url="http://127.0.0.1:9"), lambda: NODES)
    snap = source.refresh()
    assert "unreachable" in snap.error and not snap.fresh(0.0, 120.0)


def test_prometheus_down_falls_back_to_default_and_counts(prom, tmp_path):
    model = write_packing_model(tmp_path / "model")
    kube = FakeKube([node_doc(f"n{i}") for i in range(3)], [pod_doc("busy", "2", "1Gi", node="n1", uid="b")])
    runtime = fake_runtime(kube, Settings(prometheus_url=prom.url, model_dir=model, replica="t"))
    runtime.metrics.refresh()
    placed = []
    for name in ("p1", "p2"):
        doc = pod_doc(name, "100m", "64Mi")
        kube.add_pod(doc)
        placed.append(runtime.scheduler.schedule(parse_pod(doc)))
        prom.up = False
        runtime.metrics._latest = type(runtime.metrics.latest())(refreshed_at=1.0)  # long stale
    assert placed[0].policy == "neurokube" and placed[0].node == "n1"  # packs onto the busy node
    assert placed[1].policy == "default" and placed[1].fallback == "prometheus_unavailable"
    assert placed[1].node in ("n0", "n2")  # LeastAllocated
    assert runtime.telemetry.fallbacks.labels(reason="prometheus_unavailable")._value.get() == 1
