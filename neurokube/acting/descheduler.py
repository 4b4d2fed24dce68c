"""The descheduler's node-utilization plugins (``--actuator descheduler``): LowNodeUtilization and
HighNodeUtilization as a replay actuator, the rebalancing baseline NeuroKube's own actuator is held to.

Written from the facts in ../shared/reference/ACTING.md section 3, checked against
kubernetes-sigs/descheduler's ``pkg/framework/plugins/nodeutilization`` and ``defaultevictor``
(not copied). One descheduling cycle every ``interval_s``:

* **Node usage.** Per node and resource, usage / allocatable in percent. CPU and memory are the
  requests in force (``source=requests``, upstream's default) or, for ``low`` only, the usage the
  metrics pipeline reports (``source=usage``, like ``metricsUtilization``; then a pod's eviction
  frees its measured usage, not its requests, and a cycle with a node lacking metrics does nothing,
  as upstream's Balance fails when a node's metrics are missing). Pods count against a capacity of
  :data:`POD_CAPACITY` = 110, the kubelet's default ``maxPods``: the trace has no per-node pod
  capacity.
* **Thresholds.** Static percentages, or with ``use_deviation`` (``useDeviationThresholds``)
  relative to the mean over nodes: low = mean - thresholds, high = mean + targets, clamped to
  0..100. ``high`` uses 100 % as its upper limit for every resource.
* **low** (LowNodeUtilization): underutilized = at or below the thresholds for every resource;
  otherwise overutilized = above the targets for any. Nothing happens when no node is
  underutilized, when no more than ``number_of_nodes`` are, when all are, or when none is
  overutilized. Overutilized nodes are visited busiest first, by upstream's key: the sum of the raw
  quantities, millicores + memory bytes + pods (so memory dominates); ties by node index, where
  upstream's unstable sort leaves them arbitrary. A node is drained while it is above its target for
  any resource and the room on the underutilized nodes (target x allocatable - usage, summed per
  resource; pods included) is positive for every resource. Upstream has no "the pod must fit the
  room left" rule: the room is only checked before each eviction, so the last pod may overdraw it.
* **high** (HighNodeUtilization): underutilized nodes (as above) are drained least used first,
  so that their pods pack onto the others; the receiving nodes are all the rest, with room
  100 % x allocatable - usage, and eviction goes on while that room is positive for every
  resource. Upstream does not stop when the source node leaves the underutilized set.
* **Victims** (DefaultEvictor and ``SortPodsBasedOnPriorityLowToHigh``): lowest priority first,
  then BestEffort, Burstable, Guaranteed; ties by pod id. Pods without a controller
  (``controlled`` False: upstream's ownerless pods) and system-critical pods (priority >=
  2000000000) are never evicted. ``nodeFit`` is off, upstream's default.
* **Limits.** ``max_pods_per_node`` evictions per node per cycle (``maxNoOfPodsToEvictPerNode``,
  0 = none; applied to both strategies, as the evictor's limit is). The disruption budget: upstream
  asks the Eviction API, which refuses (429) a pod whose workload has no disruption left, and goes
  on with the next pod without counting it. This actuator knows each workload's budget from the
  view (``max_unavailable - unavailable``), spends it as it evicts, and skips the pods the API
  would refuse the same way; skips are counted in :attr:`Descheduler.last` and
  :attr:`Descheduler.totals`.

The cadence, ``interval_s`` = 300 s, is the one chosen here: the descheduler itself runs once unless
given ``--descheduling-interval`` (the Helm chart's ``deschedulingInterval`` is 5 minutes).

Not modelled: unschedulable nodes, taints and tolerations, namespaces, DaemonSet / mirror / static
pods and local storage (the trace has none), ``evictionLimits`` per namespace or in total, the
Prometheus metric source.

Pure: numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from neurokube.acting.base import Action, ActuatorView, Evict, RunningPods

POD_CAPACITY = 110
"""Pods a node may hold, for the ``pods`` resource: the kubelet's default ``maxPods``."""

SYSTEM_CRITICAL_PRIORITY = 2_000_000_000
"""Kubernetes' ``system-cluster-critical`` priority; pods at or above it are never evicted."""

STRATEGIES = ("low", "high")
SOURCES = ("requests", "usage")
MIB = 1 << 20


