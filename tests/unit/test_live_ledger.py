"""The per-node ledger that keeps binder replicas from over-committing a node: account for each
pod in the node's Lease, check against it and the watch cache, bind; conflicting Lease writes
retry; entries of pods in flight and of bound pods count, expired ones that the apiserver says
never bound do not, ended pods free their room; a vanished node, a pod bound elsewhere, a deleted
pod and a too-slow replica are all handled. No pod or node is read per placement. The lockstep
tests force two replicas through the race window and show the check fails without the
conditional write; replicas whose caches never see each other's bindings still never
over-commit. Threads of one replica that want the same node share one Lease write (group commit)
without over-committing it, an error reaches every pod of the batch, and a replica reuses the
Lease it wrote last until a conflict makes it read again."""

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from neurokube.adapters.kube import KubeError
from neurokube.errors import TemporaryError
from neurokube.k8s.objects import parse_pod
from neurokube.k8s.quantity import cpu_milli
from neurokube.live import binding, ledger
from neurokube.live.cache import ClusterCache
from neurokube.live.ledger import ANNOTATION, Ledger, Reservation, parse_reservations
from neurokube.testing import FakeKube, node_doc, pod_doc, sync

LEASE = "/apis/coordination.k8s.io/v1/namespaces/neurokube/leases/"


class Replica:
    """A Ledger over its own watch cache. ``stale``: the cache is loaded once and never sees
    anything after (the worst case); otherwise it is brought up to date before each placement,
    as a watch would be."""

    def __init__(self, kube, replica, stale, cache_clock=time.time, **kw):
        self.kube, self.stale = kube, stale
        self.cache = ClusterCache(None, "neurokube", clock=cache_clock)
        sync(self.cache, kube)
        self.ledger = Ledger(kube, self.cache, "neurokube", replica, sleep=lambda s: None, rng=random.Random(0),
                             **kw)

    def place(self, pod, node):
        if not self.stale:
            sync(self.cache, self.kube)
        return self.ledger.place(pod, node)

    def __getattr__(self, name):
        return getattr(self.ledger, name)


def make(kube, replica="r1", stale=False, cache_clock=time.time, **kw):
    return Replica(kube, replica, stale, cache_clock, **kw)


def new_pod(kube, name, cpu="1", node=None):
    doc = pod_doc(name, cpu, "64Mi", uid=f"uid-{name}", node=node)
    kube.add_pod(doc)
    return parse_pod(doc)


def reservations(kube, node):
    return parse_reservations(kube.leases[("neurokube", node)]["metadata"]["annotations"])


def test_reserve_then_bind():
    kube = FakeKube([node_doc("n1", cpu="2")])
    placement = make(kube).place(new_pod(kube, "p"), "n1")
    assert placement.outcome == binding.BOUND and kube.bindings == [("default/p", "n1")]
    assert set(reservations(kube, "n1")) == {"uid-p"}
    assert kube.leases[("neurokube", "n1")]["spec"]["holderIdentity"] == "r1"


def test_in_flight_reservations_count_and_expired_ones_do_not():
    kube = FakeKube([node_doc("n1", cpu="2")])
    lg = make(kube, clock=lambda: 1000.0)
    lg.place(new_pod(kube, "first"), "n1")  # creates the lease
    lease = kube.leases[("neurokube", "n1")]
    lease["metadata"]["annotations"][ANNOTATION] = lease["metadata"]["annotations"][ANNOTATION][:-1] + (
        ',"ghost": {"pod": "default/ghost", "cpu": 1000, "memory": 0, "expires": 1060.0, "by": "r2"}}')
    lease["metadata"]["resourceVersion"] = kube._next_rv()  # r2's write, as the apiserver would version it
    # first (1 CPU, bound) + ghost (1 CPU, reserved by a replica that has not bound yet): full
    assert lg.place(new_pod(kube, "second"), "n1").outcome == ledger.NO_ROOM
    # The ghost's reservation has expired; late's cache listed the pods before it was written.
    late = make(kube, clock=lambda: 2000.0, cache_clock=lambda: 900.0)
    assert late.place(new_pod(kube, "third"), "n1").outcome == binding.BOUND
    # The ghost expired and the apiserver has no such pod (one GET): dropped. first is bound:
    # kept for as long as it runs, now marked bound.
    held = reservations(kube, "n1")
    assert set(held) == {"uid-first", "uid-third"} and held["uid-first"].bound and not held["uid-third"].bound
    assert late.pod_checks == 1


