"""VPA applied in place (``--actuator vpa-inplace``): the recommender, and the updater in InPlaceOrRecreate mode.

Written from VPA 1.7's documented behaviour (docs/ACTING.md section 5 and ../shared/reference/ACTING.md),
not its code:

* **Recommender.** Per workload, decaying histograms of its pods' CPU and memory usage, one sample
  per pod per scrape (exponential buckets, half-life 24 h; a CPU sample weighs the pod's request in
  cores, at least 0.1), the histograms of ``forecast/vpa.py``. Target = p90 x 1.15, lower bound =
  p50 x 1.15 x (1 + 0.001/d)^-2, upper bound = p95 x 1.15 x (1 + 1/d), where d is the workload's
  days of history; each at least 25 millicores / 250 MiB. As in ``forecast/vpa.py``, memory is fed the
  pod samples, not per-day peaks (the replay's traces last a day or two).
* **Updater**, every ``interval_s`` (1 min): a running pod is updated when a request is outside
  [lower bound, upper bound], or when it has run ``long_lived_s`` (12 h) and a request is at least
  ``min_change`` (10 %) from the target. Both requests go to the target; limits keep their ratio to
  the requests (VPA's default ``RequestsAndLimits``), a Guaranteed pod's limits equal its requests.
  Workloads with fewer than ``min_replicas`` running pods are left alone, as the updater does.
* **InPlaceOrRecreate.** The update is an in-place resize. The pod is evicted instead (and
  re-created with the target) when the resize is infeasible (a request above its node's
  allocatable, or a change of the pod's QoS class, which in place cannot make: a pod without
  requests) or has been deferred for more than ``deferred_evict_s`` (5 min); at most
  ``eviction_tolerance`` (half) of a workload's running pods per cycle, at least one.

Pure: numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from neurokube.acting.base import Action, ActuatorView, Evict, RunningPods, qos_class, resized
from neurokube.forecast.vpa import VpaSettings

DAY_S = 86_400.0


@dataclass(frozen=True)
class VpaInPlaceArgs:
    """``vpa-inplace:key=value,...``; defaults are VPA's."""

    target_percentile: float = 0.9
    lower_percentile: float = 0.5
    upper_percentile: float = 0.95
    safety_margin: float = 0.15
    half_life_s: float = DAY_S
    interval_s: int = 60
    min_replicas: int = 2
    eviction_tolerance: float = 0.5
    deferred_evict_s: float = 300.0
    min_change: float = 0.1
    long_lived_s: float = 12 * 3600.0

    def __post_init__(self) -> None:
        if not 0 < self.lower_percentile <= self.target_percentile <= self.upper_percentile <= 1:
            raise ValueError("percentiles must satisfy 0 < lower <= target <= upper <= 1")
        if self.safety_margin < 0 or self.half_life_s <= 0 or self.interval_s <= 0:
            raise ValueError("safety_margin must be >= 0, half_life_s and interval_s > 0")
        if self.min_replicas < 1 or not 0 < self.eviction_tolerance <= 1:
            raise ValueError("min_replicas must be >= 1 and eviction_tolerance in (0, 1]")
        if self.deferred_evict_s < 0 or self.min_change < 0 or self.long_lived_s < 0:
            raise ValueError("deferred_evict_s, min_change and long_lived_s must be >= 0")


@dataclass
class _Histograms:
    """Per-workload decaying histograms of one resource; weights grow as 2^(t / half-life).

    The buckets and the percentile rule are ``forecast/vpa.py``'s; this keeps them incrementally
    (one update per scrape) where that module recomputes from every sample, which per minute of a
    replay would grow with its length."""

    edges: np.ndarray
    weights: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))

    def grow(self, n_workloads: int) -> None:
        if n_workloads > self.weights.shape[0]:
            more = np.zeros((n_workloads - self.weights.shape[0], len(self.edges)))
            self.weights = np.vstack([self.weights.reshape(-1, len(self.edges)), more])

    def add(self, workload: np.ndarray, values: np.ndarray, weight: np.ndarray) -> None:
        bucket = np.clip(np.searchsorted(self.edges, values, side="right") - 1, 0, len(self.edges) - 1)
        np.add.at(self.weights, (workload, bucket), weight)

    def percentile(self, q: float) -> np.ndarray:
        """Per workload: the end of the bucket where the cumulative weight reaches ``q``; NaN without samples."""
        cum = np.cumsum(self.weights, axis=1)
        total = cum[:, -1] if cum.size else np.zeros(0)
        b = np.argmax(cum >= (q * total * (1 - 1e-12))[:, None], axis=1) if cum.size else np.zeros(0, np.int64)
        end = self.edges[np.minimum(b + 1, len(self.edges) - 1)]
        return np.where(total > 0, end, np.nan)


