"""kube-scheduler's extender protocol (k8s.io/kube-scheduler/extender/v1), with NeuroKube's scores.

Wire types use the Go field names (the structs have no json tags):

* ``ExtenderArgs`` ``{"Pod": {...}, "Nodes": {NodeList} | null, "NodeNames": [...] | null}`` —
  ``Nodes`` when the extender is not ``nodeCacheCapable``, ``NodeNames`` when it is;
* filter reply ``{"Nodes" | "NodeNames", "FailedNodes", "FailedAndUnresolvableNodes", "Error"}``,
  in the same mode as the request;
* prioritize reply ``[{"Host": name, "Score": 1..10}]`` (kube-scheduler multiplies by
  ``weight * 100 / 10``), for the nodes that score above 0 (below);
* bind ``{"PodName", "PodNamespace", "PodUID", "Node"}`` -> ``{"Error": ""}`` (a pod that does not
  exist, or a namespace that does not, is a 404: bad input, kube-scheduler treats any non-200 as an
  error).

Filter applies the binder's feasibility (requests against this replica's cache of bound pods,
taints, selectors, affinity); taint and affinity failures are *unresolvable* (preemption cannot
help), resource shortfalls are not. Prioritize gives 10 to the node of lowest expected cost under
the learned model, 0 to the highest, linearly between. When the model cannot be used (no model,
stale metrics, a failing prediction) every node scores 0 and kube-scheduler's own plugins decide
(counted as a fallback).

**A node that scores 0 is left out of the prioritize reply.** kube-scheduler (v1.35,
``prioritizeNodes``) adds ``score * weight * 10`` per listed host and nothing for an unlisted
one, so the totals are the same. The one difference is its tie-break: a listed node gets a random
``Randomizer``, an unlisted one keeps 0, so among equal totals a listed node wins and unlisted
nodes tie-break in heap order, as they would with no extender. Why: only the shortlist scores
above 0 (about 50 of 1,000 nodes), while kube-scheduler's goroutine calling the extender spent
1.4 ms of CPU per pod, 1.0 ms of it decoding the 1,000-entry reply, plus collecting that garbage (a
CPU profile of kube-scheduler in the bench's paced extender phase at 1,000 nodes; the recipe is in
docs/BENCHMARKS.md, "... and as an extender"). On a fallback the reply is ``[]``.

When the cache is not synced yet, filter passes every node (the
scheduler has filtered them already). A node the cache does not know yet is judged on the
request's Node object alone (bound pods unknown: zero usage).
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Callable

import numpy as np

from neurokube.adapters.kube import KubeClient
from neurokube.errors import InputError, RefusedError
from neurokube.k8s.feasibility import RESOURCE_REASONS, explain, fit_mask
from neurokube.k8s.nodetable import NodeTable
from neurokube.k8s.objects import Node, Pod, namespace_name, object_name, parse_node, parse_pod
from neurokube.live import binding, ledger, trust
from neurokube.live.cache import ClusterCache, Snapshot
from neurokube.live.decide import Decider
from neurokube.live.ledger import Ledger
from neurokube.live.prometheus import PrometheusSource
from neurokube.live.scheduler import pod_spec
from neurokube.live.telemetry import Telemetry
from neurokube.live.view import build_view
from neurokube.logs import event
from neurokube.policies.framework import Reason

log = logging.getLogger("neurokube.live.extender")
NODE_MEMO_ENTRIES = 20_000


class NodeMemo:
    """Request nodes parsed once per ``(name, resourceVersion)``.

    In ``Nodes`` mode every call carries the whole NodeList, and parsing thousands of Node objects
    per call costs more than everything else the extender does. A Node object at a given
    resourceVersion never changes (the apiserver gives every write a new one), so the parse of
    the first call serves the next ones. Objects without a resourceVersion are parsed every time.
    The memo starts over beyond ``NODE_MEMO_ENTRIES`` (every node update adds a version).
    """

    def __init__(self, limit: int = NODE_MEMO_ENTRIES) -> None:
        self.limit = limit
        self._nodes: dict[tuple[str, str], Node] = {}

    def parse(self, item: object) -> Node:
        meta = item.get("metadata") if isinstance(item, dict) else None
        key = (meta.get("name"), meta.get("resourceVersion")) if isinstance(meta, dict) else (None, None)
        if not (isinstance(key[0], str) and isinstance(key[1], str) and key[1]):
            return parse_node(item)
        node = self._nodes.get(key)
        if node is None:
            node = parse_node(item)
            if len(self._nodes) >= self.limit:
                self._nodes.clear()
            self._nodes[key] = node
        return node


#: One per process: the arguments are parsed at the HTTP edge, before the runtime exists.
PARSED_NODES = NodeMemo()


class PriorityEncoder:
    """Encodes a prioritize reply, ``[{"Host": name, "Score": n}, ...]`` for the nodes whose score
    is not 0 (module docstring), as compact JSON text.

    Why by hand: at 1,000 nodes, building the list of dicts and ``json.dumps`` of it took about
    1 ms of a 2 ms call (a cProfile of the in-process calls that ``benchmarks/extender_latency.py``
    sets up), inside kube-scheduler's serial scheduling cycle. That bench's before/after, with the
    zeros also left out: prioritize 2.12 -> 1.15 ms at the median. Each node's
    ``{"Host":"<name>","Score":`` prefix is encoded once by ``json.dumps`` itself (so escaping is
    json's) and kept; a reply joins prefixes and the scores' digits.
    tests/unit/test_live_extender_modes.py checks the text equals ``json.dumps`` of the wire
    objects. The memo starts over beyond ``limit`` names (node churn)."""

    def __init__(self, limit: int = NODE_MEMO_ENTRIES) -> None:
        self.limit = limit
        self._prefixes: dict[str, str] = {}

    def encode(self, names: list[str], scores: np.ndarray) -> str:
        if len(names) != len(scores):
            raise ValueError(f"{len(names)} names but {len(scores)} scores")
        prefixes = self._prefixes
        parts = []
        for i, score in listed(scores):
            name = names[i]
            prefix = prefixes.get(name)
            if prefix is None:
                if len(prefixes) >= self.limit:
                    prefixes.clear()
                prefix = prefixes[name] = '{"Host":' + json.dumps(name) + ',"Score":'
            parts.append(f"{prefix}{score}}}")
        return "[" + ",".join(parts) + "]"


PRIORITY_ENCODER = PriorityEncoder()


def listed(scores: np.ndarray) -> list[tuple[int, int]]:
    """(position, score) of the nodes a prioritize reply lists: those scoring above 0 (module docstring)."""
    rows = np.flatnonzero(scores)
    return list(zip(rows.tolist(), scores[rows].tolist()))


class ExtenderArgs:
    """A parsed ``ExtenderArgs``: the pod, and the candidate nodes as objects or names."""

    def __init__(self, doc: object) -> None:
        if not isinstance(doc, dict):
            raise InputError("ExtenderArgs must be a JSON object", why=f"got {type(doc).__name__}")
        if doc.get("Pod") is None:
            raise InputError("ExtenderArgs.Pod is missing")
        self.pod: Pod = parse_pod(doc["Pod"])
        nodes, names = doc.get("Nodes"), doc.get("NodeNames")
        if nodes is None and names is None:
            raise InputError("ExtenderArgs needs Nodes (nodeCacheCapable: false) or NodeNames (true)")
        self.node_items: list[dict] | None = None
        self.nodes: list[Node] | None = None
        self.names: list[str]
        if nodes is not None:
            if not isinstance(nodes, dict) or not isinstance(nodes.get("items", []), list):
                raise InputError("ExtenderArgs.Nodes must be a NodeList object with an items list")
            self.node_items = list(nodes.get("items") or [])
            self.nodes = [PARSED_NODES.parse(item) for item in self.node_items]
            self.names = [n.name for n in self.nodes]
        else:
            if not isinstance(names, list) or not all(map(isinstance, names, itertools.repeat(str))) or "" in names:
                raise InputError("ExtenderArgs.NodeNames must be a list of node names")
            self.names = list(names)

    @property
    def cache_capable(self) -> bool:
        return self.nodes is None


class BindingArgs:
    """A parsed ``ExtenderBindingArgs``."""

    def __init__(self, doc: object) -> None:
        if not isinstance(doc, dict):
            raise InputError("ExtenderBindingArgs must be a JSON object", why=f"got {type(doc).__name__}")
        self.name = object_name(doc.get("PodName"), "ExtenderBindingArgs.PodName")
        self.namespace = namespace_name(doc.get("PodNamespace"), "ExtenderBindingArgs.PodNamespace")
        self.node = object_name(doc.get("Node"), "ExtenderBindingArgs.Node")
        if not isinstance(doc.get("PodUID", ""), str):
            raise InputError("ExtenderBindingArgs.PodUID must be a string")
        self.uid = doc.get("PodUID") or ""


def parse_args(verb: str, doc: object) -> ExtenderArgs | BindingArgs:
    return BindingArgs(doc) if verb == "bind" else ExtenderArgs(doc)


class Extender:
    def __init__(self, kube: KubeClient, cache: ClusterCache, metrics: PrometheusSource | None, decider: Decider,
                 ledger_: Ledger, telemetry: Telemetry, *, stale_after_s: float = 120.0, recent_lag_s: float = 60.0,
                 bind_schedulers: frozenset[str] = frozenset({"default-scheduler"}),
                 clock: Callable[[], float] = time.time) -> None:
        self.kube = kube
        self.bind_schedulers = bind_schedulers
        self.cache = cache
        self.metrics = metrics
        self.decider = decider
        self.ledger = ledger_
        self.telemetry = telemetry
        self.stale_after_s = stale_after_s
        self.recent_lag_s = recent_lag_s
        self.clock = clock

    # -- verbs ----------------------------------------------------------------------------------

    def filter(self, args: ExtenderArgs) -> dict:
        failed: dict[str, str] = {}
        unresolvable: dict[str, str] = {}
        if not self.cache.synced:
            self.telemetry.fallbacks.labels(reason=Reason.CACHE_UNAVAILABLE.value).inc()
            passing = None
        else:
            snapshot, rows = self._candidates(args)
            mask = fit_mask(args.pod, snapshot.table, snapshot.used_cpu, snapshot.used_memory, snapshot.used_pods)
            ok = np.ones(len(rows), dtype=bool)  # a node the cache does not know passes
            known = np.flatnonzero(rows >= 0)
            ok[known] = mask[rows[known]]
            failing = np.flatnonzero(~ok)
            passing = None if failing.size == 0 else np.flatnonzero(ok).tolist()
            if failing.size:
                reasons = explain(args.pod, snapshot.table, snapshot.used_cpu, snapshot.used_memory,
                                  snapshot.used_pods, rows[failing])
                for i in failing.tolist():
                    name = args.names[i]
                    whys = reasons.get(name) or ["does not fit"]
                    target = failed if all(r in RESOURCE_REASONS for r in whys) else unresolvable
                    target[name] = ", ".join(whys)
        reply: dict = {"Nodes": None, "NodeNames": None, "FailedNodes": failed,
                       "FailedAndUnresolvableNodes": unresolvable, "Error": ""}
        if args.cache_capable:
            reply["NodeNames"] = args.names if passing is None else [args.names[i] for i in passing]
        else:
            items = args.node_items if passing is None else [args.node_items[i] for i in passing]
            reply["Nodes"] = {"apiVersion": "v1", "kind": "NodeList", "metadata": {}, "items": items}
        return reply

    def prioritize(self, args: ExtenderArgs) -> list[dict]:
        """The prioritize reply as wire objects (``[{"Host", "Score"}]``); the HTTP edge sends
        :meth:`prioritize_json`, the same reply encoded."""
        return [{"Host": args.names[i], "Score": score} for i, score in listed(self.scores(args))]

    def prioritize_json(self, args: ExtenderArgs) -> str:
        """The prioritize reply as JSON text, exactly ``json.dumps(self.prioritize(args))`` with
        compact separators, written from memoised per-node prefixes (:class:`PriorityEncoder`)."""
        return PRIORITY_ENCODER.encode(args.names, self.scores(args))

    def scores(self, args: ExtenderArgs) -> np.ndarray:
        """Each request node's score 0..10, in the request's order."""
        scores = np.zeros(len(args.names), dtype=np.int64)
        if not self.cache.synced:
            self.telemetry.fallbacks.labels(reason=Reason.CACHE_UNAVAILABLE.value).inc()
        else:
            snapshot, rows = self._candidates(args)
            mask = fit_mask(args.pod, snapshot.table, snapshot.used_cpu, snapshot.used_memory, snapshot.used_pods)
            positions = np.flatnonzero(rows >= 0)
            positions = positions[mask[rows[positions]]]  # request positions of the feasible nodes, in order
            if positions.size:
                now = self.clock()
                latest = self.metrics.latest() if self.metrics is not None else None
                fresh = latest is not None and latest.fresh(now, self.stale_after_s)
                view = build_view(snapshot, rows[positions], latest, now, self.recent_lag_s)
                spec = pod_spec(args.pod, self.cache.workload_id(args.pod.workload))
                view_scores, reason = self.decider.scores(spec, view, fresh)
                scores[positions] = view_scores
                event(log, "prioritized", logging.DEBUG, pod=args.pod.key, nodes=len(args.names),
                      feasible=int(positions.size), fallback=reason or None,
                      model_version=self.decider.model_version)
        return scores

    def bind(self, args: BindingArgs) -> dict:
        """kube-scheduler's bind verb. The pod and node are checked against the apiserver and the
        watch cache before any write (:func:`neurokube.live.trust.bindable_pod`): a refusal is a
        4xx, counted by reason; a placement that fails answers ``{"Error": ...}`` as the protocol says."""
        try:
            pod = trust.bindable_pod(self.kube, self.cache, args.namespace, args.name, args.uid, args.node,
                                     self.bind_schedulers)
        except RefusedError as exc:
            self.telemetry.refused.labels(reason=exc.reason).inc()
            raise
        placement = self.ledger.place(pod, args.node)
        if placement.outcome == binding.BOUND or (
                placement.outcome == binding.ALREADY_BOUND and placement.node == args.node):
            return {"Error": ""}
        if placement.outcome in (ledger.CONTENDED, ledger.TOO_SLOW):
            self.telemetry.bind_conflicts.labels(kind=placement.outcome).inc()
        return {"Error": f"binding {pod.key} to {args.node} failed: {placement.outcome}: {placement.detail}"}

    # -- helpers --------------------------------------------------------------------------------

    def _candidates(self, args: ExtenderArgs) -> tuple[Snapshot, np.ndarray]:
        """The snapshot to judge the request's nodes on, and each request node's row in it (-1: the
        cache does not know the node; only in ``NodeNames`` mode, where it then passes unjudged).

        ``NodeNames`` mode, and ``Nodes`` mode when every request node equals the cache's: the
        cache's own snapshot, nothing built per call. Otherwise (a node the cache has not seen
        yet, or seen at another version) the request's Node objects are judged as sent, with the
        cache's usage of the node of that name (none for an unknown node).
        """
        base = self.cache.snapshot()
        rows = base.table.rows(args.names)
        if args.nodes is None:
            return base, rows
        cached = base.table.nodes
        if all(j >= 0 and (node is cached[j] or node == cached[j]) for node, j in zip(args.nodes, rows.tolist())):
            return base, rows
        table = NodeTable.of(args.nodes)
        known = rows >= 0

        def take(array: np.ndarray) -> np.ndarray:
            out = np.zeros(len(rows), dtype=np.int64)
            out[known] = array[rows[known]]
            return out

        snapshot = Snapshot(taken_at=base.taken_at, nodes=table.nodes, used_cpu=take(base.used_cpu),
                            used_memory=take(base.used_memory), used_nz_cpu=take(base.used_nz_cpu),
                            used_nz_memory=take(base.used_nz_memory), used_pods=take(base.used_pods),
                            lim_cpu=take(base.lim_cpu), unlimited=take(base.unlimited), recent=base.recent,
                            table=table)
        return snapshot, np.arange(len(rows), dtype=np.int64)
