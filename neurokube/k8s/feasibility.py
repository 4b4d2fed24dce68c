"""Which nodes can take a pod, as kube-scheduler's filter plugins decide (v1.35).

Functions over :mod:`neurokube.k8s.objects` and :class:`~neurokube.k8s.nodetable.NodeTable`
(deterministic; the only state is the table's memo of which rows a set of pod constraints
admits), checked in the scheduler's plugin order; the
first failing check gives the node's reason, in the scheduler's own words so that events read the
same:

1. NodeUnschedulable: a cordoned node (``spec.unschedulable``) unless the pod tolerates
   ``node.kubernetes.io/unschedulable:NoSchedule``;
2. TaintToleration: every ``NoSchedule`` and ``NoExecute`` taint must be tolerated
   (``PreferNoSchedule`` only affects scoring, so it is ignored here);
3. NodeAffinity: ``nodeSelector`` labels, and required node affinity (terms ORed, expressions
   ANDed; In, NotIn, Exists, DoesNotExist, Gt, Lt; ``matchFields`` on ``metadata.name``);
4. NodeResourcesFit: requests against allocatable minus the requests of the pods bound there,
   and the pod count against allocatable pods. A zero request never fails, as upstream.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from neurokube.k8s.nodetable import NodeTable
from neurokube.k8s.objects import UNSCHEDULABLE_TAINT, Node, Pod, Requirement, Taint, Term, Toleration

UNSCHEDULABLE = "node(s) were unschedulable"
AFFINITY_MISMATCH = "node(s) didn't match Pod's node affinity/selector"
INSUFFICIENT_CPU = "Insufficient cpu"
INSUFFICIENT_MEMORY = "Insufficient memory"
TOO_MANY_PODS = "Too many pods"
FILTER_EFFECTS = ("NoSchedule", "NoExecute")
#: Reasons that preemption cannot fix (the extender reports them as unresolvable).
RESOURCE_REASONS = (INSUFFICIENT_CPU, INSUFFICIENT_MEMORY, TOO_MANY_PODS)
#: Distinct pod constraint sets whose admission a node table keeps (then it starts over).
MEMO_ENTRIES = 256


def tolerates(toleration: Toleration, taint: Taint) -> bool:
    """core/v1 Toleration.ToleratesTaint."""
    if toleration.effect and toleration.effect != taint.effect:
        return False
    if toleration.key and toleration.key != taint.key:
        return False
    if toleration.operator == "Exists":
        return True
    return toleration.value == taint.value


def untolerated_taint(taints: Sequence[Taint], tolerations: Sequence[Toleration]) -> Taint | None:
    """The first NoSchedule/NoExecute taint that no toleration tolerates."""
    for taint in taints:
        if taint.effect in FILTER_EFFECTS and not any(tolerates(t, taint) for t in tolerations):
            return taint
    return None


def requirement_matches(req: Requirement, node: Node) -> bool:
    if req.field:
        value: str | None = node.name if req.key == "metadata.name" else None
    else:
        value = node.label(req.key)
    op = req.operator
    if op == "In":
        return value is not None and value in req.values
    if op == "NotIn":
        return value is None or value not in req.values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if value is None:
        return False
    try:
        have, want = int(value), int(req.values[0])
    except (ValueError, IndexError):
        return False
    return have > want if op == "Gt" else have < want


def term_matches(term: Term, node: Node) -> bool:
    """An empty term matches nothing (core/v1 NodeSelectorTerm)."""
    return bool(term.requirements) and all(requirement_matches(r, node) for r in term.requirements)


def affinity_matches(pod: Pod, node: Node) -> bool:
    if any(node.label(k) != v for k, v in pod.node_selector):
        return False
    if pod.required_terms is None:
        return True
    return any(term_matches(term, node) for term in pod.required_terms)


def admits(pod: Pod, node: Node) -> str | None:
    """Everything but resources: the reason the node is ruled out, or None."""
    if node.unschedulable and not any(
            tolerates(t, Taint(UNSCHEDULABLE_TAINT, "", "NoSchedule")) for t in pod.tolerations):
        return UNSCHEDULABLE
    taint = untolerated_taint(node.taints, pod.tolerations)
    if taint is not None:
        return f"node(s) had untolerated taint {{{taint.key}: {taint.value}}}"
    if not affinity_matches(pod, node):
        return AFFINITY_MISMATCH
    return None


def resource_shortfalls(pod: Pod, node: Node, used_cpu: int, used_memory: int, used_pods: int) -> list[str]:
    """NodeResourcesFit's reasons (empty when the pod fits)."""
    reasons = []
    if used_pods + 1 > node.alloc_pods:
        reasons.append(TOO_MANY_PODS)
    r = pod.resources
    if r.cpu > 0 and r.cpu > node.alloc_cpu - used_cpu:
        reasons.append(INSUFFICIENT_CPU)
    if r.memory > 0 and r.memory > node.alloc_memory - used_memory:
        reasons.append(INSUFFICIENT_MEMORY)
    return reasons