def test_a_restarted_replica_drops_the_entries_of_pods_deleted_before_it_listed_without_asking():
    kube = FakeKube([node_doc("n1", cpu="2")])
    r1 = make(kube, "r1")
    for name in ("a", "b"):
        assert r1.place(new_pod(kube, name), "n1").outcome == binding.BOUND
    kube.pods.pop(("default", "a"))  # deleted while no replica of the new generation was watching
    # Ten minutes later a new replica starts: its first list shows b but not a, and both entries
    # have expired. a's entry goes without a GET; b is bound there and keeps its room.
    later = lambda: time.time() + 600  # noqa: E731
    r2 = make(kube, "r2", clock=later, cache_clock=later)
    assert r2.place(new_pod(kube, "c"), "n1").outcome == binding.BOUND
    assert r2.place(new_pod(kube, "d"), "n1").outcome == ledger.NO_ROOM
    assert set(reservations(kube, "n1")) == {"uid-b", "uid-c"}
    assert r2.pods_absent == 1 and r2.pod_checks == 0
    assert [m for m, p in kube.requests if m == "GET" and "/pods/" in p] == []


def test_no_pod_or_node_is_read_per_placement():
    kube = FakeKube([node_doc("n1", cpu="8")])
    lg = make(kube)
    lg.place(new_pod(kube, "warm"), "n1")
    before = len(kube.requests)
    for i in range(5):
        assert lg.place(new_pod(kube, f"p{i}"), "n1").outcome == binding.BOUND
    made = kube.requests[before:]
    assert [m for m, _ in made].count("GET") == 0, made
    assert sorted({(m, p.rsplit("/", 1)[-1] if m == "PUT" else p.split("/")[-1]) for m, p in made}) == [
        ("POST", "binding"), ("PUT", "n1")]


def test_ended_pods_free_their_room_and_leave_the_ledger():
    kube = FakeKube([node_doc("n1", cpu="2")])
    lg = make(kube)
    for name in ("a", "b"):
        assert lg.place(new_pod(kube, name), "n1").outcome == binding.BOUND
    assert lg.place(new_pod(kube, "c"), "n1").outcome == ledger.NO_ROOM
    kube.pods.pop(("default", "a"))  # deleted: the watch sees it go
    kube.pods[("default", "b")]["status"] = {"phase": "Succeeded"}  # terminal
    assert lg.place(new_pod(kube, "d"), "n1").outcome == binding.BOUND
    assert lg.place(new_pod(kube, "e"), "n1").outcome == binding.BOUND
    assert set(reservations(kube, "n1")) == {"uid-d", "uid-e"} and lg.pod_checks == 0


def test_a_cache_that_never_sees_the_other_replicas_bindings_still_counts_them():
    kube = FakeKube([node_doc("n1", cpu="2")])
    r1, r2 = make(kube, "r1"), make(kube, "r2", stale=True)  # r2's cache: an empty node, forever
    r3 = make(kube, "r3", stale=True, clock=lambda: time.time() + 3600)  # the same, an hour later
    for name in ("a", "b"):
        assert r1.place(new_pod(kube, name), "n1").outcome == binding.BOUND
    assert r2.place(new_pod(kube, "c"), "n1").outcome == ledger.NO_ROOM
    # Long after the entries' expiry, r3 still cannot see a or b: it asks the apiserver, once each.
    assert r3.place(new_pod(kube, "d"), "n1").outcome == ledger.NO_ROOM and r3.pod_checks == 2
    assert all(r.bound for r in reservations(kube, "n1").values())


def test_bound_pods_are_counted_once():
    kube = FakeKube([node_doc("n1", cpu="3")])
    lg = make(kube)
    for name in ("a", "b"):
        assert lg.place(new_pod(kube, name), "n1").outcome == binding.BOUND
    assert lg.place(new_pod(kube, "c"), "n1").outcome == binding.BOUND  # 3 CPUs: a, b, c
    assert lg.place(new_pod(kube, "d"), "n1").outcome == ledger.NO_ROOM
    assert lg.place(new_pod(kube, "tiny", cpu="0"), "n1").outcome == binding.BOUND  # zero requests fit


