"""The actuator function's tick: NeuroKube's actuator on the live cluster's running pods.

The replay shows an actuator an :class:`~neurokube.acting.base.ActuatorView` every minute and
applies its actions with the cluster's rules (``sim/acting.py``). Live, a PingSource wakes the
actuator function every minute and :meth:`Actor.tick` does the same against the apiserver:

1. **Read** the nodes and every pod with a fresh list from the apiserver (paginated; no watch
   cache, whose parsed pods lack the priority, the owners and the container names an action
   needs), and each pod's CPU and memory usage now from Prometheus (cAdvisor's series,
   ``NEUROKUBE_PROM_POD_CPU_USAGE`` / ``_MEMORY_USAGE``), and the nodes' statistics as the binder
   reads them (:class:`~neurokube.live.prometheus.PrometheusSource`).
2. **Build the view** (:func:`build_view`): one row per running pod (bound, phase Running, not
   being deleted) that has usage, outside ``NEUROKUBE_ACTUATOR_SKIP_NAMESPACES``. A pod without
   usage series is not a row (unknown usage is not zero usage: it would be right-sized to the
   minimum), but its requests count on its node, as do those of every bound pod that is not
   terminal. Requests and limits are the sums over the pod's containers (``neurokube.k8s``
   quantities, memory in MiB); a limit is 0 (none) when a container has none.
3. **Observe, then act**: the actuator is told the usage (:meth:`observe`) and asked for actions
   (:meth:`act`). The AI layer may fail; the cluster may not: anything the actuator raises is
   logged, counted (``neurokube_actuator_fallbacks_total{reason="error"}``) and the tick does
   nothing.
4. **Apply** each action, in order, through :mod:`neurokube.live.actuation`: a resize patches
   ``pods/resize`` and an eviction posts a policy/v1 Eviction. **Dry run by default**
   (``NEUROKUBE_ACTUATOR_DRY_RUN``): the apiserver validates and persists nothing. Every answer
   is counted (``neurokube_actuator_actions_total{action, result}``) and logged as one
   ``actuator decision`` line (the binder's decision log has a placement schema: candidates,
   propensities, features; an action has none of those, so its record is this structured line).

A resize changes the **first container** only: the pod's new totals minus its old ones are added
to that container's requests and limits (for a one-container pod, the container gets the totals),
and only the quantities that change are sent. A change that would take that container's value to
zero or below, or add a limit the pod has none of, is not sent (counted ``skipped``). An
eviction's ``recreate_with`` is ignored live: the pod's controller re-creates it from its template.

**Disruption budgets** are enforced by the apiserver: an eviction a PodDisruptionBudget does not
allow is answered 429 (``refused_budget``). The view therefore shows ``unavailable`` 0 and
``max_unavailable`` :data:`NO_BUDGET` for every workload: the actuator proposes, the apiserver
disposes.

**Ids**: a workload (``namespace/controller owner``, :attr:`~neurokube.k8s.objects.Pod.workload`)
gets a dense id, and a pod (by UID) an id, both kept for the life of the :class:`Actor` (the
actuator's series, cooldowns and eviction budget are indexed by them). **Time**: the view's
``now_s`` is seconds since the Actor's start rounded down to a 5-minute bin, so that the
actuator's 5-minute series start at bin 0 (epoch seconds would make them millions of bins long)
and stay aligned with wall-clock bins.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from neurokube.acting.base import Action, Actuator, ActuatorView, Evict, Resize, RunningPods
from neurokube.acting.neurokube_actuator import BIN_S, NeuroKubeActuator
from neurokube.adapters.kube import KubeClient
from neurokube.errors import InputError, NeuroKubeError, TemporaryError
from neurokube.k8s.feasibility import fit_mask
from neurokube.k8s.nodetable import NodeTable
from neurokube.k8s.objects import Node, Pod, parse_node, parse_pod
from neurokube.k8s.quantity import MIB, cpu_milli, memory_bytes, mib_down, mib_up
from neurokube.live import actuation
from neurokube.live.actuation import Outcome, Result
from neurokube.live.settings import Settings, actuator_args
from neurokube.live.telemetry import Telemetry, process_telemetry
from neurokube.logs import event
from neurokube.policies.base import NodeMetrics

log = logging.getLogger("neurokube.live.acting")

NO_BUDGET = 1_000_000
"""``max_unavailable`` of every workload: live, the apiserver enforces the disruption budgets."""
PAGE = 500
SKIPPED = "skipped"


# -- the view --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Container:
    """One container's requests and limits (millicores, bytes; None: not set)."""

    name: str
    cpu_request: int | None
    memory_request: int | None
    cpu_limit: int | None
    memory_limit: int | None


