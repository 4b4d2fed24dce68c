"""Scale-out safety: account for every pod placed on a node in a per-node Lease, decide from memory.

Several binder replicas (and the sweeper, and the extender's bind verb) decide from their own,
possibly stale, watch caches. Two of them can pick the same almost-full node for different pods;
each binding alone is valid, together they over-commit the node. The apiserver checks nothing of
the sort (a Binding only sets ``spec.nodeName``), so the replicas must serialise per node.

Every placement on node N goes through N's *ledger*, a ``coordination.k8s.io/v1`` Lease named N in
the ledger namespace, whose annotation ``neurokube.io/reservations`` holds one entry per pod that a
replica placed on N through the ledger and that has not ended: in flight (reserved, Binding not yet
seen) or ``bound``. A batch of pods for N costs one conditional write, and no read of the pods or
the node (Omega-style optimistic concurrency on shared per-node state)::

    1. the Lease: as this replica last wrote it (no request), else GET  -> entries E, resourceVersion v
    2. settle E from the watch cache: drop entries of pods it saw deleted, terminal or bound elsewhere;
       mark entries of pods it sees bound on N; drop an entry past its expiry whose pod the cache has
       never seen although its latest full list of pods began after the entry was written (the pod
       was deleted before that list: a binder that restarts meets these for every pod deleted while
       it was away); any other entry past its expiry that the cache does not show bound on N is
       checked with one GET of that pod (rare: a replica died, or a watch lags minutes)
    3. used = E + the pods the cache shows on N that have no entry (placed by others: kube-scheduler,
       DaemonSets); every pod of the batch must fit allocatable - used and pass taints/selector/
       affinity on the cache's Node
    4. PUT the Lease with E' = E + the batch, conditional on v  -> 409: someone else wrote first,
       GET and go back to 2 (bounded retries with jitter)
    5. POST the Bindings (only if step 4 happened less than ``bind_abort_s`` ago)

Why it is safe: successful writes of N's Lease are totally ordered by resourceVersion, and each is
computed from the previous one's entries. An entry is written before its pod's Binding and leaves
the Lease only with evidence that the pod holds nothing on N: the watch saw it deleted, terminal or
bound to another node (all final), or, after its expiry, the apiserver says so or a consistent
list of all pods that began after the entry was written did not contain it (the pod existed when
the entry was written, and UIDs are never reused; replicas share the TTL, which dates the entry,
and their clocks agree within ``cache.LIST_SKEW_S``). A replica never binds more than
``bind_abort_s`` after its reservation, and ``bind_abort_s`` + request timeout < TTL. So every
pod bound to N through the ledger is counted by every later check, whatever each replica's cache
shows, and the pods bound through the ledger never exceed N's allocatable minus
the pods placed by others. A stale cache can only keep an entry longer (wasted room, never
over-commit).

What it cannot guard against: binders that bypass the ledger (kube-scheduler placing
default-scheduler pods on the same nodes at the same moment) are counted from the watch cache;
that race exists between any two schedulers, and the kubelet's admission then rejects the pod
(OutOfcpu), as upstream. A node deleted but still in the cache takes a Binding, as it would from
kube-scheduler; the pod garbage collector removes such pods.

Cost: one Lease write per batch plus one Binding per pod; the Lease read only after a conflict or
on a node this replica has not written yet. Within one replica the threads that want the same node
share a round (group commit, see :meth:`Ledger.place`): one Lease write reserves every pod of the
batch, and the proof holds unchanged, since a batch is checked and written as one change of E.

Credits (``credit_share`` > 0, ``NEUROKUBE_LEDGER_CREDIT_SHARE``): room reserved ahead, so that
most pods need no Lease write of their own (issue 13: the write was about a third of a pod's
latency at light load). With each write on N, replica R also writes a *credit* entry
``{by: R, cpu, memory, pods, expires, credit: true}`` under a key of its own process: what is left
of ``credit_share`` of N's allocatable after E and the pods placed by others; none while another
replica is placing on N (its credit or a pod it has in flight is in E). Until the credit has
``abort_s`` + the request timeout left, R reserves pods that fit what R has not yet spent of it in
memory, with no request, and binds them (step 5). R's next write on N turns the pods reserved
under the credit into entries of their own (in flight, with a fresh expiry), then checks the batch
and takes a new credit from what is left. Every check counts a credit in full, and also every
cached pod on N without an entry, so a pod bound under a credit that another cache already sees
is counted twice (room wasted until R's next write, never over-committed).

Why it stays safe: a credit is an entry like any other, written by the same conditional writes,
and a pod bound under it is covered by it until R's next successful write, which writes the pod's
own entry in the same change that replaces the credit. R never spends more of a credit than it
holds, and only the node's lead thread spends or converts it, so nothing is spent between a
conversion and its write; a write whose outcome R does not know (an error, a timeout) freezes the
credit (nothing more is spent under it; its pods are converted at the next write). Another
replica drops a credit only after it expired ``LIST_SKEW_S`` ago: every pod bound under it was
bound before it expired (the ``abort_s`` + timeout margin), so one consistent list of N's pods,
read then, shows them all; each pod there without an entry gets a bound entry in the same write
that drops the credit (a kube-scheduler pod among them is counted once either way). If the list
fails, the credit stays. A restarted replica has a new key and treats its predecessor's credit
as another replica's. Until someone retires it, a dead replica's credit holds its room.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Protocol

from neurokube.adapters.kube import KubeClient, KubeError
from neurokube.errors import InputError, TemporaryError
from neurokube.k8s.feasibility import admits, resource_shortfalls
from neurokube.k8s.objects import Node, Pod, parse_pod
from neurokube.live import binding, failpoints, trust
from neurokube.live.cache import LIST_SKEW_S
from neurokube.logs import event

log = logging.getLogger("neurokube.live.ledger")

ANNOTATION = "neurokube.io/reservations"
LEDGER_LABEL = "neurokube.io/ledger"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"

# Outcomes of place(), beyond binding's BOUND, ALREADY_BOUND, POD_GONE, NAMESPACE_GONE and NODE_REJECTED.
NODE_GONE = "node_gone"
NO_ROOM = "no_room"
CONTENDED = "contended"
TOO_SLOW = "too_slow"

MAX_BATCH = 64  # pods reserved on one node by one Lease write


class NodeState(Protocol):
    """What the ledger reads from the replica's watch cache (:class:`~neurokube.live.cache.ClusterCache`)."""

    def node(self, name: str) -> Node | None: ...

    def usage_and_pods(self, name: str, uids: Iterable[str]) -> tuple[tuple[int, int, int], dict[str, Pod | None]]: ...

    def pod(self, uid: str) -> Pod | None: ...

    def deleted(self, uid: str) -> bool: ...

    def absent_since(self, uid: str, written: float) -> bool: ...


