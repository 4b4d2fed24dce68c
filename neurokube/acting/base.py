"""What an actuator sees and what it may do: resize a running pod in place, or evict it.

An actuator acts on pods that already run, the way VPA's updater, the descheduler and
Koordinator's LowNodeLoad do. It is shown an :class:`ActuatorView` (the nodes' allocatable and
requests in force, the nodes' usage as the metrics pipeline reports it, and one row per running
pod) and returns actions. It never changes anything itself: whoever holds the cluster applies the
actions with the cluster's rules (the replay in ``sim/acting.py``; live, the pods/resize and
Eviction APIs), and those rules may refuse them:

* a :class:`Resize` is applied at once when the node has room for the new requests beside its
  other pods; otherwise it waits ("Deferred", retried as pods leave) or is refused: a request
  above the node's allocatable ("Infeasible"), a change of the pod's QoS class, a removed limit
  or a request above its limit (the apiserver's 422);
* an :class:`Evict` is refused while the pod's workload already has ``max_unavailable`` pods
  evicted and not running again (the disruption budget, the apiserver's 429).

Pure: numpy only. The replay and the live actuator function build the same view.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from neurokube.policies.base import BEST_EFFORT, BURSTABLE, GUARANTEED, NodeMetrics


@dataclass(frozen=True, slots=True)
class Resize:
    """Set a running pod's requests and limits in place (a limit of 0 means none)."""

    pod: int
    cpu_request_milli: int
    memory_request_mib: int
    cpu_limit_milli: int
    memory_limit_mib: int
    reason: str


@dataclass(frozen=True, slots=True)
class Evict:
    """Evict a running pod: it leaves its node and its workload's controller queues it again.

    ``recreate_with`` (cpu request, memory request, cpu limit, memory limit) are the resources the
    pod is re-created with, as VPA's admission controller sets them; None keeps the pod's own.
    """

    pod: int
    reason: str
    recreate_with: tuple[int, int, int, int] | None = None


Action = Resize | Evict


def qos_class(cpu_request: int, memory_request: int, cpu_limit: int, memory_limit: int) -> int:
    """Kubernetes' QoS class of a one-container pod with these requests and limits (0 = none)."""
    if cpu_request == 0 and memory_request == 0 and cpu_limit == 0 and memory_limit == 0:
        return BEST_EFFORT
    if cpu_limit > 0 and memory_limit > 0 and cpu_request in (0, cpu_limit) and memory_request in (0, memory_limit):
        return GUARANTEED
    return BURSTABLE


def scaled_limit(new_request: int, old_request: int, old_limit: int) -> int:
    """The limit that keeps the pod's limit-to-request ratio (VPA's default): none stays none."""
    if old_limit <= 0:
        return 0
    if old_request <= 0:
        return max(old_limit, new_request)
    return max(int(np.ceil(new_request * old_limit / old_request)), new_request)


def resized(pod: int, cpu_request: int, memory_request: int, old: tuple[int, int, int, int], reason: str) -> Resize:
    """A :class:`Resize` to new requests that keeps the QoS class: limits scale with the requests,
    and a Guaranteed pod's limits equal its requests."""
    old_cpu_req, old_mem_req, old_cpu_lim, old_mem_lim = old
    if qos_class(*old) == GUARANTEED:
        return Resize(pod, cpu_request, memory_request, cpu_request, memory_request, reason)
    return Resize(pod, cpu_request, memory_request, scaled_limit(cpu_request, old_cpu_req, old_cpu_lim),
                  scaled_limit(memory_request, old_mem_req, old_mem_lim), reason)


@dataclass(slots=True)
class RunningPods:
    """One row per running pod. Requests and limits are the ones in force (after applied resizes)."""

    pod: np.ndarray  # int64 pod id (the trace row in the replay)
    node: np.ndarray  # int64
    workload: np.ndarray  # int64 dense workload id
    qos: np.ndarray  # int8, policies.base GUARANTEED / BURSTABLE / BEST_EFFORT
    priority: np.ndarray  # int64, higher is more important
    controlled: np.ndarray  # bool: a controller re-creates the pod after an eviction
    cpu_request: np.ndarray  # int64 millicores
    memory_request: np.ndarray  # int64 MiB
    cpu_limit: np.ndarray  # int64, 0 = none
    memory_limit: np.ndarray
    cpu_usage: np.ndarray  # float64 millicores at the newest scrape
    memory_usage: np.ndarray  # float64 MiB
    started_s: np.ndarray  # float64: when the current run started
    resize_waiting_s: np.ndarray  # float64: since when a resize of this pod waits for room (nan: none)

    def __len__(self) -> int:
        return len(self.pod)

    def resources(self, row: int) -> tuple[int, int, int, int]:
        """(cpu request, memory request, cpu limit, memory limit) of row ``row``."""
        return (int(self.cpu_request[row]), int(self.memory_request[row]), int(self.cpu_limit[row]),
                int(self.memory_limit[row]))


@dataclass(slots=True)
class ActuatorView:
    """Everything an actuator may look at; arrays are indexed by node, workload or running-pod row."""

    now_s: float
    alloc_cpu: np.ndarray  # int64 per node
    alloc_mem: np.ndarray
    req_cpu: np.ndarray  # int64 per node: requests in force
    req_mem: np.ndarray
    metrics: NodeMetrics  # per node, as load-aware schedulers see it (windowed, delayed)
    pods: RunningPods
    unavailable: np.ndarray  # int64 per workload: pods evicted and not running again
    max_unavailable: np.ndarray  # int64 per workload: the disruption budget
    pending: int  # pods waiting to be placed

    @property
    def n_nodes(self) -> int:
        return len(self.alloc_cpu)


class Actuator(Protocol):
    """Acts on running pods every ``interval_s``; told each scrape's per-pod usage in between."""

    name: str
    interval_s: int

    def observe(self, now_s: float, pods: RunningPods) -> None:
        """A scrape: the running pods' usage at ``now_s`` (VPA's recommender feeds its histograms here)."""

    def act(self, view: ActuatorView) -> list[Action]:
        """The actions to take now; they are applied in order."""


class NoActuator:
    """Never acts (``--actuator none``): the replay as it was before actuation."""

    name = "none"
    interval_s = 60

    def observe(self, now_s: float, pods: RunningPods) -> None:
        return None

    def act(self, view: ActuatorView) -> list[Action]:
        return []
