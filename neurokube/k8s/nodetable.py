"""A list of nodes as columns: what feasibility and the view read, computed once per node set.

An extender call judges every node of the cluster for one pod, and kube-scheduler makes two such
calls per pod. Reading allocatable out of thousands of :class:`~neurokube.k8s.objects.Node`
objects, mapping names to rows and checking taints and labels again for every call cost more than
the model (about 3 ms of Python per 1,000 nodes). Nodes change rarely (a Node object is rewritten
when its status or labels change, minutes apart; heartbeats go to Leases), so the watch cache
builds one table when its node set changes and every request until the next change indexes it.

The table is immutable except for :attr:`NodeTable.memo`, which
:func:`neurokube.k8s.feasibility.admission` fills: which rows a pod's tolerations, nodeSelector
and required node affinity admit, per distinct set of those (pods of one workload share it).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from neurokube.k8s.objects import Node
from neurokube.k8s.quantity import MIB


@dataclass(frozen=True, eq=False)
class NodeTable:
    nodes: tuple[Node, ...]
    names: tuple[str, ...]
    index: dict[str, int]  # name -> row
    alloc_cpu: np.ndarray  # int64 millicores
    alloc_memory: np.ndarray  # int64 bytes
    alloc_memory_mib: np.ndarray  # int64 MiB, rounded down (capacity is never overstated)
    alloc_pods: np.ndarray  # int64
    plain: np.ndarray  # bool: no taint and not cordoned (only a pod's label constraints can rule it out)
    memo: dict = field(default_factory=dict, repr=False)
    """Per-table results keyed by what they depend on (see the module docstring)."""

    @classmethod
    def of(cls, nodes: Sequence[Node]) -> NodeTable:
        nodes = tuple(nodes)
        n = len(nodes)
        alloc_memory = np.fromiter((nd.alloc_memory for nd in nodes), dtype=np.int64, count=n)
        table = cls(
            nodes=nodes, names=tuple(nd.name for nd in nodes), index={nd.name: i for i, nd in enumerate(nodes)},
            alloc_cpu=np.fromiter((nd.alloc_cpu for nd in nodes), dtype=np.int64, count=n),
            alloc_memory=alloc_memory, alloc_memory_mib=alloc_memory // MIB,
            alloc_pods=np.fromiter((nd.alloc_pods for nd in nodes), dtype=np.int64, count=n),
            plain=np.fromiter((not nd.taints and not nd.unschedulable for nd in nodes), dtype=bool, count=n),
        )
        for column in (table.alloc_cpu, table.alloc_memory, table.alloc_memory_mib, table.alloc_pods, table.plain):
            column.flags.writeable = False  # shared by every snapshot and view of this node set
        return table

    def __len__(self) -> int:
        return len(self.nodes)

    def rows(self, names: Sequence[str]) -> np.ndarray:
        """The row of each name, -1 for a name the table does not have."""
        if len(names) == len(self.names) and tuple(names) == self.names:
            return np.arange(len(self.names), dtype=np.int64)
        return np.fromiter(map(self.index.get, names, itertools.repeat(-1)), dtype=np.int64, count=len(names))