def test_node_gone_and_rejected():
    kube = FakeKube([node_doc("n1", taints=[{"key": "k", "value": "v", "effect": "NoSchedule"}])])
    lg = make(kube)
    assert lg.place(new_pod(kube, "p"), "gone").outcome == ledger.NODE_GONE
    rejected = lg.place(new_pod(kube, "q"), "n1")
    assert rejected.outcome == binding.NODE_REJECTED and "untolerated taint" in rejected.detail
    assert kube.bindings == []


def test_lease_conflicts_retry():
    kube = FakeKube([node_doc("n1", cpu="4")])
    lg = make(kube)
    lg.place(new_pod(kube, "warm"), "n1")
    bumps = {"left": 2}

    def bump(method, path, body):  # another replica writes the lease just before our PUT, twice
        if method == "PUT" and path.startswith(LEASE) and bumps["left"]:
            bumps["left"] -= 1
            with kube._lock:
                kube.leases[("neurokube", "n1")]["metadata"]["resourceVersion"] = kube._next_rv()

    kube.before.append(bump)
    placement = lg.place(new_pod(kube, "p"), "n1")
    assert placement.outcome == binding.BOUND and placement.conflicts == 2


def test_endless_conflicts_give_up():
    kube = FakeKube([node_doc("n1")])
    lg = make(kube, retries=3)
    lg.place(new_pod(kube, "warm"), "n1")

    def bump(method, path, body):
        if method == "PUT" and path.startswith(LEASE):
            with kube._lock:
                kube.leases[("neurokube", "n1")]["metadata"]["resourceVersion"] = kube._next_rv()

    kube.before.append(bump)
    placement = lg.place(new_pod(kube, "p"), "n1")
    assert placement.outcome == ledger.CONTENDED and placement.conflicts == 3 and len(kube.bindings) == 1


def test_already_bound_elsewhere_releases_the_reservation():
    kube = FakeKube([node_doc("n1"), node_doc("n2")])
    pod = new_pod(kube, "p")
    kube.pods[("default", "p")]["spec"]["nodeName"] = "n2"  # another replica won
    placement = make(kube).place(pod, "n1")
    assert placement.outcome == binding.ALREADY_BOUND and placement.node == "n2"
    assert reservations(kube, "n1") == {}


def test_already_on_this_node_needs_no_binding():
    kube = FakeKube([node_doc("n1")])
    pod = new_pod(kube, "p", node="n1")
    placement = make(kube).place(pod, "n1")
    assert placement.outcome == binding.ALREADY_BOUND and kube.bindings == []


def test_deleted_or_recreated_pod_is_gone():
    kube = FakeKube([node_doc("n1")])
    pod = new_pod(kube, "p")
    kube.pods[("default", "p")]["metadata"]["uid"] = "a-new-pod-of-the-same-name"
    assert make(kube).place(pod, "n1").outcome == binding.POD_GONE
    kube.pods.pop(("default", "p"))
    assert make(kube).place(pod, "n1").outcome == binding.POD_GONE
    assert kube.bindings == [] and reservations(kube, "n1") == {}


def test_a_slow_replica_does_not_bind_on_an_old_reservation():
    kube = FakeKube([node_doc("n1")])
    ticks = iter([0.0, 100.0])
    lg = make(kube, monotonic=lambda: next(ticks), abort_s=20.0)
    assert lg.place(new_pod(kube, "p"), "n1").outcome == ledger.TOO_SLOW
    assert kube.bindings == [] and reservations(kube, "n1") == {}


def test_missing_ledger_namespace_is_a_clear_temporary_error():
    kube = FakeKube([node_doc("n1")], namespaces=())
    with pytest.raises(TemporaryError, match="ledger namespace 'neurokube' does not exist"):
        make(kube).place(new_pod(kube, "p"), "n1")


def test_garbage_collection_of_vanished_nodes():
    kube = FakeKube([node_doc("n1"), node_doc("n2")])
    lg = make(kube)
    lg.place(new_pod(kube, "a"), "n1")
    lg.place(new_pod(kube, "b"), "n2")
    kube.delete_node("n2")
    assert lg.collect_garbage({"n1"}) == 1 and set(kube.leases) == {("neurokube", "n1")}


def test_damaged_ledger_is_started_afresh():
    assert parse_reservations({ANNOTATION: "{not json"}) == {}
    for r in (Reservation("ns/p", 100, 5, 12.5, "r"), Reservation("ns/q", 100, 5, 12.5, "r", bound=True)):
        assert Reservation.from_json(r.to_json()) == r


# -- races ---------------------------------------------------------------------------------------


