"""One Prometheus, two clusters with the same node names in the same window (the real stack).

This is how ``test_three_nights_on_the_stack`` once failed with 14,491 rows instead of 14,400: the
session's Prometheus held another test's series inside the night's window (test_backfill's
``now - 6 h .. now - 3 h``, which reaches into yesterday when the suite runs before 06:00 UTC), and
the snapshot read every series. Here two clusters are backfilled into the same two hours, with the
node names of the nightly loop's synthetic world:

* a snapshot with ``cluster="<a>"`` holds a's rows and CPU only, and b's with ``cluster="<b>"``;
* a snapshot without a selector is refused, naming both series of a node, instead of summing them.
"""

from __future__ import annotations

import time

import pytest

from neurokube.adapters.objectstore import LocalDirStore
from neurokube.adapters.usage import NodeUsage, PodUsage, Snapshot
from neurokube.errors import InputError
from neurokube.stack.backfill import backfill
from pipelines import snapshot
from pipelines.settings import PrometheusQueries, SnapshotSettings
from pipelines.usage import PrometheusUsage

pytestmark = pytest.mark.integration

HOUR = 3600
DAY = 24 * HOUR


class Cluster:
    """Two nodes (the synthetic world's names), one pod each, constant CPU use in millicores."""

    def __init__(self, cpu: tuple[float, float]) -> None:
        self.cpu = cpu

    def snapshot(self, now_s: float) -> Snapshot:
        nodes = [NodeUsage(f"node-{i:04d}", 4000, 8192, c, 1024.0) for i, c in enumerate(self.cpu)]
        pods = [PodUsage("default", f"pod-{i}", f"node-{i:04d}", 500, 512, c, 1024.0) for i, c in enumerate(self.cpu)]
        return Snapshot(nodes, pods)


def test_a_second_clusters_series_do_not_enter_the_snapshot(stack, tmp_path) -> None:
    hour = int(time.time() // HOUR) * HOUR
    # Two whole hours 25 days ago (the stack keeps 30): no other test reads there, so the duplicate
    # node names written here cannot fail another test's unselected read, whatever the time of day.
    start = hour - 25 * DAY
    end = start + 2 * HOUR
    a, b = "it-clusters-a", "it-clusters-b"
    # 10 minutes before the window too, so rate() has its samples at the first step
    backfill(stack.state_dir, Cluster((1000.0, 2000.0)), start - 600, end, 60.0, labels={"cluster": a},
             restart=False)
    backfill(stack.state_dir, Cluster((3000.0, 3000.0)), start - 600, end, 60.0, labels={"cluster": b})
    url = stack.endpoints["prometheus"]["url"]

    def snap(selector: str, name: str) -> tuple[snapshot.SnapshotResult, LocalDirStore]:
        store = LocalDirStore(tmp_path / name)
        reader = PrometheusUsage(url, PrometheusQueries(selector=selector))
        return snapshot.run(reader, store, start, end, SnapshotSettings(), tmp_path / f"spool-{name}"), store

    only_a, _ = snap(f'cluster="{a}"', "a")
    assert only_a.rows == 2 * 120 and not only_a.spooled
    assert only_a.cpu_core_s == pytest.approx((1.0 + 2.0) * 2 * HOUR, rel=1e-6)
    only_b, _ = snap(f'cluster="{b}"', "b")
    assert only_b.rows == 2 * 120 and only_b.cpu_core_s == pytest.approx((3.0 + 3.0) * 2 * HOUR, rel=1e-6)

    with pytest.raises(InputError, match="two series for node 'node-000"):
        snap("", "all")  # every series: a and b (and maybe other tests' nodes of these names)
    with pytest.raises(InputError) as refused:
        snap(f'cluster=~"{a}|{b}"', "both")  # a selector admitting both
    assert "two series for node 'node-000" in str(refused.value)
    assert f'cluster="{a}"' in str(refused.value) and f'cluster="{b}"' in str(refused.value)
