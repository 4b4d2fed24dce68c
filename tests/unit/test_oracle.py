"""The clairvoyant oracle runs through the framework cycle and still picks lexicographically.

Its score plugin turns the lexicographic order (added CPU contention, added memory overflow, node
empty, minus MostAllocated) into a dense rank and its selector takes the lowest-indexed best node;
here every decision of a replay is checked against a brute-force minimum over the tuples
``(contention, overflow, empty, -packing, node index)``, on a trace busy enough that tuples tie and
that nodes differ in the contention a pod would add, and the oracle's generator is never drawn from.
"""

from __future__ import annotations

import numpy as np
import pytest

from neurokube.policies.base import ClusterView, NodeMetrics, PodSpec
from neurokube.policies.common import fits
from neurokube.policies.default import fit_score, most_allocated
from neurokube.policies.framework import run_cycle
from neurokube.policies.oracle import FirstBest, FutureContention, OraclePolicy, dense_rank, oracle_profile
from neurokube.policies.registry import make_policy
from neurokube.sim import SimConfig, replay
from neurokube.trace.assemble import ArrivalSettings
from neurokube.trace.synth import SynthSettings, synth_trace


def test_dense_rank_counts_the_distinct_better_tuples():
    rng = np.random.default_rng(5)
    for _ in range(200):
        n = int(rng.integers(1, 30))
        keys = (rng.integers(0, 3, n), rng.integers(0, 2, n), np.round(rng.integers(0, 4, n) * 0.5, 3))
        tuples = [tuple(k[i] for k in reversed(keys)) for i in range(n)]  # primary key first
        distinct = sorted(set(tuples))
        assert dense_rank(keys).tolist() == [distinct.index(t) for t in tuples]
    assert dense_rank((np.array([], dtype=np.int64),)).size == 0


def test_first_best_takes_the_lowest_index_and_draws_nothing():
    rng = np.random.default_rng(1)
    before = rng.bit_generator.state["state"]
    assert FirstBest().select_host(np.array([1, 4, 6]), np.array([2, 5, 5]), None, rng) == 4
    assert FirstBest().select_host(np.array([], dtype=np.int64), np.array([]), None, rng) is None
    assert rng.bit_generator.state["state"] == before


class GivenAdded:
    """Future usage reduced to what the score plugin asks of it: the added contention and overflow."""

    def __init__(self, cpu, mem):
        self.cpu, self.mem = np.asarray(cpu, dtype=np.float64), np.asarray(mem, dtype=np.float64)

    def added(self, pod, now_s, nodes):
        return self.cpu[nodes], self.mem[nodes]


def lexicographic_choice(pod, view, cpu, mem):
    """Brute force: the feasible node with the smallest (contention, overflow, empty, -packing, index)."""
    feasible = np.flatnonzero(fits(pod, view))
    if feasible.size == 0:
        return None
    cpu, mem = np.round(cpu, 3), np.round(mem, 3)
    packing = fit_score(pod, view, most_allocated)
    return min((float(cpu[n]), float(mem[n]), int(view.pod_count[n] == 0), -int(packing[n]), int(n))
               for n in feasible)[-1]


def test_every_criterion_decides_in_its_turn_on_random_views():
    """Random clusters whose added contention and overflow take few values (0.0004 rounds to 0), so
    each of the four keys, and the index among equal tuples, decides some of the choices."""
    rng = np.random.default_rng(17)
    decided = set()
    for _ in range(3000):
        n = int(rng.integers(1, 7))
        alloc_cpu = rng.choice([2000, 4000], n).astype(np.int64)
        alloc_mem = rng.choice([4096, 8192], n).astype(np.int64)
        pods = rng.integers(0, 3, n).astype(np.int64)
        req_cpu = pods * rng.choice([0, 500, 1000], n)
        req_mem = pods * rng.choice([0, 1024], n)
        view = ClusterView(0.0, alloc_cpu, alloc_mem, req_cpu, req_mem, req_cpu + 100 * pods, req_mem + 200 * pods,
                           pods, NodeMetrics.empty(n))
        pod = PodSpec(int(rng.choice([0, 500, 1500])), int(rng.choice([0, 1024, 4096])))
        cpu, mem = rng.choice([0.0, 0.0004, 1.0, 2.0], n), rng.choice([0.0, 0.0004, 3.0], n)
        profile = oracle_profile(GivenAdded(cpu, mem))
        got = run_cycle(profile, pod, view, np.random.default_rng(0)).choice
        assert got == lexicographic_choice(pod, view, cpu, mem), (pod, view, cpu, mem)
        feasible = np.flatnonzero(fits(pod, view))
        if got is not None:
            keys = [np.round(cpu, 3)[feasible], np.round(mem, 3)[feasible], (pods == 0)[feasible],
                    -fit_score(pod, view, most_allocated)[feasible]]
            best, tied = feasible == got, np.ones(feasible.size, dtype=bool)
            for i, key in enumerate(keys):  # key i decided if a node tied on the keys before is worse on it
                if (key[tied] > key[best]).any():
                    decided.add(i)
                tied &= key == key[best]
            if tied.sum() > 1:
                decided.add(len(keys))  # equal on every key: the lowest index
    assert decided == {0, 1, 2, 3, 4}


class Checked:
    """The oracle, with every choice compared to the brute-force lexicographic minimum."""

    def __init__(self, oracle: OraclePolicy) -> None:
        self.oracle, self.name = oracle, oracle.name
        self.decisions = self.ties = self.contended = 0  # contended: the nodes differ in added contention

    def select(self, pod, view):
        feasible = np.flatnonzero(fits(pod, view))
        expected = None
        if feasible.size:
            cpu, mem = (np.round(a, 3) for a in self.oracle.future.added(pod, view.now_s, feasible))
            packing = fit_score(pod, view, most_allocated)[feasible]
            tuples = [(float(cpu[i]), float(mem[i]), int(view.pod_count[n] == 0), -int(packing[i]), int(n))
                      for i, n in enumerate(feasible)]
            best = min(tuples)
            expected = best[-1]
            self.ties += sum(t[:-1] == best[:-1] for t in tuples) > 1
            self.contended += len({t[0] for t in tuples}) > 1
        result = self.oracle.cycle(pod, view)
        assert result.choice == expected, (pod.index, view.now_s, result.choice, expected)
        if expected is not None:
            assert set(result.plugin_scores) == {FutureContention.name}
        self.decisions += 1
        return result.choice

    def on_bind(self, pod, node, now_s):
        self.oracle.on_bind(pod, node, now_s)


@pytest.fixture(scope="module")
def busy_trace():
    return synth_trace("oracle", SynthSettings(
        arrivals=ArrivalSettings(hours=3, target_load=0.9, warmup_hours=2, seed=7), nodes=6, workloads=40))


def test_oracle_choices_are_the_lexicographic_minimum(busy_trace):
    oracle = make_policy("oracle", trace=busy_trace, step_s=SimConfig().step_s)
    before = oracle.rng.bit_generator.state["state"]
    checked = Checked(oracle)
    result = replay(busy_trace, checked, SimConfig())
    assert (result.node_of >= 0).sum() > 100
    assert checked.ties > 10 and checked.contended > 5, (checked.ties, checked.contended)
    assert oracle.rng.bit_generator.state["state"] == before