class LastWriterWins(FakeKube):
    """A broken apiserver that ignores resourceVersion on Lease updates."""

    def _lease(self, method, path, groups, body, query):
        if method == "PUT":
            body = {**body, "metadata": {**body["metadata"],
                                         "resourceVersion": self.leases[groups]["metadata"]["resourceVersion"]}}
        return super()._lease(method, path, groups, body, query)


@pytest.mark.parametrize("kube_class, bound", [(FakeKube, 1), (LastWriterWins, 2)])
def test_lockstep_race_for_the_last_slot(kube_class, bound):
    """Two replicas both pass the fresh check before either writes: the conditional write lets
    exactly one through; without it both bind and the node is over-committed (the test can fail)."""
    kube = kube_class([node_doc("n1", cpu="1")])
    make(kube).place(new_pod(kube, "zero", cpu="0"), "n1")  # create the lease
    barrier = threading.Barrier(2, timeout=5)
    armed = {"n": 2}
    lock = threading.Lock()

    def meet_before_first_write(method, path, body):
        if method == "PUT" and path.startswith(LEASE):
            with lock:
                go = armed["n"] > 0
                armed["n"] -= 1
            if go:
                barrier.wait()

    kube.before.append(meet_before_first_write)
    pods = [new_pod(kube, "a"), new_pod(kube, "b")]
    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(lambda args: make(kube, replica=args[0]).place(args[1], "n1").outcome,
                                 zip(("r1", "r2"), pods, strict=True)))
    assert outcomes.count(binding.BOUND) == bound
    if bound == 1:
        assert sorted(outcomes) == sorted([binding.BOUND, ledger.NO_ROOM])


class WatchLandsAfterTheUsageRead(ClusterCache):
    """A watch cache whose watch reports a pod bound right after the ledger read the node's usage:
    the interleaving that let a pod be counted neither in the usage nor by its entry."""

    def __init__(self, landing: dict) -> None:
        super().__init__(None, "neurokube")
        self.landing = landing

    def _land(self) -> None:
        if self.landing is not None:
            doc, self.landing = self.landing, None
            self.apply("pods", "MODIFIED", doc)

    def usage_and_pods(self, name, uids):
        found = super().usage_and_pods(name, uids)
        self._land()
        return found


def test_a_pod_the_watch_reports_bound_mid_check_is_still_counted():
    kube = FakeKube([node_doc("n1", cpu="2")])
    first, second = new_pod(kube, "first", cpu="1500m"), new_pod(kube, "second", cpu="1")
    racy = WatchLandsAfterTheUsageRead(landing=None)
    sync(racy, kube)  # before the first pod is bound
    assert make(kube, replica="r2").place(first, "n1").outcome == binding.BOUND  # its entry: in flight, by r2
    racy.landing = next(d for d in kube.pods.values() if d["metadata"]["name"] == "first")
    placed = Ledger(kube, racy, "neurokube", "r1", sleep=lambda s: None, rng=random.Random(0)).place(second, "n1")
    assert placed.outcome == ledger.NO_ROOM  # 1.5 + 1 > 2: counted by its entry or by the usage, never by neither
    assert kube.bindings == [("default/first", "n1")]


@pytest.mark.parametrize("share, seed", [(0.0, 1), (0.25, 2), (1.0, 2)])
def test_many_replicas_many_pods_never_over_commit(share, seed):
    """Four replicas, two of whose caches never see a binding; with credits, three of them take one."""
    nodes = [node_doc(f"n{i}", cpu="2", memory="4Gi", pods="110") for i in range(3)]
    kube = FakeKube(nodes)
    rng = random.Random(seed)
    pods = [new_pod(kube, f"p{i}", cpu=rng.choice(["100m", "300m", "500m"])) for i in range(60)]
    replicas = [make(kube, replica=f"r{i}", stale=i % 2 == 1, credit_share=share if i < 3 else 0.0)
                for i in range(4)]

    def place(i):
        pod = pods[i]
        for node in rng.sample([f"n{j}" for j in range(3)], 3):  # stale, arbitrary choices
            outcome = replicas[i % 4].place(pod, node).outcome
            if outcome != ledger.NO_ROOM:
                return outcome
        return "unplaced"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(place, range(len(pods))))
    per_node = {}
    for doc in kube.pods.values():
        node = doc["spec"].get("nodeName")
        if node:
            cpu = cpu_milli(doc["spec"]["containers"][0]["resources"]["requests"]["cpu"])
            per_node[node] = per_node.get(node, 0) + cpu
    assert all(total <= 2000 for total in per_node.values()), per_node
    assert len(kube.bindings) == len({p for p, _ in kube.bindings}) == outcomes.count(binding.BOUND)
    # The cluster did fill up (5.4 of 6 CPUs requested at most; credits waste some room).
    assert sum(per_node.values()) > (5000 if share == 0 else 3000)
    assert (sum(r.credited for r in replicas) > 0) == (share > 0)


