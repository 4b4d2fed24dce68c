"""NeuroKube's actuator (``--actuator neurokube:model=DIR,...``): forecasts drive resizes first, evictions last.

DIR holds the prediction models ``neurokube recommend --train-trace T --model-dir DIR`` trains
(:class:`~neurokube.forecast.evaluation.Recommender`); the actuator uses its per-workload median
CPU forecast at the shortest horizon (15 minutes). It keeps, from what it is shown each scrape,
the same per-workload 5-minute series the models were trained on, and every ``refresh_s``
forecasts each running workload.

Every ``interval_s`` it then does, in this order:

1. **Predict each node.** A pod's usage 15 minutes ahead is its usage now times its workload's
   forecast change (median forecast / the workload's mean now); a node's is the sum over its
   pods. A node is *predicted hot* when that exceeds ``hot_threshold`` of its allocatable CPU.
2. **Right-size requests in place** (CPU only). A pod's target request is ``margin`` (1.5) times
   its predicted usage, at least 25 millicores. A pod whose request is more than ``tolerance``
   below its target is raised to it, so the scheduler stops counting on room its pods will use;
   one more than ``tolerance`` above it is lowered (``downsize=true``, the default), unless its
   node is predicted hot, so that room is freed for other pods. ``downsize=false`` only raises:
   on the validation traces it had less contention (0.905x of no actuation's against 0.971x) but
   12 % more pending time than no actuation, against 25 % less with downsizing, and on one
   evaluation trace twice the pending time; a default should not buy contention with waiting (the
   trade issue 17 holds against Koordinator's load filter). Limits stay as written (a limit below
   the new request is raised to it), and Guaranteed pods are left alone, because their limit must
   follow their request: a lower limit throttles the pod, and a higher one lets a throttled pod use
   more and heat its node. Neither relieves anything; both were measured to do harm on validation
   traces (throttled time up to 4.4x, or contention up; docs/ACTING.md). A pod is resized at most
   once per ``pod_cooldown_s``, a node sees at most ``resizes_per_node`` per round.
3. **Relieve what resizing cannot.** Resizes change requests, not usage: a predicted-hot node
   whose predicted usage is above its allocatable even so loses one pod per round at most, at most
   once per ``node_cooldown_s``. The victim is a controlled pod of the node's lowest priority (never
   one of higher priority than any pod left on the node), and only one for which some node that is
   not predicted hot has the room its request needs and room for its predicted usage below
   ``hot_threshold`` of its allocatable (``destination=usage``, the default; an eviction that only
   moves the overflow relieves nothing; ``destination=requests`` asks for the requests' room only).
   No pod is evicted while pods wait to be placed (``evict_while_pending=false``, the default: an
   evicted pod joins the back of that queue). Among those (``victim=relief_per_work``, the
   default), the pod with the most relief per unit of work its eviction loses: its predicted usage
   capped at the excess, times how long it is expected to run on (up to ``relief_horizon_s``: the
   mean over its workload's finished runs that outlasted its age, or as long again as it has run
   when the workload has fewer than three), over the CPU work it has done since it started
   (summed from the scrapes) plus ``work_floor_core_s``. ``victim=smallest`` takes the smallest pod
   whose predicted usage covers the excess, youngest first; ``victim=least_work`` the one of those
   that has done the least work. Evictions stop at ``max_evictions`` per pods seen (1 %: the
   issue's budget). ``relieve=warned`` relieves only the nodes the trained hot-node classifier
   (acting/hot_nodes.py) also warns about, and ``relieve=forecast_or_warned`` also relieves the
   nodes it warns about, down to ``hot_threshold``. The defaults of ``destination`` and
   ``evict_while_pending`` were chosen on the four validation traces once the replay stopped
   flattering evictions (an evicted pod's demand goes on where it was; sim/acting.py): 0.971x of
   no actuation's contention (geometric mean) with 90 evictions, 0.34 M core-s of evicted work
   and 0.75x its pending time, against 1.09x, 234, 1.16 M core-s and 0.89x with the settings
   before, and 0.95x, 839, 7.6 M core-s and 0.98x for the descheduler (docs/ACTING.md, "Why the
   results swing").

A workload the models cannot forecast yet (fewer than two 5-minute bins of history) is not
resized (``resize_unforecast=true`` resizes it from its pods' usage now); its pods' predicted
usage is their usage now. Without models (a live actuator given no model directory) every
workload uses the usage-now rule; the ``fallbacks`` counter says how many workload forecasts were
missing.

Pure: numpy and the model objects; the model files are read at the edge (adapters/forecast_models.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurokube.acting.base import Action, ActuatorView, Evict, Resize, RunningPods, qos_class
from neurokube.acting.hot_nodes import HotNodes
from neurokube.forecast.evaluation import Recommender
from neurokube.forecast.series import WorkloadSeries
from neurokube.policies.base import GUARANTEED

BIN_S = 300
HISTORY_BINS = 72
"""Bins (6 h) of each workload's series given to the forecast models: their longest trailing
window is 36 bins; older history only moves the slow EWM and history-length features."""
CAPACITY_BINS = 4 * (HISTORY_BINS + 1)
"""Bins the series hold before the oldest are dropped: memory stays bounded however long it runs."""
VICTIMS = ("smallest", "least_work", "relief_per_work")
DESTINATIONS = ("requests", "usage")
RELIEVE = ("forecast", "warned", "forecast_or_warned")


@dataclass(frozen=True)
class NeuroKubeActuatorArgs:
    """``neurokube:key=value,...`` for ``--actuator``."""

    model: str | None = None
    """Directory of ``neurokube recommend --model-dir`` models (required on the command line)."""
    margin: float = 1.5
    """A pod's CPU request is set to this times its predicted usage. Chosen on validation traces
    (real seeds 3 to 6, neither trained on nor reported): 1.5 had less contention than 1.2 (geometric
    mean 0.971x against 1.029x of no actuation with the other defaults, in the replay that moves an
    evicted pod's demand; 0.72x against 0.86x in the replay before; docs/ACTING.md)."""
    hot_threshold: float = 0.9
    """Predicted CPU use / allocatable above which a node is predicted hot."""
    tolerance: float = 0.15
    """A request within this share of its target is left alone."""
    interval_s: int = 60
    refresh_s: int = 900
    """How often the forecasts are recomputed (seconds)."""
    pod_cooldown_s: float = 1800.0
    node_cooldown_s: float = 600.0
    resizes_per_node: int = 4
    max_evictions: float = 0.01
    """Evictions at most this share of the pods seen running."""
    downsize: bool = True
    """Lower over-requested pods too (frees room); False raises only (less contention, more pending:
    module docstring)."""
    victim: str = "relief_per_work"
    """Which pod relieves a node: ``relief_per_work`` (the most relief per unit of work lost: its
    predicted usage, capped at the excess, times its expected remaining run up to ``relief_horizon_s``,
    over the work it has done since it started plus ``work_floor_core_s``), ``smallest`` (the smallest
    whose predicted usage covers the excess, youngest first; the default until issue 18's second
    round) or ``least_work`` (among those, the one whose eviction loses the least work: usage now x
    time running). Chosen on four validation traces (real seeds 3-6): relief_per_work had the lowest
    contention (geometric mean 0.971x of no actuation against 1.006x for smallest and 1.058x for
    least_work, in the replay that moves an evicted pod's demand; 0.72x against 0.76x before) and lost
    a third of smallest's work (docs/ACTING.md)."""
    work_floor_core_s: float = 600.0
    """``victim=relief_per_work``: core-seconds added to every pod's lost work, so that a pod that has
    just started is not chosen for that alone when it relieves little. 600 on the validation traces
    (60 and 3,600 had more contention there)."""
    relief_horizon_s: float = 3600.0
    """``victim=relief_per_work``: relief is counted over the pod's expected remaining run, up to this
    many seconds (its workload's finished runs that lasted longer than its age say how much longer it
    runs; without three finished runs, as long again as it has run). 0: the relief now only."""
    relieve: str = "forecast"
    """Which nodes evictions relieve: ``forecast`` (those predicted above their allocatable),
    ``warned`` (those, when the trained hot-node classifier also warns about them) or
    ``forecast_or_warned`` (also the nodes the classifier warns about, down to ``hot_threshold`` of
    their allocatable). The classifier needs the models; without them, ``forecast``."""
    destination: str = "usage"
    """Where an evicted pod must be able to go: ``requests`` (some node not predicted hot has room for its
    requests) or ``usage`` (also room for its predicted usage below ``hot_threshold`` of that node's
    allocatable; a pod whose usage no node can absorb only moves the overflow). See docs/ACTING.md
    ("Why the results swing") for what each measured on the validation traces."""
    evict_while_pending: bool = False
    """Evict while pods wait to be placed. False (the default): no eviction while the queue is not
    empty, since an evicted pod joins the back of it."""
    resize_unforecast: bool = False
    """Also resize pods of workloads the models cannot forecast yet (fewer than two 5-minute bins of
    history), from each pod's usage now; by default those are left alone (VPA waits for history too)."""

    def __post_init__(self) -> None:
        if self.margin <= 0 or not 0 < self.hot_threshold <= 2 or not 0 <= self.tolerance < 1:
            raise ValueError("margin must be > 0, hot_threshold in (0, 2], tolerance in [0, 1)")
        if self.interval_s <= 0 or self.refresh_s <= 0 or self.refresh_s % BIN_S:
            raise ValueError(f"interval_s must be > 0 and refresh_s a positive multiple of {BIN_S}")
        if self.pod_cooldown_s < 0 or self.node_cooldown_s < 0 or self.resizes_per_node < 0:
            raise ValueError("cooldowns and resizes_per_node must be >= 0")
        if not 0 <= self.max_evictions <= 1:
            raise ValueError("max_evictions must be in [0, 1]")
        if self.victim not in VICTIMS:
            raise ValueError(f"victim must be one of {', '.join(VICTIMS)}, not {self.victim!r}")
        if self.relieve not in RELIEVE:
            raise ValueError(f"relieve must be one of {', '.join(RELIEVE)}, not {self.relieve!r}")
        if self.destination not in DESTINATIONS:
            raise ValueError(f"destination must be one of {', '.join(DESTINATIONS)}, not {self.destination!r}")
        if self.work_floor_core_s <= 0 or self.relief_horizon_s < 0:
            raise ValueError("work_floor_core_s must be > 0 and relief_horizon_s >= 0")


class _Series:
    """Per-workload 5-minute series of per-pod mean usage, built from scrapes as the models' training series were."""

    def __init__(self) -> None:
        self.cpu_s = np.zeros((0, CAPACITY_BINS))  # (W, bins) millicore-seconds, bins from first_bin
        self.pod_s = np.zeros((0, CAPACITY_BINS))  # (W, bins) pod-seconds
        self.first_bin = 0  # the bin column 0 holds; older bins are dropped (a live process runs for weeks)
        self.request = np.zeros(0)  # (W,) per-pod CPU request as first seen
        self.last_t: float | None = None

    def add(self, now_s: float, pods: RunningPods) -> None:
        # a scrape's weight is the time since the last one, at most a bin (after a gap, not the whole gap)
        dt = 60.0 if self.last_t is None else min(max(now_s - self.last_t, 1.0), float(BIN_S))
        self.last_t = now_s
        b = int(now_s // BIN_S)
        if b - self.first_bin >= CAPACITY_BINS:  # keep the last HISTORY_BINS complete bins and this one
            keep = b - HISTORY_BINS
            shift = min(keep - self.first_bin, CAPACITY_BINS)
            for name in ("cpu_s", "pod_s"):
                old = getattr(self, name)
                moved = np.zeros_like(old)
                moved[:, :CAPACITY_BINS - shift] = old[:, shift:]
                setattr(self, name, moved)
            self.first_bin = keep
        w_n = int(pods.workload.max()) + 1
        if w_n > self.cpu_s.shape[0]:
            extra = np.zeros((w_n - self.cpu_s.shape[0], CAPACITY_BINS))
            self.cpu_s, self.pod_s = np.vstack([self.cpu_s, extra]), np.vstack([self.pod_s, extra])
            req = np.full(w_n, np.nan)
            req[:len(self.request)] = self.request
            self.request = req
        unseen = np.isnan(self.request[pods.workload])
        self.request[pods.workload[unseen]] = pods.cpu_request[unseen]
        np.add.at(self.cpu_s, (pods.workload, b - self.first_bin), pods.cpu_usage * dt)
        np.add.at(self.pod_s, (pods.workload, b - self.first_bin), dt)

    def window(self, workloads: np.ndarray, end_bin: int) -> WorkloadSeries:
        """The complete bins before ``end_bin`` (at most :data:`HISTORY_BINS`) of ``workloads``."""
        lo = max(end_bin - HISTORY_BINS, self.first_bin) - self.first_bin
        hi = end_bin - self.first_bin
        pod_s = self.pod_s[workloads, lo:hi]
        with np.errstate(invalid="ignore", divide="ignore"):
            cpu = np.where(pod_s > 0, self.cpu_s[workloads, lo:hi] / pod_s, np.nan)
        n = len(workloads)
        return WorkloadSeries(np.arange(n).astype(str), BIN_S, cpu, np.full_like(cpu, np.nan), pod_s / BIN_S,
                              np.nan_to_num(self.request[workloads]), np.zeros(n))


class _Work:
    """Per pod, the CPU work it has done in its current run, from the scrapes: what its eviction would lose.

    Indexed by pod id (dense non-negative ids, in the replay and live). A pod first seen some time
    after it started (a live actuator that has just started) is credited its mean observed usage
    over the time it was not watched.
    """

    RUNS_KEPT = 64
    """Finished runs remembered per workload (the newest)."""

    def __init__(self) -> None:
        self.started = np.zeros(0)  # started_s of the run being counted (nan: never seen)
        self.work = np.zeros(0)  # millicore-seconds observed in that run
        self.watched = np.zeros(0)  # seconds observed in that run
        self.workload = np.zeros(0, np.int64)
        self.running = np.zeros(0, bool)  # at the last scrape
        self.evicted: set[int] = set()  # pods whose current run an eviction ended: not a finished run
        self.runs: dict[int, list[float]] = {}  # workload -> lengths of its finished runs (seconds)
        self.last_t: float | None = None

    def add(self, now_s: float, pods: RunningPods) -> None:
        dt = 60.0 if self.last_t is None else min(max(now_s - self.last_t, 1.0), float(BIN_S))
        last_t, self.last_t = self.last_t, now_s
        ids = pods.pod
        n = int(ids.max()) + 1
        if n > len(self.started):
            grow = max(n, 2 * len(self.started)) - len(self.started)
            self.started = np.concatenate([self.started, np.full(grow, np.nan)])
            self.work = np.concatenate([self.work, np.zeros(grow)])
            self.watched = np.concatenate([self.watched, np.zeros(grow)])
            self.workload = np.concatenate([self.workload, np.zeros(grow, np.int64)])
            self.running = np.concatenate([self.running, np.zeros(grow, bool)])
        now_running = np.zeros(len(self.running), bool)
        now_running[ids] = True
        new_run = self.started[ids] != pods.started_s  # nan != x: never seen
        ended = np.flatnonzero(self.running & ~now_running)
        restarted = ids[new_run & self.running[ids]]  # ended between two scrapes and running again
        for p in np.concatenate([ended, restarted]).tolist():
            if p in self.evicted:
                self.evicted.discard(p)
            elif last_t is not None:  # a run that ended by itself, after at least the time it was watched
                runs = self.runs.setdefault(int(self.workload[p]), [])
                runs.append(max(last_t - float(self.started[p]), 0.0))
                del runs[:-self.RUNS_KEPT]
        self.running = now_running
        self.workload[ids] = pods.workload
        self.started[ids[new_run]] = pods.started_s[new_run]
        self.work[ids[new_run]] = 0.0
        self.watched[ids[new_run]] = 0.0
        span = np.clip(now_s - pods.started_s, 0.0, dt)  # a scrape weighs no more than the run's age
        self.work[ids] += pods.cpu_usage * span
        self.watched[ids] += span

    def remaining(self, now_s: float, pods: RunningPods, rows: np.ndarray, horizon_s: float) -> np.ndarray:
        """Each of ``rows``' expected remaining run, at most ``horizon_s``: over its workload's finished runs
        longer than its age (at least three of them), else as long again as it has run (at least a minute)."""
        age = np.maximum(now_s - pods.started_s[rows], 0.0)
        out = np.minimum(np.maximum(age, 60.0), horizon_s)
        for i, (w, a) in enumerate(zip(pods.workload[rows].tolist(), age.tolist())):
            runs = np.asarray(self.runs.get(w, ()))
            longer = runs[runs > a]
            if len(runs) >= 3:
                out[i] = float(np.minimum(longer - a, horizon_s).mean()) if longer.size else 0.0
        return out

    def lost(self, now_s: float, pods: RunningPods, rows: np.ndarray) -> np.ndarray:
        """Millicore-seconds each of ``rows`` has done since it started (the part not watched at its mean usage)."""
        age = np.maximum(now_s - pods.started_s[rows], 0.0)
        ids = pods.pod[rows]
        seen = ids < len(self.started)
        safe = np.where(seen, ids, 0)
        same = seen & (self.started[safe] == pods.started_s[rows])
        work = np.where(same, self.work[safe], 0.0)
        watched = np.where(same, self.watched[safe], 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(watched > 0, work / watched, pods.cpu_usage[rows])
        return work + mean * np.maximum(age - watched, 0.0)


class NeuroKubeActuator:
    """See the module docstring."""

    def __init__(self, args: NeuroKubeActuatorArgs, models: Recommender | None, name: str = "neurokube") -> None:
        self.args, self.models, self.name = args, models, name
        self.interval_s = args.interval_s
        self.series = _Series()
        self.work = _Work()
        self.forecast_ok = np.zeros(0, bool)  # per workload: forecast at the last refresh
        self.change = np.zeros(0)  # per workload: median forecast at the shortest horizon / mean now
        self.change95 = np.zeros(0)  # the same for the 95th percentile (the classifier's feature)
        self.hot_nodes = HotNodes(models.bottleneck) if models is not None and args.relieve != "forecast" else None
        self.refreshed_at = -np.inf
        self.last_resize: dict[int, float] = {}
        self.last_evict_node: dict[int, float] = {}
        self.seen_pods: set[int] = set()
        self.evictions = 0
        self.fallbacks = 0

    def observe(self, now_s: float, pods: RunningPods) -> None:
        if len(pods):
            self.series.add(now_s, pods)
            self.work.add(now_s, pods)
            self.seen_pods.update(pods.pod.tolist())

    def _refresh(self, now_s: float, workloads: np.ndarray) -> None:
        """Forecast every running workload that has two complete bins or more, at the models'
        shortest horizon; the others keep a change of 1 (their usage now)."""
        n_w = max(self.series.cpu_s.shape[0], int(workloads.max()) + 1 if workloads.size else 0)
        self.forecast_ok = np.zeros(n_w, bool)
        self.change = np.ones(n_w)
        self.change95 = np.ones(n_w)
        self.refreshed_at = now_s
        end = int(now_s // BIN_S)
        known = workloads[workloads < self.series.cpu_s.shape[0]]
        forecast = np.zeros(0, bool)
        if end >= 1 and known.size and self.models is not None:
            s = self.series.window(known, end)
            now = s.cpu[:, -1]
            forecast = np.isfinite(now) & (np.isfinite(s.cpu).sum(axis=1) >= 2)
            if forecast.any():
                f = self.models.forecast
                p50 = f.predict(s, "cpu", min(f.settings.horizons_min), 0.5)[:, -1]
                with np.errstate(invalid="ignore", divide="ignore"):
                    ratio = np.where(now > 0, p50 / now, 1.0)
                self.forecast_ok[known[forecast]] = True
                self.change[known[forecast]] = np.where(np.isfinite(ratio[forecast]), ratio[forecast], 1.0)
                if self.hot_nodes is not None:
                    p95 = f.predict(s, "cpu", min(f.settings.horizons_min), 0.95)[:, -1]
                    with np.errstate(invalid="ignore", divide="ignore"):
                        ratio = np.where(now > 0, p95 / now, 1.0)
                    self.change95[known[forecast]] = np.where(np.isfinite(ratio[forecast]), ratio[forecast], 1.0)
        self.fallbacks += int(workloads.size - forecast.sum())

    def act(self, view: ActuatorView) -> list[Action]:
        a, pods = self.args, view.pods
        if len(pods) == 0:
            return []
        if view.now_s - self.refreshed_at >= a.refresh_s:
            self._refresh(view.now_s, np.unique(pods.workload))
        w = pods.workload
        known = w < len(self.change)
        change = np.where(known, self.change[np.where(known, w, 0)], 1.0)
        # without a forecast a pod's predicted usage is its usage now; it is resized only when asked
        resizable = np.where(known, self.forecast_ok[np.where(known, w, 0)], False)
        resizable |= a.resize_unforecast or self.models is None
        predicted = pods.cpu_usage * change
        node_pred = np.bincount(pods.node, weights=predicted, minlength=view.n_nodes)
        alloc = view.alloc_cpu.astype(float)
        hot = node_pred > a.hot_threshold * alloc
        floor = alloc  # relief brings a node's predicted usage down to this
        if self.hot_nodes is not None:
            change95 = np.where(known, self.change95[np.where(known, w, 0)], 1.0)
            n_used = np.bincount(pods.node, weights=pods.cpu_usage, minlength=view.n_nodes)
            pred95 = np.bincount(pods.node, weights=pods.cpu_usage * change95, minlength=view.n_nodes)
            warned = self.hot_nodes.warn(view.now_s, n_used / alloc, view.req_cpu / alloc, node_pred / alloc,
                                         pred95 / alloc)
            if a.relieve == "warned":
                floor = np.where(warned, alloc, np.inf)
            else:
                floor = np.where(warned, a.hot_threshold * alloc, alloc)

        actions: list[Action] = []
        req_cpu = view.req_cpu.astype(float).copy()
        target = np.where(resizable, np.maximum(np.ceil(a.margin * predicted), 25.0), np.nan)
        per_node: dict[int, int] = {}
        order = np.argsort(-np.abs(np.nan_to_num(target) - pods.cpu_request))
        for row in order:
            if pods.cpu_request[row] <= 0 or not resizable[row]:
                continue  # a pod without a CPU request (a request would change its QoS class), or no forecast
            p, node = int(pods.pod[row]), int(pods.node[row])
            if view.now_s - self.last_resize.get(p, -np.inf) < a.pod_cooldown_s:
                continue
            if per_node.get(node, 0) >= a.resizes_per_node or np.isfinite(pods.resize_waiting_s[row]):
                continue
            req, new = float(pods.cpu_request[row]), float(target[row])
            if new > req * (1 + a.tolerance):
                if req_cpu[node] - req + new > alloc[node]:
                    continue  # would wait for room: relief below handles a full, hot node
            elif not (a.downsize and new < req * (1 - a.tolerance) and not hot[node]):
                continue
            resize = self._resize(pods, row, int(new))
            if resize is None:
                continue
            actions.append(resize)
            req_cpu[node] += new - req
            per_node[node] = per_node.get(node, 0) + 1
            self.last_resize[p] = view.now_s

        actions += self._relieve(view, hot, node_pred, predicted, req_cpu, alloc, floor)
        return actions

    def _resize(self, pods: RunningPods, row: int, cpu: int) -> Resize | None:
        cpu_req, mem_req, cpu_lim, mem_lim = pods.resources(row)
        if qos_class(cpu_req, mem_req, cpu_lim, mem_lim) == GUARANTEED:
            return None  # its limit would have to follow its request: see the module docstring
        new_lim = cpu_lim if cpu_lim == 0 else max(cpu_lim, cpu)
        return Resize(int(pods.pod[row]), cpu, mem_req, new_lim, mem_lim, "neurokube: forecast")

    def _relieve(self, view: ActuatorView, hot: np.ndarray, node_pred: np.ndarray, predicted: np.ndarray,
                 req_cpu: np.ndarray, alloc: np.ndarray, floor: np.ndarray) -> list[Action]:
        a, pods = self.args, view.pods
        budget = int(a.max_evictions * max(len(self.seen_pods), 1)) - self.evictions
        if budget <= 0 or (not a.evict_while_pending and view.pending > 0):
            return []
        excess = node_pred - floor
        free_cpu = alloc - req_cpu
        free_mem = view.alloc_mem.astype(float) - view.req_mem.astype(float)
        # destination=usage: a victim's destination also needs room for its predicted usage (else the
        # eviction moves the overflow)
        usage_room = (a.hot_threshold * alloc - node_pred if a.destination == "usage"
                      else np.full(view.n_nodes, np.inf))
        out: list[Action] = []
        for node in np.argsort(-excess):
            if excess[node] <= 0 or budget <= 0:
                break
            if view.now_s - self.last_evict_node.get(int(node), -np.inf) < a.node_cooldown_s:
                continue
            rows = np.flatnonzero(pods.node == node)
            lowest = pods.priority[rows].min()
            w = pods.workload[rows]
            allowed = view.max_unavailable[w] - view.unavailable[w] > 0
            cand = rows[(pods.priority[rows] == lowest) & pods.controlled[rows] & allowed]
            if cand.size == 0:
                continue
            # somewhere else must have room for it, on a node not predicted hot
            room = ~hot & (np.arange(view.n_nodes) != node)
            fits = np.array([bool((room & (free_cpu >= pods.cpu_request[r]) & (free_mem >= pods.memory_request[r])
                                   & (usage_room >= predicted[r])).any()) for r in cand])
            cand = cand[fits]
            if cand.size == 0:
                continue
            covers = predicted[cand] >= excess[node]
            pool = cand[covers] if covers.any() else cand
            if a.victim == "relief_per_work":  # every candidate: relief (capped at the excess) per work lost
                pool = cand
                relief = np.minimum(predicted[pool], excess[node])
                if a.relief_horizon_s > 0:
                    relief = relief * self.work.remaining(view.now_s, pods, pool, a.relief_horizon_s)
                score = relief / (self.work.lost(view.now_s, pods, pool) + 1000.0 * a.work_floor_core_s)
                key = (-score, -pods.started_s[pool])
            elif a.victim == "least_work":  # the work an eviction loses: its usage times how long it has run
                key = (pods.cpu_usage[pool] * np.maximum(view.now_s - pods.started_s[pool], 0.0), -predicted[pool])
            else:  # the smallest pod that covers the excess (else the largest), youngest first
                key = (predicted[pool] if covers.any() else -predicted[pool], -pods.started_s[pool])
            victim = pool[np.lexsort(key[::-1])[0]]
            out.append(Evict(int(pods.pod[victim]), "neurokube: predicted hot node"))
            self.work.evicted.add(int(pods.pod[victim]))
            self.last_evict_node[int(node)] = view.now_s
            self.evictions += 1
            budget -= 1
        return out
