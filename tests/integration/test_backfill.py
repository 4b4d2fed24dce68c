"""Backfilling a past window into the stack's Prometheus (promtool + restart).

* before the backfill the window has no data; afterwards PromQL over it returns exactly the
  usage the source produced at each time (gauges) and its integral (counter rates);
* a UsageSource that varies with time (the simulator's seam) drives the window;
* windows beyond the retention or in the future are refused with InputError.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from prometheus_api_client import PrometheusConnect

from neurokube.adapters.usage import NodeUsage, PodUsage, Snapshot
from neurokube.errors import InputError
from neurokube.stack.backfill import backfill
from tests.integration.conftest import eventually

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
HOUR = 3600.0


class SteppedSource:
    """One node and one pod whose usage steps up every hour: 1, 2, 3, ... cores; 1, 2, 3 GiB."""

    def __init__(self, origin_s: float) -> None:
        self.origin_s = origin_s

    def level(self, now_s: float) -> int:
        return int((now_s - self.origin_s) // HOUR) + 1

    def snapshot(self, now_s: float) -> Snapshot:
        level = self.level(now_s)
        node = NodeUsage("bf-node", 8000, 16384, 1000.0 * level, 1024.0 * level)
        pod = PodUsage("backfill", "bf-pod", "bf-node", 500, 512, 1000.0 * level, 1024.0 * level)
        return Snapshot([node], [pod])


def _values(prom: PrometheusConnect, query: str, at_s: float) -> list[float]:
    return [float(row["value"][1]) for row in prom.custom_query(query, params={"time": at_s})]


def test_backfilled_window_is_queryable(stack) -> None:
    prom = PrometheusConnect(url=stack.endpoints["prometheus"]["url"], disable_ssl=True)
    now = float(int(time.time()))  # whole seconds: the range query below is in whole seconds too
    start, end = now - 6 * HOUR, now - 3 * HOUR  # three whole hours, well before the live data
    probe = start + 1.5 * HOUR  # inside the second hour (level 2)
    assert _values(prom, 'node_memory_MemAvailable_bytes{instance="bf-node"}', probe) == []

    source = SteppedSource(start)
    result = backfill(stack.state_dir, source, start, end, step_s=30.0)
    assert result.blocks and result.samples > 0

    assert _values(prom, 'node_memory_MemAvailable_bytes{instance="bf-node"}', probe) == [(16384 - 2048) * MIB]
    assert _values(prom, 'container_memory_working_set_bytes{pod="bf-pod"}', start + 2.5 * HOUR) == [3072 * MIB]
    # Counters: the rate over 10 minutes in hour k is k cores.
    assert _values(prom, 'rate(container_cpu_usage_seconds_total{pod="bf-pod"}[10m])', probe) == \
        [pytest.approx(2.0, rel=1e-6)]
    busy = 'sum(rate(node_cpu_seconds_total{instance="bf-node",mode!="idle"}[10m]))'
    assert _values(prom, busy, start + 0.5 * HOUR) == [pytest.approx(1.0, rel=1e-6)]
    assert _values(prom, busy, start + 2.5 * HOUR) == [pytest.approx(3.0, rel=1e-6)]
    assert _values(prom, 'kube_node_status_allocatable{node="bf-node",resource="cpu"}', probe) == [8.0]
    # A range query over the whole window sees every step.
    rows = prom.custom_query_range('node_memory_MemAvailable_bytes{instance="bf-node"}',
                                   start_time=_dt(start), end_time=_dt(end), step="30")
    assert len(rows) == 1 and len(rows[0]["values"]) == int((end - start) // 30) + 1
    # Live scraping goes on after the restart.
    eventually(lambda: _values(prom, 'up{job="neurokube-emulator"}', time.time()) == [1.0], timeout_s=30)


def test_windows_outside_the_retention_or_in_the_future_are_refused(stack) -> None:
    now = time.time()
    with pytest.raises(InputError, match="retention"):
        backfill(stack.state_dir, SteppedSource(now), now - 40 * 86400, now - 39 * 86400)
    with pytest.raises(InputError, match="future"):
        backfill(stack.state_dir, SteppedSource(now), now - HOUR, now + HOUR)


def _dt(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, tz=UTC)