# -- group commit and the Lease cache ------------------------------------------------------------


def test_threads_of_one_replica_share_lease_writes_and_never_over_commit():
    """Eight threads place eight 1-CPU pods on a 5-CPU node at once. The first thread's Lease
    write is held until all eight wait, so the other seven are reserved together by the next
    single write: two writes in all, five pods bound, three refused, nothing over-committed."""
    kube = FakeKube([node_doc("n1", cpu="5")])
    lg = make(kube)
    lg.place(new_pod(kube, "zero", cpu="0"), "n1")  # create the lease
    pods = [new_pod(kube, f"p{i}") for i in range(8)]
    inside, release = threading.Event(), threading.Event()
    held = {"first": True}

    def hold_the_first_write(method, path, body):
        if method == "PUT" and path.startswith(LEASE) and held.pop("first", False):
            inside.set()
            assert release.wait(5)

    kube.before.append(hold_the_first_write)
    writes_before = kube.requests.count(("PUT", LEASE + "n1"))
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(lg.place, pods[0], "n1")
        assert inside.wait(5)  # the first batch (one pod) is writing; the others queue behind it
        rest = [pool.submit(lg.place, pod, "n1") for pod in pods[1:]]
        for _ in range(500):
            if len(lg._queues["n1"].pending) == 7:
                break
            time.sleep(0.01)
        release.set()
        outcomes = [first.result(), *(f.result() for f in rest)]
    assert [o.outcome for o in outcomes].count(binding.BOUND) == 5
    assert [o.outcome for o in outcomes].count(ledger.NO_ROOM) == 3
    assert kube.requests.count(("PUT", LEASE + "n1")) - writes_before == 2
    assert len(kube.bindings) == len({p for p, _ in kube.bindings}) == 6  # zero + five


def test_an_error_reaches_every_pod_of_the_batch():
    kube = FakeKube([node_doc("n1", cpu="8")])
    lg = make(kube)
    lg.place(new_pod(kube, "zero", cpu="0"), "n1")

    def apiserver_down(method, path, body):
        if method == "PUT" and path.startswith(LEASE):
            raise TemporaryError("kube-apiserver unreachable")

    kube.before.append(apiserver_down)
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(lg.place, new_pod(kube, f"p{i}"), "n1") for i in range(4)]
        for future in futures:
            with pytest.raises(TemporaryError, match="unreachable"):
                future.result()
    kube.before.clear()
    assert lg.place(new_pod(kube, "after"), "n1").outcome == binding.BOUND  # the node's queue is not stuck


def test_the_replica_reuses_the_lease_it_wrote_and_rereads_after_a_conflict():
    kube = FakeKube([node_doc("n1", cpu="4")])
    lg = make(kube)
    lg.place(new_pod(kube, "a"), "n1")
    reads_before = kube.requests.count(("GET", LEASE + "n1"))
    assert lg.place(new_pod(kube, "b"), "n1").outcome == binding.BOUND
    assert kube.requests.count(("GET", LEASE + "n1")) == reads_before  # its own last write, no GET
    other = make(kube, replica="r2")
    assert other.place(new_pod(kube, "c", cpu="1"), "n1").outcome == binding.BOUND
    placement = lg.place(new_pod(kube, "d"), "n1")  # its cached Lease is now stale
    assert placement.outcome == binding.BOUND and placement.conflicts == 1
    assert lg.place(new_pod(kube, "e"), "n1").outcome == ledger.NO_ROOM  # a, b, c, d: 4 CPUs


def test_binding_errors_that_are_not_outcomes_raise():
    with pytest.raises(KubeError):
        binding.classify(KubeError(500, "InternalError", "boom", "POST", "/x"))
    with pytest.raises(KubeError):
        binding.classify(KubeError(409, "Conflict", "something else", "POST", "/x"))
    assert binding.classify(KubeError(409, "Conflict", 'pod p is already assigned to node "n9"', "POST", "/x")) \
        == (binding.ALREADY_BOUND, "n9")



