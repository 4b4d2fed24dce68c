"""Fixtures for the fault campaign: the real local control plane, the real data stack and the live
functions wired to all of it, as in production:

* the binder and sweeper run as functions-framework processes with the least-privilege
  ServiceAccount, fed by a real Knative receive adapter;
* node metrics come from the stack's Prometheus (scraping the metrics emulator every second);
* decisions are spooled under the package's work directory and shipped to the stack's MinIO (a
  segment every second), under the key layout the nightly ingest reads;
* the model is the MLflow champion (``models:/neurokube-placement@champion``), polled every 2 s;
* the binder carries the ``exit before bind`` failpoint (armed by creating its trigger file).

One of each for the chaos package, taken down when its last test ends (not at the end of the
session: the stack scrapes every second and the functions poll, which would load the machine under
the e2e and integration tiers that run next). The tests run in file order and each leaves the
cluster as it found it (its pods deleted, every dependency running again).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from neurokube.adapters.model_files import load_value_model
from neurokube.adapters.usage import NodeUsage, Snapshot
from neurokube.cluster import functions, workload
from neurokube.cluster.build import find_go
from neurokube.cluster.livekit import LiveFunctions, live_functions
from neurokube.cluster.session import RunningCluster, running_cluster
from neurokube.emulator.filesource import write_snapshot
from neurokube.registry import Registry
from neurokube.stack.session import RunningStack, running_stack
from neurokube.stack.settings import StackSettings
from neurokube.testing import write_packing_model

#: 16 nodes of 4 CPU / 8 GiB: the test pods (200m) fill them enough for packing to matter.
NODES = workload.uniform_nodes(16, cpu_milli=4000, memory_mib=8192)
MODEL_NAME = "neurokube-placement"


@dataclass(frozen=True)
class Chaos:
    cluster: RunningCluster
    stack: RunningStack
    live: LiveFunctions
    trigger: Path  # the binder's exit-before-bind failpoint: exists = armed
    decision_prefix: str

    @property
    def client(self):
        return self.cluster.client


def _require_go() -> None:
    if find_go() is None:
        pytest.skip("no Go toolchain (go on PATH, /usr/local/go/bin/go or $NEUROKUBE_GO): the control plane and "
                    "MinIO cannot be built")


@pytest.fixture(scope="package")
def chaos_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    _require_go()
    snapshot = tmp_path_factory.mktemp("chaos-emulator") / "snapshot.json"
    write_snapshot(snapshot, Snapshot(nodes=[NodeUsage(n.name, n.cpu_milli, n.memory_mib, 400.0, 1024.0)
                                             for n in NODES], pods=[]))
    settings = StackSettings(state_dir=tmp_path_factory.mktemp("chaos-stack"), scrape_interval_s=1.0,
                             emulator_source=snapshot)
    with running_stack(settings) as stack:
        yield stack


@pytest.fixture(scope="package")
def chaos_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCluster]:
    _require_go()
    with running_cluster(tmp_path_factory.mktemp("chaos-cluster"), NODES, start_adapter=False) as cluster:
        yield cluster


def _register_champion(mlflow_url: str, model_dir: Path) -> str:
    registry = Registry(mlflow_url, MODEL_NAME)
    with registry.run("neurokube-chaos", "packing-champion") as run:
        run.model(load_value_model(model_dir))  # an MLflow Model, as the nightly logs it
    version = registry.register(run.run_id)
    registry.set_alias(version)
    return version


@pytest.fixture(scope="package")
def chaos(chaos_cluster: RunningCluster, chaos_stack: RunningStack,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chaos]:
    work = tmp_path_factory.mktemp("chaos-live")
    source = write_packing_model(work / "registered")
    _register_champion(chaos_stack.endpoints["mlflow"]["url"], source)
    champion_dir = work / "champion"
    shutil.copytree(source, champion_dir)  # the start-up model until the first champion check answers
    minio = chaos_stack.endpoints["minio"]
    store = (f"minio://{minio['access_key']}:{minio['secret_key']}@"
             f"{minio['endpoint'].removeprefix('http://')}/{minio['bucket']}")
    trigger = work / "exit-before-bind"
    prefix = "decisions"  # where the nightly ingest reads (NEUROKUBE_DECISION_PREFIX's default)
    env = {
        "NEUROKUBE_SWEEP_MIN_AGE_S": "2", "NEUROKUBE_PROM_REFRESH_S": "1", "NEUROKUBE_PROM_STALE_AFTER_S": "4",
        "NEUROKUBE_PROM_WINDOW": "30s", "NEUROKUBE_DECISION_LOG": store, "NEUROKUBE_DECISION_PREFIX": prefix,
        "NEUROKUBE_DECISION_FLUSH_S": "1", "NEUROKUBE_DECISION_BATCH": "50",
        "NEUROKUBE_DECISION_SPOOL_DIR": str(work / "spool"),  # kept across a killed and restarted binder
        "NEUROKUBE_MLFLOW_URI": chaos_stack.endpoints["mlflow"]["url"], "NEUROKUBE_CHAMPION_POLL_S": "2",
        "NEUROKUBE_FAILPOINT_EXIT_BEFORE_BIND": str(trigger), "NEUROKUBE_REQUEST_TIMEOUT_S": "10",
    }
    options = functions.FunctionsOptions(model_dir=champion_dir,
                                         prometheus_url=chaos_stack.endpoints["prometheus"]["url"], env=env)
    with live_functions(chaos_cluster, options, work / "logs") as live:
        deadline = time.monotonic() + 90
        while live.binder.counter("neurokube_champion_checks_total") < 1:  # MLflow answered once
            assert time.monotonic() < deadline, "the binder never checked the MLflow champion"
            time.sleep(0.5)
        live.binder.wait_metrics_fresh(timeout_s=90)
        yield Chaos(chaos_cluster, chaos_stack, live, trigger, prefix)