@dataclass(frozen=True)
class Target:
    """The pod behind a view row, as an action needs it."""

    namespace: str
    name: str
    uid: str
    node: str
    workload: str
    containers: tuple[Container, ...]
    totals: tuple[int, int, int, int]  # the row's (cpu request, memory request MiB, cpu limit, memory limit MiB)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass
class Ids:
    """Dense workload ids and pod ids (by UID), stable across ticks; a pod id is never reused."""

    workloads: dict[str, int] = field(default_factory=dict)
    pods: dict[str, int] = field(default_factory=dict)
    next_pod: int = 0

    def workload(self, name: str) -> int:
        return self.workloads.setdefault(name, len(self.workloads))

    def pod(self, uid: str) -> int:
        found = self.pods.get(uid)
        if found is None:
            found = self.pods[uid] = self.next_pod
            self.next_pod += 1
        return found

    def keep_pods(self, uids: set[str]) -> None:
        """Forget the ids of pods that are gone (their ids are not reused)."""
        for uid in [u for u in self.pods if u not in uids]:
            del self.pods[uid]


@dataclass
class Built:
    """A view and what it was built from: ``targets[row]`` is the pod of view row ``row``."""

    view: ActuatorView
    targets: list[Target]
    no_usage: int = 0  # running pods without usage series (not rows)
    skipped_namespace: int = 0  # running pods in NEUROKUBE_ACTUATOR_SKIP_NAMESPACES (not rows)
    unreadable: int = 0  # pods or nodes that could not be parsed (left out)
    unplaceable: int = 0  # pending pods no node could take even if it were empty (not in view.pending)


def _timestamp(value: object) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _containers(doc: Mapping, where: str) -> tuple[Container, ...]:
    out = []
    for i, c in enumerate(doc["spec"]["containers"]):
        resources = c.get("resources") or {}
        requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
        path = f"{where} spec.containers[{i}]"

        def read(values: Mapping, resource: str, parse) -> int | None:
            return parse(values[resource], f"{path} {resource}") if resource in values else None

        cpu_lim, mem_lim = read(limits, "cpu", cpu_milli), read(limits, "memory", memory_bytes)
        cpu_req, mem_req = read(requests, "cpu", cpu_milli), read(requests, "memory", memory_bytes)
        # the apiserver defaults a missing request to the limit
        out.append(Container(str(c.get("name") or ""), cpu_req if cpu_req is not None else cpu_lim,
                             mem_req if mem_req is not None else mem_lim, cpu_lim, mem_lim))
    return tuple(out)


def _totals(containers: tuple[Container, ...]) -> tuple[int, int, int, int]:
    """(cpu request, memory request MiB, cpu limit, memory limit MiB) summed over the containers;
    a limit is 0 (none) when some container has none."""
    cpu = sum(c.cpu_request or 0 for c in containers)
    memory = sum(c.memory_request or 0 for c in containers)
    cpu_lim = 0 if any(c.cpu_limit is None for c in containers) else sum(c.cpu_limit for c in containers)
    mem_lim = 0 if any(c.memory_limit is None for c in containers) else sum(c.memory_limit for c in containers)
    return cpu, mib_up(memory), cpu_lim, mib_up(mem_lim)


def _priority(doc: Mapping) -> int:
    value = doc["spec"].get("priority", 0)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _controlled(doc: Mapping) -> bool:
    owners = (doc.get("metadata") or {}).get("ownerReferences") or []
    return any(isinstance(o, Mapping) and o.get("controller") is True for o in owners)


def _resize_waiting(doc: Mapping, now: float) -> float | None:
    """Since when (epoch seconds) a resize of this pod waits for room on its node, else None."""
    status = doc.get("status") or {}
    for condition in status.get("conditions") or []:
        if isinstance(condition, Mapping) and condition.get("type") == "PodResizePending":
            return _timestamp(condition.get("lastTransitionTime")) or now
    return now if status.get("resize") == "Deferred" else None  # the field before v1.33