def test_a_duplicate_delivery_that_no_longer_fits_keeps_the_first_replicas_entry():
    """r1 placed o, then p on n1 (1.5 of 2 CPUs). r2's stale cache gets a batch [filler, p] (p again: a
    duplicate delivery). p's own entry is p's, not extra: the filler must not take p's room, and
    if p does not fit, r2's write must keep r1's entry for p, or later checks forget p's CPU (the
    over-commit the e2e race found). The test can fail: with the batch's entries left out of the
    count, filler fits and p's entry is dropped."""
    kube = FakeKube([node_doc("n1", cpu="2")])
    r1, r2 = make(kube, "r1"), make(kube, "r2", stale=True)
    p, o = new_pod(kube, "p", cpu="1"), new_pod(kube, "o", cpu="500m")
    assert r1.place(o, "n1").outcome == binding.BOUND and r1.place(p, "n1").outcome == binding.BOUND
    assert not reservations(kube, "n1")["uid-p"].bound  # p's entry as written before its Binding
    filler = new_pod(kube, "filler", cpu="1")
    batch = [ledger._Request(filler), ledger._Request(p)]
    r2.ledger._reserve(batch, "n1")
    assert batch[0].result.outcome == ledger.NO_ROOM  # 1 + 0.5 + 1 > 2
    assert {"uid-p", "uid-o"} <= set(reservations(kube, "n1")) and "uid-filler" not in reservations(kube, "n1")


# -- credits: room reserved ahead ----------------------------------------------------------------


def credits_of(kube, node):
    return {k: r for k, r in reservations(kube, node).items() if r.credit}


def test_a_credit_spares_the_next_pods_their_lease_writes_and_is_converted_at_the_next_write():
    """With a credit of half the node, the first write reserves the pod and 2 CPUs ahead; the next
    two pods are placed under the credit with no request but their Bindings; the fourth does not
    fit what is left of it, so its write turns the two into entries of their own and takes a new
    credit from what remains."""
    kube = FakeKube([node_doc("n1", cpu="4", memory="8Gi", pods="10")])
    lg = make(kube, credit_share=0.5)
    assert lg.place(new_pod(kube, "a", cpu="500m"), "n1").outcome == binding.BOUND
    (credit,) = credits_of(kube, "n1").values()
    assert (credit.cpu, credit.pods, credit.by) == (2000, 5, "r1")
    writes = kube.requests.count(("PUT", LEASE + "n1"))
    for name in ("b", "c"):
        assert lg.place(new_pod(kube, name, cpu="1"), "n1").outcome == binding.BOUND
    assert kube.requests.count(("PUT", LEASE + "n1")) == writes and lg.credited == 2
    assert set(reservations(kube, "n1")) == {"uid-a", lg.credit_key}  # b and c: only in the credit so far
    assert lg.place(new_pod(kube, "d", cpu="1"), "n1").outcome == binding.BOUND  # the credit has 0 CPU left
    assert kube.requests.count(("PUT", LEASE + "n1")) == writes + 1
    held = reservations(kube, "n1")
    assert {"uid-a", "uid-b", "uid-c", "uid-d"} <= set(held)
    (credit,) = credits_of(kube, "n1").values()
    assert credit.cpu == 500  # 4 CPUs less a, b, c, d
    assert lg.place(new_pod(kube, "e", cpu="1"), "n1").outcome == ledger.NO_ROOM


def test_another_replica_counts_a_credit_in_full_and_the_pods_under_it_as_well():
    """r2's cache sees the pods r1 bound under its credit, which have no entries: it counts them
    and the whole credit (room wasted until r1 writes again, never over-committed)."""
    kube = FakeKube([node_doc("n1", cpu="4")])
    r1, r2 = make(kube, "r1", credit_share=0.5), make(kube, "r2")
    assert r1.place(new_pod(kube, "a", cpu="1"), "n1").outcome == binding.BOUND  # a + a 2-CPU credit
    assert r1.place(new_pod(kube, "b", cpu="1"), "n1").outcome == binding.BOUND  # under the credit
    assert r2.place(new_pod(kube, "c", cpu="1"), "n1").outcome == ledger.NO_ROOM  # a + b + 2 = 4
    assert r2.place(new_pod(kube, "d", cpu="0"), "n1").outcome == binding.BOUND


