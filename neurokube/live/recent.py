"""The pods bound recently, kept as columns that grow by appending (the view's "recent" pods).

A decision's view adds the pods bound since the newest metrics refresh (minus the lag) to their
nodes' projected load, as arrays. Rebuilt per decision from a list of records, that cost about
1 us per recent pod (eight Python passes, plus the copy a snapshot made of the list), and the
list holds every pod bound in the last 15 minutes: 0.6 ms per extender call with 1,000 recent
pods, and more with every pod of a busy scheduling round (measured in the extender benchmark's
profile; the reason this module is hand-written rather than a list or a DataFrame). Here the
columns are arrays: binding a pod writes one slot, a snapshot takes views of the live range
without copying, and a query is one binary search and slices.

Snapshots share the arrays, so a slot a snapshot may see is never written again: appends go past
the end (growing moves the live entries to new arrays), pruning old entries only moves the start,
and a removal or a change in the middle first copies the arrays when a snapshot took them since
the last copy (copy on write). Bind times never decrease along the arrays; an entry that would
break the order (a clock step back) rebuilds them sorted. A removed entry stays as a dead slot
(node id -1) until pruning or growth drops it.

:class:`RecentLog` is the cache's mutable side (called under the cache's lock);
:class:`RecentSlice` is what a snapshot holds.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

_INT = ("cpu", "memory", "cpu_limit", "memory_limit", "workload")
_MIN_CAPACITY = 1024
_DEAD = -1
_ATTRS = ("_node_id", "_bound_at", *(f"_{name}" for name in _INT))  # the log's column arrays


@dataclass(frozen=True, slots=True)
class RecentPod:
    """A pod bound while the cache watched (``bound_at`` in wall-clock seconds)."""

    node: str
    cpu: int
    memory: int
    cpu_limit: int
    memory_limit: int
    bound_at: float
    workload: int = -1  # dense workload id (ClusterCache.workload_id)


@dataclass(frozen=True)
class RecentColumns:
    """Recent pods as arrays; ``row`` is the node's row in the snapshot's table (-1: not there)."""

    row: np.ndarray
    bound_at: np.ndarray
    cpu: np.ndarray
    memory: np.ndarray
    cpu_limit: np.ndarray
    memory_limit: np.ndarray
    workload: np.ndarray


class RecentSlice:
    """The recent pods at one instant: read-only views of the log's arrays, oldest first."""

    __slots__ = ("node_id", "bound_at", "cpu", "memory", "cpu_limit", "memory_limit", "workload", "_names",
                 "_live")

    def __init__(self, columns: dict[str, np.ndarray], names: list[str], live: int) -> None:
        for name, array in columns.items():
            setattr(self, name, array)
        self._names = names  # node id -> name; append-only, shared with the log
        self._live = live

    def __len__(self) -> int:
        return self._live

    def __iter__(self) -> Iterator[RecentPod]:
        for i in np.flatnonzero(self.node_id != _DEAD).tolist():
            yield RecentPod(self._names[self.node_id[i]], int(self.cpu[i]), int(self.memory[i]),
                            int(self.cpu_limit[i]), int(self.memory_limit[i]), float(self.bound_at[i]),
                            int(self.workload[i]))

    def rows(self, index: Mapping[str, int]) -> np.ndarray:
        """Node id -> row in a table with this name index (-1: not in it), and a last entry -1."""
        return _rows(self._names, index)

    def columns(self, since: float, rows: np.ndarray) -> RecentColumns:
        """The live pods bound after ``since``, with their nodes' rows by ``rows`` (from :meth:`rows`)."""
        start = int(np.searchsorted(self.bound_at, since, side="right"))
        ids = self.node_id[start:]
        live = ids != _DEAD
        every = bool(live.all())

        def take(array: np.ndarray) -> np.ndarray:
            part = array[start:]
            return part if every else part[live]

        ids = ids if every else ids[live]
        return RecentColumns(row=rows[np.minimum(ids, rows.size - 1)], bound_at=take(self.bound_at),
                             cpu=take(self.cpu), memory=take(self.memory), cpu_limit=take(self.cpu_limit),
                             memory_limit=take(self.memory_limit), workload=take(self.workload))


def _rows(names: list[str], index: Mapping[str, int]) -> np.ndarray:
    rows = np.fromiter((index.get(n, -1) for n in names), dtype=np.int64, count=len(names))
    return np.append(rows, -1)


EMPTY = RecentSlice({"node_id": np.empty(0, np.int64), "bound_at": np.empty(0, np.float64),
                     **{name: np.empty(0, np.int64) for name in _INT}}, [], 0)


