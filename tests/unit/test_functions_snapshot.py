"""The snapshot function (functions/snapshot/main.py) with the functions-framework test client.

* a ping writes the last two completed hours and the current hour up to the tick, as hourly
  Parquet partitions with the snapshot step's columns, reading only the selected cluster's series;
  the window follows the event's time, so a redelivered event rewrites the same partitions;
* anything but a well-formed, recent ping is a 4xx and writes nothing: another event type, not a
  CloudEvent, an unreadable time, a tick older than the allowed age or in the future;
* authentication: without the event token (or with a wrong one) 401, with it 200; the function
  refuses to start without a way to authenticate, without a store, without Prometheus, or with
  a malformed series selector;
* a store outage spools the partitions (counted in /metrics) and the next tick delivers them;
  Prometheus unreachable is a 503;
* /healthz and /metrics are served.
"""

from __future__ import annotations

import io
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import functions_framework
import numpy as np
import pandas as pd
import pytest
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent

from neurokube.adapters.objectstore import LocalDirStore
from neurokube.adapters.prometheus import connect
from neurokube.errors import InputError
from pipelines import snapshot
from pipelines.usage import COLUMNS, PrometheusUsage
from tests.unit.test_pipeline_snapshot import FlakyStore

SOURCE = str(Path(__file__).resolve().parents[2] / "functions" / "snapshot" / "main.py")
PING = "dev.knative.sources.ping"
TOKEN = "event-token-for-the-unit-tests"


class FakeProm:
    """Clusters a and b, same node names: a's nodes use 1 and 2 cores, b's 3 cores each."""

    def __init__(self) -> None:
        self.queries: list[str] = []

    def custom_query_range(self, query, start_time, end_time, step):
        self.queries.append(query)
        ts = np.arange(start_time.timestamp(), end_time.timestamp() + 1, 60)
        out = []
        for cluster, used in (("a", {"n1": 1000, "n2": 2000}), ("b", {"n1": 3000, "n2": 3000})):
            if f'cluster="{cluster}"' not in query:
                continue
            for node, cpu in used.items():
                value = 4000 if "allocatable" in query else cpu if "cpu_usage" in query else 512
                labels = {"node": node, "cluster": cluster}
                if "namespace, pod" in query:  # the per-pod reads: one pod per node
                    labels.update(namespace="team", pod=f"web-{node}")
                out.append({"metric": labels, "values": [[t, str(value)] for t in ts]})
        return out


@pytest.fixture
def env(monkeypatch, tmp_path):
    for key, value in {"NEUROKUBE_EVENT_TOKEN": TOKEN, "NEUROKUBE_PROMETHEUS_URL": "http://prom.invalid:9090",
                       "NEUROKUBE_STORE": str(tmp_path / "store"), "NEUROKUBE_SNAPSHOT_SELECTOR": 'cluster="a"',
                       "NEUROKUBE_SNAPSHOT_SPOOL_DIR": str(tmp_path / "spool")}.items():
        monkeypatch.setenv(key, value)
    return tmp_path


def app(target: str, prom=None, store=None):
    """The function app; its Prometheus client and store replaced by fakes (the module is ``main``)."""
    flask_app = functions_framework.create_app(target, SOURCE)
    module = sys.modules["main"]
    if prom is not None:
        module.READER = PrometheusUsage("http://prom.invalid:9090", module.SNAPSHOT.snapshot.queries, client=prom)
    if store is not None:
        module.STORE = store
    return flask_app.test_client(), module


def ping(at: float | None, kind: str = PING) -> tuple[dict, bytes]:
    attributes = {"type": kind, "source": "/apis/v1/namespaces/neurokube/pingsources/neurokube-snapshot"}
    if at is not None:
        attributes["time"] = datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    headers, body = to_binary(CloudEvent(attributes, {"task": "snapshot"}))
    return {**headers, "Authorization": f"Bearer {TOKEN}"}, body


def frames(store) -> dict[str, pd.DataFrame]:
    return {k: pd.read_parquet(io.BytesIO(store.get_bytes(k))) for k in store.list("snapshots/")}