def test_an_expired_credit_of_a_dead_replica_is_retired_by_one_consistent_list_of_the_nodes_pods():
    kube = FakeKube([node_doc("n1", cpu="4")])
    r1 = make(kube, "r1", credit_share=0.5)
    for name in ("a", "b"):
        assert r1.place(new_pod(kube, name, cpu="1"), "n1").outcome == binding.BOUND  # b under the credit
    # r1 dies. Its credit still stands for r2 a minute later: counted in full, no list.
    soon = make(kube, "r2", clock=lambda: time.time() + 60)
    assert soon.place(new_pod(kube, "c", cpu="1"), "n1").outcome == ledger.NO_ROOM and soon.credit_lists == 0
    # Ten minutes later it has expired: one list of n1's pods turns b into a bound entry and frees
    # the credit's room; b stays counted even by a replica whose cache never sees it.
    later = make(kube, "r3", clock=lambda: time.time() + 600)
    assert later.place(new_pod(kube, "c", cpu="1"), "n1").outcome == binding.BOUND
    assert later.credit_lists == 1 and credits_of(kube, "n1") == {}
    held = reservations(kube, "n1")
    assert held["uid-b"].bound and set(held) == {"uid-a", "uid-b", "uid-c"}
    blind = make(kube, "r4", stale=True)
    blind.cache = ClusterCache(None, "neurokube")  # sees no pod at all
    blind.ledger.state = blind.cache
    sync(blind.cache, FakeKube([node_doc("n1", cpu="4")]))
    assert blind.place(new_pod(kube, "e", cpu="1500m"), "n1").outcome == ledger.NO_ROOM  # a + b + c = 3


def test_a_credit_that_cannot_be_retired_stays_counted():
    kube = FakeKube([node_doc("n1", cpu="4")])
    r1 = make(kube, "r1", credit_share=0.5)
    assert r1.place(new_pod(kube, "a", cpu="1"), "n1").outcome == binding.BOUND

    def pods_unlistable(method, path, body):
        if method == "GET" and path == "/api/v1/pods":
            raise TemporaryError("kube-apiserver unreachable")

    kube.before.append(pods_unlistable)
    later = make(kube, "r2", clock=lambda: time.time() + 600)
    assert later.place(new_pod(kube, "c", cpu="1500m"), "n1").outcome == ledger.NO_ROOM  # a + 2 + 1.5 > 4
    assert len(credits_of(kube, "n1")) == 1


def test_a_restarted_replica_of_the_same_name_does_not_spend_its_predecessors_credit():
    kube = FakeKube([node_doc("n1", cpu="4")])
    first = make(kube, "r1", credit_share=0.5)
    assert first.place(new_pod(kube, "a", cpu="1"), "n1").outcome == binding.BOUND
    assert first.place(new_pod(kube, "b", cpu="1"), "n1").outcome == binding.BOUND  # under the credit
    again = make(kube, "r1", credit_share=0.5)  # the same name, a new process: the credit is not its own
    assert again.place(new_pod(kube, "c", cpu="1"), "n1").outcome == ledger.NO_ROOM  # a + b + 2 = 4
    assert again.credited == 0


def test_a_released_pod_gives_its_room_back_to_the_credit_without_a_write():
    kube = FakeKube([node_doc("n1", cpu="2")])
    lg = make(kube, credit_share=0.5)
    assert lg.place(new_pod(kube, "a", cpu="1"), "n1").outcome == binding.BOUND  # the credit: the other CPU
    gone = new_pod(kube, "gone", cpu="1")
    kube.pods.pop(("default", "gone"))  # deleted before its Binding
    writes = len(kube.writes())
    assert lg.place(gone, "n1").outcome == binding.POD_GONE
    assert len(kube.writes()) == writes + 1  # the Binding only
    assert lg.place(new_pod(kube, "b", cpu="1"), "n1").outcome == binding.BOUND and lg.credited == 2


def spending_a_credit(kube):
    """A replica holding a 2-CPU credit on n1 (8 CPUs), with one 1-CPU pod placed under it."""
    lg = make(kube, credit_share=0.25)
    assert lg.place(new_pod(kube, "a", cpu="1"), "n1").outcome == binding.BOUND  # a 2-CPU credit
    assert lg.place(new_pod(kube, "b", cpu="1"), "n1").outcome == binding.BOUND  # under it
    return lg