class RecentLog:
    """The cache's recent pods by UID (see the module docstring); not thread-safe on its own."""

    def __init__(self) -> None:
        self._names: list[str] = []
        self._name_id: dict[str, int] = {}
        self._rows_memo: tuple[object, int, np.ndarray] | None = None
        self.clear()

    def clear(self) -> None:
        """Forget every entry (new arrays: snapshots keep theirs)."""
        self._allocate(_MIN_CAPACITY)
        self._start = self._end = 0
        self._slot: dict[str, int] = {}
        self._uids: list[str | None] = []  # slot - start -> uid (None: dead)
        self._live = 0
        self._shared = False

    def __len__(self) -> int:
        return self._live

    def get(self, uid: str) -> RecentPod | None:
        slot = self._slot.get(uid)
        if slot is None:
            return None
        return RecentPod(self._names[self._node_id[slot]], int(self._cpu[slot]), int(self._memory[slot]),
                         int(self._cpu_limit[slot]), int(self._memory_limit[slot]), float(self._bound_at[slot]),
                         int(self._workload[slot]))

    def put(self, uid: str, pod: RecentPod) -> None:
        """Add or update ``uid``'s entry (kept in bind-time order)."""
        slot = self._slot.get(uid)
        if slot is not None:
            if self.get(uid) == pod:
                return
            if float(self._bound_at[slot]) == pod.bound_at:
                self._own()
                self._write(slot, pod)
                return
            self.remove(uid)
        if self._end == self._node_id.size:
            self._grow()
        slot = self._end
        self._write(slot, pod)
        self._end += 1
        self._slot[uid] = slot
        self._uids.append(uid)
        self._live += 1
        if slot > self._start and self._bound_at[slot - 1] > pod.bound_at:  # a clock step back
            self._rebuild()

    def remove(self, uid: str) -> None:
        slot = self._slot.pop(uid, None)
        if slot is None:
            return
        self._own()
        self._node_id[slot] = _DEAD
        self._uids[slot - self._start] = None
        self._live -= 1

    def prune(self, before: float) -> bool:
        """Drop the entries bound before ``before``; True if a live one went."""
        start, dropped = self._start, False
        while start < self._end and (self._node_id[start] == _DEAD or self._bound_at[start] < before):
            uid = self._uids[start - self._start]
            if uid is not None:
                del self._slot[uid]
                self._live -= 1
                dropped = True
            start += 1
        if start != self._start:
            del self._uids[:start - self._start]
            self._start = start
        return dropped

    def view(self) -> RecentSlice:
        """The live range as a :class:`RecentSlice`; later writes to it copy first."""
        self._shared = True
        window = slice(self._start, self._end)
        return RecentSlice({"node_id": self._node_id[window], "bound_at": self._bound_at[window],
                            **{name: getattr(self, f"_{name}")[window] for name in _INT}}, self._names, self._live)

    def rows_for(self, table_key: object, index: Mapping[str, int]) -> np.ndarray:
        """:meth:`RecentSlice.rows` for a table, kept while the table and the known node names stay."""
        memo = self._rows_memo
        if memo is not None and memo[0] is table_key and memo[1] == len(self._names):
            return memo[2]
        rows = _rows(self._names, index)
        self._rows_memo = (table_key, len(self._names), rows)
        return rows

    # -- internals -------------------------------------------------------------------------------

    def _allocate(self, capacity: int) -> None:
        self._node_id = np.empty(capacity, np.int64)
        self._bound_at = np.empty(capacity, np.float64)
        for name in _INT:
            setattr(self, f"_{name}", np.empty(capacity, np.int64))

    def _arrays(self) -> list[np.ndarray]:
        return [getattr(self, name) for name in _ATTRS]

    def _write(self, slot: int, pod: RecentPod) -> None:
        node = self._name_id.get(pod.node)
        if node is None:
            node = self._name_id[pod.node] = len(self._names)
            self._names.append(pod.node)
        self._node_id[slot] = node
        self._bound_at[slot] = pod.bound_at
        self._cpu[slot] = pod.cpu
        self._memory[slot] = pod.memory
        self._cpu_limit[slot] = pod.cpu_limit
        self._memory_limit[slot] = pod.memory_limit
        self._workload[slot] = pod.workload

    def _own(self) -> None:
        """Copy the arrays before an in-place write if a snapshot holds them."""
        if self._shared:
            for name, array in zip(_ATTRS, self._arrays(), strict=True):
                setattr(self, name, array.copy())
            self._shared = False

    def _grow(self) -> None:
        """Move the live entries to new arrays, at least twice their number in size."""
        self._compact(order=None)

    def _rebuild(self) -> None:
        """Re-sort every live entry by bind time (stable) into new arrays."""
        window = slice(self._start, self._end)
        alive = np.flatnonzero(self._node_id[window] != _DEAD)
        self._compact(order=alive[np.argsort(self._bound_at[window][alive], kind="stable")])

    def _compact(self, order: np.ndarray | None) -> None:
        window = slice(self._start, self._end)
        if order is None:
            order = np.flatnonzero(self._node_id[window] != _DEAD)
        old = [array[window][order] for array in self._arrays()]
        uids = [self._uids[i] for i in order.tolist()]
        self._allocate(max(_MIN_CAPACITY, 2 * len(uids)))
        for name, values in zip(_ATTRS, old, strict=True):
            getattr(self, name)[:len(uids)] = values
        self._start, self._end = 0, len(uids)
        self._uids = uids
        self._slot = {uid: i for i, uid in enumerate(uids)}
        self._live = len(uids)
        self._shared = False