def build_view(node_docs: list[dict], pod_docs: list[dict], usage: Mapping[str, tuple[float, float]], *,
               now: float, epoch: float, ids: Ids, metrics: Callable[[list[str]], NodeMetrics] | None = None,
               skip_namespaces: frozenset[str] = frozenset()) -> Built:
    """The :class:`ActuatorView` of the live state.

    ``usage``: ``namespace/name`` -> (CPU cores, memory bytes) now; ``now`` and ``epoch`` in epoch
    seconds (the view's times are relative to ``epoch``); ``metrics(names)``: the nodes' statistics
    in that order (None: none yet, as before Prometheus' first answer).
    """
    unreadable = 0
    nodes = []
    for doc in node_docs:
        try:
            nodes.append(parse_node(doc))
        except InputError as exc:
            unreadable += 1
            event(log, "node cannot be read; left out", logging.WARNING, error=str(exc))
    nodes.sort(key=lambda n: n.name)
    index = {n.name: i for i, n in enumerate(nodes)}
    n_nodes = len(nodes)
    req_cpu = np.zeros(n_nodes, dtype=np.int64)
    req_bytes = [0] * n_nodes
    rows: dict[str, list] = {k: [] for k in ("pod", "node", "workload", "qos", "priority", "controlled", "cpu_request",
                                             "memory_request", "cpu_limit", "memory_limit", "cpu_usage",
                                             "memory_usage", "started_s", "resize_waiting_s")}
    targets: list[Target] = []
    no_usage = skipped = 0
    unbound: list[Pod] = []
    uids: set[str] = set()
    for doc in pod_docs:
        try:
            pod = parse_pod(doc)
            containers = _containers(doc, f"pod {pod.key}")
        except (InputError, KeyError, TypeError, AttributeError) as exc:
            unreadable += 1
            event(log, "pod cannot be read; left out", logging.WARNING, error=str(exc))
            continue
        if pod.uid:
            uids.add(pod.uid)
        if pod.terminal:
            continue
        if not pod.bound:
            if not pod.deleting and not (doc.get("spec") or {}).get("schedulingGates"):
                unbound.append(pod)
            continue
        node = index.get(pod.node_name)
        if node is None:
            continue
        req_cpu[node] += pod.resources.cpu
        req_bytes[node] += pod.resources.memory
        if pod.phase != "Running" or pod.deleting or not pod.uid:
            continue
        if pod.namespace in skip_namespaces:
            skipped += 1
            continue
        used = usage.get(pod.key)
        if used is None:
            no_usage += 1
            continue
        totals = _totals(containers)
        status = doc.get("status") or {}
        started = _timestamp(status.get("startTime")) or _timestamp(pod.created) or now
        waiting = _resize_waiting(doc, now)
        for name, value in (("pod", ids.pod(pod.uid)), ("node", node), ("workload", ids.workload(pod.workload)),
                            ("qos", pod.qos), ("priority", _priority(doc)), ("controlled", _controlled(doc)),
                            ("cpu_request", totals[0]), ("memory_request", totals[1]), ("cpu_limit", totals[2]),
                            ("memory_limit", totals[3]), ("cpu_usage", used[0] * 1000.0),
                            ("memory_usage", used[1] / MIB), ("started_s", started - epoch),
                            ("resize_waiting_s", math.nan if waiting is None else waiting - epoch)):
            rows[name].append(value)
        targets.append(Target(pod.namespace, pod.name, pod.uid, pod.node_name, pod.workload, containers, totals))
    ids.keep_pods(uids)
    types = {"qos": np.int8, "controlled": bool, "cpu_usage": np.float64, "memory_usage": np.float64,
             "started_s": np.float64, "resize_waiting_s": np.float64}
    pods = RunningPods(**{k: np.asarray(v, dtype=types.get(k, np.int64)) for k, v in rows.items()})
    n_workloads = len(ids.workloads)
    names = [n.name for n in nodes]
    pending = placeable_count(unbound, nodes)
    view = ActuatorView(
        now_s=now - epoch,
        alloc_cpu=np.asarray([n.alloc_cpu for n in nodes], dtype=np.int64),
        alloc_mem=np.asarray([mib_down(n.alloc_memory) for n in nodes], dtype=np.int64),
        req_cpu=req_cpu, req_mem=np.asarray([mib_up(b) for b in req_bytes], dtype=np.int64),
        metrics=metrics(names) if metrics is not None else NodeMetrics.empty(n_nodes),
        pods=pods, unavailable=np.zeros(n_workloads, dtype=np.int64),
        max_unavailable=np.full(n_workloads, NO_BUDGET, dtype=np.int64), pending=pending)
    return Built(view, targets, no_usage, skipped, unreadable, len(unbound) - pending)