@dataclass(frozen=True)
class DeschedulerArgs:
    """``descheduler:key=value,...``. Percentages are of allocatable (pods: of :data:`POD_CAPACITY`);
    the threshold and target defaults are the descheduler README's LowNodeUtilization example."""

    strategy: str = "low"
    """``low`` = LowNodeUtilization (spread from busy nodes), ``high`` = HighNodeUtilization (pack)."""
    cpu_threshold: float = 20.0
    memory_threshold: float = 20.0
    pods_threshold: float = 20.0
    """Underutilized at or below these for every resource (``thresholds``), percent."""
    cpu_target: float = 50.0
    memory_target: float = 50.0
    pods_target: float = 50.0
    """Overutilized above these for any resource (``targetThresholds``), percent; ``low`` only."""
    use_deviation: bool = False
    """``useDeviationThresholds``: thresholds and targets are distances from the mean node usage."""
    source: str = "requests"
    """``requests`` (upstream's default) or ``usage``: measured CPU and memory (``low`` only)."""
    interval_s: int = 300
    """Seconds between descheduling cycles (the cadence chosen here; the Helm chart's interval)."""
    max_pods_per_node: int = 0
    """``maxNoOfPodsToEvictPerNode`` per cycle; 0 = no limit."""
    number_of_nodes: int = 0
    """``numberOfNodes``: act only when more nodes than this are underutilized."""

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, not {self.strategy!r}")
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, not {self.source!r}")
        for key in ("cpu_threshold", "memory_threshold", "pods_threshold", "cpu_target", "memory_target",
                    "pods_target"):
            value = getattr(self, key)
            if not 0 <= value <= 100:
                raise ValueError(f"{key} must be a percentage in [0, 100], not {value}")
        if self.strategy == "high" and self.source != "requests":
            raise ValueError("source=usage applies to strategy=low only (upstream's metricsUtilization)")
        if self.strategy == "high" and self.use_deviation:
            raise ValueError("use_deviation applies to strategy=low only")
        if self.strategy == "low" and not self.use_deviation:
            for res in ("cpu", "memory", "pods"):
                low, high = getattr(self, f"{res}_threshold"), getattr(self, f"{res}_target")
                if low > high:
                    raise ValueError(f"{res}_threshold ({low}) is above {res}_target ({high})")
        if self.interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, not {self.interval_s}")
        if self.max_pods_per_node < 0 or self.number_of_nodes < 0:
            raise ValueError("max_pods_per_node and number_of_nodes must be >= 0")

    @property
    def thresholds(self) -> np.ndarray:
        return np.array([self.cpu_threshold, self.memory_threshold, self.pods_threshold], dtype=float)

    @property
    def targets(self) -> np.ndarray:
        if self.strategy == "high":
            return np.full(3, 100.0)
        return np.array([self.cpu_target, self.memory_target, self.pods_target], dtype=float)


@dataclass
class CycleReport:
    """What one cycle decided, for tests and reports."""

    outcome: str = "not run"
    underutilized: tuple[int, ...] = ()
    overutilized: tuple[int, ...] = ()
    """``low``: nodes above target; ``high``: the receiving nodes."""
    evicted: int = 0
    skipped_budget: int = 0
    """Pods the Eviction API would refuse (their workload's disruption budget is spent)."""
    skipped_node_limit: int = 0
    """Source nodes left because ``max_pods_per_node`` was reached."""
    protected: int = 0
    """Pods on visited source nodes the DefaultEvictor will not evict (no controller, system-critical)."""


@dataclass
class _Nodes:
    """Per node and resource (cpu, memory, pods): raw usage, capacity, percentages and limits."""

    usage: np.ndarray  # (n, 3) float
    capacity: np.ndarray  # (n, 3) float
    percent: np.ndarray  # (n, 3)
    low: np.ndarray  # (3,) percent
    high: np.ndarray  # (3,) percent
    cap: np.ndarray = field(init=False)  # (n, 3): capacity at the upper limit, truncated as upstream does

    def __post_init__(self) -> None:
        self.cap = np.floor(self.high[None, :] * 0.01 * self.capacity)


