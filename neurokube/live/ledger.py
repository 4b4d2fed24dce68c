"""Scale-out safety: reserve capacity in a per-node Lease, check it fresh, then bind.

Several binder replicas (and the sweeper, and the extender's bind verb) decide from their own,
possibly stale, watch caches. Two of them can pick the same almost-full node for different pods;
each binding alone is valid, together they over-commit the node. The apiserver checks nothing of
the sort (a Binding only sets ``spec.nodeName``), so the replicas must serialise per node.

Every placement on node N goes through N's *ledger*, a ``coordination.k8s.io/v1`` Lease named N
in the ledger namespace, whose annotation ``neurokube.io/reservations`` lists the pods that
replicas are about to bind there::

    1. GET the Lease                         -> reservations R, resourceVersion v
    2. GET the Node (beside step 3)          -> 404: node gone (try the next best node)
    3. LIST pods with spec.nodeName=N        -> the pods bound there, a consistent read
    4. used = non-terminal pods on N + live reservations in R (not expired, not yet in the list)
       the pod must fit allocatable - used, and pass taints/selector/affinity on the fresh Node
    5. PUT the Lease with R' = live R + {pod}, conditional on v   -> 409: someone else wrote
       first, go back to 1 (bounded retries with jitter)
    6. POST the Binding (only if step 5 happened less than ``bind_abort_s`` ago)

Why it is safe: successful writes of N's Lease are totally ordered by resourceVersion. Take two
pods P and Q bound to N. Say P's write came first. Q's write was conditional on a version at or
after P's write, so Q's step 1 saw P's reservation unless it had been pruned; a reservation is
pruned only by a writer whose step-3 list showed P bound on N, and Q's list ran after that
writer's (it read the Lease after that write), and a binding is never undone, so Q's list shows
P. Either way Q's check counted P. Hence the sum over the pods bound to N never exceeds its
allocatable, however stale each replica's cache is. A reservation of a replica that died before
binding expires after ``reservation_ttl_s``. That is safe because a replica never binds more than
``bind_abort_s`` after its reservation, and ``bind_abort_s`` + request timeout < TTL leaves the
difference as the tolerated clock skew between replicas (90 s with the defaults).

What it cannot guard against: binders that bypass the ledger (kube-scheduler placing
default-scheduler pods on the same nodes at the same moment). That race exists between any two
schedulers; the kubelet's admission then rejects the pod (OutOfcpu), as upstream.

Cost: four requests per round plus one Binding per pod; requests for different nodes never
contend. Within one replica the threads that want the same node share a round (group commit, see
:meth:`Ledger.place`): one Lease write reserves every pod of the batch, and the proof above holds
unchanged, since a batch is checked and written as one reservation of its summed requests. The
Lease GET is skipped when this replica wrote the Lease last: its write is conditional on that
version, so if anyone wrote since, it fails with 409 and the retry reads afresh.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import threading
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from neurokube.adapters.kube import KubeClient, KubeError
from neurokube.errors import InputError, TemporaryError
from neurokube.live import binding, failpoints
from neurokube.live.feasibility import admits, resource_shortfalls
from neurokube.live.objects import Pod, parse_node, parse_pod
from neurokube.logs import event

log = logging.getLogger("neurokube.live.ledger")

ANNOTATION = "neurokube.io/reservations"
LEDGER_LABEL = "neurokube.io/ledger"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"

# Outcomes of place(), beyond binding's BOUND, ALREADY_BOUND, POD_GONE and NODE_REJECTED.
NODE_GONE = "node_gone"
NO_ROOM = "no_room"
CONTENDED = "contended"
TOO_SLOW = "too_slow"

MAX_BATCH = 64  # pods reserved on one node by one Lease write


@dataclass(frozen=True, slots=True)
class Reservation:
    pod: str  # namespace/name
    cpu: int  # millicores
    memory: int  # bytes
    expires: float  # wall-clock seconds (the writer's clock)
    by: str = ""

    def to_json(self) -> dict:
        return {"pod": self.pod, "cpu": self.cpu, "memory": self.memory, "expires": round(self.expires, 3),
                "by": self.by}

    @classmethod
    def from_json(cls, doc: dict) -> Reservation:
        return cls(str(doc["pod"]), int(doc["cpu"]), int(doc["memory"]), float(doc["expires"]), str(doc.get("by", "")))


@dataclass
class Placement:
    outcome: str
    node: str
    detail: str = ""
    conflicts: int = 0  # Lease write conflicts on the way
    fresh_pods: list[dict] = field(default_factory=list)  # the node's pods as listed (for the cache)
    reserve_s: float = 0.0  # from place() to the reservation written (waiting for the node's round included)


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
    listed: list[dict] = field(default_factory=list)


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
        # are still counted from the fresh list; only in-flight reservations are forgotten).
        event(log, "unreadable reservation ledger, starting it afresh", logging.WARNING, error=str(exc))
        return {}


class Ledger:
    def __init__(self, kube: KubeClient, namespace: str, replica: str, *, ttl_s: float = 120.0,
                 abort_s: float = 20.0, retries: int = 12, clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None) -> None:
        self.kube = kube
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
        self._fetch = ThreadPoolExecutor(max_workers=4, thread_name_prefix="ledger-node")

    # -- the protocol ------------------------------------------------------------------------------

    def place(self, pod: Pod, node: str) -> Placement:
        """Reserve room for ``pod`` on ``node`` and bind it (see the module docstring).

        Threads of one replica share the work per node (group commit): the first thread to
        arrive leads, takes up to ``MAX_BATCH`` waiting pods, reserves them with one round of
        steps 1-5, hands the lead to the next waiting thread and binds its own pod; every other
        thread of the batch binds its own pod (step 6) as soon as the write is done. Replicas
        still race, and the Lease settles that.
        """
        request = _Request(pod)
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
        """Steps 1-5 for every pod of ``batch`` at once: sets each request's final result, or its
        reservation time when its pod is reserved and may be bound."""
        conflicts = 0
        remaining = batch
        for attempt in range(self.retries):
            lease = self._read(node)
            reservations = parse_reservations(lease["metadata"].get("annotations"))
            # Step 2 runs beside step 3 (only the list must come after the Lease read).
            node_reply = self._fetch.submit(self.kube.get, f"/api/v1/nodes/{urllib.parse.quote(node)}")
            try:
                listed = self.kube.get("/api/v1/pods", fieldSelector=f"spec.nodeName={node}").get("items") or []
            finally:
                wait([node_reply])
            try:
                fresh_node = parse_node(node_reply.result())
            except KubeError as exc:
                if exc.not_found:
                    for request in remaining:
                        request.result = Placement(NODE_GONE, node, "the node no longer exists", conflicts)
                    return
                raise
            admitted = []
            for request in remaining:
                why = admits(request.pod, fresh_node)
                if why is not None:
                    request.result = Placement(binding.NODE_REJECTED, node, why, conflicts)
                else:
                    admitted.append(request)
            if not admitted:
                return
            pods = []
            for doc in listed:
                try:
                    pods.append(parse_pod(doc))
                except InputError:
                    continue
            on_node = {p.uid for p in pods if p.uid}
            started = self.monotonic()
            now = self.clock()
            batch_uids = {r.pod.uid for r in admitted}
            live = {uid: r for uid, r in reservations.items()
                    if r.expires > now and uid not in on_node and uid not in batch_uids}
            holding = [p for p in pods if not p.terminal]
            used_cpu = sum(p.resources.cpu for p in holding) + sum(r.cpu for r in live.values())
            used_memory = sum(p.resources.memory for p in holding) + sum(r.memory for r in live.values())
            used_pods = len(holding) + len(live)
            remaining = []
            for request in admitted:
                pod = request.pod
                if pod.uid and pod.uid in on_node:
                    request.result = Placement(binding.ALREADY_BOUND, node, "already on this node", conflicts, listed)
                    continue
                short = resource_shortfalls(pod, fresh_node, used_cpu, used_memory, used_pods)
                if short:
                    request.result = Placement(NO_ROOM, node, ", ".join(short), conflicts, listed)
                    continue
                remaining.append(request)
                if pod.uid not in live:  # the same pod twice in one batch (a duplicate delivery) counts once
                    used_cpu += pod.resources.cpu
                    used_memory += pod.resources.memory
                    used_pods += 1
                live[pod.uid] = Reservation(pod.key, pod.resources.cpu, pod.resources.memory, now + self.ttl_s,
                                            self.replica)
            if not remaining:
                return
            if not self._write(lease, live):
                conflicts += 1
                self.sleep(self.rng.uniform(0.002, 0.02) * min(attempt + 1, 8))
                continue
            for request in remaining:
                request.conflicts, request.listed, request.started = conflicts, listed, started
            return
        for request in remaining:
            request.result = Placement(CONTENDED, node, f"{conflicts} Lease write conflicts", conflicts)

    def _bind(self, request: _Request, node: str, reserve_s: float) -> Placement:
        """Step 6 for one reserved pod, in its own thread."""
        pod, conflicts, listed = request.pod, request.conflicts, request.listed
        if self.monotonic() - request.started > self.abort_s:
            self.release(pod, node)
            return Placement(TOO_SLOW, node, f"reservation older than {self.abort_s:.0f}s", conflicts)
        failpoints.before_bind(pod.key, node)
        outcome, detail = binding.bind(self.kube, pod, node)
        if outcome in (binding.POD_GONE, binding.NODE_REJECTED) or (
                outcome == binding.ALREADY_BOUND and detail != node):
            self.release(pod, node)
        return Placement(outcome, detail if outcome == binding.ALREADY_BOUND else node, detail, conflicts, listed,
                         reserve_s)

    def release(self, pod: Pod, node: str) -> None:
        """Best-effort removal of ``pod``'s reservation (it would expire anyway)."""
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