def placeable_count(waiting: list[Pod], nodes: list[Node]) -> int:
    """How many of the ``waiting`` pods some node could take were it empty: its selector, required
    affinity, tolerations, cordon and size allow it. These are the pods an evicted pod would compete
    with for room (``evict_while_pending=false`` holds evictions back while there are any); a pod no
    node could ever take (a selector nothing matches, a request above every node's allocatable)
    would otherwise hold them back for as long as it waits."""
    if not waiting or not nodes:
        return 0
    table = NodeTable.of(nodes)
    empty = np.zeros(len(table), dtype=np.int64)
    return sum(1 for pod in waiting if fit_mask(pod, table, empty, empty, empty).any())


# -- applying an action ----------------------------------------------------------------------------


def _cpu(milli: int) -> str:
    return f"{milli}m"


def _memory(n_bytes: int) -> str:
    return f"{n_bytes // MIB}Mi" if n_bytes % MIB == 0 else str(n_bytes)


def resize_patch(target: Target, action: Resize) -> dict[str, dict] | None:
    """The ``pods/resize`` patch that gives ``target`` the totals of ``action`` by changing its first
    container: ``{name: {"requests": {...}, "limits": {...}}}`` with only what changes ({} when
    nothing does); None when the first container cannot take the change (a value at or below zero,
    a limit added where the pod has none, a limit removed)."""
    first = target.containers[0]
    old = target.totals
    new = (action.cpu_request_milli, action.memory_request_mib, action.cpu_limit_milli, action.memory_limit_mib)
    # (kind, resource, old total, new total, the first container's value, unit scale, format)
    fields = (("requests", "cpu", old[0], new[0], first.cpu_request, 1, _cpu),
              ("requests", "memory", old[1], new[1], first.memory_request, MIB, _memory),
              ("limits", "cpu", old[2], new[2], first.cpu_limit, 1, _cpu),
              ("limits", "memory", old[3], new[3], first.memory_limit, MIB, _memory))
    patch: dict[str, dict[str, str]] = {}
    for kind, resource, before, after, own, scale, fmt in fields:
        if after == before:
            continue
        if kind == "limits" and (before == 0 or after == 0):
            return None  # adding a limit to a pod without one, or removing one: the QoS class would change
        value = (own or 0) + (after - before) * scale
        if value <= 0:
            return None
        patch.setdefault(kind, {})[resource] = fmt(value)
    return {first.name: patch} if patch else {}


@dataclass
class Tick:
    """What one tick did (the function's JSON answer)."""

    dry_run: bool
    nodes: int = 0
    pods: int = 0
    no_usage: int = 0
    skipped_namespace: int = 0
    pending: int = 0
    unplaceable: int = 0
    fallback: str | None = None
    actions: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    def report(self) -> dict:
        outcomes: dict[str, Counter[str]] = {}
        for a in self.actions:
            outcomes.setdefault(a["action"], Counter())[a["result"]] += 1
        return {"dry_run": self.dry_run, "nodes": self.nodes, "pods": self.pods, "no_usage": self.no_usage,
                "skipped_namespace": self.skipped_namespace, "pending": self.pending,
                "unplaceable": self.unplaceable, "fallback": self.fallback,
                "actions": self.actions, "outcomes": {k: dict(v) for k, v in outcomes.items()},
                "seconds": self.seconds}


