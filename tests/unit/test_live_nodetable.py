"""The node table and the filter on it: names map to rows (-1 unknown); the per-table memo of
which rows a pod's tolerations, nodeSelector and affinity admit gives exactly what the per-node
checks give, for every kind of pod, and is keyed by those constraints (two pods that differ only
in them never share an entry); filter_nodes on a table equals filter_nodes on the node list."""

import numpy as np
import pytest

from neurokube.k8s.feasibility import admission, admits, filter_nodes, resource_shortfalls
from neurokube.k8s.nodetable import NodeTable
from neurokube.k8s.objects import parse_node, parse_pod
from neurokube.testing import node_doc, pod_doc

TAINT = {"key": "dedicated", "value": "ml", "effect": "NoSchedule"}


def nodes(n=40, seed=3):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        taints = [TAINT] if rng.random() < 0.2 else None
        cpu, memory, pods = int(rng.integers(1, 9)), int(rng.integers(1, 17)), int(rng.integers(1, 4))
        out.append(parse_node(node_doc(f"n{i}", cpu=str(cpu), memory=f"{memory}Gi", pods=str(pods),
                                       labels={"zone": f"z{i % 3}"}, taints=taints,
                                       unschedulable=bool(rng.random() < 0.1))))
    return out


PODS = {
    "plain": {},
    "tolerates": {"tolerations": [{"key": "dedicated", "operator": "Exists"}]},
    "selector": {"node_selector": {"zone": "z1"}},
    "affinity": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["z0"]}]}]}}}},
    "cordon-tolerant": {"tolerations": [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists",
                                         "effect": "NoSchedule"}]},
}


def test_rows_map_names_and_mark_unknown_ones():
    table = NodeTable.of(nodes(5))
    assert table.rows(["n3", "nope", "n0"]).tolist() == [3, -1, 0]
    assert table.rows([f"n{i}" for i in range(5)]).tolist() == [0, 1, 2, 3, 4]
    assert table.rows([]).tolist() == [] and len(table) == 5
    assert table.alloc_memory_mib.tolist() == [n.alloc_memory // 2**20 for n in table.nodes]
    assert table.plain.tolist() == [not n.taints and not n.unschedulable for n in table.nodes]


@pytest.mark.parametrize("kind", list(PODS))
def test_admission_is_the_per_node_check(kind):
    table = NodeTable.of(nodes())
    pod = parse_pod(pod_doc("p", "500m", "1Gi", **PODS[kind]))
    ok, why = admission(pod, table)
    expected = [admits(pod, node) for node in table.nodes]
    assert ok.tolist() == [w is None for w in expected]
    assert why == {i: w for i, w in enumerate(expected) if w is not None}
    assert admission(pod, table)[0] is ok  # served from the memo the second time


def test_the_memo_is_keyed_by_the_constraints():
    table = NodeTable.of(nodes())
    plain = parse_pod(pod_doc("a", "1", "1Gi"))
    tolerant = parse_pod(pod_doc("b", "2", "2Gi", **PODS["tolerates"]))
    same_as_plain = parse_pod(pod_doc("c", "3", "3Gi"))  # other requests, same constraints
    assert admission(plain, table)[0] is admission(same_as_plain, table)[0]
    assert admission(plain, table)[0].tolist() != admission(tolerant, table)[0].tolist()
    assert all(any(t.key == "dedicated" for t in n.taints) or n.unschedulable
               for n, a, b in zip(table.nodes, *(admission(p, table)[0] for p in (plain, tolerant)), strict=True)
               if a != b)


@pytest.mark.parametrize("kind", list(PODS))
def test_filter_on_a_table_equals_the_scalar_checks(kind):
    node_list = nodes()
    rng = np.random.default_rng(11)
    used_cpu = rng.integers(0, 8000, len(node_list))
    used_mem = rng.integers(0, 16 * 2**30, len(node_list))
    used_pods = rng.integers(0, 4, len(node_list))
    pod = parse_pod(pod_doc("p", "1500m", "3Gi", **PODS[kind]))
    mask, reasons = filter_nodes(pod, NodeTable.of(node_list), used_cpu, used_mem, used_pods)
    for i, node in enumerate(node_list):
        why = admits(pod, node)
        expected = [why] if why else resource_shortfalls(pod, node, int(used_cpu[i]), int(used_mem[i]),
                                                         int(used_pods[i]))
        assert bool(mask[i]) == (not expected), node.name
        assert reasons.get(node.name, []) == expected, node.name
    assert filter_nodes(pod, node_list, used_cpu, used_mem, used_pods)[1] == reasons
