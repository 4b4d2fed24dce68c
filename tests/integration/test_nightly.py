"""The nightly loop on the real stack (MinIO, Prometheus fed by the emulator's backfill, MLflow server).

* ``neurokube nightly --days 3 --stack --cluster it-nightly`` leaves 3 dates x 24 hourly snapshot
  partitions, each day's rows read back from Prometheus (10 nodes x 1440 steps: only its own
  cluster's series, whatever else the session's Prometheus holds for those days, e.g.
  test_backfill's window, which reaches into yesterday when the suite runs before 06:00 UTC), and
  each day's decision logs in the MinIO bucket; 3 MLflow runs; a registered model whose ``champion`` alias points at the best
  version under the promotion rule; the learning curve;
* MinIO unreachable during a snapshot: the partitions are spooled, and the next run delivers them
  into the real bucket with every row.
"""

from __future__ import annotations

import argparse
import io
import json
import socket
from pathlib import Path

import pandas as pd
import pytest

from neurokube.adapters.objectstore import MinioStore, open_store
from neurokube.adapters.usage import NodeUsage, Snapshot
from neurokube.cli import nightly_cmd
from neurokube.registry import Registry
from pipelines import snapshot
from pipelines.settings import NightlySettings, SnapshotSettings
from pipelines.usage import SimulatorUsage

pytestmark = pytest.mark.integration
CLUSTER = "it-nightly"  # the label of this test's series in the session's shared Prometheus


def nightly(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    nightly_cmd.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def rows(store, keys: list[str]) -> int:
    return sum(len(pd.read_parquet(io.BytesIO(store.get_bytes(k)))) for k in keys)


def test_three_nights_on_the_stack(stack, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert nightly(["nightly", "--days", "3", "--stack", "--cluster", CLUSTER, "--state-dir", str(stack.state_dir),
                    "--out", str(out)]) == 0
    store = open_store(stack.endpoints)
    days = json.loads((out / "days.json").read_text())["days"]
    assert len(days) == 3
    for date in (f"date={day['date']}" for day in days):  # this run's days, not whatever else the bucket holds
        parts = store.list(f"snapshots/{date}/")
        assert len(parts) == 24
        frame = pd.concat([pd.read_parquet(io.BytesIO(store.get_bytes(k))) for k in parts])
        assert len(frame) == 10 * 1440 and frame["cpu_used_milli"].sum() > 0  # from Prometheus, not zeros
        day = date.removeprefix("date=")
        assert store.exists(f"decisions/date={day}/sim-000000.decisions.parquet")
        assert store.exists(f"decisions/date={day}/sim-000000.candidates.parquet")
        assert store.exists(f"outcomes/date={day}/sim-000000.outcomes.parquet")

    for day in days:  # what Prometheus gave back is what the simulator used (rate() smooths the edges)
        assert day["snapshot_cpu_core_s"] == pytest.approx(day["sim_cpu_core_s"], rel=0.03)

    settings = NightlySettings()
    registry = Registry(stack.endpoints["mlflow"]["url"], settings.model_name)
    # the nights of this model (another test's nights of a model of its own share the experiment)
    runs = [r for r in registry.runs(settings.experiment) if r.data.params.get("model_name") == settings.model_name]
    assert len(runs) >= 3
    cost = {r.data.tags["neurokube.version"]: r.data.metrics["replay.candidate.cost"] for r in runs}
    champion = registry.alias()
    assert champion is not None, "no version ever beat the default policy"
    # Every refusal on cost was within the margin of the champion of its night, and champions only
    # improve, so no version beats the alias by more than the margin.
    margin = settings.promotion.min_relative_gain
    comparable = [v for v in registry.versions()
                  if not registry.version_tags(v)["reason"].startswith(("pending more than", "estimated worse"))]
    assert cost[champion] <= min(cost[v] for v in comparable) / (1 - margin) + 1e-6
    assert registry.version_tags(champion)["promoted"] == "true"
    assert (out / "learning_curve.png").stat().st_size > 0


class Source:
    def snapshot(self, now_s: float) -> Snapshot:
        return Snapshot(nodes=[NodeUsage("a", 4000, 8192, 1000.0, 1.0), NodeUsage("b", 4000, 8192, 5000.0, 1.0)],
                        pods=[])


def test_minio_outage_loses_no_rows(stack, tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on: MinIO "down"
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    m = stack.endpoints["minio"]
    down = MinioStore(f"127.0.0.1:{dead_port}", m["access_key"], m["secret_key"], m["bucket"])
    up = open_store(stack.endpoints)
    start = 1_704_067_200  # 2024-01-01T00:00Z, a window no other test writes
    spool = tmp_path / "spool"
    first = snapshot.run(SimulatorUsage(Source()), down, start, start + 2 * 3600, SnapshotSettings(), spool)
    assert len(first.spooled) == 4  # two hours of node snapshots and two of pod usage
    second = snapshot.run(SimulatorUsage(Source()), up, start + 2 * 3600, start + 3 * 3600, SnapshotSettings(), spool)
    assert second.delivered == 4
    keys = up.list("snapshots/date=2024-01-01/")
    assert len(keys) == 3 and rows(up, keys) == first.rows + second.rows == 3 * 60 * 2
