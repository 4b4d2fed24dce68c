"""The snapshot step and its spool.

* a window becomes one Parquet partition per hour (empty hours included), keyed by date and hour;
* re-running a window overwrites its partitions exactly (same keys, same rows);
* a window that is not whole hours is an InputError;
* a store that fails (TemporaryError) and recovers: partitions are spooled, delivered by the next
  run, and no row is lost (rows counted in the store);
* Prometheus results are mapped to nodes by the configured label; a series without it is an error;
* the simulator's usage reads through the same interface.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from neurokube.adapters.objectstore import LocalDirStore
from neurokube.adapters.usage import NodeUsage, Snapshot
from neurokube.errors import InputError, TemporaryError
from pipelines import keys, snapshot
from pipelines.settings import PrometheusQueries, SnapshotSettings
from pipelines.usage import PrometheusUsage, SimulatorUsage

DAY0 = 1_700_006_400  # 2023-11-15T00:00:00Z


class FakeSource:
    """Two nodes; CPU used grows with time so every sample is distinct."""

    def snapshot(self, now_s: float) -> Snapshot:
        return Snapshot(nodes=[NodeUsage("n1", 4000, 8192, float(now_s - DAY0), 100.0),
                               NodeUsage("n2", 2000, 4096, 2500.0, 50.0)], pods=[])


class FlakyStore(LocalDirStore):
    """A local store that is 'down' while ``down`` is set."""

    down = False

    def put_bytes(self, key: str, data: bytes) -> None:
        if self.down:
            raise TemporaryError("MinIO at test: unreachable")
        super().put_bytes(key, data)


def rows_in(store) -> int:
    return sum(len(pd.read_parquet(io.BytesIO(store.get_bytes(k)))) for k in store.list(keys.SNAPSHOTS))


def test_partitions_per_hour_and_idempotent_rerun(tmp_path):
    store = LocalDirStore(tmp_path / "store")
    reader = SimulatorUsage(FakeSource())
    first = snapshot.run(reader, store, DAY0, DAY0 + 3 * 3600, SnapshotSettings(step_s=60), tmp_path / "spool")
    assert first.rows == 2 * 180 and not first.spooled
    assert store.list("snapshots/") == [f"snapshots/date=2023-11-15/hour={h:02d}/part.parquet" for h in range(3)]
    before = {k: store.get_bytes(k) for k in store.list("")}
    snapshot.run(reader, store, DAY0, DAY0 + 3 * 3600, SnapshotSettings(step_s=60), tmp_path / "spool")
    assert {k: store.get_bytes(k) for k in store.list("")} == before
    part = pd.read_parquet(io.BytesIO(store.get_bytes("snapshots/date=2023-11-15/hour=01/part.parquet")))
    assert part["ts"].min() == DAY0 + 3600 and part["ts"].max() == DAY0 + 7200 - 60
    assert rows_in(store) == 360


def test_window_must_be_whole_hours(tmp_path):
    with pytest.raises(InputError, match="whole hours"):
        snapshot.run(SimulatorUsage(FakeSource()), LocalDirStore(tmp_path), DAY0, DAY0 + 1800)


def test_store_outage_spools_and_next_run_delivers_every_row(tmp_path):
    store = FlakyStore(tmp_path / "store")
    reader = SimulatorUsage(FakeSource())
    store.down = True
    outage = snapshot.run(reader, store, DAY0, DAY0 + 2 * 3600, SnapshotSettings(), tmp_path / "spool")
    assert len(outage.spooled) == 4 and store.list("") == []  # 2 hours of nodes and 2 of pods
    store.down = False
    after = snapshot.run(reader, store, DAY0 + 2 * 3600, DAY0 + 4 * 3600, SnapshotSettings(), tmp_path / "spool")
    assert after.delivered == 4 and not after.spooled
    assert rows_in(store) == outage.rows + after.rows == 4 * 60 * 2
    assert not list((tmp_path / "spool").rglob("*.parquet"))


class FakeProm:
    def __init__(self, label: str = "node") -> None:
        self.label = label
        self.queries: list[str] = []

    def custom_query_range(self, query, start_time, end_time, step):
        self.queries.append(query)
        ts = np.arange(start_time.timestamp(), end_time.timestamp() + 1, 60)
        value = "4000" if "allocatable" in query else "1500"
        series = [{"metric": {self.label: "n1"}, "values": [[t, value] for t in ts]}]
        if "allocatable" in query:
            series.append({"metric": {self.label: "n2"}, "values": [[t, "2000"] for t in ts]})
        return series


def test_prometheus_reader_maps_the_node_label_and_fills_idle_nodes():
    prom = FakeProm(label="instance")
    reader = PrometheusUsage("http://prom", PrometheusQueries(rate_window="5m"), client=prom)
    frame = reader.read(DAY0, DAY0 + 3600, 60)
    assert len(frame) == 120 and set(frame["node"]) == {"n1", "n2"}
    assert frame[frame.node == "n2"]["cpu_used_milli"].eq(0).all()  # no container series: idle
    assert frame[frame.node == "n1"]["cpu_used_milli"].eq(1500).all()
    assert any("[5m]" in q for q in prom.queries)


def test_prometheus_series_without_a_node_label_is_an_input_error():
    prom = FakeProm(label="pod")
    with pytest.raises(InputError, match="node labels"):
        PrometheusUsage("http://prom", client=prom).read(DAY0, DAY0 + 3600, 60)


def test_unreachable_prometheus_is_temporary():
    with pytest.raises(TemporaryError, match="127.0.0.1:9"):
        PrometheusUsage("http://127.0.0.1:9", timeout_s=2).read(DAY0, DAY0 + 3600, 60)


class PodSource(FakeSource):
    """Two nodes and two pods: one bound (its usage grows with time), one pending (no node: never sampled)."""

    def snapshot(self, now_s: float) -> Snapshot:
        from neurokube.adapters.usage import PodUsage

        base = super().snapshot(now_s)
        return Snapshot(nodes=base.nodes, pods=[PodUsage("team", "web-1", "n1", 500, 256, float(now_s - DAY0), 100.0),
                                                PodUsage("team", "pending-1", "", 500, 256, 0.0, 0.0)])


def test_pod_usage_partitions_beside_the_node_ones_and_ingest_reads_them(tmp_path):
    from pipelines import ingest

    store = LocalDirStore(tmp_path / "store")
    done = snapshot.run(SimulatorUsage(PodSource()), store, DAY0, DAY0 + 2 * 3600, SnapshotSettings(step_s=60),
                        tmp_path / "spool")
    assert store.list(keys.POD_USAGE) == [f"pod_usage/date=2023-11-15/hour={h:02d}/part.parquet" for h in (0, 1)]
    assert done.pod_rows == 120 and keys.parse(store.list(keys.POD_USAGE)[0]).table == "pods"
    pods = ingest.read(store, ["2023-11-15"])["pod_usage"]
    assert len(pods) == 120 and set(pods["pod"]) == {"team/web-1"} and set(pods["node"]) == {"n1"}
    assert pods.sort_values("ts")["cpu_used_milli"].tolist() == [float(60 * i) for i in range(120)]


class FakePodProm(FakeProm):
    def __init__(self, duplicate: bool = False) -> None:
        super().__init__()
        self.duplicate = duplicate

    def custom_query_range(self, query, start_time, end_time, step):
        if "namespace, pod" not in query:
            return super().custom_query_range(query, start_time, end_time, step)
        self.queries.append(query)
        ts = np.arange(start_time.timestamp(), end_time.timestamp() + 1, 60)
        value = "250" if "cpu" in query else "64"
        series = [{"metric": {"node": "n1", "namespace": "team", "pod": "web-1"}, "values": [[t, value] for t in ts]}]
        if self.duplicate:  # the same pod from a second cluster with the same names
            series.append({"metric": {"node": "n1", "namespace": "team", "pod": "web-1", "cluster": "b"},
                           "values": [[t, value] for t in ts]})
        return series


def test_prometheus_pod_reads_carry_the_selectors_and_refuse_duplicates():
    prom = FakePodProm()
    queries = PrometheusQueries(selector='cluster="a"', pod_selector='namespace!="kube-system"')
    frame = PrometheusUsage("http://prom", queries, client=prom).read_pods(DAY0, DAY0 + 3600, 60)
    assert len(frame) == 60 and set(frame["pod"]) == {"team/web-1"}
    assert frame["cpu_used_milli"].eq(250).all() and frame["mem_used_mib"].eq(64).all()
    assert all('cluster="a",namespace!="kube-system",container!=""' in q for q in prom.queries)
    with pytest.raises(InputError, match="two series for pod 'team/web-1'"):
        PrometheusUsage("http://prom", queries, client=FakePodProm(duplicate=True)).read_pods(DAY0, DAY0 + 3600, 60)


def test_a_pod_query_that_ignores_the_pod_selector_is_refused():
    with pytest.raises(InputError, match="pod_cpu_used_milli"):
        PrometheusQueries(pod_selector='namespace="x"',
                          pod_cpu_used_milli="sum by ({pod_by}) (rate(c{{{selector}}}[{rate_window}]))")
