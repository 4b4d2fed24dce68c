"""Feasibility as kube-scheduler's filters decide it, table by table: taints and tolerations
(NoSchedule and NoExecute filter, PreferNoSchedule does not), cordoned nodes, nodeSelector,
required node affinity with every operator, requests against allocatable minus bound requests,
the pod count, and the FailedScheduling message."""

import numpy as np
import pytest

from neurokube.k8s.feasibility import (
    AFFINITY_MISMATCH,
    INSUFFICIENT_CPU,
    INSUFFICIENT_MEMORY,
    TOO_MANY_PODS,
    UNSCHEDULABLE,
    admits,
    failure_message,
    filter_nodes,
    resource_shortfalls,
    tolerates,
)
from neurokube.k8s.objects import Taint, Toleration, parse_node, parse_pod
from neurokube.testing import node_doc, pod_doc

GI = 2**30


def node(labels=None, taints=None, unschedulable=False, **kw):
    return parse_node(node_doc("n1", labels=labels, taints=taints, unschedulable=unschedulable, **kw))


def pod(**kw):
    return parse_pod(pod_doc("p", **kw))


@pytest.mark.parametrize("toleration, taint, ok", [
    (Toleration("k", "Equal", "v", "NoSchedule"), Taint("k", "v", "NoSchedule"), True),
    (Toleration("k", "Equal", "w", "NoSchedule"), Taint("k", "v", "NoSchedule"), False),
    (Toleration("k", "Exists", "", "NoSchedule"), Taint("k", "v", "NoSchedule"), True),
    (Toleration("k", "Exists", "", ""), Taint("k", "v", "NoExecute"), True),  # empty effect: all
    (Toleration("k", "Exists", "", "NoExecute"), Taint("k", "v", "NoSchedule"), False),
    (Toleration("", "Exists", "", ""), Taint("anything", "x", "NoSchedule"), True),  # tolerate everything
    (Toleration("other", "Exists", "", ""), Taint("k", "v", "NoSchedule"), False),
    (Toleration("k", "Equal", "", ""), Taint("k", "", "NoSchedule"), True),
])
def test_toleration_matching(toleration, taint, ok):
    assert tolerates(toleration, taint) is ok


@pytest.mark.parametrize("taints, tolerations, reason", [
    ([], [], None),
    ([{"key": "gpu", "value": "yes", "effect": "NoSchedule"}], [], "node(s) had untolerated taint {gpu: yes}"),
    ([{"key": "gpu", "value": "yes", "effect": "NoExecute"}], [], "node(s) had untolerated taint {gpu: yes}"),
    ([{"key": "gpu", "value": "yes", "effect": "PreferNoSchedule"}], [], None),  # scoring only
    ([{"key": "gpu", "value": "yes", "effect": "NoSchedule"}],
     [{"key": "gpu", "operator": "Equal", "value": "yes", "effect": "NoSchedule"}], None),
    ([{"key": "a", "effect": "NoSchedule"}, {"key": "b", "effect": "NoExecute"}],
     [{"key": "a", "operator": "Exists"}], "node(s) had untolerated taint {b: }"),
])
def test_taints(taints, tolerations, reason):
    assert admits(pod(tolerations=tolerations), node(taints=taints)) == reason


def test_cordoned_nodes_unless_tolerated():
    assert admits(pod(), node(unschedulable=True)) == UNSCHEDULABLE
    tolerant = pod(tolerations=[{"key": "node.kubernetes.io/unschedulable", "operator": "Exists",
                                 "effect": "NoSchedule"}])
    assert admits(tolerant, node(unschedulable=True)) is None


@pytest.mark.parametrize("selector, labels, ok", [
    ({"disk": "ssd"}, {"disk": "ssd"}, True),
    ({"disk": "ssd"}, {"disk": "hdd"}, False),
    ({"disk": "ssd"}, {}, False),
    ({"disk": "ssd", "zone": "a"}, {"disk": "ssd"}, False),
])
def test_node_selector(selector, labels, ok):
    assert (admits(pod(node_selector=selector), node(labels=labels)) is None) is ok


def affinity(*terms):
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}}}


def expr(key, op, *values):
    return {"matchExpressions": [{"key": key, "operator": op, "values": list(values)}]}