class Actor:
    """The actuator and its state across pings (series, cooldowns, ids): one per process."""

    def __init__(self, settings: Settings, kube: KubeClient, actuator: Actuator, *, metrics=None,
                 telemetry: Telemetry | None = None, model_fallback: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        """``metrics``: a :class:`~neurokube.live.prometheus.PrometheusSource` (None: no usage, the
        tick acts on nothing); ``model_fallback``: why the actuator runs without models (None: it
        has them), counted every tick."""
        self.settings = settings
        self.kube = kube
        self.actuator = actuator
        self.metrics = metrics
        self.telemetry = telemetry or process_telemetry()
        self.model_fallback = model_fallback
        self.clock = clock
        self.dry_run = settings.actuator_dry_run
        self.skip_namespaces = frozenset(n.strip() for n in settings.actuator_skip_namespaces.split(",") if n.strip())
        self.epoch = math.floor(clock() / BIN_S) * BIN_S
        self.ids = Ids()
        self._node_names: dict[str, str] = {}
        self._forecast_fallbacks = 0
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, kube: KubeClient, telemetry: Telemetry | None = None) -> Actor:
        """NeuroKube's actuator with NEUROKUBE_ACTUATOR_ARGS and the models of NEUROKUBE_ACTUATOR_MODEL_DIR
        (unreadable models: none, logged and counted each tick)."""
        models, fallback = load_models(settings.actuator_model_dir)
        actor = cls(settings, kube, NeuroKubeActuator(actuator_args(settings), models), telemetry=telemetry,
                    model_fallback=fallback)
        if settings.prometheus_url:
            from neurokube.live.prometheus import PrometheusSource

            actor.metrics = PrometheusSource(settings, lambda: actor._node_names, clock=actor.clock)
        return actor

    # -- reading -----------------------------------------------------------------------------------

    def _list(self, path: str) -> list[dict]:
        items: list[dict] = []
        query = {"limit": str(PAGE)}
        while True:
            page = self.kube.get(path, **query)
            items += page.get("items") or []
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items
            query = {"limit": str(PAGE), "continue": token}

    def _usage(self) -> dict[str, tuple[float, float]] | None:
        if self.metrics is None:
            return None
        try:
            return self.metrics.pod_usage()
        except TemporaryError as exc:
            event(log, "pod usage unavailable; the actuator does nothing this tick", logging.WARNING, error=str(exc))
            return None

    def _node_metrics(self, node_docs: list[dict]) -> Callable[[list[str]], NodeMetrics] | None:
        if self.metrics is None:
            return None
        names: dict[str, str] = {}
        for doc in node_docs:
            name = ((doc.get("metadata") or {}).get("name")) or ""
            for address in (doc.get("status") or {}).get("addresses") or []:
                if isinstance(address, Mapping) and address.get("address"):
                    names.setdefault(str(address["address"]), name)
            names[name] = name
        self._node_names = names
        snapshot = self.metrics.refresh()
        now = self.clock()
        return lambda order: snapshot.node_metrics(tuple(order), now)

    # -- the tick ------------------------------------------------------------------------------------

    def tick(self, request_id: str = "") -> dict:
        with self._lock:
            return self._tick(request_id).report()

    def _tick(self, request_id: str) -> Tick:
        started = time.monotonic()
        tick = Tick(self.dry_run)
        node_docs, pod_docs = self._list("/api/v1/nodes"), self._list("/api/v1/pods")
        usage = self._usage()
        if usage is None:
            tick.fallback = "prometheus_unavailable"
            self.telemetry.actuator_fallbacks.labels(reason=tick.fallback).inc()
            usage = {}
        now = self.clock()
        built = build_view(node_docs, pod_docs, usage, now=now, epoch=self.epoch, ids=self.ids,
                           metrics=self._node_metrics(node_docs) if usage else None,
                           skip_namespaces=self.skip_namespaces)
        view = built.view
        tick.nodes, tick.pods, tick.pending, tick.unplaceable = view.n_nodes, len(view.pods), view.pending, \
            built.unplaceable
        tick.no_usage, tick.skipped_namespace = built.no_usage, built.skipped_namespace
        if tick.fallback is not None:
            return self._done(tick, started, request_id)
        if self.model_fallback is not None:
            tick.fallback = self.model_fallback
            self.telemetry.actuator_fallbacks.labels(reason=self.model_fallback).inc()
        try:
            self.actuator.observe(view.now_s, view.pods)
            actions = self.actuator.act(view)
        except Exception as exc:  # noqa: BLE001 - the AI layer may fail; the cluster may not
            tick.fallback = "error"
            self.telemetry.actuator_fallbacks.labels(reason="error").inc()
            log.exception("the actuator failed; nothing done this tick",
                          extra={"fields": {"error": f"{type(exc).__name__}: {exc}", "request_id": request_id}})
            return self._done(tick, started, request_id)
        self._count_forecast_fallbacks()
        rows = {int(p): row for row, p in enumerate(view.pods.pod)}
        for action in actions:
            row = rows.get(int(action.pod))
            if row is None:  # an actuator naming a pod it was not shown: a bug there, not here
                event(log, "the actuator named a pod it was not shown; ignored", logging.WARNING, pod=int(action.pod),
                      request_id=request_id)
                continue
            tick.actions.append(self._apply(action, built.targets[row], request_id))
        return self._done(tick, started, request_id)

    def _count_forecast_fallbacks(self) -> None:
        """Workload forecasts that fell back to usage now (with models only: without, every one does)."""
        total = getattr(self.actuator, "fallbacks", None)
        if not isinstance(total, int) or self.model_fallback is not None:
            return
        if total > self._forecast_fallbacks:
            self.telemetry.actuator_fallbacks.labels(reason="no_forecast").inc(total - self._forecast_fallbacks)
        self._forecast_fallbacks = total

    def _apply(self, action: Action, target: Target, request_id: str) -> dict:
        record: dict = {"pod": target.key, "uid": target.uid, "node": target.node, "workload": target.workload,
                        "reason": action.reason}
        if isinstance(action, Resize):
            kind = "resize"
            record["from"] = dict(zip(("cpu_request_milli", "memory_request_mib", "cpu_limit_milli",
                                       "memory_limit_mib"), target.totals, strict=True))
            record["to"] = {"cpu_request_milli": action.cpu_request_milli,
                            "memory_request_mib": action.memory_request_mib,
                            "cpu_limit_milli": action.cpu_limit_milli, "memory_limit_mib": action.memory_limit_mib}
            patch = resize_patch(target, action)
            if not patch:
                outcome = Outcome(Result.ERROR, "the first container cannot take this resize" if patch is None
                                  else "nothing to change")
                result = SKIPPED
            else:
                record["patch"] = patch
                outcome = actuation.resize(self.kube, target.namespace, target.name, patch, dry_run=self.dry_run)
                result = outcome.result.value
        elif isinstance(action, Evict):
            kind = "evict"
            outcome = actuation.evict(self.kube, target.namespace, target.name, dry_run=self.dry_run)
            result = outcome.result.value
        else:
            raise TypeError(f"not an action: {action!r}")
        record.update(action=kind, result=result, status=outcome.status, message=outcome.message[:300])
        self.telemetry.actuator_actions.labels(action=kind, result=result).inc()
        event(log, "actuator decision", dry_run=self.dry_run, request_id=request_id, **record)
        return record

    def _done(self, tick: Tick, started: float, request_id: str) -> Tick:
        tick.seconds = round(time.monotonic() - started, 3)
        report = tick.report()
        event(log, "actuator tick done", request_id=request_id,
              **{k: v for k, v in report.items() if k != "actions"})
        return tick

    def close(self) -> None:
        if self.metrics is not None:
            self.metrics.close()


