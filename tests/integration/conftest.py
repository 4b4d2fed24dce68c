"""Fixtures for integration tests against the real local data stack (``neurokube stack``).

One stack per test session (MinIO, Prometheus scraping the metrics emulator every second, MLflow)
in a temporary state directory, always taken down at the end, also when start-up or a test fails.
MinIO is built on first use (a cold build takes minutes; run ``neurokube stack install``
beforehand to see its progress) and Prometheus is installed with apt-get if missing. The tests
are skipped only when no Go toolchain is available to build MinIO.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from neurokube.adapters.usage import NodeUsage, PodUsage, Snapshot
from neurokube.cluster.build import find_go
from neurokube.emulator.filesource import write_snapshot
from neurokube.stack.session import RunningStack, running_stack
from neurokube.stack.settings import StackSettings

#: Prometheus scrape interval of the session stack: short, so rates settle within seconds.
SCRAPE_INTERVAL_S = 1.0

#: What the emulator serves at the start of the session.
SNAPSHOT = Snapshot(
    nodes=[NodeUsage("it-node-a", 4000, 8192, 2000.0, 3072.0), NodeUsage("it-node-b", 2000, 4096, 500.0, 1024.0)],
    pods=[
        PodUsage("default", "it-web", "it-node-a", 1000, 1024, 1500.0, 2048.0),
        PodUsage("batch", "it-job", "it-node-b", 500, 512, 250.0, 768.0),
        PodUsage("batch", "it-pending", "", 2000, 2048, 0.0, 0.0),
    ],
)


def require_go() -> None:
    if find_go() is None:
        pytest.skip("no Go toolchain (go on PATH, /usr/local/go/bin/go or $NEUROKUBE_GO): MinIO cannot be built")


@pytest.fixture(scope="session")
def snapshot_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("emulator") / "snapshot.json"
    write_snapshot(path, SNAPSHOT)
    return path


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, snapshot_file: Path) -> Iterator[RunningStack]:
    require_go()
    settings = StackSettings(state_dir=tmp_path_factory.mktemp("stack"), scrape_interval_s=SCRAPE_INTERVAL_S,
                             emulator_source=snapshot_file)
    with running_stack(settings) as running:
        yield running


def eventually(check: Callable[[], object], timeout_s: float = 30.0, interval_s: float = 0.5) -> object:
    """Call ``check`` until it returns a truthy value or stops raising AssertionError; return that value."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            result = check()
            if result:
                return result
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s:.0f}s: {check}")
        time.sleep(interval_s)