class VpaInPlace:
    """VPA's recommender and InPlaceOrRecreate updater as a replay actuator."""

    def __init__(self, args: VpaInPlaceArgs = VpaInPlaceArgs(), name: str = "vpa-inplace",
                 settings: VpaSettings = VpaSettings()) -> None:
        # ``settings`` gives the buckets, the sample-weight floor and the per-pod minimums; the knobs a
        # user sets (percentile, margin, half-life) come from ``args``, so they are copied over it
        settings = replace(settings, target_percentile=args.target_percentile, safety_margin=args.safety_margin,
                           half_life_s=args.half_life_s)
        self.args, self.name, self.settings = args, name, settings
        self.interval_s = args.interval_s
        self.cpu = _Histograms(settings.cpu.edges())
        self.mem = _Histograms(settings.memory.edges())
        self.first_seen = np.zeros(0)
        self.t0: float | None = None  # weights are 2^((t - t0) / half-life)

    # --- recommender -------------------------------------------------------------------------

    def observe(self, now_s: float, pods: RunningPods) -> None:
        if len(pods) == 0:
            return
        if self.t0 is None:
            self.t0 = now_s
        n = int(pods.workload.max()) + 1
        if n > len(self.first_seen):
            self.first_seen = np.concatenate([self.first_seen, np.full(n - len(self.first_seen), np.nan)])
            self.cpu.grow(n)
            self.mem.grow(n)
        new = np.isnan(self.first_seen[pods.workload])
        self.first_seen[pods.workload[new]] = now_s
        decay = float(np.exp2((now_s - self.t0) / self.args.half_life_s))
        cpu_weight = np.maximum(pods.cpu_request / 1000.0, self.settings.min_sample_weight) * decay
        self.cpu.add(pods.workload, pods.cpu_usage, cpu_weight)
        self.mem.add(pods.workload, pods.memory_usage, np.full(len(pods), decay))

    def recommendation(self, now_s: float) -> dict[str, np.ndarray]:
        """Per workload (NaN without history): target, lower and upper bound for CPU (milli) and memory (MiB)."""
        a, s = self.args, self.settings
        days = np.maximum((now_s - self.first_seen) / DAY_S, 1e-9)
        lower_conf = (1 + 0.001 / days) ** -2.0
        upper_conf = 1 + 1.0 / days
        out = {}
        for res, hist, floor in (("cpu", self.cpu, s.min_cpu_milli), ("mem", self.mem, s.min_memory_mib)):
            m = 1 + a.safety_margin
            out[f"{res}_target"] = np.maximum(hist.percentile(a.target_percentile) * m, floor)
            out[f"{res}_lower"] = np.maximum(hist.percentile(a.lower_percentile) * m * lower_conf, floor)
            out[f"{res}_upper"] = np.maximum(hist.percentile(a.upper_percentile) * m * upper_conf, floor)
        return out

    # --- updater -----------------------------------------------------------------------------

    def act(self, view: ActuatorView) -> list[Action]:
        pods, a = view.pods, self.args
        if len(pods) == 0 or len(self.first_seen) == 0:
            return []
        rec = self.recommendation(view.now_s)
        known = pods.workload < len(self.first_seen)
        w = np.where(known, pods.workload, 0)
        replicas = np.bincount(pods.workload, minlength=len(self.first_seen))
        cpu_t = np.where(known, np.ceil(rec["cpu_target"][w]), np.nan)
        mem_t = np.where(known, np.ceil(rec["mem_target"][w]), np.nan)
        req_c, req_m = pods.cpu_request.astype(float), pods.memory_request.astype(float)
        outside = ((req_c < rec["cpu_lower"][w]) | (req_c > rec["cpu_upper"][w])
                   | (req_m < rec["mem_lower"][w]) | (req_m > rec["mem_upper"][w]))
        with np.errstate(divide="ignore", invalid="ignore"):
            change = np.maximum(np.abs(cpu_t - req_c) / np.maximum(req_c, 1.0),
                                np.abs(mem_t - req_m) / np.maximum(req_m, 1.0))
        long_lived = view.now_s - pods.started_s >= a.long_lived_s
        update = (known & np.isfinite(cpu_t) & np.isfinite(mem_t) & (replicas[w] >= a.min_replicas)
                  & (outside | (long_lived & (change >= a.min_change)))
                  & ((cpu_t != req_c) | (mem_t != req_m)))
        evict_quota = {}
        actions: list[Action] = []
        for row in np.flatnonzero(update):
            p, node, wl = int(pods.pod[row]), int(pods.node[row]), int(pods.workload[row])
            cpu, mem = int(cpu_t[row]), int(mem_t[row])
            infeasible = cpu > view.alloc_cpu[node] or mem > view.alloc_mem[node]
            waited = view.now_s - pods.resize_waiting_s[row]
            resize = resized(p, cpu, mem, pods.resources(row), "vpa: recommendation")
            new = (resize.cpu_request_milli, resize.memory_request_mib, resize.cpu_limit_milli, resize.memory_limit_mib)
            # in place cannot change the QoS class (a pod without requests, or a limit-only one)
            infeasible = infeasible or qos_class(*new) != qos_class(*pods.resources(row))
            if infeasible or (np.isfinite(waited) and waited > a.deferred_evict_s):
                quota = evict_quota.setdefault(wl, max(1, int(a.eviction_tolerance * replicas[wl])))
                if quota > 0 and pods.controlled[row]:
                    evict_quota[wl] = quota - 1
                    why = "vpa: resize infeasible" if infeasible else "vpa: resize deferred"
                    actions.append(Evict(p, why, recreate_with=new))
                continue
            actions.append(resize)
        return actions