def time_out_the_next_lease_write(kube):
    failing = {"n": 1}

    def timeout_once(method, path, body):
        if method == "PUT" and path.startswith(LEASE) and failing["n"]:
            failing["n"] -= 1
            raise TemporaryError("timed out")

    kube.before.append(timeout_once)
    return failing


def assert_the_credit_is_frozen(kube, lg):
    credited = lg.credited
    assert lg.place(new_pod(kube, "c", cpu="500m"), "n1").outcome == binding.BOUND
    assert lg.credited == credited  # the credit had room, but it was frozen: c took a write


def test_a_lease_write_of_unknown_outcome_stops_spending_the_credit():
    kube = FakeKube([node_doc("n1", cpu="8")])
    lg = spending_a_credit(kube)
    time_out_the_next_lease_write(kube)
    with pytest.raises(TemporaryError):
        lg.place(new_pod(kube, "big", cpu="2"), "n1")  # does not fit the credit's 1 CPU: a write, which fails
    assert_the_credit_is_frozen(kube, lg)
    assert {"uid-a", "uid-b", "uid-c"} <= set(reservations(kube, "n1"))


def test_no_credit_is_taken_while_another_replica_is_placing_on_the_node():
    """r2 finds r1's credit on n1: it takes none. r1's next write finds r2's pod in flight (r1's
    cache has not seen it bound): r1 takes none either, and its old credit goes with that write."""
    kube = FakeKube([node_doc("n1", cpu="8")])
    r1 = make(kube, "r1", stale=True, credit_share=0.25)
    r2 = make(kube, "r2", stale=True, credit_share=0.25)
    assert r1.place(new_pod(kube, "a", cpu="1"), "n1").outcome == binding.BOUND
    assert [c.by for c in credits_of(kube, "n1").values()] == ["r1"]
    assert r2.place(new_pod(kube, "b", cpu="1"), "n1").outcome == binding.BOUND
    assert [c.by for c in credits_of(kube, "n1").values()] == ["r1"]
    assert r1.place(new_pod(kube, "c", cpu="3"), "n1").outcome == binding.BOUND  # more than its credit: a write
    assert credits_of(kube, "n1") == {}
    assert r1.place(new_pod(kube, "d", cpu="1"), "n1").outcome == binding.BOUND and r1.credited == 0


def test_an_expired_credit_stays_while_a_pod_on_the_node_cannot_be_read():
    kube = FakeKube([node_doc("n1", cpu="4")])
    r1 = make(kube, "r1", credit_share=0.5)
    assert r1.place(new_pod(kube, "a", cpu="1"), "n1").outcome == binding.BOUND
    assert r1.place(new_pod(kube, "b", cpu="1"), "n1").outcome == binding.BOUND  # under the credit
    kube.pods[("default", "b")]["spec"]["containers"] = "damaged"
    later = make(kube, "r2", clock=lambda: time.time() + 600)
    assert later.place(new_pod(kube, "c", cpu="1500m"), "n1").outcome == ledger.NO_ROOM  # a + the 2-CPU credit
    assert later.credit_lists == 1 and len(credits_of(kube, "n1")) == 1


def test_a_cleanup_write_of_unknown_outcome_also_stops_spending_the_credit():
    """A write that admits no pod but keeps what the apiserver said about an expired entry also
    converts the credit's pods and replaces the credit; if its outcome is unknown, nothing more
    is spent under the old credit."""
    kube = FakeKube([node_doc("n1", cpu="8")])
    lg = spending_a_credit(kube)
    new_pod(kube, "ghost")  # pending: r2 reserved room for it long ago and never bound it
    lease = kube.leases[("neurokube", "n1")]
    lease["metadata"]["annotations"][ANNOTATION] = lease["metadata"]["annotations"][ANNOTATION][:-1] + (
        ',"uid-ghost": {"pod": "default/ghost", "cpu": 1000, "memory": 0, "expires": 1.0, "by": "r2"}}')
    lease["metadata"]["resourceVersion"] = kube._next_rv()
    lg.ledger._lease_cache.clear()  # read the Lease afresh: the ghost's expired entry is checked (a GET)
    failing = time_out_the_next_lease_write(kube)
    # No room: the pod's answer is final; only the cleanup write follows, and it fails.
    assert lg.place(new_pod(kube, "huge", cpu="7"), "n1").outcome == ledger.NO_ROOM
    assert lg.pod_checks == 1 and failing["n"] == 0
    assert_the_credit_is_frozen(kube, lg)
