"""The series real clusters expose, computed from usage snapshots.

Names and labels follow the exporters a load-aware scheduler reads in production:

* node-exporter: ``node_cpu_seconds_total{instance,cpu,mode}`` (counter),
  ``node_memory_MemTotal_bytes{instance}``, ``node_memory_MemAvailable_bytes{instance}``;
* cAdvisor (kubelet): ``container_cpu_usage_seconds_total{namespace,pod,container,node}`` (counter),
  ``container_memory_working_set_bytes{namespace,pod,container,node}``;
* kube-state-metrics: ``kube_pod_container_resource_requests{namespace,pod,container,node,resource,unit}``
  and ``kube_node_status_allocatable{node,resource,unit}``.

Simplifications, chosen so that the usual PromQL gives back the usage that went in:

* a node has ``ceil(allocatable CPU)`` CPUs and its busy time is spread evenly over them, split
  between ``user`` and ``system``; so ``sum by (instance) (rate(node_cpu_seconds_total{mode!="idle"}[w]))``
  is the node's CPU usage in cores and ``1 - avg by (instance) (rate(...{mode="idle"}[w]))`` its
  utilisation (usage beyond the CPUs is clipped, as a real kernel would);
* MemTotal is the allocatable memory, MemAvailable what the node does not use;
* every pod has one container, :data:`CONTAINER`; a pending pod (no node) has requests in
  kube-state-metrics (``node=""``) but no cAdvisor series.

Counters integrate usage piecewise-constantly: between two evaluations the usage of the later
snapshot applies. A series that disappears and comes back restarts at zero, like a restarted pod.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from neurokube.adapters.usage import Snapshot

CONTAINER = "main"
MIB = 1024 * 1024
#: Share of a node's busy CPU time reported as mode="user" (the rest is "system").
USER_SHARE = 0.8

Labels = tuple[tuple[str, str], ...]
Kind = Literal["counter", "gauge"]


@dataclass(frozen=True)
class Family:
    """One metric family: ``name`` without the ``_total`` suffix for counters."""

    name: str
    kind: Kind
    help: str
    samples: list[tuple[Labels, float]] = field(default_factory=list)

    @property
    def sample_name(self) -> str:
        return f"{self.name}_total" if self.kind == "counter" else self.name


#: Every family: its kind and help text (help texts follow the real exporters').
FAMILY_HELP: dict[str, tuple[Kind, str]] = {
    "node_cpu_seconds": ("counter", "Seconds the CPUs spent in each mode (emulated node-exporter)."),
    "node_memory_MemTotal_bytes": ("gauge", "Memory information field MemTotal_bytes (emulated node-exporter)."),
    "node_memory_MemAvailable_bytes": (
        "gauge", "Memory information field MemAvailable_bytes (emulated node-exporter)."),
    "container_cpu_usage_seconds": ("counter", "Cumulative cpu time consumed in seconds (emulated cAdvisor)."),
    "container_memory_working_set_bytes": ("gauge", "Current working set in bytes (emulated cAdvisor)."),
    "kube_pod_container_resource_requests": (
        "gauge", "The number of requested request resource by a container (emulated kube-state-metrics)."),
    "kube_node_status_allocatable": (
        "gauge", "The allocatable for different resources of a node (emulated kube-state-metrics)."),
}

#: Every label name the emulated series carry themselves; a label attached to all of them (a
#: cluster's, the backfill's job) must be another one.
SERIES_LABELS = frozenset({"cpu", "instance", "mode", "container", "namespace", "node", "pod", "resource", "unit"})

#: Every sample name the emulator exposes, for tests and docs.
SAMPLE_NAMES = tuple(f"{name}_total" if kind == "counter" else name for name, (kind, _) in FAMILY_HELP.items())


def node_cpus(cpu_milli_alloc: int) -> int:
    return max(1, math.ceil(cpu_milli_alloc / 1000))


class Counters:
    """Cumulative CPU seconds per series, advanced snapshot by snapshot."""

    def __init__(self) -> None:
        self._values: dict[tuple[str, Labels], float] = {}
        self._last_s: float | None = None

    def advance(self, snapshot: Snapshot, now_s: float) -> None:
        """Add the usage of ``snapshot`` over the time since the previous call (none the first time)."""
        dt = 0.0 if self._last_s is None else max(0.0, now_s - self._last_s)
        self._last_s = now_s if self._last_s is None else max(self._last_s, now_s)
        values: dict[tuple[str, Labels], float] = {}
        for node in snapshot.nodes:
            cpus = node_cpus(node.cpu_milli_alloc)
            busy = min(1.0, max(0.0, node.cpu_milli_used / (cpus * 1000.0)))
            shares = {"idle": 1.0 - busy, "user": USER_SHARE * busy, "system": (1.0 - USER_SHARE) * busy}
            for cpu in range(cpus):
                for mode, share in shares.items():
                    labels: Labels = (("cpu", str(cpu)), ("instance", node.name), ("mode", mode))
                    key = ("node_cpu_seconds", labels)
                    values[key] = self._values.get(key, 0.0) + share * dt
        for pod in snapshot.pods:
            if pod.node:
                key = ("container_cpu_usage_seconds", _container_labels(pod.namespace, pod.name, pod.node))
                values[key] = self._values.get(key, 0.0) + max(0.0, pod.cpu_used_milli) / 1000.0 * dt
        self._values = values  # series absent from the snapshot are dropped

    def samples(self, family: str) -> list[tuple[Labels, float]]:
        return [(labels, value) for (name, labels), value in self._values.items() if name == family]


def families(snapshot: Snapshot, counters: Counters) -> list[Family]:
    """Every family at the time of the last ``counters.advance(snapshot, ...)``."""
    out = {name: Family(name, kind, text) for name, (kind, text) in FAMILY_HELP.items()}
    for name in ("node_cpu_seconds", "container_cpu_usage_seconds"):
        out[name].samples.extend(counters.samples(name))
    for node in sorted(snapshot.nodes):
        instance = (("instance", node.name),)
        total = float(node.mem_mib_alloc * MIB)
        out["node_memory_MemTotal_bytes"].samples.append((instance, total))
        out["node_memory_MemAvailable_bytes"].samples.append((instance, max(0.0, total - node.mem_mib_used * MIB)))
        for resource, unit, value in (("cpu", "core", node.cpu_milli_alloc / 1000.0),
                                      ("memory", "byte", float(node.mem_mib_alloc * MIB))):
            labels = (("node", node.name), ("resource", resource), ("unit", unit))
            out["kube_node_status_allocatable"].samples.append((labels, value))
    for pod in sorted(snapshot.pods):
        base = _container_labels(pod.namespace, pod.name, pod.node)
        if pod.node:
            out["container_memory_working_set_bytes"].samples.append((base, pod.mem_used_mib * MIB))
        for resource, unit, value in (("cpu", "core", pod.cpu_request_milli / 1000.0),
                                      ("memory", "byte", float(pod.mem_request_mib * MIB))):
            out["kube_pod_container_resource_requests"].samples.append(
                (tuple(sorted(base + (("resource", resource), ("unit", unit)))), value))
    return list(out.values())


def _container_labels(namespace: str, pod: str, node: str) -> Labels:
    return (("container", CONTAINER), ("namespace", namespace), ("node", node), ("pod", pod))
