"""A watch cache of nodes and pods: list, then watch, with a periodic full re-list.

One thread per resource lists (paginated) and then watches from the list's resourceVersion with
bookmarks; a ``410 Gone`` or a broken stream leads to a fresh list, and every ``resync_s`` the
whole state is re-listed anyway. Per-node sums of the bound pods' requests are kept up to date
incrementally, so :meth:`ClusterCache.snapshot` is a consistent copy taken under one lock.

Reading is cheap when nothing changed: the nodes are kept as a
:class:`~neurokube.k8s.nodetable.NodeTable` (rebuilt only when a node's scheduling-relevant
content changes), the per-node sums as a matrix aligned with it (updated in place per pod event),
and :meth:`ClusterCache.snapshot` returns the same :class:`Snapshot` until the next change; the
recently bound pods are columns that grow by appending (:mod:`neurokube.live.recent`), which a
snapshot takes as array views. An extender call on 1,000 nodes therefore costs no per-node or
per-recent-pod Python to get its inputs.

Like kube-scheduler's cache, it *assumes* the pods this process has just placed (before the watch
confirms them), so concurrent decisions in one replica see each other. Assumptions expire after
``ASSUME_TTL_S`` if the watch never confirms them (the binding failed without us knowing).

Terminal pods (Succeeded, Failed) hold no resources, as in kube-scheduler, whose informer skips
them. A pod being deleted still does until it is gone.

Workloads (``namespace/owner``, :attr:`Pod.workload`) get dense integer ids, stable for the life
of the process, so the per-workload usage history (``live/prometheus.py``), the recent pods and the
pod being placed index the same arrays. The metrics thread reads :meth:`ClusterCache.workload_pods`:
every pod the cache knows plus the pods deleted in the last ``gone_keep_s`` (their usage series
are still in Prometheus' history window).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

import numpy as np

from neurokube.adapters.kube import KubeClient
from neurokube.errors import InputError, TemporaryError
from neurokube.k8s.nodetable import NodeTable
from neurokube.k8s.objects import Node, Pod, parse_node, parse_pod
from neurokube.live.recent import EMPTY, RecentColumns, RecentLog, RecentPod, RecentSlice
from neurokube.logs import event

log = logging.getLogger("neurokube.live.cache")

ASSUME_TTL_S = 30.0
RECENT_KEEP_S = 900.0
GONE_KEEP_S = 86400.0
GONE_MAX = 200_000  # deleted pods remembered at most (their workload and CPU request)
PAGE = 500
LIST_SKEW_S = 30.0  # clock skew allowed between replicas when a time they wrote is compared with our list's
RESOURCES = {"nodes": "/api/v1/nodes", "pods": "/api/v1/pods"}
_USAGE_FIELDS = 7  # cpu, memory, nz_cpu, nz_memory, pods, cpu_limit_sum, unlimited_pods


@dataclass(frozen=True)
class Snapshot:
    """Nodes and what is bound to them, at one instant. Arrays follow ``nodes``; memory in bytes.

    Immutable and shared: the cache hands out the same snapshot until its state changes, so
    ``taken_at`` is when that state was read. ``table`` is the nodes as columns (built from
    ``nodes`` when not given).
    """

    taken_at: float
    nodes: tuple[Node, ...]
    used_cpu: np.ndarray
    used_memory: np.ndarray
    used_nz_cpu: np.ndarray
    used_nz_memory: np.ndarray
    used_pods: np.ndarray
    lim_cpu: np.ndarray
    unlimited: np.ndarray
    recent: RecentSlice = EMPTY  # the recent pods, in bind-time order
    table: NodeTable | None = None
    recent_rows: np.ndarray | None = None  # node id of ``recent`` -> row of ``table`` (None: worked out here)
    _recent_memo: dict = field(default_factory=dict, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.table is None:
            object.__setattr__(self, "table", NodeTable.of(self.nodes))

    @property
    def names(self) -> list[str]:
        return list(self.table.names)

    def index(self) -> dict[str, int]:
        """Node name -> row (shared: do not modify)."""
        return self.table.index

    def recent_columns(self, since: float) -> RecentColumns:
        """The recent pods bound after ``since``, as columns (kept per ``since``: a view asks for the
        newest metrics refresh minus the lag, the same value until the next refresh)."""
        hit = self._recent_memo.get(since)
        if hit is not None:
            return hit
        rows = self._recent_memo.get("rows")
        if rows is None:
            rows = self.recent_rows if self.recent_rows is not None else self.recent.rows(self.table.index)
            self._recent_memo["rows"] = rows
        columns = self.recent.columns(since, rows)
        if len(self._recent_memo) >= 5:
            self._recent_memo.clear()
            self._recent_memo["rows"] = rows
        self._recent_memo[since] = columns
        return columns


def empty_usage() -> list[int]:
    return [0] * _USAGE_FIELDS


def usage_of(pod: Pod) -> tuple[int, ...]:
    r = pod.resources
    return (r.cpu, r.memory, r.nz_cpu, r.nz_memory, 1, r.cpu_limit, 0 if r.cpu_limit else 1)


class ClusterCache:
    def __init__(self, kube: KubeClient | None, scheduler_name: str, resync_s: float = 300.0,
                 clock: Callable[[], float] = time.time, on_listed: Callable[[], None] | None = None,
                 gone_keep_s: float = GONE_KEEP_S) -> None:
        """``on_listed`` runs in the watch thread after every full list (the runtime settles the
        heap there: neurokube.live.heap); deleted pods are remembered for ``gone_keep_s``."""
        self.kube = kube
        self.scheduler_name = scheduler_name
        self.resync_s = resync_s
        self.clock = clock
        self.on_listed = on_listed
        # Called (under the cache's lock: it must only set a flag) when room may have been freed: a
        # pod stopped holding a node's resources, a node appeared or changed (neurokube.live.retry).
        self.on_release: Callable[[], None] | None = None
        # Called (likewise) with a pod's UID when the watch sees its last scheduling gate removed.
        self.on_ungated: Callable[[str], None] | None = None
        self._lock = threading.RLock()
        self._nodes: dict[str, Node] = {}
        self._pods: dict[str, Pod] = {}  # uid -> pod (every pod we were told of)
        self._bound_at: dict[str, float] = {}
        self._usage: dict[str, list[int]] = {}
        self._assumed: dict[str, tuple[Pod, float]] = {}  # uid -> (pod with node_name, expiry monotonic)
        # uid -> the pod as recently bound: bound in the last RECENT_KEEP_S and still holding its
        # node. In bind-time order; kept up to date per event, so a snapshot takes it as it is.
        self._recent = RecentLog()
        self._workload_ids: dict[str, int] = {}  # namespace/owner -> dense id, never reused
        self.gone_keep_s = gone_keep_s
        # "namespace/name" of deleted pods -> (workload id, CPU request, deleted at), oldest first
        self._gone: OrderedDict[str, tuple[int, int, float]] = OrderedDict()
        self._gone_uids: OrderedDict[str, None] = OrderedDict()  # UIDs of deleted pods, oldest first
        # Read side (see the module docstring): rebuilt lazily after changes, guarded by _lock.
        self._table: NodeTable | None = None  # None: the node set changed
        self._matrix: np.ndarray | None = None  # _USAGE_FIELDS x nodes, rows of _table; None: rebuild
        self._version = 0  # bumped by every change a snapshot shows
        self._memo: tuple[int, Snapshot] | None = None
        self._listed_at = 0.0  # when the latest full list of pods began (0: never listed)
        self._unreadable: set[str] = set()  # UIDs of pods listed or watched since then that did not parse
        self._waiting: dict[str, threading.Event] = {}  # UID -> set when the watch reports it (wait_pod)
        self._synced = {name: threading.Event() for name in RESOURCES}
        self._fresh_at = {name: 0.0 for name in RESOURCES}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        for resource in RESOURCES:
            thread = threading.Thread(target=self._run, args=(resource,), name=f"watch-{resource}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def close(self) -> None:
        self._stop.set()

    def wait_synced(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        return all(e.wait(max(0.0, deadline - time.monotonic())) for e in self._synced.values())

    @property
    def synced(self) -> bool:
        return all(e.is_set() for e in self._synced.values())

    def age_s(self, resource: str) -> float:
        """Seconds since the resource's list or watch last proved fresh (inf before the first list)."""
        fresh = self._fresh_at[resource]
        return self.clock() - fresh if fresh else float("inf")

    # -- state changes (the watch threads; tests call them directly) -----------------------------

    def replace(self, resource: str, items: list[dict], listed_at: float | None = None) -> None:
        """The whole state of ``resource``, as a list read it (``listed_at``: when that list began;
        default now)."""
        with self._lock:
            if resource == "nodes":
                nodes = {}
                for doc in items:
                    node = _parse_node(doc)
                    if node is not None:
                        nodes[node.name] = node
                if nodes != self._nodes:  # a periodic re-list usually changes nothing: keep the table
                    self._nodes = nodes
                    self._nodes_changed()
            else:
                old_bound_at, old_pods = self._bound_at, self._pods
                self._pods, self._usage, self._bound_at = {}, {}, {}
                self._unreadable = set()
                self._listed_at = self.clock() if listed_at is None else listed_at
                self._matrix = None
                for doc in items:
                    self._apply_pod("ADDED", doc, initial=True)
                for uid, pod in old_pods.items():  # deleted while the watch was down
                    if uid not in self._pods:
                        self._bury(pod)
                self._bound_at = {uid: t for uid, t in old_bound_at.items() if uid in self._pods}
                self._recent.clear()
                for uid in sorted(self._bound_at, key=self._bound_at.__getitem__):
                    self._sync_recent(uid)
                self._version += 1
                for waiter in self._waiting.values():  # each looks again, and gives up if still absent
                    waiter.set()
                self._waiting.clear()
            self._fresh_at[resource] = self.clock()
            self._released()  # a re-list may show room freed while the watch was down
        self._synced[resource].set()

    def apply(self, resource: str, kind: str, doc: dict) -> None:
        """One watch event (ADDED, MODIFIED, DELETED)."""
        with self._lock:
            if resource == "nodes":
                self._apply_node(kind, doc)
            else:
                if self._apply_pod(kind, doc):
                    self._version += 1
            self._fresh_at[resource] = self.clock()

    def forget_node(self, name: str) -> None:
        """A node found gone outside the watch."""
        with self._lock:
            if self._nodes.pop(name, None) is not None:
                self._nodes_changed()

    def _apply_node(self, kind: str, doc: dict) -> None:
        node = _parse_node(doc)
        if node is None:
            return
        if kind == "DELETED":
            if self._nodes.pop(node.name, None) is not None:
                self._nodes_changed()
        elif self._nodes.get(node.name) != node:  # most node updates change nothing a scheduler reads
            self._nodes[node.name] = node
            self._nodes_changed()
            self._released()

    def _released(self) -> None:
        if self.on_release is not None:
            self.on_release()

    def _nodes_changed(self) -> None:
        self._table = None
        self._matrix = None
        self._version += 1

    def _apply_pod(self, kind: str, doc: dict, initial: bool = False) -> bool:
        """Apply one pod; False when no snapshot can tell the difference (a pending pod that is
        not assumed changes no sum and no recent entry)."""
        try:
            pod = parse_pod(doc)
        except InputError as exc:
            event(log, "ignoring a pod the cache cannot read", logging.WARNING, error=str(exc))
            uid = (doc.get("metadata") or {}).get("uid") if isinstance(doc, dict) else None
            if isinstance(uid, str):
                self._unreadable.add(uid)
            return False
        uid = pod.uid or pod.key
        self._workload_id(pod.workload)
        old = self._pods.pop(uid, None)
        visible = uid in self._assumed or _holds(pod)
        if old is not None and _holds(old):
            self._add_usage(old, -1)
            visible = True
            if not initial and (kind == "DELETED" or not _holds(pod)):
                self._released()
        elif old is not None and old.scheduling_gates and not pod.scheduling_gates and not initial \
                and kind != "DELETED" and self.on_ungated is not None:
            self.on_ungated(uid)  # its last gate was removed: a pod the retrier holds can be placed now
        if kind == "DELETED":
            self._bound_at.pop(uid, None)
            self._assumed.pop(uid, None)
            self._bury(pod)
        else:
            self._pods[uid] = pod
            if _holds(pod):
                self._add_usage(pod, +1)
                if pod.bound:
                    self._assumed.pop(uid, None)
                    if uid not in self._bound_at and not initial:
                        self._bound_at[uid] = self.clock()
        if not initial:  # a re-list rebuilds the recent pods once, at its end
            self._sync_recent(uid)
            if self._waiting:
                waiter = self._waiting.pop(uid, None)
                if waiter is not None:
                    waiter.set()
        return visible

    def _add_usage(self, pod: Pod, sign: int) -> None:
        usage = self._usage.setdefault(pod.node_name, empty_usage())
        delta = usage_of(pod)
        for i, v in enumerate(delta):
            usage[i] += sign * v
        row = self._table.index.get(pod.node_name) if self._matrix is not None else None
        if row is not None:
            self._matrix[:, row] += np.multiply(delta, sign, dtype=np.int64)

    def _sync_recent(self, uid: str) -> None:
        """Bring ``uid``'s recent entry in line with its pod, assumption and bind time."""
        at = self._bound_at.get(uid)
        assumed = self._assumed.get(uid)
        pod = assumed[0] if assumed is not None else self._pods.get(uid)
        if at is None or pod is None or not _holds(pod) or at < self.clock() - RECENT_KEEP_S:
            self._recent.remove(uid)
            return
        r = pod.resources
        self._recent.put(uid, RecentPod(pod.node_name, r.cpu, r.memory, r.cpu_limit, r.memory_limit, at,
                                        self._workload_id(pod.workload)))

    # -- workloads -------------------------------------------------------------------------------

    def workload_id(self, workload: str) -> int:
        """The dense id of ``namespace/owner`` (a new one for a workload not seen before)."""
        with self._lock:
            return self._workload_id(workload)

    def _workload_id(self, workload: str) -> int:
        wid = self._workload_ids.get(workload)
        if wid is None:
            wid = self._workload_ids[workload] = len(self._workload_ids)
        return wid

    def _bury(self, pod: Pod) -> None:
        """Remember a deleted pod's workload and CPU request while its usage is in the history."""
        key = pod.key
        self._gone.pop(key, None)
        self._gone[key] = (self._workload_id(pod.workload), pod.resources.cpu, self.clock())
        while len(self._gone) > GONE_MAX:
            self._gone.popitem(last=False)
        if pod.uid:
            self._gone_uids[pod.uid] = None
            while len(self._gone_uids) > GONE_MAX:
                self._gone_uids.popitem(last=False)

    def workload_pods(self) -> tuple[dict[str, tuple[int, int]], int]:
        """``namespace/name`` -> (workload id, CPU request in millicores) of every pod known or
        deleted in the last ``gone_keep_s``, and how many workload ids there are. For the metrics
        thread (a copy, O(pods)); a pod name reused later maps to its newest pod."""
        with self._lock:
            horizon = self.clock() - self.gone_keep_s
            while self._gone and next(iter(self._gone.values()))[2] < horizon:
                self._gone.popitem(last=False)
            out = {key: (wid, cpu) for key, (wid, cpu, _) in self._gone.items()}
            for pod in self._pods.values():
                out[pod.key] = (self._workload_ids[pod.workload], pod.resources.cpu)
            return out, len(self._workload_ids)

    # -- assumptions -----------------------------------------------------------------------------

    def assume(self, pod: Pod, node: str) -> None:
        """Count ``pod`` on ``node`` now, before the watch reports the binding."""
        with self._lock:
            uid = pod.uid or pod.key
            current = self._pods.get(uid)
            if current is not None and current.bound:
                return
            self._assumed[uid] = (replace(pod, node_name=node), time.monotonic() + ASSUME_TTL_S)
            self._bound_at[uid] = self.clock()
            self._sync_recent(uid)
            self._version += 1

    def forget(self, pod: Pod) -> None:
        with self._lock:
            uid = pod.uid or pod.key
            if self._assumed.pop(uid, None) is not None:
                self._bound_at.pop(uid, None)
                self._sync_recent(uid)
                self._version += 1

    # -- reading ---------------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """The current state; the same object until something changes (cheap to call per request)."""
        now_mono = time.monotonic()
        with self._lock:
            expired = [u for u, (_, exp) in self._assumed.items() if exp < now_mono]
            for uid in expired:
                del self._assumed[uid]
                self._sync_recent(uid)
            now = self.clock()
            pruned = self._recent.prune(now - RECENT_KEEP_S)
            if expired or pruned:
                self._version += 1
            if self._memo is not None and self._memo[0] == self._version:
                return self._memo[1]
            if self._table is None:
                self._table = NodeTable.of(self._nodes[name] for name in sorted(self._nodes))
            table = self._table
            if self._matrix is None:
                self._matrix = _usage_matrix(self._usage, table.names)
            used = self._matrix.copy()
            for pod, _ in self._assumed.values():
                row = table.index.get(pod.node_name)
                if row is not None:
                    used[:, row] += usage_of(pod)
            used.flags.writeable = False  # shared by the threads that read this snapshot and its views
            snapshot = Snapshot(taken_at=now, nodes=table.nodes, used_cpu=used[0], used_memory=used[1],
                                used_nz_cpu=used[2], used_nz_memory=used[3], used_pods=used[4], lim_cpu=used[5],
                                unlimited=used[6], recent=self._recent.view(), table=table,
                                recent_rows=self._recent.rows_for(table, table.index))
            self._memo = (self._version, snapshot)
        return snapshot

    def pending_count(self) -> int:
        with self._lock:
            return sum(1 for uid, p in self._pods.items() if self._is_pending(p) and uid not in self._assumed)

    def bound_node(self, uid: str) -> str | None:
        """The node the watch has seen this pod bound to (a binding is never undone), else None."""
        with self._lock:
            pod = self._pods.get(uid)
            return pod.node_name if pod is not None and pod.bound else None

    def pending_pod(self, uid: str) -> Pod | None:
        """The pod with this UID if the watch shows it waiting for this scheduler (not bound, not
        terminal or being deleted, not assumed by this replica), else None."""
        with self._lock:
            pod = self._pods.get(uid)
            return pod if pod is not None and self._is_pending(pod) and uid not in self._assumed else None

    def pod(self, uid: str) -> Pod | None:
        """The pod with this UID as the watch last reported it (None if the watch has not seen it)."""
        with self._lock:
            return self._pods.get(uid)

    def wait_pod(self, uid: str, timeout_s: float) -> Pod | None:
        """The pod with this UID, waiting up to ``timeout_s`` for the watch to report it: an event
        about a new pod can arrive before the watch does, and waiting a moment for the watch is
        cheaper for everyone than a GET. None if the watch has not reported it by then (or it was
        deleted meanwhile); at once when the pods have not been listed yet."""
        with self._lock:
            pod = self._pods.get(uid)
            if pod is not None or timeout_s <= 0 or not self._synced["pods"].is_set():
                return pod
            waiter = self._waiting.get(uid)
            if waiter is None:
                waiter = self._waiting[uid] = threading.Event()
        waiter.wait(timeout_s)
        with self._lock:
            if self._waiting.get(uid) is waiter:  # timed out: no entry left behind
                del self._waiting[uid]
            return self._pods.get(uid)

    def node(self, name: str) -> Node | None:
        with self._lock:
            return self._nodes.get(name)

    def usage_and_pods(self, name: str, uids: Iterable[str]) -> tuple[tuple[int, int, int], dict[str, Pod | None]]:
        """CPU (millicores), memory (bytes) and pod count requested by the pods the watch has seen
        bound to ``name`` and not terminal (this replica's assumptions are not included), and the
        pods with ``uids``, read together under one lock:
        the ledger adds an entry's request only when the pod is not in the usage, and a pod that
        the watch reports bound between two separate reads would be in neither."""
        with self._lock:
            usage = self._usage.get(name)
            return ((usage[0], usage[1], usage[4]) if usage is not None else (0, 0, 0),
                    {uid: self._pods.get(uid) for uid in uids})

    def deleted(self, uid: str) -> bool:
        """Has the watch seen the pod with this UID deleted (of the last ``GONE_MAX`` deletions)?"""
        with self._lock:
            return uid in self._gone_uids

    def absent_since(self, uid: str, written: float) -> bool:
        """Can no pod with this UID exist, given that someone saw it at ``written`` (wall clock)?

        True when the latest full list of pods began after ``written`` (less ``LIST_SKEW_S`` for
        the writer's clock) and neither that list nor a watch event since showed the UID: the
        pod existed before the list began, a consistent list shows every pod that exists when it
        is read, and UIDs are never reused, so the pod was deleted before the list. A pod the
        cache could not parse is never called absent. False before the first list."""
        with self._lock:
            return (0.0 < self._listed_at and written < self._listed_at - LIST_SKEW_S and uid not in self._pods
                    and uid not in self._unreadable)

    def _is_pending(self, pod: Pod) -> bool:
        return not pod.bound and not pod.deleting and not pod.terminal and pod.scheduler_name == self.scheduler_name

    # -- the watch threads -------------------------------------------------------------------------

    def _run(self, resource: str) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                version = self._list(resource)
                backoff = 0.5
                self._watch(resource, version)
            except _Expired:
                event(log, "watch expired, re-listing", logging.DEBUG, resource=resource)
            except TemporaryError as exc:
                event(log, "watch cache lost the apiserver, retrying", logging.WARNING, resource=resource,
                      error=str(exc), retry_s=backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
            except Exception as exc:  # noqa: BLE001 - a watch thread must never die silently
                event(log, "watch cache error, retrying", logging.ERROR, resource=resource,
                      error=f"{type(exc).__name__}: {exc}")
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)

    def _list(self, resource: str) -> str:
        started = self.clock()
        items: list[dict] = []
        query = {"limit": str(PAGE)}
        while True:
            page = self.kube.get(RESOURCES[resource], **query)
            items += page.get("items") or []
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                break
            query = {"limit": str(PAGE), "continue": token}
        self.replace(resource, items, listed_at=started)
        version = str((page.get("metadata") or {}).get("resourceVersion") or "")
        del items, page  # the raw objects are garbage now: on_listed must not keep them alive
        if self.on_listed is not None:
            self.on_listed()
        return version

    def _watch(self, resource: str, version: str) -> None:
        deadline = time.monotonic() + self.resync_s
        while not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 1:
                return  # periodic resync: the caller re-lists
            query = {"resourceVersion": version, "allowWatchBookmarks": "true",
                     "timeoutSeconds": str(int(min(remaining, 300)))}
            for item in self.kube.watch(RESOURCES[resource], query, read_timeout_s=min(remaining, 300) + 30):
                kind, obj = item.get("type"), item.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise _Expired()
                    raise TemporaryError(f"watch error: {obj.get('message')}")
                version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                if kind == "BOOKMARK":
                    self._fresh_at[resource] = self.clock()
                    continue
                self.apply(resource, kind, obj)
                if self._stop.is_set():
                    return


class _Expired(Exception):
    """The watch's resourceVersion is too old (410 Gone): list again."""


def _parse_node(doc: dict) -> Node | None:
    try:
        return parse_node(doc)
    except InputError as exc:
        event(log, "ignoring a node the cache cannot read", logging.WARNING, error=str(exc))
        return None


def _usage_matrix(usage: dict[str, list[int]], names: tuple[str, ...]) -> np.ndarray:
    """The per-node sums as a ``_USAGE_FIELDS x len(names)`` matrix (zeros for a node without pods)."""
    zero = (0,) * _USAGE_FIELDS
    flat = np.fromiter(itertools.chain.from_iterable(usage.get(name, zero) for name in names), dtype=np.int64,
                       count=_USAGE_FIELDS * len(names))
    return flat.reshape(len(names), _USAGE_FIELDS).T.copy()


def _holds(pod: Pod) -> bool:
    """Does the pod hold resources on a node?"""
    return pod.bound and not pod.terminal
