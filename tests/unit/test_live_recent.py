"""The recent pods as growing columns (neurokube/live/recent.py), checked against the plain model
they replace: a dict of records in bind-time order. Random puts (new, updated in place, moved to a
new bind time, out of order), removals and pruning, with every snapshot taken along the way
checked again at the end: what a snapshot saw never changes."""

import random

import numpy as np
import pytest

from neurokube.live.recent import EMPTY, RecentLog, RecentPod


class Model:
    """The old ClusterCache bookkeeping: uid -> record, sorted by bind time (stable)."""

    def __init__(self):
        self.entries: dict[str, RecentPod] = {}
        self.order: list[str] = []

    def put(self, uid, pod):
        old = self.entries.get(uid)
        self.entries[uid] = pod
        if old is not None and old.bound_at == pod.bound_at:
            return
        if old is not None:
            self.order.remove(uid)
        self.order.append(uid)
        self.order.sort(key=lambda u: self.entries[u].bound_at)  # stable: ties keep arrival order

    def remove(self, uid):
        if self.entries.pop(uid, None) is not None:
            self.order.remove(uid)

    def prune(self, before):
        gone = [u for u in self.order if self.entries[u].bound_at < before]
        for uid in gone:
            self.remove(uid)
        return bool(gone)

    def pods(self):
        return [self.entries[u] for u in self.order]


def columns_as_pods(columns, names):
    return [RecentPod(names[r] if r >= 0 else "?", c, m, cl, ml, b, w) for r, b, c, m, cl, ml, w in zip(
        columns.row.tolist(), columns.bound_at.tolist(), columns.cpu.tolist(), columns.memory.tolist(),
        columns.cpu_limit.tolist(), columns.memory_limit.tolist(), columns.workload.tolist(), strict=True)]


@pytest.mark.parametrize("seed", range(6))
def test_random_operations_match_the_plain_model_and_snapshots_never_change(seed):
    rng = random.Random(seed)
    log, model = RecentLog(), Model()
    nodes = [f"n{i}" for i in range(7)]
    index = {name: i for i, name in enumerate(nodes[:5])}  # n5, n6 are not in the table: row -1
    held = []
    clock = 1000.0
    for step in range(3000):
        op = rng.random()
        uid = f"u{rng.randrange(400)}"
        if op < 0.55:
            clock += rng.random()
            at = clock - (rng.random() * 30 if rng.random() < 0.05 else 0.0)  # now and then, an older bind time
            old = model.entries.get(uid)
            if old is not None and rng.random() < 0.3:
                at = old.bound_at  # the same bind time: updated in place
            pod = RecentPod(rng.choice(nodes), rng.randrange(1, 4000), rng.randrange(1, 1 << 33),
                            rng.randrange(0, 8000), rng.randrange(0, 1 << 34), at, rng.randrange(-1, 20))
            log.put(uid, pod)
            model.put(uid, pod)
        elif op < 0.85:
            log.remove(uid)
            model.remove(uid)
        else:
            before = clock - rng.random() * 200
            assert log.prune(before) == model.prune(before)
        assert len(log) == len(model.entries)
        if step % 50 == 0:
            view = log.view()
            held.append((view, model.pods()))
            assert log.get(uid) == model.entries.get(uid)
    for view, expected in held:
        assert list(view) == expected  # unchanged by everything that came after
        rows = view.rows(index)
        for since in (0.0, expected[len(expected) // 2].bound_at if expected else 0.0):
            want = [p if p.node in index else None for p in expected if p.bound_at > since]
            got = view.columns(since, rows)
            assert got.row.tolist() == [index[p.node] if p is not None else -1 for p in want]
            assert columns_as_pods(got, nodes[:5]) == [
                RecentPod(p.node if p.node in index else "?", p.cpu, p.memory, p.cpu_limit, p.memory_limit,
                          p.bound_at, p.workload) for p in expected if p.bound_at > since]


def test_growth_keeps_order_and_drops_dead_slots():
    log = RecentLog()
    for i in range(5000):
        log.put(f"u{i}", RecentPod("a", 1, 1, 0, 0, float(i)))
        if i % 2:
            log.remove(f"u{i - 1}")
    view = log.view()
    assert len(view) == 2500 and [p.bound_at for p in view] == [float(i) for i in range(1, 5000, 2)]
    assert view.node_id.size < 5000  # growth compacted the removed slots away


def test_an_empty_slice_answers_empty_columns():
    columns = EMPTY.columns(0.0, EMPTY.rows({}))
    assert len(EMPTY) == 0 and columns.row.size == 0 and columns.bound_at.dtype == np.float64
