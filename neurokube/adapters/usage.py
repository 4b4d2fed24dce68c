"""Per-node and per-pod usage at a point in time: what a metrics source exposes.

A :class:`UsageSource` is the seam between whoever knows the usage and whoever exposes or reads
it. The metrics emulator (``neurokube.emulator``) and the Prometheus backfill (``neurokube.stack``)
serve a source as node-exporter, cAdvisor and kube-state-metrics series; the file-driven source
(``emulator/filesource.py``) serves a snapshot that tests or operators write; the simulated days
of the learning loop (``pipelines/simulate.py``, ``pipelines/usage.py``) implement it from a
replay. Plain types only, so both the local platform and the production pipelines may use them.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol


class NodeUsage(NamedTuple):
    name: str
    cpu_milli_alloc: int  # allocatable CPU, millicores
    mem_mib_alloc: int  # allocatable memory, MiB
    cpu_milli_used: float  # CPU in use on the node, millicores
    mem_mib_used: float  # memory in use (working set) on the node, MiB


class PodUsage(NamedTuple):
    namespace: str
    name: str
    node: str  # "" while the pod is not bound
    cpu_request_milli: int
    mem_request_mib: int
    cpu_used_milli: float
    mem_used_mib: float


class Snapshot(NamedTuple):
    nodes: list[NodeUsage]
    pods: list[PodUsage]


class UsageSource(Protocol):
    def snapshot(self, now_s: float) -> Snapshot:
        """Usage at ``now_s`` (Unix seconds); counters integrate it over time."""
        ...
