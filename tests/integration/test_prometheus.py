"""Prometheus scraping the metrics emulator, queried with PromQL through prometheus-api-client.

* every exposed metric name returns series, with the labels real exporters put on them;
* rates of the counters give back the CPU usage that went in (pods and nodes), gauges the memory
  and requests, allocatable the node sizes; a pending pod has requests but no usage series;
* rewriting the snapshot file changes what Prometheus scrapes.
"""

from __future__ import annotations

import pytest
from prometheus_api_client import PrometheusConnect

from neurokube.adapters.usage import PodUsage, Snapshot
from neurokube.emulator.filesource import write_snapshot
from neurokube.emulator.series import SAMPLE_NAMES
from tests.integration.conftest import SNAPSHOT, eventually

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
RATE_WINDOW = "10s"  # ten scrapes at the session's 1 s interval


@pytest.fixture(scope="module")
def prom(stack) -> PrometheusConnect:
    client = PrometheusConnect(url=stack.endpoints["prometheus"]["url"], disable_ssl=True)
    # Wait until the last RATE_WINDOW holds a scrape every second: after a gap (the restart that
    # follows a backfill leaves one of ~7 s) rate() extrapolates only half an interval past the
    # first sample and under-reports.
    eventually(lambda: _scalar(client, f'count_over_time(up{{job="neurokube-emulator"}}[{RATE_WINDOW}])') >= 10,
               timeout_s=60)
    return client


def _vector(client: PrometheusConnect, query: str) -> dict[tuple, float]:
    """Result of an instant query as {sorted label items (without __name__): value}."""
    out = {}
    for row in client.custom_query(query):
        labels = tuple(sorted((k, v) for k, v in row["metric"].items() if k != "__name__"))
        out[labels] = float(row["value"][1])
    return out


def _scalar(client: PrometheusConnect, query: str) -> float:
    values = list(_vector(client, query).values())
    return values[0] if len(values) == 1 else float("nan")


def _by(client: PrometheusConnect, query: str, label: str) -> dict[str, float]:
    # Prometheus drops empty labels: a pending pod's node="" comes back without `node`.
    return {dict(labels).get(label, ""): value for labels, value in _vector(client, query).items()}


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_every_metric_has_series(prom: PrometheusConnect, name: str) -> None:
    series = _vector(prom, name)
    assert series, f"no series for {name}"
    label_names = {key for labels in series for key, _ in labels}
    expected = {
        "node_cpu_seconds_total": {"instance", "cpu", "mode"},
        "node_memory_MemTotal_bytes": {"instance"},
        "node_memory_MemAvailable_bytes": {"instance"},
        "container_cpu_usage_seconds_total": {"namespace", "pod", "container", "node"},
        "container_memory_working_set_bytes": {"namespace", "pod", "container", "node"},
        "kube_pod_container_resource_requests": {"namespace", "pod", "container", "node", "resource", "unit"},
        "kube_node_status_allocatable": {"node", "resource", "unit"},
    }[name]
    assert expected <= label_names
    assert "job" in label_names


def test_node_exporter_instance_is_the_node_name(prom: PrometheusConnect) -> None:
    instances = set(_by(prom, "node_memory_MemTotal_bytes", "instance"))
    assert instances == {n.name for n in SNAPSHOT.nodes}


def test_cpu_rates_match_the_usage(prom: PrometheusConnect) -> None:
    pods = _by(prom, f"rate(container_cpu_usage_seconds_total[{RATE_WINDOW}])", "pod")
    assert set(pods) == {"it-web", "it-job"}  # the pending pod has no usage series
    assert pods["it-web"] == pytest.approx(1.5, rel=0.02)
    assert pods["it-job"] == pytest.approx(0.25, rel=0.02)

    busy = _by(prom, f'sum by (instance) (rate(node_cpu_seconds_total{{mode!="idle"}}[{RATE_WINDOW}]))', "instance")
    assert busy["it-node-a"] == pytest.approx(2.0, rel=0.02)
    assert busy["it-node-b"] == pytest.approx(0.5, rel=0.02)
    utilisation = _by(prom, f'1 - avg by (instance) (rate(node_cpu_seconds_total{{mode="idle"}}[{RATE_WINDOW}]))',
                      "instance")
    assert utilisation["it-node-a"] == pytest.approx(0.5, rel=0.02)  # 2 of 4 CPUs
    assert utilisation["it-node-b"] == pytest.approx(0.25, rel=0.02)  # 0.5 of 2 CPUs
    cpus = _by(prom, 'count by (instance) (node_cpu_seconds_total{mode="idle"})', "instance")
    assert cpus == {"it-node-a": 4, "it-node-b": 2}


def test_memory_and_requests(prom: PrometheusConnect) -> None:
    available = _by(prom, "node_memory_MemAvailable_bytes", "instance")
    assert available == {"it-node-a": (8192 - 3072) * MIB, "it-node-b": (4096 - 1024) * MIB}
    working_set = _by(prom, "container_memory_working_set_bytes", "pod")
    assert working_set == {"it-web": 2048 * MIB, "it-job": 768 * MIB}
    cpu_requests = _by(prom, 'kube_pod_container_resource_requests{resource="cpu",unit="core"}', "pod")
    assert cpu_requests == {"it-web": 1.0, "it-job": 0.5, "it-pending": 2.0}
    requested_on = _by(prom, 'sum by (node) (kube_pod_container_resource_requests{resource="memory"})', "node")
    assert requested_on == {"it-node-a": 1024 * MIB, "it-node-b": 512 * MIB, "": 2048 * MIB}
    allocatable = _by(prom, 'kube_node_status_allocatable{resource="cpu"}', "node")
    assert allocatable == {"it-node-a": 4.0, "it-node-b": 2.0}


def test_a_new_snapshot_is_scraped(prom: PrometheusConnect, snapshot_file) -> None:
    moved = PodUsage("default", "it-new", "it-node-b", 100, 128, 50.0, 300.0)
    write_snapshot(snapshot_file, Snapshot(SNAPSHOT.nodes, SNAPSHOT.pods + [moved]))
    try:
        seen = eventually(lambda: _by(prom, 'container_memory_working_set_bytes{pod="it-new"}', "pod"), timeout_s=30)
        assert seen == {"it-new": 300 * MIB}
    finally:
        write_snapshot(snapshot_file, SNAPSHOT)