@pytest.mark.parametrize("term, labels, ok", [
    (expr("zone", "In", "a", "b"), {"zone": "b"}, True),
    (expr("zone", "In", "a", "b"), {"zone": "c"}, False),
    (expr("zone", "In", "a"), {}, False),
    (expr("zone", "NotIn", "a"), {"zone": "b"}, True),
    (expr("zone", "NotIn", "a"), {}, True),  # absent label: NotIn holds
    (expr("zone", "NotIn", "a"), {"zone": "a"}, False),
    (expr("gpu", "Exists"), {"gpu": ""}, True),
    (expr("gpu", "Exists"), {}, False),
    (expr("gpu", "DoesNotExist"), {}, True),
    (expr("gpu", "DoesNotExist"), {"gpu": "1"}, False),
    (expr("cores", "Gt", "8"), {"cores": "16"}, True),
    (expr("cores", "Gt", "8"), {"cores": "8"}, False),
    (expr("cores", "Gt", "8"), {"cores": "many"}, False),  # not an integer: no match
    (expr("cores", "Gt", "8"), {}, False),
    (expr("cores", "Lt", "8"), {"cores": "4"}, True),
    (expr("cores", "Lt", "8"), {"cores": "-20"}, True),
    (expr("cores", "Lt", "8"), {"cores": "9"}, False),
    ({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}, {}, True),
    ({"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n1"]}]}, {}, False),
    ({}, {"zone": "a"}, False),  # an empty term matches nothing
    ({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]},
                           {"key": "gpu", "operator": "Exists"}]}, {"zone": "a"}, False),  # AND
])
def test_required_node_affinity(term, labels, ok):
    verdict = admits(pod(affinity=affinity(term)), node(labels=labels))
    assert verdict == (None if ok else AFFINITY_MISMATCH)


def test_terms_are_ored():
    both = affinity(expr("zone", "In", "x"), expr("zone", "In", "a"))
    assert admits(pod(affinity=both), node(labels={"zone": "a"})) is None
    assert admits(pod(affinity=affinity()), node(labels={"zone": "a"})) == AFFINITY_MISMATCH  # no terms


@pytest.mark.parametrize("cpu, memory, used, reasons", [
    ("1", "1Gi", (3000, 7 * GI, 10), []),  # exactly full afterwards: fits
    ("1001m", "1Gi", (3000, 0, 0), [INSUFFICIENT_CPU]),
    ("1", "2Gi", (0, 7 * GI, 0), [INSUFFICIENT_MEMORY]),
    ("5", "9Gi", (0, 0, 0), [INSUFFICIENT_CPU, INSUFFICIENT_MEMORY]),
    ("100m", "1Mi", (0, 0, 110), [TOO_MANY_PODS]),
    (None, None, (9000, 9 * GI, 0), []),  # a zero request never fails, even on an over-full node
])
def test_resources(cpu, memory, used, reasons):
    assert resource_shortfalls(pod(cpu=cpu, memory=memory), node(cpu="4", memory="8Gi"), *used) == reasons


def test_filter_nodes_vectorised_and_explained():
    docs = [node_doc("a", cpu="2"), node_doc("b", cpu="8"), node_doc("c", cpu="8", unschedulable=True),
            node_doc("d", cpu="8", taints=[{"key": "dedicated", "value": "ml", "effect": "NoSchedule"}])]
    nodes = [parse_node(d) for d in docs]
    p = pod(cpu="3", memory="1Gi")
    mask, reasons = filter_nodes(p, nodes, np.array([0, 6000, 0, 0]), np.zeros(4, dtype=np.int64),
                                 np.zeros(4, dtype=np.int64))
    assert mask.tolist() == [False, False, False, False]
    assert reasons == {"a": [INSUFFICIENT_CPU], "b": [INSUFFICIENT_CPU], "c": [UNSCHEDULABLE],
                       "d": ["node(s) had untolerated taint {dedicated: ml}"]}
    assert failure_message(4, reasons) == ("0/4 nodes are available: 1 node(s) had untolerated taint "
                                           "{dedicated: ml}, 1 node(s) were unschedulable, 2 Insufficient cpu.")
    mask, _ = filter_nodes(pod(cpu="1"), nodes, np.zeros(4, dtype=np.int64), np.zeros(4, dtype=np.int64),
                           np.zeros(4, dtype=np.int64))
    assert mask.tolist() == [True, True, False, False]
