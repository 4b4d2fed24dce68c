"""A watch cache of nodes and pods: list, then watch, with a periodic full re-list.

One thread per resource lists (paginated) and then watches from the list's resourceVersion with
bookmarks; a ``410 Gone`` or a broken stream leads to a fresh list, and every ``resync_s`` the
whole state is re-listed anyway. Per-node sums of the bound pods' requests are kept up to date
incrementally, so :meth:`ClusterCache.snapshot` is a consistent copy taken under one lock.

Like kube-scheduler's cache, it *assumes* the pods this process has just placed (before the watch
confirms them), so concurrent decisions in one replica see each other. Assumptions expire after
``ASSUME_TTL_S`` if the watch never confirms them (the binding failed without us knowing).

Terminal pods (Succeeded, Failed) hold no resources, as in kube-scheduler, whose informer skips
them. A pod being deleted still does until it is gone.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from neurokube.errors import InputError, TemporaryError
from neurokube.live.kube import KubeClient
from neurokube.live.objects import Node, Pod, parse_node, parse_pod
from neurokube.logs import event

log = logging.getLogger("neurokube.live.cache")

ASSUME_TTL_S = 30.0
RECENT_KEEP_S = 900.0
PAGE = 500
RESOURCES = {"nodes": "/api/v1/nodes", "pods": "/api/v1/pods"}
_USAGE_FIELDS = 7  # cpu, memory, nz_cpu, nz_memory, pods, cpu_limit_sum, unlimited_pods


@dataclass(frozen=True, slots=True)
class RecentPod:
    """A pod bound while this cache watched (``bound_at`` in wall-clock seconds)."""

    node: str
    cpu: int
    memory: int
    cpu_limit: int
    memory_limit: int
    bound_at: float


@dataclass(frozen=True)
class Snapshot:
    """Nodes and what is bound to them, at one instant. Arrays follow ``nodes``; memory in bytes."""

    taken_at: float
    nodes: tuple[Node, ...]
    used_cpu: np.ndarray
    used_memory: np.ndarray
    used_nz_cpu: np.ndarray
    used_nz_memory: np.ndarray
    used_pods: np.ndarray
    lim_cpu: np.ndarray
    unlimited: np.ndarray
    recent: tuple[RecentPod, ...] = ()

    @property
    def names(self) -> list[str]:
        return [n.name for n in self.nodes]

    def index(self) -> dict[str, int]:
        return {n.name: i for i, n in enumerate(self.nodes)}


def empty_usage() -> list[int]:
    return [0] * _USAGE_FIELDS


def usage_of(pod: Pod) -> tuple[int, ...]:
    r = pod.resources
    return (r.cpu, r.memory, r.nz_cpu, r.nz_memory, 1, r.cpu_limit, 0 if r.cpu_limit else 1)


class ClusterCache:
    def __init__(self, kube: KubeClient | None, scheduler_name: str, resync_s: float = 300.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.kube = kube
        self.scheduler_name = scheduler_name
        self.resync_s = resync_s
        self.clock = clock
        self._lock = threading.RLock()
        self._nodes: dict[str, Node] = {}
        self._pods: dict[str, Pod] = {}  # uid -> pod (every pod we were told of)
        self._bound_at: dict[str, float] = {}
        self._usage: dict[str, list[int]] = {}
        self._assumed: dict[str, tuple[Pod, float]] = {}  # uid -> (pod with node_name, expiry monotonic)
        self._recent: deque[tuple[float, str]] = deque()
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

    def replace(self, resource: str, items: list[dict]) -> None:
        with self._lock:
            if resource == "nodes":
                self._nodes = {}
                for doc in items:
                    self._apply_node("ADDED", doc)
            else:
                old_bound_at = self._bound_at
                self._pods, self._usage, self._bound_at = {}, {}, {}
                for doc in items:
                    self._apply_pod("ADDED", doc, initial=True)
                self._bound_at = {uid: t for uid, t in old_bound_at.items() if uid in self._pods}
            self._fresh_at[resource] = self.clock()
        self._synced[resource].set()

    def apply(self, resource: str, kind: str, doc: dict) -> None:
        """One watch event (ADDED, MODIFIED, DELETED)."""
        with self._lock:
            if resource == "nodes":
                self._apply_node(kind, doc)
            else:
                self._apply_pod(kind, doc)
            self._fresh_at[resource] = self.clock()

    def observe_pods(self, items: list[dict]) -> None:
        """Pods read outside the watch (a fresh list of one node's pods): apply them as updates."""
        for doc in items:
            self.apply("pods", "MODIFIED", doc)

    def forget_node(self, name: str) -> None:
        """A node found gone outside the watch."""
        with self._lock:
            self._nodes.pop(name, None)

    def _apply_node(self, kind: str, doc: dict) -> None:
        try:
            node = parse_node(doc)
        except InputError as exc:
            event(log, "ignoring a node the cache cannot read", logging.WARNING, error=str(exc))
            return
        if kind == "DELETED":
            self._nodes.pop(node.name, None)
        else:
            self._nodes[node.name] = node

    def _apply_pod(self, kind: str, doc: dict, initial: bool = False) -> None:
        try:
            pod = parse_pod(doc)
        except InputError as exc:
            event(log, "ignoring a pod the cache cannot read", logging.WARNING, error=str(exc))
            return
        uid = pod.uid or pod.key
        old = self._pods.pop(uid, None)
        if old is not None and _holds(old):
            self._add_usage(old, -1)
        if kind == "DELETED":
            self._bound_at.pop(uid, None)
            self._assumed.pop(uid, None)
            return
        self._pods[uid] = pod
        if _holds(pod):
            self._add_usage(pod, +1)
            if pod.bound:
                self._assumed.pop(uid, None)
                if uid not in self._bound_at and not initial:
                    self._mark_bound(uid, self.clock())

    def _add_usage(self, pod: Pod, sign: int) -> None:
        usage = self._usage.setdefault(pod.node_name, empty_usage())
        for i, v in enumerate(usage_of(pod)):
            usage[i] += sign * v

    def _mark_bound(self, uid: str, at: float) -> None:
        self._bound_at[uid] = at
        self._recent.append((at, uid))

    # -- assumptions -----------------------------------------------------------------------------

    def assume(self, pod: Pod, node: str) -> None:
        """Count ``pod`` on ``node`` now, before the watch reports the binding."""
        with self._lock:
            uid = pod.uid or pod.key
            current = self._pods.get(uid)
            if current is not None and current.bound:
                return
            self._assumed[uid] = (replace(pod, node_name=node), time.monotonic() + ASSUME_TTL_S)
            self._mark_bound(uid, self.clock())

    def forget(self, pod: Pod) -> None:
        with self._lock:
            uid = pod.uid or pod.key
            if self._assumed.pop(uid, None) is not None:
                self._bound_at.pop(uid, None)

    # -- reading ---------------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        now_mono = time.monotonic()
        with self._lock:
            for uid in [u for u, (_, exp) in self._assumed.items() if exp < now_mono]:
                del self._assumed[uid]
            extra: dict[str, list[int]] = {}
            for pod, _ in self._assumed.values():
                usage = extra.setdefault(pod.node_name, empty_usage())
                for i, v in enumerate(usage_of(pod)):
                    usage[i] += v
            nodes = tuple(self._nodes[name] for name in sorted(self._nodes))
            table = np.zeros((_USAGE_FIELDS, len(nodes)), dtype=np.int64)
            for j, node in enumerate(nodes):
                for source in (self._usage, extra):
                    usage = source.get(node.name)
                    if usage is not None:
                        table[:, j] += usage
            now = self.clock()
            while self._recent and self._recent[0][0] < now - RECENT_KEEP_S:
                self._recent.popleft()
            recent = []
            for at, uid in self._recent:
                pod = self._pods.get(uid)
                if uid in self._assumed:
                    pod = self._assumed[uid][0]
                if pod is None or not _holds(pod) or self._bound_at.get(uid) != at:
                    continue
                r = pod.resources
                recent.append(RecentPod(pod.node_name, r.cpu, r.memory, r.cpu_limit, r.memory_limit, at))
        return Snapshot(taken_at=now, nodes=nodes, used_cpu=table[0], used_memory=table[1], used_nz_cpu=table[2],
                        used_nz_memory=table[3], used_pods=table[4], lim_cpu=table[5], unlimited=table[6],
                        recent=tuple(recent))

    def pending_count(self) -> int:
        with self._lock:
            return sum(1 for uid, p in self._pods.items() if self._is_pending(p) and uid not in self._assumed)

    def bound_node(self, uid: str) -> str | None:
        """The node the watch has seen this pod bound to (a binding is never undone), else None."""
        with self._lock:
            pod = self._pods.get(uid)
            return pod.node_name if pod is not None and pod.bound else None

    def node(self, name: str) -> Node | None:
        with self._lock:
            return self._nodes.get(name)

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
        items: list[dict] = []
        query = {"limit": str(PAGE)}
        while True:
            page = self.kube.get(RESOURCES[resource], **query)
            items += page.get("items") or []
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                break
            query = {"limit": str(PAGE), "continue": token}
        self.replace(resource, items)
        return str((page.get("metadata") or {}).get("resourceVersion") or "")

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


def _holds(pod: Pod) -> bool:
    """Does the pod hold resources on a node?"""
    return pod.bound and not pod.terminal
