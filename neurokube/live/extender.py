"""kube-scheduler's extender protocol (k8s.io/kube-scheduler/extender/v1), with NeuroKube's scores.

Wire types use the Go field names (the structs have no json tags):

* ``ExtenderArgs`` ``{"Pod": {...}, "Nodes": {NodeList} | null, "NodeNames": [...] | null}`` —
  ``Nodes`` when the extender is not ``nodeCacheCapable``, ``NodeNames`` when it is;
* filter reply ``{"Nodes" | "NodeNames", "FailedNodes", "FailedAndUnresolvableNodes", "Error"}``,
  in the same mode as the request;
* prioritize reply ``[{"Host": name, "Score": 0..10}]`` (kube-scheduler multiplies by
  ``weight * 100 / 10``);
* bind ``{"PodName", "PodNamespace", "PodUID", "Node"}`` -> ``{"Error": ""}``.

Filter applies the binder's feasibility (requests against this replica's cache of bound pods,
taints, selectors, affinity); taint and affinity failures are *unresolvable* (preemption cannot
help), resource shortfalls are not. Prioritize gives 10 to the node of lowest expected cost under
the learned model, 0 to the highest, linearly between. When the model cannot be used (no model,
stale metrics, a failing prediction) every node scores 0 and kube-scheduler's own plugins decide
(counted as a fallback); when the cache is not synced yet, filter passes every node (the
scheduler has filtered them already). A node the cache does not know yet is judged on the
request's Node object alone (bound pods unknown: zero usage).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np

from neurokube.errors import InputError
from neurokube.live import binding, ledger
from neurokube.live.cache import ClusterCache, Snapshot
from neurokube.live.decide import Decider
from neurokube.live.feasibility import RESOURCE_REASONS, filter_nodes
from neurokube.live.kube import KubeClient, KubeError
from neurokube.live.ledger import Ledger
from neurokube.live.objects import Node, Pod, parse_node, parse_pod
from neurokube.live.prometheus import PrometheusSource
from neurokube.live.scheduler import pod_spec
from neurokube.live.telemetry import Telemetry
from neurokube.live.view import build_view
from neurokube.logs import event

log = logging.getLogger("neurokube.live.extender")


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
            self.nodes = [parse_node(item) for item in self.node_items]
            self.names = [n.name for n in self.nodes]
        else:
            if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
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
        for key in ("PodName", "PodNamespace", "Node"):
            if not isinstance(doc.get(key), str) or not doc[key]:
                raise InputError(f"ExtenderBindingArgs.{key} must be a non-empty string")
        if not isinstance(doc.get("PodUID", ""), str):
            raise InputError("ExtenderBindingArgs.PodUID must be a string")
        self.name, self.namespace, self.node = doc["PodName"], doc["PodNamespace"], doc["Node"]
        self.uid = doc.get("PodUID") or ""


def parse_args(verb: str, doc: object) -> ExtenderArgs | BindingArgs:
    return BindingArgs(doc) if verb == "bind" else ExtenderArgs(doc)


class Extender:
    def __init__(self, kube: KubeClient, cache: ClusterCache, metrics: PrometheusSource | None, decider: Decider,
                 ledger_: Ledger, telemetry: Telemetry, *, stale_after_s: float = 120.0, recent_lag_s: float = 60.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.kube = kube
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
            self.telemetry.fallbacks.labels(reason="cache_unavailable").inc()
            passing = list(range(len(args.names)))
        else:
            snapshot, known = self._candidates(args)
            mask, reasons = filter_nodes(args.pod, snapshot.nodes, snapshot.used_cpu, snapshot.used_memory,
                                         snapshot.used_pods)
            passing = []
            for i, name in enumerate(args.names):
                if i not in known or mask[known[i]]:
                    passing.append(i)
                    continue
                why = ", ".join(reasons.get(name, ["does not fit"]))
                target = failed if all(r in RESOURCE_REASONS for r in reasons.get(name, [])) else unresolvable
                target[name] = why
        reply: dict = {"Nodes": None, "NodeNames": None, "FailedNodes": failed,
                       "FailedAndUnresolvableNodes": unresolvable, "Error": ""}
        if args.cache_capable:
            reply["NodeNames"] = [args.names[i] for i in passing]
        else:
            reply["Nodes"] = {"apiVersion": "v1", "kind": "NodeList", "metadata": {},
                              "items": [args.node_items[i] for i in passing]}
        return reply

    def prioritize(self, args: ExtenderArgs) -> list[dict]:
        scores = np.zeros(len(args.names), dtype=np.int64)
        if not self.cache.synced:
            self.telemetry.fallbacks.labels(reason="cache_unavailable").inc()
        else:
            snapshot, known = self._candidates(args)
            mask, _ = filter_nodes(args.pod, snapshot.nodes, snapshot.used_cpu, snapshot.used_memory,
                                   snapshot.used_pods)
            feasible = np.flatnonzero(mask)
            if feasible.size:
                now = self.clock()
                latest = self.metrics.latest() if self.metrics is not None else None
                fresh = latest is not None and latest.fresh(now, self.stale_after_s)
                view = build_view(snapshot, feasible, latest, now, self.recent_lag_s)
                view_scores, reason = self.decider.scores(pod_spec(args.pod), view, fresh)
                by_snapshot = dict(zip(feasible.tolist(), view_scores.tolist(), strict=True))
                for i in range(len(args.names)):
                    if i in known:
                        scores[i] = by_snapshot.get(known[i], 0)
                event(log, "prioritized", logging.DEBUG, pod=args.pod.key, nodes=len(args.names),
                      feasible=int(feasible.size), fallback=reason or None, model_version=self.decider.model_version)
        return [{"Host": name, "Score": int(score)} for name, score in zip(args.names, scores, strict=True)]

    def bind(self, args: BindingArgs) -> dict:
        try:
            current = self.kube.get(binding.pod_path(args.namespace, args.name))
        except KubeError as exc:
            if exc.not_found:
                return {"Error": f"pod {args.namespace}/{args.name} not found"}
            raise
        pod = parse_pod(current)
        if args.uid and pod.uid and args.uid != pod.uid:
            return {"Error": f"pod {pod.key} has UID {pod.uid}, not {args.uid}"}
        placement = self.ledger.place(pod, args.node)
        if placement.outcome == binding.BOUND or (
                placement.outcome == binding.ALREADY_BOUND and placement.node == args.node):
            return {"Error": ""}
        if placement.outcome in (ledger.CONTENDED, ledger.TOO_SLOW):
            self.telemetry.bind_conflicts.labels(kind=placement.outcome).inc()
        return {"Error": f"binding {pod.key} to {args.node} failed: {placement.outcome}: {placement.detail}"}

    # -- helpers --------------------------------------------------------------------------------

    def _candidates(self, args: ExtenderArgs) -> tuple[Snapshot, dict[int, int]]:
        """A snapshot of the request's nodes with the cache's usage, and request index -> snapshot index."""
        base = self.cache.snapshot()
        index = base.index()
        nodes: list[Node] = []
        rows: list[int] = []
        known: dict[int, int] = {}
        for i, name in enumerate(args.names):
            j = index.get(name)
            node = args.nodes[i] if args.nodes is not None else (base.nodes[j] if j is not None else None)
            if node is None:
                continue  # NodeNames mode and not in the cache: cannot judge, passes
            known[i] = len(nodes)
            nodes.append(node)
            rows.append(-1 if j is None else j)

        def take(array: np.ndarray) -> np.ndarray:
            return np.array([array[j] if j >= 0 else 0 for j in rows], dtype=np.int64)

        snapshot = Snapshot(taken_at=base.taken_at, nodes=tuple(nodes), used_cpu=take(base.used_cpu),
                            used_memory=take(base.used_memory), used_nz_cpu=take(base.used_nz_cpu),
                            used_nz_memory=take(base.used_nz_memory), used_pods=take(base.used_pods),
                            lim_cpu=take(base.lim_cpu), unlimited=take(base.unlimited), recent=base.recent)
        return snapshot, known