@dataclass(frozen=True, slots=True)
class Reservation:
    """One pod's entry in a node's ledger: in flight until ``bound`` (then held until the pod ends)."""

    pod: str  # namespace/name
    cpu: int  # millicores
    memory: int  # bytes
    expires: float  # wall-clock seconds (the writer's clock); for a bound entry: when to ask again if unseen
    by: str = ""
    bound: bool = False
    pods: int = 1  # pod slots held: 1 for a pod's entry, up to the credit's size for a credit
    credit: bool = False  # room held ahead by replica ``by`` for pods it has not placed yet

    def to_json(self) -> dict:
        doc = {"pod": self.pod, "cpu": self.cpu, "memory": self.memory, "expires": round(self.expires, 3),
               "by": self.by}
        if self.bound:
            doc["bound"] = True
        if self.credit:
            doc["credit"], doc["pods"] = True, self.pods
        return doc

    @classmethod
    def from_json(cls, doc: dict) -> Reservation:
        credit = bool(doc.get("credit", False))
        return cls(str(doc["pod"]), int(doc["cpu"]), int(doc["memory"]), float(doc["expires"]), str(doc.get("by", "")),
                   bool(doc.get("bound", False)), int(doc["pods"]) if credit else 1, credit)


@dataclass
class _Credit:
    """This replica's credit on one node, as its last successful Lease write holds it, and the
    pods it has reserved under it since (not yet written as entries)."""

    entry: Reservation
    used: dict[str, Reservation] = field(default_factory=dict)

    def room(self) -> tuple[int, int, int]:
        return (self.entry.cpu - sum(r.cpu for r in self.used.values()),
                self.entry.memory - sum(r.memory for r in self.used.values()), self.entry.pods - len(self.used))


