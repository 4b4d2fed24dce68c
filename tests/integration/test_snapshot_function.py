"""The snapshot function (functions/snapshot/main.py) against the real stack: Prometheus fed by the
backfill, MinIO as the store (a bucket of its own), the function in process (functions-framework).

Known usage is backfilled for this test's cluster and, with the same node names and window, for
another one. A ping whose tick is half past an hour writes the two completed hours before it and
that hour up to the tick: three partitions, 2 nodes x (60 + 60 + 30) rows, the CPU of this
cluster's nodes only (1 + 2 cores), in the snapshot step's schema; the same ping again rewrites
them byte for byte. Without the event token the function answers 401 and writes nothing.
"""

from __future__ import annotations

import io
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

import functions_framework
import pandas as pd
import pytest
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent
from minio import Minio

from neurokube.adapters.objectstore import MinioStore
from neurokube.stack.backfill import backfill
from pipelines import keys
from pipelines.usage import COLUMNS
from tests.integration.test_snapshot_clusters import Cluster

pytestmark = pytest.mark.integration

SOURCE = str(Path(__file__).resolve().parents[2] / "functions" / "snapshot" / "main.py")
HOUR = 3600
BUCKET = "it-snapshot-function"  # not the session bucket: the nightly test lists that one's snapshots
CLUSTER = "it-snapshot-function"
TOKEN = "event-token-for-the-integration-test"


def ping(tick_s: float) -> tuple[dict, bytes]:
    attributes = {"type": "dev.knative.sources.ping", "source": "/apis/v1/namespaces/neurokube/pingsources/x",
                  "time": datetime.fromtimestamp(tick_s, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    headers, body = to_binary(CloudEvent(attributes, {"task": "snapshot"}))
    return {**headers, "Authorization": f"Bearer {TOKEN}"}, body


def test_a_ping_writes_this_clusters_partitions(stack, tmp_path, monkeypatch) -> None:
    hour = int(time.time() // HOUR) * HOUR
    # The tick's hour: in the past, so the backfill covers all of it, and 27 days back (the stack
    # keeps 30), where no other test reads: the other cluster's nodes of the same names written
    # here cannot meet another test's unselected read, whatever the time of day.
    current = hour - 27 * 24 * HOUR
    tick = current + HOUR // 2 + 7  # 7 s after half past
    backfill(stack.state_dir, Cluster((1000.0, 2000.0)), current - 2 * HOUR - 600, tick + 60, 60.0,
             labels={"cluster": CLUSTER}, restart=False)
    backfill(stack.state_dir, Cluster((3000.0, 3000.0)), current - 2 * HOUR - 600, tick + 60, 60.0,
             labels={"cluster": CLUSTER + "-other"})
    m = stack.endpoints["minio"]
    endpoint = urlsplit(m["endpoint"]).netloc or m["endpoint"]
    client = Minio(endpoint, access_key=m["access_key"], secret_key=m["secret_key"], secure=False)
    if not client.bucket_exists(BUCKET):
        client.make_bucket(BUCKET)
    for key, value in {"NEUROKUBE_EVENT_TOKEN": TOKEN, "NEUROKUBE_PROMETHEUS_URL": stack.endpoints["prometheus"]["url"],
                       "NEUROKUBE_STORE": f"minio://{endpoint}/{BUCKET}",
                       "NEUROKUBE_STORE_ACCESS_KEY": m["access_key"], "NEUROKUBE_STORE_SECRET_KEY": m["secret_key"],
                       "NEUROKUBE_SNAPSHOT_SELECTOR": f'cluster="{CLUSTER}"',
                       # the tick is 27 days old (see above); deployed: 1 h
                       "NEUROKUBE_SNAPSHOT_MAX_EVENT_AGE_S": str(28 * 24 * HOUR),
                       "NEUROKUBE_SNAPSHOT_SPOOL_DIR": str(tmp_path / "spool")}.items():
        monkeypatch.setenv(key, value)
    app = functions_framework.create_app("snapshot", SOURCE).test_client()
    assert sys.modules["main"].SNAPSHOT.hours == 2
    store = MinioStore(endpoint, m["access_key"], m["secret_key"], BUCKET)

    headers, body = ping(tick)
    assert app.post("/", headers={k: v for k, v in headers.items() if k != "Authorization"},
                    data=body).status_code == 401
    assert store.list("snapshots/") == []

    response = app.post("/", headers=headers, data=body)
    assert response.status_code == 200, response.json
    hours = (current - 2 * HOUR, current - HOUR, current)
    expected = [keys.snapshot_key(h) for h in hours]
    assert response.json["partitions"] == expected + [keys.pod_usage_key(h) for h in hours]
    assert not response.json["spooled"] and store.list("snapshots/") == expected
    assert store.list(keys.POD_USAGE) == [keys.pod_usage_key(h) for h in hours]
    parts = {k: pd.read_parquet(io.BytesIO(store.get_bytes(k))) for k in expected}
    assert [len(parts[k]) for k in expected] == [2 * 60, 2 * 60, 2 * 30]
    for key, frame in parts.items():
        assert list(frame.columns) == list(COLUMNS)
        assert set(frame["node"]) == {"node-0000", "node-0001"}
        assert frame["cpu_alloc_milli"].eq(4000).all() and frame["mem_used_mib"].eq(1024).all()
        minutes = len(frame) // 2
        # this cluster's 1 + 2 cores, not the other cluster's 3 + 3 on nodes of the same names
        assert frame["cpu_used_milli"].sum() * 60 / 1000 == pytest.approx(3.0 * minutes * 60, rel=1e-6), key
    assert parts[expected[-1]]["ts"].max() == tick - 7 - 60  # the current hour up to the tick (exclusive)
    assert response.json["rows"] == 300 and response.json["cpu_core_s"] == pytest.approx(3.0 * 150 * 60, rel=1e-6)

    before = {k: store.get_bytes(k) for k in expected}
    again = app.post("/", headers=headers, data=body)  # a redelivery of the same ping
    assert again.status_code == 200 and {k: store.get_bytes(k) for k in expected} == before
