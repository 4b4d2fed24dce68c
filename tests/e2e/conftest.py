"""Fixtures for end-to-end tests against a real local control plane (``neurokube cluster``).

One cluster per test session, in a temporary state directory, always taken down at the end, also
when start-up or a test fails. The binaries are built on first use (a cold build takes a while;
run ``neurokube cluster build`` beforehand to see its progress). The tests are skipped only when
no Go toolchain is available to build them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from neurokube.cluster import workload
from neurokube.cluster.build import find_go
from neurokube.cluster.session import RunningCluster, running_cluster
from tests.e2e.event_sink import EventSink

#: Nodes of the session cluster (uniform, 32 CPU / 128 GiB / 110 pods each).
NODES = 100


@pytest.fixture(scope="session")
def event_sink() -> Iterator[EventSink]:
    sink = EventSink()
    try:
        yield sink
    finally:
        sink.close()


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory, event_sink: EventSink) -> Iterator[RunningCluster]:
    if find_go() is None:
        pytest.skip("no Go toolchain (go on PATH, /usr/local/go/bin/go or $NEUROKUBE_GO): "
                    "the local control plane cannot be built")
    state_dir = tmp_path_factory.mktemp("cluster")
    with running_cluster(state_dir, workload.uniform_nodes(NODES), sink=event_sink.url) as running:
        yield running