@dataclass
class Placement:
    outcome: str
    node: str
    detail: str = ""
    conflicts: int = 0  # Lease write conflicts on the way
    reserve_s: float = 0.0  # from place() to the reservation written (waiting for the node's round included)
    reserved: str = ""  # how the pod's room was reserved: "write" (a Lease write), "credit" (none), "" (not)


@dataclass(eq=False)
class _Request:
    """One pod waiting to be placed on a node by this replica (see :meth:`Ledger.place`)."""

    pod: Pod
    wake: threading.Event = field(default_factory=threading.Event)
    lead: bool = False  # this thread is to reserve the next batch
    result: Placement | None = None  # final: no Binding to post
    started: float | None = None  # reserved at this monotonic time: post the Binding
    error: BaseException | None = None
    conflicts: int = 0
    before_bind: Callable[[], None] | None = None
    decision_id: str = ""
    credited: bool = False  # reserved under this replica's credit (no Lease write)


@dataclass(eq=False)
class _NodeQueue:
    pending: list[_Request] = field(default_factory=list)
    leading: bool = False


def parse_reservations(annotations: dict | None) -> dict[str, Reservation]:
    text = (annotations or {}).get(ANNOTATION)
    if not text:
        return {}
    try:
        doc = json.loads(text)
        return {str(uid): Reservation.from_json(entry) for uid, entry in doc.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        # A damaged ledger must not block the node forever: start it afresh (the pods bound there
        # are still counted from the watch cache; what other replicas placed that this cache has
        # not seen yet is forgotten, so this is logged loudly).
        event(log, "unreadable reservation ledger, starting it afresh", logging.WARNING, error=str(exc))
        return {}


class Ledger:
    def __init__(self, kube: KubeClient, state: NodeState, namespace: str, replica: str, *, ttl_s: float = 120.0,
                 abort_s: float = 20.0, retries: int = 12, credit_share: float = 0.0, request_timeout_s: float = 10.0,
                 clock: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None) -> None:
        """``credit_share``: the share of a node's allocatable this replica reserves ahead with each
        Lease write on it (0: none, every batch writes the Lease); ``request_timeout_s``: the API
        request timeout, which a pod's Binding must land within before its credit expires."""
        self.kube = kube
        self.state = state
        self.namespace = namespace
        self.replica = replica
        self.ttl_s = ttl_s
        self.abort_s = abort_s
        self.retries = retries
        self.clock = clock
        self.monotonic = monotonic
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.leases = LEASES.format(ns=urllib.parse.quote(namespace))
        self._queues: dict[str, _NodeQueue] = {}
        self._locks_lock = threading.Lock()
        self._lease_cache: dict[str, dict] = {}  # node -> the Lease as this replica last wrote it
        self.pod_checks = 0  # step 2's GETs of a pod (expired entries the cache does not show bound)
        self.pods_absent = 0  # step 2's expired entries dropped because the cache's list proves the pod gone
        self.credit_share = credit_share
        self.request_timeout_s = request_timeout_s
        # One key per process: a restarted replica of the same name must not take its predecessor's
        # credit for its own (it does not know what was placed under it).
        self.credit_key = f"credit/{replica}/{secrets.token_hex(4)}"
        self._credits: dict[str, _Credit] = {}  # node -> this replica's credit there
        self.credited = 0  # pods reserved under a credit (no Lease write of their own)
        self.credit_lists = 0  # step 2's consistent lists of a node's pods (another replica's expired credit)

    # -- the protocol ------------------------------------------------------------------------------

    def place(self, pod: Pod, node: str, before_bind: Callable[[], None] | None = None,
              decision_id: str = "") -> Placement:
        """Reserve room for ``pod`` on ``node`` and bind it (see the module docstring).

        ``before_bind`` runs in the caller's thread once the room is reserved, just before the
        Binding is posted (the decision log's write-ahead record); never when no Binding is posted.
        ``decision_id`` goes on the Binding (and so on the pod) as ``neurokube.io/decision-id``.

        Threads of one replica share the work per node (group commit): the first thread to
        arrive leads, takes up to ``MAX_BATCH`` waiting pods, reserves them with one round of
        steps 1-5, hands the lead to the next waiting thread and binds its own pod; every other
        thread of the batch binds its own pod (step 6) as soon as the write is done. Replicas
        still race, and the Lease settles that.
        """
        request = _Request(pod, before_bind=before_bind, decision_id=decision_id)
        entered = time.perf_counter()
        with self._locks_lock:
            queue_ = self._queues.setdefault(node, _NodeQueue())
            queue_.pending.append(request)
            if not queue_.leading:
                queue_.leading = True
                request.lead = True
        while True:
            if request.lead:
                request.lead = False
                self._lead(node, queue_)
            request.wake.wait()
            request.wake.clear()
            if request.error is not None:
                raise request.error
            if request.result is not None:
                return request.result
            if request.started is not None:
                return self._bind(request, node, time.perf_counter() - entered)

    def _lead(self, node: str, queue_: _NodeQueue) -> None:
        """Reserve one batch (which starts with the leader's own request), then pass the lead on."""
        with self._locks_lock:
            batch = queue_.pending[:MAX_BATCH]
            del queue_.pending[:MAX_BATCH]
        try:
            self._reserve(batch, node)
        except BaseException as exc:  # every pod of the batch gets the error (e.g. apiserver down)
            for request in batch:
                if request.result is None and request.started is None:
                    request.error = exc
        finally:
            with self._locks_lock:
                if queue_.pending:
                    queue_.pending[0].lead = True
                    queue_.pending[0].wake.set()
                else:
                    queue_.leading = False
            for request in batch:
                request.wake.set()

    def _reserve(self, batch: list[_Request], node: str) -> None:
        """Steps 1-4 for every pod of ``batch`` at once: sets each request's final result, or its
        reservation time when its pod is reserved and may be bound."""
        conflicts = 0
        cached = self.state.node(node)
        if cached is None:
            for request in batch:
                request.result = Placement(NODE_GONE, node, "the node no longer exists", conflicts)
            return
        remaining = []
        for request in batch:
            why = admits(request.pod, cached)
            if why is not None:
                request.result = Placement(binding.NODE_REJECTED, node, why, conflicts)
            else:
                remaining.append(request)
        remaining = self._spend_credit(remaining, node)
        for attempt in range(self.retries):
            if not remaining:
                return
            lease = self._read(node)
            now = self.clock()
            entries, checked = self._settle(node, parse_reservations(lease["metadata"].get("annotations")), now)
            converted = self._convert_credit(node, entries, now)
            remaining = self._admit(remaining, node, cached, entries, now, conflicts)
            if not remaining:
                if checked:  # keep what the apiserver said, so that no one asks again (best effort)
                    self._write_converted(lease, node, cached, entries, now, converted)
                return
            if not self._write_converted(lease, node, cached, entries, now, converted):
                conflicts += 1
                self.sleep(self.rng.uniform(0.002, 0.02) * min(attempt + 1, 8))
                continue
            started = self.monotonic()
            for request in remaining:
                request.conflicts, request.started = conflicts, started
            return
        for request in remaining:
            request.result = Placement(CONTENDED, node, f"{conflicts} Lease write conflicts", conflicts)

    # -- credits: room reserved ahead, so that most pods need no Lease write of their own --------------

    def _spend_credit(self, requests: list[_Request], node: str) -> list[_Request]:
        """Reserve what fits in this replica's credit on ``node`` (no request); returns the rest.

        Only while the credit has ``abort_s`` + the request timeout left: a pod reserved under it
        has its Binding posted within ``abort_s`` and landed within the timeout, so every pod bound
        under a credit is bound before the credit expires (what step 2's rule for expired credits
        relies on)."""
        if node not in self._credits:  # a lock-free look first: most nodes have none
            return requests
        rest, open_ = [], []
        for request in requests:  # the cache's lock is not taken under this ledger's
            held = self.state.pod(request.pod.uid) if request.pod.uid else None
            if held is not None and held.bound and held.node_name == node:
                request.result = Placement(binding.ALREADY_BOUND, node, "already on this node")
            else:
                open_.append(request)
        with self._locks_lock:
            credit = self._credits.get(node)
            if credit is None or self.clock() + self.abort_s + self.request_timeout_s >= credit.entry.expires:
                return open_
            started = self.monotonic()
            for request in open_:
                pod = request.pod
                prior = credit.used.pop(pod.uid, None)  # a retry of a pod already reserved under it
                cpu, memory, pods = credit.room()
                if pod.uid and pod.resources.cpu <= cpu and pod.resources.memory <= memory and pods >= 1:
                    credit.used[pod.uid] = Reservation(pod.key, pod.resources.cpu, pod.resources.memory,
                                                       credit.entry.expires, self.replica)
                    request.started, request.credited = started, True
                    self.credited += 1
                else:
                    if prior is not None:
                        credit.used[pod.uid] = prior
                    rest.append(request)
            return rest

    def _convert_credit(self, node: str, entries: dict[str, Reservation], now: float) -> set[str]:
        """Before a write: the pods reserved under this replica's credit become entries of their
        own (in flight, with a fresh expiry), and the credit leaves ``entries`` (:meth:`_grant_credit`
        may add a new one). Returns the converted pods' UIDs."""
        entries.pop(self.credit_key, None)
        with self._locks_lock:
            credit = self._credits.get(node)
            used = dict(credit.used) if credit is not None else {}
        for uid, reservation in used.items():
            entries[uid] = replace(reservation, expires=now + self.ttl_s)
        return set(used)

    def _grant_credit(self, node: str, cached: Node, entries: dict[str, Reservation], now: float) -> Reservation | None:
        """A new credit on ``node`` for this write (added to ``entries``): ``credit_share`` of its
        allocatable, or what is left after ``entries`` and the pods placed by others if less. None
        while another replica is placing there (it holds a credit, or a pod in flight): a credit
        would hold room that replica may need, and under contention it would save few writes."""
        if self.credit_share <= 0 or any(
                (entry.credit and key != self.credit_key) or (not entry.credit and not entry.bound
                                                              and entry.by != self.replica)
                for key, entry in entries.items()):
            return None
        used_cpu, used_memory, used_pods = self._used(node, entries)
        cpu = min(cached.alloc_cpu - used_cpu, int(cached.alloc_cpu * self.credit_share))
        memory = min(cached.alloc_memory - used_memory, int(cached.alloc_memory * self.credit_share))
        pods = min(cached.alloc_pods - used_pods, max(1, int(cached.alloc_pods * self.credit_share)))
        if cpu <= 0 or memory <= 0 or pods <= 0:
            return None
        credit = Reservation("", cpu, memory, now + self.ttl_s, self.replica, pods=pods, credit=True)
        entries[self.credit_key] = credit
        return credit

    def _write_converted(self, lease: dict, node: str, cached: Node, entries: dict[str, Reservation], now: float,
                         converted: set[str]) -> bool:
        """Step 4 with this replica's credit: take a new one, write, and on success make it the
        credit spent from; a write of unknown outcome freezes the old one. False on a conflict."""
        credit = self._grant_credit(node, cached, entries, now)
        try:
            written = self._write(lease, entries)
        except BaseException:
            self._freeze_credit(node)
            raise
        if written:
            self._credit_written(node, converted, credit)
        return written

    def _credit_written(self, node: str, converted: set[str], credit: Reservation | None) -> None:
        """After a successful write: the converted pods are entries now, and the credit is the new one."""
        with self._locks_lock:
            # Only this node's lead reserves under its credit, and the lead is writing: nothing can
            # have been added since the conversion (a release may have removed some).
            old = self._credits.pop(node, None)
            if old is not None and not set(old.used) <= converted:  # a bug: refuse to go on rather than over-commit
                raise RuntimeError(f"pods were reserved under the credit on {node} during its conversion")
            if credit is not None:
                self._credits[node] = _Credit(credit)

    def _freeze_credit(self, node: str) -> None:
        """A write whose outcome is unknown (an error, a timeout) may have replaced the credit on
        ``node``: reserve nothing more under it; its pods are still converted at the next write."""
        with self._locks_lock:
            credit = self._credits.get(node)
            if credit is not None:
                credit.entry = replace(credit.entry, expires=0.0)

    def _expire_credits(self, node: str, expired: list[str], out: dict[str, Reservation], now: float) -> bool:
        """Step 2 for other replicas' credits on ``node`` that expired more than ``LIST_SKEW_S`` ago:
        every pod bound under them was bound before they expired, so a consistent list of the
        node's pods, read now, shows each of them. Those pods become bound entries (with every
        other pod there that has none: counted once either way) and the credits go. True when the
        list was read; if it cannot be, the credits stay (wasted room, never over-commit)."""
        self.credit_lists += 1
        try:
            items = self.kube.get("/api/v1/pods", fieldSelector=f"spec.nodeName={node}").get("items") or []
        except (KubeError, TemporaryError) as exc:
            event(log, "could not list a node's pods to retire an expired credit (it stays)", logging.WARNING,
                  node=node, error=str(exc))
            return False
        try:
            pods = [parse_pod(item) for item in items]
        except (InputError, KeyError, TypeError, ValueError) as exc:  # its room unknown: keep the credits
            event(log, "an unreadable pod on the node keeps an expired credit", logging.WARNING, node=node,
                  error=str(exc))
            return False
        for key in expired:
            out.pop(key, None)
        for pod in pods:
            if pod.uid and pod.uid not in out and not pod.terminal and pod.node_name == node:
                out[pod.uid] = Reservation(pod.key, pod.resources.cpu, pod.resources.memory, now + self.ttl_s,
                                           self.replica, bound=True)
        return True

    def _admit(self, requests: list[_Request], node: str, cached: Node, entries: dict[str, Reservation], now: float,
               conflicts: int) -> list[_Request]:
        """Step 3 for one read of the Lease: the requests whose pods fit beside ``entries``, each
        added to ``entries`` in turn; every other request gets its final result."""
        used_cpu, used_memory, used_pods = self._used(node, entries)
        admitted = []
        for request in requests:
            pod = request.pod
            held = self.state.pod(pod.uid) if pod.uid else None
            if (held is not None and held.bound and held.node_name == node) or (
                    pod.uid in entries and entries[pod.uid].bound):
                request.result = Placement(binding.ALREADY_BOUND, node, "already on this node", conflicts)
                continue
            cpu, memory, count = used_cpu, used_memory, used_pods
            prior = entries.get(pod.uid)
            if prior is not None:  # the pod's own earlier entry (a retry, a duplicate delivery to another
                # replica, or twice in this batch) is replaced if it fits, and stays counted if not
                cpu, memory, count = cpu - prior.cpu, memory - prior.memory, count - 1
            short = resource_shortfalls(pod, cached, cpu, memory, count)
            if short:
                request.result = Placement(NO_ROOM, node, ", ".join(short), conflicts)
                continue
            admitted.append(request)
            used_cpu, used_memory, used_pods = cpu + pod.resources.cpu, memory + pod.resources.memory, count + 1
            entries[pod.uid] = Reservation(pod.key, pod.resources.cpu, pod.resources.memory, now + self.ttl_s,
                                           self.replica)
        return admitted

    def _settle(self, node: str, entries: dict[str, Reservation],
                now: float) -> tuple[dict[str, Reservation], bool]:
        """Step 2: the entries that may still hold room on ``node`` (see the module docstring), and
        whether the apiserver was asked about any."""
        out, checked, expired = {}, False, []
        for uid, entry in entries.items():
            if entry.credit:
                out[uid] = entry  # counted in full while it stands (this replica's own: see _convert_credit)
                if uid != self.credit_key and entry.expires + LIST_SKEW_S < now:
                    expired.append(uid)
                continue
            pod = self.state.pod(uid)
            if self.state.deleted(uid) or (pod is not None and pod.terminal):
                continue  # ended: its room is free
            if pod is not None and pod.bound:
                if pod.node_name == node:
                    out[uid] = entry if entry.bound else replace(entry, bound=True)
                continue  # bound elsewhere: it never held room here
            if entry.expires > now:
                out[uid] = entry  # in flight, or bound but not yet seen by this cache
                continue
            if pod is None and self.state.absent_since(uid, entry.expires - self.ttl_s):
                self.pods_absent += 1
                continue  # deleted before the cache's latest list (which began after the entry was written)
            checked = True
            kept = self._check(uid, entry, node, now)
            if kept is not None:
                out[uid] = kept
        if expired:
            checked = self._expire_credits(node, expired, out, now) or checked
        return out, checked

    def _check(self, uid: str, entry: Reservation, node: str, now: float) -> Reservation | None:
        """An expired entry the watch does not show bound here: ask the apiserver (a consistent read)."""
        namespace, _, name = entry.pod.partition("/")
        self.pod_checks += 1
        try:
            pod = trust.fetch_pod(self.kube, namespace, name)
        except InputError:
            return entry  # unreadable: keep counting it (the safe side) and ask again next time
        if pod is None or pod.uid != uid or pod.node_name != node or pod.terminal:
            return None  # gone, recreated, never bound here, bound elsewhere, or ended
        return replace(entry, bound=True, expires=now + self.ttl_s)

    def _used(self, node: str, entries: dict[str, Reservation]) -> tuple[int, int, int]:
        """Step 3's room in use on ``node``: the entries plus the pods the cache shows there without one.
        The usage and the entries' pods are one read of the cache: read apart, a pod the watch
        reported bound in between would be in neither (the over-commit the many-replicas test caught)."""
        (cpu, memory, pods), seen = self.state.usage_and_pods(node, entries)
        for uid, entry in entries.items():
            pod = seen[uid]
            if pod is not None and pod.bound and pod.node_name == node and not pod.terminal:
                # In both: count it once, at the larger of the two requests (a resize may differ).
                cpu += max(entry.cpu - pod.resources.cpu, 0)
                memory += max(entry.memory - pod.resources.memory, 0)
            else:
                cpu += entry.cpu
                memory += entry.memory
                pods += entry.pods
        return cpu, memory, pods

    def _bind(self, request: _Request, node: str, reserve_s: float) -> Placement:
        """Step 6 for one reserved pod, in its own thread."""
        pod, conflicts, reserved = request.pod, request.conflicts, "credit" if request.credited else "write"
        if self.monotonic() - request.started > self.abort_s:
            self.release(pod, node)
            return Placement(TOO_SLOW, node, f"reservation older than {self.abort_s:.0f}s", conflicts,
                             reserved=reserved)
        if request.before_bind is not None:
            request.before_bind()
        failpoints.before_bind(pod.key, node)
        outcome, detail = binding.bind(self.kube, pod, node, request.decision_id)
        if outcome in (binding.POD_GONE, binding.NAMESPACE_GONE, binding.NODE_REJECTED) or (
                outcome == binding.ALREADY_BOUND and detail != node):
            self.release(pod, node)
        return Placement(outcome, detail if outcome == binding.ALREADY_BOUND else node, detail, conflicts,
                         reserve_s, reserved)

    def release(self, pod: Pod, node: str) -> None:
        """Best-effort removal of ``pod``'s reservation (it would expire anyway)."""
        with self._locks_lock:
            credit = self._credits.get(node)
            if credit is not None and credit.used.pop(pod.uid, None) is not None:
                return  # reserved under the credit and not yet written: its room goes back to the credit
        for _ in range(3):
            try:
                lease = self._read(node)
                reservations = parse_reservations(lease["metadata"].get("annotations"))
                if pod.uid not in reservations:
                    return
                del reservations[pod.uid]
                if self._write(lease, reservations):
                    return
            except TemporaryError as exc:
                event(log, "could not release a reservation (it will expire)", logging.DEBUG, pod=pod.key,
                      node=node, error=str(exc))
                return

    def collect_garbage(self, nodes: set[str]) -> int:
        """Delete the Leases of nodes that no longer exist; returns how many."""
        items = self.kube.get(self.leases, labelSelector=f"{LEDGER_LABEL}=node").get("items") or []
        deleted = 0
        for lease in items:
            name = lease["metadata"]["name"]
            if name in nodes:
                continue
            try:
                self.kube.get(f"/api/v1/nodes/{urllib.parse.quote(name)}")
                continue  # the caller's node list was stale
            except KubeError as exc:
                if not exc.not_found:
                    raise
            try:
                self.kube.request("DELETE", f"{self.leases}/{urllib.parse.quote(name)}",
                                  {"preconditions": {"resourceVersion": lease["metadata"]["resourceVersion"]}})
                deleted += 1
            except KubeError as exc:
                if exc.status not in (404, 409):
                    raise
        return deleted

    # -- the Lease ----------------------------------------------------------------------------------

    def _read(self, node: str) -> dict:
        """The node's Lease: as this replica last wrote it if it did (a write conditional on that
        version fails if anyone wrote since, and the next read asks the apiserver), else fresh."""
        with self._locks_lock:
            cached = self._lease_cache.get(node)
        if cached is not None:
            return json.loads(json.dumps(cached))
        path = f"{self.leases}/{urllib.parse.quote(node)}"
        for _ in range(3):
            try:
                return self.kube.get(path)
            except KubeError as exc:
                if not exc.not_found:
                    raise
            try:
                return self.kube.request("POST", self.leases, self._new_lease(node))
            except KubeError as exc:
                if exc.not_found:
                    raise TemporaryError(f"the ledger namespace {self.namespace!r} does not exist; create it "
                                         "(deploy/knative/namespace.yaml) or set NEUROKUBE_LEDGER_NAMESPACE") from None
                if not exc.conflict:
                    raise
        raise TemporaryError(f"could not read or create the ledger Lease of node {node}")

    def _new_lease(self, node: str) -> dict:
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": node, "namespace": self.namespace,
                             "labels": {LEDGER_LABEL: "node", "app.kubernetes.io/managed-by": "neurokube"},
                             "annotations": {ANNOTATION: "{}"}},
                "spec": {"holderIdentity": self.replica, "leaseDurationSeconds": int(self.ttl_s)}}

    def _write(self, lease: dict, reservations: dict[str, Reservation]) -> bool:
        """Conditional update (the read resourceVersion); False on a conflict."""
        body = json.loads(json.dumps(lease))  # a copy
        meta = body["metadata"]
        meta.pop("managedFields", None)
        meta.setdefault("annotations", {})[ANNOTATION] = json.dumps(
            {uid: r.to_json() for uid, r in reservations.items()}, separators=(",", ":"))
        body["spec"] = {**(body.get("spec") or {}), "holderIdentity": self.replica,
                        "renewTime": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
        try:
            updated = self.kube.request("PUT", f"{self.leases}/{urllib.parse.quote(meta['name'])}", body)
        except KubeError as exc:
            with self._locks_lock:
                self._lease_cache.pop(meta["name"], None)
            if exc.conflict or exc.not_found:
                return False
            raise
        except BaseException:
            with self._locks_lock:
                self._lease_cache.pop(meta["name"], None)
            raise
        with self._locks_lock:
            self._lease_cache[meta["name"]] = updated
        lease["metadata"] = updated["metadata"]
        return True