class Descheduler:
    """LowNodeUtilization / HighNodeUtilization with the DefaultEvictor, one cycle per ``interval_s``."""

    def __init__(self, args: DeschedulerArgs = DeschedulerArgs(), name: str = "descheduler") -> None:
        self.args, self.name = args, name
        self.interval_s = args.interval_s
        self.last = CycleReport()
        self.totals: dict[str, int] = {"cycles": 0, "evicted": 0, "skipped_budget": 0, "skipped_node_limit": 0}

    def observe(self, now_s: float, pods: RunningPods) -> None:
        return None

    def act(self, view: ActuatorView) -> list[Action]:
        report = CycleReport()
        actions = self._cycle(view, report)
        self.last = report
        self.totals["cycles"] += 1
        for key in ("evicted", "skipped_budget", "skipped_node_limit"):
            self.totals[key] += getattr(report, key)
        return actions

    # --- one cycle ---------------------------------------------------------------------------

    def _cycle(self, view: ActuatorView, report: CycleReport) -> list[Action]:
        a, n = self.args, view.n_nodes
        if n == 0:
            report.outcome = "no nodes"
            return []
        if a.source == "usage" and np.any(view.metrics.samples <= 0):
            report.outcome = "no metrics for some node"
            return []
        nodes = self._nodes(view)
        under = np.all(nodes.percent <= nodes.low, axis=1)
        if a.strategy == "low":
            receivers_mask = ~under & np.any(nodes.percent > nodes.high, axis=1)  # the overutilized
        else:
            receivers_mask = ~under  # every other node may take the pods
        under_idx, other_idx = np.flatnonzero(under), np.flatnonzero(receivers_mask)
        report.underutilized, report.overutilized = tuple(map(int, under_idx)), tuple(map(int, other_idx))
        if len(under_idx) == 0:
            report.outcome = "no node underutilized"
            return []
        if len(under_idx) <= a.number_of_nodes:
            report.outcome = "underutilized nodes <= number_of_nodes"
            return []
        if len(under_idx) == n:
            report.outcome = "all nodes underutilized"
            return []
        if len(other_idx) == 0:
            report.outcome = "no node overutilized" if a.strategy == "low" else "no node to receive pods"
            return []
        if a.strategy == "low":
            sources, destinations = other_idx, under_idx
        else:
            sources, destinations = under_idx, other_idx
        room = (nodes.cap[destinations] - nodes.usage[destinations]).sum(axis=0)
        actions = self._evict(view, nodes, _busiest_first(nodes.usage, sources, a.strategy == "low"), room, report)
        report.outcome = "evicted" if actions else "nothing evictable"
        return actions

    def _nodes(self, view: ActuatorView) -> _Nodes:
        a, n = self.args, view.n_nodes
        pods = np.bincount(view.pods.node, minlength=n).astype(float) if len(view.pods) else np.zeros(n)
        if a.source == "usage":
            cpu, mem = view.metrics.cpu_mean.astype(float), view.metrics.mem_mean.astype(float)
        else:
            cpu, mem = view.req_cpu.astype(float), view.req_mem.astype(float)
        usage = np.column_stack([cpu, mem, pods])
        capacity = np.column_stack([view.alloc_cpu.astype(float), view.alloc_mem.astype(float),
                                    np.full(n, float(POD_CAPACITY))])
        percent = np.divide(usage * 100.0, capacity, out=np.zeros_like(usage), where=capacity > 0)
        low, high = a.thresholds, a.targets
        if a.use_deviation:
            mean = percent.mean(axis=0)
            low, high = np.clip(mean - low, 0.0, 100.0), np.clip(mean + high, 0.0, 100.0)
        return _Nodes(usage=usage, capacity=capacity, percent=percent, low=low, high=high)

    def _evict(self, view: ActuatorView, nodes: _Nodes, sources: list[int], room: np.ndarray,
               report: CycleReport) -> list[Action]:
        a, pods = self.args, view.pods
        low = a.strategy == "low"
        budget = (view.max_unavailable - view.unavailable).astype(np.int64)
        if a.source == "usage":
            pod_use = np.column_stack([pods.cpu_usage, pods.memory_usage, np.ones(len(pods))]).astype(float)
        else:
            pod_use = np.column_stack([pods.cpu_request, pods.memory_request, np.ones(len(pods))]).astype(float)
        removable = pods.controlled.astype(bool) & (pods.priority < SYSTEM_CRITICAL_PRIORITY)
        reason = f"descheduler: {'LowNodeUtilization' if low else 'HighNodeUtilization'}"
        actions: list[Action] = []

        def go_on(node: int) -> bool:
            if low and not np.any(nodes.usage[node] > nodes.cap[node]):
                return False
            return bool(np.all(room > 0))

        for node in sources:
            on_node = np.flatnonzero(pods.node == node)
            report.protected += int((~removable[on_node]).sum())
            rows = victim_order(pods, on_node[removable[on_node]])
            if len(rows) == 0 or not go_on(node):
                continue
            evicted_here = 0
            for row in rows:
                if a.max_pods_per_node and evicted_here >= a.max_pods_per_node:
                    report.skipped_node_limit += 1
                    break
                w = int(pods.workload[row])
                if budget[w] <= 0:
                    report.skipped_budget += 1
                    continue
                budget[w] -= 1
                actions.append(Evict(int(pods.pod[row]), reason))
                evicted_here += 1
                report.evicted += 1
                nodes.usage[node] -= pod_use[row]
                room -= pod_use[row]
                if not go_on(node):
                    break
        return actions


def victim_order(pods: RunningPods, rows: np.ndarray) -> np.ndarray:
    """``rows`` in eviction order: lowest priority first, then BestEffort, Burstable, Guaranteed, then pod id."""
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) == 0:
        return rows
    # lexsort: the last key is the primary one. QoS constants: GUARANTEED 0 < BURSTABLE 1 < BEST_EFFORT 2.
    order = np.lexsort((pods.pod[rows], -pods.qos[rows].astype(np.int64), pods.priority[rows]))
    return rows[order]


def _busiest_first(usage: np.ndarray, nodes: np.ndarray, descending: bool) -> list[int]:
    """``nodes`` ordered by upstream's key, millicores + memory bytes + pods; ties by node index."""
    key = usage[nodes, 0] + usage[nodes, 1] * MIB + usage[nodes, 2]
    order = np.lexsort((nodes, -key if descending else key))
    return [int(x) for x in nodes[order]]