def load_models(directory: Path | None):
    """(models, None) or (None, why not: ``no_model`` or ``model_unreadable``)."""
    if directory is None:
        return None, "no_model"
    from neurokube.adapters.forecast_models import load_model_dir

    try:
        return load_model_dir(directory), None
    except (NeuroKubeError, ValueError, KeyError, OSError) as exc:
        event(log, "actuator models cannot be read; the actuator uses usage now", logging.WARNING,
              directory=str(directory), error=f"{type(exc).__name__}: {exc}")
        return None, "model_unreadable"


# -- the process's actor -----------------------------------------------------------------------------

_lock = threading.Lock()
_actor: Actor | None = None
_pinned = False


def current(settings: Settings) -> Actor:
    """The process's actor, built on first use (and again when the settings change, unless a test
    installed one); a client that cannot be built is a TemporaryError (503, the next ping retries)."""
    global _actor
    with _lock:
        if _actor is None or (not _pinned and _actor.settings != settings):
            try:
                kube = KubeClient.from_settings(settings.kubeconfig, settings.request_timeout_s,
                                                user_agent="neurokube-actuator", qps=settings.kube_qps,
                                                burst=settings.kube_burst)
            except NeuroKubeError as exc:
                raise TemporaryError(f"cannot start the actuator: {exc}") from None
            if _actor is not None:
                _actor.close()
            _actor = Actor.from_settings(settings, kube)
            event(log, "actuator started", apiserver=kube.server, dry_run=_actor.dry_run,
                  model=str(settings.actuator_model_dir) if settings.actuator_model_dir else None,
                  model_fallback=_actor.model_fallback, prometheus=settings.prometheus_url)
        return _actor


def install(actor: Actor | None) -> None:
    """Use ``actor`` in this process whatever the settings (tests); None forgets it."""
    global _actor, _pinned
    with _lock:
        _actor, _pinned = actor, actor is not None
