"""The watch cache's read side is kept up to date per event, not recomputed per read: the same
snapshot until something a snapshot shows changes (a pending pod's update is no change), the node
table kept through node updates that change nothing a scheduler reads, and, through a long random
sequence of pod events, assumptions, node changes and re-lists, sums and recent pods always equal
a from-scratch model of the cache's rules."""

import numpy as np
import pytest

from neurokube.k8s.objects import parse_pod
from neurokube.live.cache import RECENT_KEEP_S, ClusterCache, usage_of
from neurokube.testing import node_doc, pod_doc


class Clock:
    def __init__(self, t=1000.0):
        self.t = t

    def __call__(self):
        return self.t


def test_the_same_snapshot_until_something_shown_changes():
    c = ClusterCache(None, "neurokube", clock=Clock())
    c.replace("nodes", [node_doc("a"), node_doc("b")])
    c.replace("pods", [pod_doc("p", node="a", uid="p")])
    first = c.snapshot()
    assert c.snapshot() is first
    c.apply("pods", "ADDED", pod_doc("pending", uid="q"))  # not bound, not assumed: no sum moves
    assert c.snapshot() is first
    c.apply("pods", "MODIFIED", pod_doc("pending", uid="q", node="b"))  # bound now
    second = c.snapshot()
    assert second is not first and second.used_pods.tolist() == [1, 1]
    assert first.used_pods.tolist() == [1, 0]  # a snapshot handed out never changes
    c.apply("nodes", "MODIFIED", node_doc("a"))  # a status update that changes nothing we read
    assert c.snapshot() is second
    c.apply("nodes", "MODIFIED", node_doc("a", cpu="8"))
    third = c.snapshot()
    assert third.table is not second.table and third.table.alloc_cpu.tolist() == [8000, 4000]
    c.replace("nodes", [node_doc("a", cpu="8"), node_doc("b")])  # a re-list with no change keeps the table
    assert c.snapshot().table is third.table


class Model:
    """The cache's rules, from scratch: what is bound where, what is assumed, what was bound while
    watching (and when)."""

    def __init__(self):
        self.docs: dict[str, dict] = {}
        self.assumed: dict[str, str] = {}
        self.bound_at: dict[str, float] = {}

    def holds(self, uid):
        if uid in self.assumed:
            return self.assumed[uid]
        doc = self.docs.get(uid)
        if doc is None or not doc["spec"].get("nodeName") or doc["status"]["phase"] in ("Succeeded", "Failed"):
            return None
        return doc["spec"]["nodeName"]

    def usage(self, names):
        table = np.zeros((7, len(names)), dtype=np.int64)
        index = {n: i for i, n in enumerate(names)}
        for uid in set(self.docs) | set(self.assumed):
            node = self.holds(uid)
            if node in index:
                table[:, index[node]] += usage_of(parse_pod(self.docs[uid]))
        return table

    def recent(self, now):
        return sorted((t, self.holds(uid)) for uid, t in self.bound_at.items()
                      if self.holds(uid) is not None and t >= now - RECENT_KEEP_S)


@pytest.mark.parametrize("seed", range(4))
def test_sums_and_recent_pods_follow_every_change(seed):
    rng = np.random.default_rng(seed)
    clock = Clock()
    c = ClusterCache(None, "neurokube", clock=clock)
    m = Model()
    node_names = [f"n{i}" for i in range(6)]
    live_nodes = set(node_names[:4])
    c.replace("nodes", [node_doc(n) for n in sorted(live_nodes)])
    c.replace("pods", [])
    counter = 0
    for step in range(400):
        clock.t += float(rng.choice([0.5, 5.0, 60.0, 400.0]))
        op = rng.choice(["create", "bind", "finish", "delete", "assume", "forget", "node", "relist"],
                        p=[0.25, 0.2, 0.08, 0.1, 0.15, 0.07, 0.08, 0.07])
        uids = sorted(m.docs)
        if op == "create" or not uids:
            counter += 1
            uid = f"u{counter}"
            node = str(rng.choice(node_names)) if rng.random() < 0.5 else None
            doc = pod_doc(uid, f"{int(rng.integers(1, 9)) * 100}m", f"{int(rng.integers(1, 9))}Mi", uid=uid, node=node)
            doc["status"]["phase"] = "Running" if node else "Pending"
            m.docs[uid] = doc
            if node and uid not in m.bound_at:
                m.bound_at[uid] = clock.t
                m.assumed.pop(uid, None)
            c.apply("pods", "ADDED", doc)
        elif op == "bind":
            uid = str(rng.choice(uids))
            doc = m.docs[uid]
            if not doc["spec"].get("nodeName"):
                doc["spec"]["nodeName"] = m.assumed.get(uid) or str(rng.choice(node_names))
                doc["status"]["phase"] = "Running"
                m.assumed.pop(uid, None)
                m.bound_at.setdefault(uid, clock.t)
            c.apply("pods", "MODIFIED", doc)
        elif op == "finish":
            uid = str(rng.choice(uids))
            if m.docs[uid]["spec"].get("nodeName"):
                m.docs[uid]["status"]["phase"] = "Succeeded"
            c.apply("pods", "MODIFIED", m.docs[uid])
        elif op == "delete":
            uid = str(rng.choice(uids))
            doc = m.docs.pop(uid)
            m.assumed.pop(uid, None)
            m.bound_at.pop(uid, None)
            c.apply("pods", "DELETED", doc)
        elif op == "assume":
            uid = str(rng.choice(uids))
            if not m.docs[uid]["spec"].get("nodeName"):
                node = str(rng.choice(node_names))
                m.assumed[uid] = node
                m.bound_at[uid] = clock.t
                c.assume(parse_pod(m.docs[uid]), node)
        elif op == "forget":
            uid = str(rng.choice(uids))
            if uid in m.assumed:
                del m.assumed[uid]
                m.bound_at.pop(uid, None)
            c.forget(parse_pod(m.docs[uid]))
        elif op == "node":
            name = str(rng.choice(node_names))
            if name in live_nodes and rng.random() < 0.3:
                live_nodes.discard(name)
                c.apply("nodes", "DELETED", node_doc(name))
            else:
                live_nodes.add(name)
                c.apply("nodes", "MODIFIED", node_doc(name, cpu=str(int(rng.integers(2, 5)))))
        else:  # a re-list: pods not in it are gone; bind times of the pods still there are kept
            c.replace("pods", list(m.docs.values()))
            m.bound_at = {u: t for u, t in m.bound_at.items() if u in m.docs}
        snap = c.snapshot()
        names = list(snap.table.names)
        assert set(names) == live_nodes, step
        expected = m.usage(names)
        got = np.vstack([snap.used_cpu, snap.used_memory, snap.used_nz_cpu, snap.used_nz_memory, snap.used_pods,
                         snap.lim_cpu, snap.unlimited])
        assert got.tolist() == expected.tolist(), (step, op)
        assert sorted((r.bound_at, r.node) for r in snap.recent) == m.recent(clock.t), (step, op)
        assert [r.bound_at for r in snap.recent] == sorted(r.bound_at for r in snap.recent)
