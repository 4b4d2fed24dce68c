"""In-memory trace: column arrays, so the simulator can vectorise over pods and nodes."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

QOS_CLASSES: tuple[str, ...] = ("Guaranteed", "Burstable", "BestEffort")
"""QoS class names; a pod's ``qos`` array holds the index into this tuple."""

NODE_COLUMNS = ("name", "cpu_milli", "memory_mib")
POD_COLUMNS = (
    "name", "namespace", "workload", "qos",
    "cpu_request_milli", "memory_request_mib", "cpu_limit_milli", "memory_limit_mib",
    "creation_s", "duration_s", "profile", "profile_offset_s", "cpu_scale_milli", "memory_scale_mib",
)
OPTIONAL_POD_COLUMNS = ("priority", "controlled", "max_unavailable")
"""pods.csv columns a trace may leave out (docs/TRACE_FORMAT.md): the per-pod facts actuators
respect when they act on running pods. Absent, the :class:`PodTable` field is None and readers
use the defaults: priority 0, controlled, a budget of one unavailable pod per workload."""
PROFILE_COLUMNS = ("profile", "t_s", "cpu", "memory")


@dataclass(frozen=True)
class NodeTable:
    """Allocatable capacity per node."""

    name: np.ndarray  # str objects
    cpu_milli: np.ndarray  # int64
    memory_mib: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.name)


@dataclass(frozen=True)
class PodTable:
    """One row per pod; a limit of 0 means none; times in seconds from trace start.

    The last three fields are the optional columns (:data:`OPTIONAL_POD_COLUMNS`), None when the
    trace has no such column; copy or subset a table with :meth:`take`, which keeps them.
    """

    name: np.ndarray
    namespace: np.ndarray
    workload: np.ndarray
    qos: np.ndarray  # int8 index into QOS_CLASSES
    cpu_request_milli: np.ndarray  # int64
    memory_request_mib: np.ndarray  # int64
    cpu_limit_milli: np.ndarray  # int64
    memory_limit_mib: np.ndarray  # int64
    creation_s: np.ndarray  # float64
    duration_s: np.ndarray  # float64
    profile: np.ndarray  # int32 index into ProfileTable.names
    profile_offset_s: np.ndarray  # float64
    cpu_scale_milli: np.ndarray  # float64
    memory_scale_mib: np.ndarray  # float64
    priority: np.ndarray | None = None  # int64; higher is more important
    controlled: np.ndarray | None = None  # bool: a controller re-creates the pod after an eviction
    max_unavailable: np.ndarray | None = None  # int64 per pod: its workload's disruption budget

    def __len__(self) -> int:
        return len(self.name)

    def take(self, rows: np.ndarray) -> PodTable:
        """The pods at ``rows`` (integer positions or a boolean mask), every column sliced alike;
        an absent optional column stays absent."""
        return PodTable(**{f.name: None if (v := getattr(self, f.name)) is None else v[rows] for f in fields(self)})

    def workload_ids(self) -> np.ndarray:
        """Dense integer id per pod for its (namespace, workload) pair."""
        keys = np.char.add(np.char.add(self.namespace.astype(str), "/"), self.workload.astype(str))
        _, ids = np.unique(keys, return_inverse=True)
        return ids.astype(np.int32)


@dataclass(frozen=True)
class ProfileTable:
    """Usage shapes, flattened: profile ``i`` is ``cpu[start[i]:start[i]+length[i]]``.

    Each profile has a uniform step ``step_s[i]``; its value holds from ``k*step`` to
    ``(k+1)*step`` (piecewise constant) and the shape loops when a pod outlives it.
    """

    names: np.ndarray
    step_s: np.ndarray  # float64 per profile
    start: np.ndarray  # int64 per profile
    length: np.ndarray  # int64 per profile
    cpu: np.ndarray  # float64, flat
    memory: np.ndarray  # float64, flat

    def __len__(self) -> int:
        return len(self.names)


@dataclass(frozen=True)
class Trace:
    name: str
    nodes: NodeTable
    pods: PodTable
    profiles: ProfileTable

    @property
    def end_s(self) -> float:
        """Time the last pod would leave if bound on arrival."""
        if len(self.pods) == 0:
            return 0.0
        return float(np.max(self.pods.creation_s + self.pods.duration_s))