def admission(pod: Pod, table: NodeTable) -> tuple[np.ndarray, dict[int, str]]:
    """Which rows of ``table`` pass everything but resources, and the reason of each row that does not.

    Only tolerations, nodeSelector and required node affinity decide this, so the result is kept
    in the table per distinct set of them: the pods of a workload, and all pods without any
    constraint, share one entry until the node set changes. Without a selector or affinity only
    tainted and cordoned rows are checked.
    """
    needs_labels = bool(pod.node_selector) or pod.required_terms is not None
    key = ("admission", pod.tolerations, pod.node_selector, pod.required_terms) if needs_labels or not \
        table.plain.all() else ("admission",)  # nothing to check: every row passes, whatever the tolerations
    hit = table.memo.get(key)
    if hit is not None:
        return hit
    ok = np.ones(len(table), dtype=bool)
    why: dict[int, str] = {}
    check = range(len(table)) if needs_labels else np.flatnonzero(~table.plain).tolist()
    for i in check:
        reason = admits(pod, table.nodes[i])
        if reason is not None:
            ok[i] = False
            why[i] = reason
    if len(table.memo) >= MEMO_ENTRIES:
        table.memo.clear()
    table.memo[key] = (ok, why)
    return ok, why


def _resource_failures(pod: Pod, table: NodeTable, used_cpu: np.ndarray, used_memory: np.ndarray,
                       used_pods: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r = pod.resources
    too_many = used_pods + 1 > table.alloc_pods
    short_cpu = (r.cpu > 0) & (r.cpu > table.alloc_cpu - used_cpu)
    short_mem = (r.memory > 0) & (r.memory > table.alloc_memory - used_memory)
    return too_many, short_cpu, short_mem


def fit_mask(pod: Pod, table: NodeTable, used_cpu: np.ndarray, used_memory: np.ndarray,
             used_pods: np.ndarray) -> np.ndarray:
    """The rows of ``table`` that can take ``pod`` (usage arrays follow the table's rows)."""
    too_many, short_cpu, short_mem = _resource_failures(pod, table, used_cpu, used_memory, used_pods)
    ok, _ = admission(pod, table)
    return ok & ~(too_many | short_cpu | short_mem)


def explain(pod: Pod, table: NodeTable, used_cpu: np.ndarray, used_memory: np.ndarray, used_pods: np.ndarray,
            rows: np.ndarray) -> dict[str, list[str]]:
    """The reasons of the (failing) ``rows``, by node name: the first failing non-resource check
    alone, else every resource shortfall."""
    too_many, short_cpu, short_mem = _resource_failures(pod, table, used_cpu, used_memory, used_pods)
    _, why = admission(pod, table)
    reasons: dict[str, list[str]] = {}
    for i in np.asarray(rows, dtype=np.int64).tolist():
        if i in why:
            reasons[table.names[i]] = [why[i]]
        else:
            reasons[table.names[i]] = [w for w, bad in ((TOO_MANY_PODS, too_many[i]), (INSUFFICIENT_CPU, short_cpu[i]),
                                                        (INSUFFICIENT_MEMORY, short_mem[i])) if bad]
    return reasons


def filter_nodes(pod: Pod, nodes: Sequence[Node] | NodeTable, used_cpu: np.ndarray, used_memory: np.ndarray,
                 used_pods: np.ndarray) -> tuple[np.ndarray, dict[str, list[str]]]:
    """A feasibility mask over ``nodes`` and, for each infeasible node, its reasons.

    Resources are checked vectorised; the per-node label and taint checks run only for nodes that
    have taints or are cordoned, or when the pod has a selector or affinity, and once per node set
    when ``nodes`` is the cache's :class:`NodeTable`.
    """
    table = nodes if isinstance(nodes, NodeTable) else NodeTable.of(nodes)
    mask = fit_mask(pod, table, used_cpu, used_memory, used_pods)
    failing = np.flatnonzero(~mask)
    return mask, (explain(pod, table, used_cpu, used_memory, used_pods, failing) if failing.size else {})


def failure_message(n_nodes: int, reasons: dict[str, list[str]]) -> str:
    """kube-scheduler's FitError text: ``0/N nodes are available: 2 Insufficient cpu, ...``."""
    counts: Counter[str] = Counter(why for whys in reasons.values() for why in whys)
    parts = sorted(f"{k} {why}" for why, k in counts.items())
    if not parts:
        return f"0/{n_nodes} nodes are available."
    return f"0/{n_nodes} nodes are available: {', '.join(parts)}."