def test_a_ping_writes_two_completed_hours_and_the_current_one(env):
    store = LocalDirStore(env / "store")
    client, _ = app("snapshot", FakeProm(), store)
    now = time.time()
    tick = now - 5  # a few seconds of delivery
    response = client.post("/", headers=ping(tick)[0], data=ping(tick)[1])
    assert response.status_code == 200, response.json
    hour = int(tick // 3600) * 3600
    until = int(tick // 60) * 60
    doc = response.json
    assert (doc["start_s"], doc["end_s"], doc["until_s"]) == (hour - 7200, hour + 3600, until)
    parts = frames(store)
    assert sorted(parts) == [snapshot.keys.snapshot_key(h) for h in (hour - 7200, hour - 3600, hour)]
    steps = 120 + (until - hour) // 60
    assert doc["rows"] == sum(len(f) for f in parts.values()) == 2 * steps
    for frame in parts.values():
        assert list(frame.columns) == list(COLUMNS)
    everything = pd.concat(parts.values())
    assert everything["ts"].max() == until - 60 and everything["ts"].min() == hour - 7200
    # cluster a only: 1 + 2 cores; b's 3-core nodes of the same names are not in it
    assert everything.groupby("node")["cpu_used_milli"].unique().to_dict() == {"n1": [1000.0], "n2": [2000.0]}
    assert doc["cpu_core_s"] == pytest.approx(3.0 * steps * 60)
    before = {k: store.get_bytes(k) for k in store.list("")}
    again = client.post("/", headers=ping(tick)[0], data=ping(tick)[1])  # a redelivery: the same partitions
    assert again.status_code == 200 and {k: store.get_bytes(k) for k in store.list("")} == before


@pytest.mark.parametrize("target", ["snapshot", "on_ping"])
def test_anything_but_a_recent_ping_is_a_4xx_and_writes_nothing(env, target):
    store = LocalDirStore(env / "store")
    prom = FakeProm()
    client, _ = app(target, prom, store)
    now = time.time()
    for headers, body in (ping(now, kind="dev.knative.apiserver.resource.add"), ping(now - 2 * 3600),
                          ping(now + 3600)):
        response = client.post("/", headers=headers, data=body)
        assert response.status_code == 400, response.data
    headers, body = ping(now)
    response = client.post("/", headers={**headers, "ce-time": "yesterday at noon"}, data=body)
    assert 400 <= response.status_code < 500
    response = client.post("/", headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
                           data=b"not an event")
    assert 400 <= response.status_code < 500
    assert store.list("") == [] and prom.queries == []


@pytest.mark.parametrize("target", ["snapshot", "on_ping"])
def test_callers_are_authenticated(env, target):
    store = LocalDirStore(env / "store")
    client, _ = app(target, FakeProm(), store)
    headers, body = ping(time.time())
    del headers["Authorization"]
    assert client.post("/", headers=headers, data=body).status_code == 401
    wrong = {**headers, "Authorization": "Bearer wrong-token-for-the-unit-tests"}
    assert client.post("/", headers=wrong, data=body).status_code == 401
    assert store.list("") == []
    assert client.post("/", headers={**headers, "Authorization": f"Bearer {TOKEN}"}, data=body).status_code == 200


@pytest.mark.parametrize("unset, value, message", [
    ("NEUROKUBE_EVENT_TOKEN", None, "would accept requests from anyone"),
    ("NEUROKUBE_STORE", None, "NEUROKUBE_STORE: must be set"),
    ("NEUROKUBE_PROMETHEUS_URL", None, "NEUROKUBE_PROMETHEUS_URL is not set"),
    ("NEUROKUBE_SNAPSHOT_SELECTOR", "cluster=a", "malformed series selector"),
    ("NEUROKUBE_SNAPSHOT_HOURS", "two", "NEUROKUBE_SNAPSHOT_HOURS='two': expected an integer"),
    ("NEUROKUBE_SNAPSHOT_STEP_S", "7", "NEUROKUBE_SNAPSHOT_STEP_S: must divide an hour"),
])
def test_the_function_refuses_to_start_misconfigured(env, monkeypatch, unset, value, message):
    if value is None:
        monkeypatch.delenv(unset)
    else:
        monkeypatch.setenv(unset, value)
    with pytest.raises(InputError, match=message):
        functions_framework.create_app("snapshot", SOURCE)


def test_a_store_outage_spools_and_the_next_tick_delivers(env):
    store = FlakyStore(env / "store")
    client, module = app("snapshot", FakeProm(), store)
    store.down = True
    # a recent quarter hour that is not on the hour (a tick at or near an hour's edge spans other
    # hours), at most 30 minutes old (older ticks are refused after an hour): :15, :30 or :45
    tick = time.time() // 900 * 900
    if tick % 3600 == 0:
        tick -= 900
    response = client.post("/", headers=ping(tick)[0], data=ping(tick)[1])
    # three hours of node snapshots and three of pod usage
    assert response.status_code == 200 and len(response.json["spooled"]) == 6 and store.list("") == []
    rows = response.json["rows"]
    metrics = client.get("/metrics").data.decode()
    assert 'neurokube_snapshot_partitions_total{result="spooled"} 6.0' in metrics
    store.down = False
    later = client.post("/", headers=ping(tick)[0], data=ping(tick)[1])
    assert later.status_code == 200 and later.json["delivered"] == 6 and not later.json["spooled"]
    assert sum(len(f) for f in frames(store).values()) == rows
    assert not list((env / "spool").rglob("*.parquet"))


def test_prometheus_unreachable_is_a_503(env, monkeypatch):
    monkeypatch.setenv("NEUROKUBE_PROMETHEUS_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("NEUROKUBE_PROM_TIMEOUT_S", "2")
    client, module = app("snapshot", store=LocalDirStore(env / "store"))
    url = "http://127.0.0.1:9"  # the deployed client retries 3 times with backoff; none here, to stay fast
    module.READER = PrometheusUsage(url, module.SNAPSHOT.snapshot.queries, client=connect(url, 2.0, retry=0))
    response = client.post("/", headers=ping(time.time())[0], data=ping(time.time())[1])
    assert response.status_code == 503 and "unreachable" in response.json["error"]


def test_health_and_metrics(env):
    client, _ = app("snapshot", FakeProm())
    assert client.get("/healthz").json == {"ok": True}
    assert "neurokube_snapshot_rows_total" in client.get("/metrics").data.decode()


@pytest.mark.parametrize("tick_h, hours, expected", [
    (10.25, 2, (8, 11, 10.25)),  # two completed hours, then 10:00-10:15
    (10.25, 0, (10, 11, 10.25)),
    (10.0, 2, (8, 10, 10.0)),  # on the hour: no current hour
    (10.0, 0, (9, 10, 10.0)),  # ... the hour before, completed
])
def test_tick_window(tick_h, hours, expected):
    start, end, until = snapshot.tick_window(tick_h * 3600, hours, 60)
    assert (start / 3600, end / 3600, until / 3600) == expected
