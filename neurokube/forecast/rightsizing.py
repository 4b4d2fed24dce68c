"""Right-sizing: per-workload requests from forecasts, scored against the requests as written and VPA.

Protocol (the same for every recommender, docs/FORECASTS.md):

* Recommendations are refreshed every ``refresh_s`` (1 h) from data before the refresh only, and
  apply to every pod of the workload until the next refresh (in-place resize or re-creation; the
  cost of applying them is not modelled). The first hour of a trace is history only, not scored.
* **Slack** is ``sum max(request - usage, 0) x time`` over pod samples (CPU in core-hours, memory
  in GiB-hours): capacity reserved and idle.
* **Throttled time** (CPU) is the pod-seconds whose 5-minute mean CPU use is above the pod's CPU
  request; **over-request time** (memory) likewise above the memory request. Above the request a
  pod lives on spare capacity: it is the first to be throttled under contention (CPU) or evicted
  (memory).

The forecast recommender sets a workload's request for the next hour to
``margin x level x Q``: ``level`` is the largest median (q50) forecast of its per-pod usage over
the 15- and 60-minute horizons, made at the refresh; ``Q`` is the 90th percentile (VPA's) of its
past *residuals* -- each pod sample divided by the level in force when it was taken -- which
carries the spread between pods of one workload that a per-workload series cannot see. A
workload with no residual yet uses the 90th percentile of all residuals in the training traces.
``margin`` is calibrated on the *training* traces: the smallest on a grid whose throttled
(over-request) time there is no more than VPA's.

Fallbacks, in order, for a workload without a level at the refresh (nothing running in the last
bin): its VPA target from its history in this trace; with no history at all, the request as
written. VPA gets the same last fallback.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurokube.errors import InputError
from neurokube.forecast.models import ForecastModels
from neurokube.forecast.series import PodSamples, WorkloadSeries, workload_keys
from neurokube.forecast.vpa import VpaSettings, vpa_targets
from neurokube.trace.model import Trace


@dataclass(frozen=True)
class RightsizingSettings:
    refresh_s: int = 3600
    """Recommendations are recomputed this often (seconds) and applied until the next refresh."""
    alpha: float = 0.5
    """Forecast quantile the level is taken from (the median)."""
    residual_quantile: float = 0.9
    """Quantile of past per-pod residuals (usage / level) the request covers (VPA's 0.9)."""
    min_level_cpu_milli: float = 25.0
    """Floor of the CPU level (VPA's per-pod minimum), so a near-idle forecast cannot blow residuals up."""
    min_level_mem_mib: float = 250.0
    """Floor of the memory level (VPA's per-pod minimum)."""
    margins: tuple[float, ...] = (0.7, 0.8, 0.9, 1.0, 1.05, 1.1, 1.15, 1.2, 1.3, 1.4, 1.5, 1.75, 2.0, 2.5, 3.0)
    """Candidate safety margins on the forecast; the calibration picks one on training traces."""
    vpa: VpaSettings = VpaSettings()

    def __post_init__(self) -> None:
        if self.refresh_s <= 0 or not self.margins or min(self.margins) <= 0:
            raise InputError("refresh_s and margins must be positive", "rightsizing settings")


@dataclass(frozen=True)
class Scored:
    """Pod samples after the first refresh, with their workload and requests as written."""

    samples: PodSamples
    workload: np.ndarray  # workload id per sample
    refresh: np.ndarray  # refresh index per sample (bin // bins_per_refresh)
    cpu_written: np.ndarray
    mem_written: np.ndarray


def score_frame(trace: Trace, samples: PodSamples, bin_s: int, settings: RightsizingSettings) -> Scored:
    """The pod samples that are scored (after the first refresh), with workload, refresh and requests."""
    if settings.refresh_s % bin_s:
        raise InputError("refresh_s must be a multiple of the series bin", "rightsizing settings",
                         f"refresh {settings.refresh_s} s, bin {bin_s} s")
    _, wid = workload_keys(trace)
    per = settings.refresh_s // bin_s
    keep = samples.bin >= per
    s = PodSamples(*(getattr(samples, f)[keep] for f in ("pod", "bin", "cpu", "mem", "run_s")))
    p = trace.pods
    return Scored(s, wid[s.pod], s.bin // per, p.cpu_request_milli[s.pod].astype(float),
                  p.memory_request_mib[s.pod].astype(float))


def outcome(scored: Scored, cpu_req: np.ndarray, mem_req: np.ndarray) -> dict[str, float]:
    """Slack and time above request for per-sample requests ``cpu_req`` (milli), ``mem_req`` (MiB)."""
    s = scored.samples
    return {
        "slack_core_h": float((np.maximum(cpu_req - s.cpu, 0) * s.run_s).sum() / 1000 / 3600),
        "throttled_s": float(s.run_s[s.cpu > cpu_req + 1e-9].sum()),
        "mem_slack_gib_h": float((np.maximum(mem_req - s.mem, 0) * s.run_s).sum() / 1024 / 3600),
        "mem_over_request_s": float(s.run_s[s.mem > mem_req + 1e-9].sum()),
        "pod_s": float(s.run_s.sum()),
    }


def vpa_recommendations_at(trace: Trace, samples: PodSamples, bin_s: int, refreshes: int,
                           settings: RightsizingSettings, percentiles: tuple[float, ...]
                           ) -> tuple[np.ndarray, np.ndarray]:
    """(P, W, R) VPA CPU and memory targets at each refresh, from samples before it (NaN without
    history), with ``settings.vpa``'s target percentile set to each of ``percentiles`` in turn; one
    histogram per workload and refresh serves them all."""
    keys, wid = workload_keys(trace)
    per = settings.refresh_s // bin_s
    w_of = wid[samples.pod]
    order = np.argsort(w_of, kind="stable")
    bounds = np.searchsorted(w_of[order], np.arange(len(keys) + 1))
    req_cores = trace.pods.cpu_request_milli[samples.pod] / 1000.0
    cpu = np.full((len(percentiles), len(keys), refreshes), np.nan)
    mem = np.full((len(percentiles), len(keys), refreshes), np.nan)
    v = settings.vpa
    for w in range(len(keys)):
        idx = order[bounds[w]:bounds[w + 1]]
        if idx.size == 0:
            continue
        b = samples.bin[idx]
        t = (b + 1) * float(bin_s)  # a sample is known at the end of its bin
        wcpu = np.maximum(req_cores[idx], v.min_sample_weight)
        for r in range(1, refreshes):
            past = b < r * per
            if not past.any():
                continue
            now = r * per * float(bin_s)
            cpu[:, w, r] = vpa_targets(samples.cpu[idx][past], t[past], wcpu[past], "cpu", now, v, percentiles)
            mem[:, w, r] = vpa_targets(samples.mem[idx][past], t[past], np.ones(past.sum()), "mem", now, v,
                                       percentiles)
    return cpu, mem


def forecast_recommendations(models: ForecastModels, series: WorkloadSeries, refreshes: int,
                             settings: RightsizingSettings) -> tuple[np.ndarray, np.ndarray]:
    """(W, R) forecast *level* at each refresh: the largest median forecast over the horizons, made
    in the last bin before the refresh, floored at VPA's minimum; NaN where nothing runs then."""
    per = settings.refresh_s // series.bin_s
    out = []
    for res in ("cpu", "mem"):
        q = np.fmax.reduce([models.predict(series, res, h, settings.alpha) for h in models.settings.horizons_min])
        q = np.maximum(q, settings.min_level_cpu_milli if res == "cpu" else settings.min_level_mem_mib)
        rec = np.full((q.shape[0], refreshes), np.nan)
        for r in range(1, refreshes):
            col = r * per - 1
            if col < q.shape[1]:
                rec[:, r] = q[:, col]
        out.append(rec)
    return out[0], out[1]


def residual_quantiles(scored: Scored, level: np.ndarray, usage_attr: str, quantile: float
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Per-pod residuals against the forecast level, and their quantile per workload and refresh.

    A scored sample's residual is its usage over the level forecast at its refresh
    (``level[w, r]``). ``Q[w, r]`` is the ``quantile`` of the workload's residuals in refreshes
    ``< r`` (NaN without any). Returns ``(residuals per sample, Q (W, R))``.
    """
    u = getattr(scored.samples, usage_attr)
    lvl = level[scored.workload, scored.refresh]
    with np.errstate(invalid="ignore", divide="ignore"):
        res = np.where(lvl > 0, u / lvl, np.nan)
    q = np.full(level.shape, np.nan)
    ok = np.isfinite(res)
    w_all, r_all, v_all = scored.workload[ok], scored.refresh[ok], res[ok]
    order = np.lexsort((r_all, w_all))
    w_all, r_all, v_all = w_all[order], r_all[order], v_all[order]
    bounds = np.searchsorted(w_all, np.arange(level.shape[0] + 1))
    for w in range(level.shape[0]):
        lo, hi = bounds[w], bounds[w + 1]
        if lo == hi:
            continue
        rr, vv = r_all[lo:hi], v_all[lo:hi]
        for r in range(int(rr[0]) + 1, level.shape[1]):
            n = np.searchsorted(rr, r)  # residuals from refreshes before r
            q[w, r] = np.quantile(vv[:n], quantile)
    return res, q


def per_sample(rec: np.ndarray, fallback: np.ndarray, scored: Scored, written: np.ndarray) -> np.ndarray:
    """Request per scored sample: ``rec``, else ``fallback`` (both (W, R)), else as written."""
    r = np.clip(scored.refresh, 0, rec.shape[1] - 1)
    value = rec[scored.workload, r]
    value = np.where(np.isfinite(value), value, fallback[scored.workload, r])
    return np.where(np.isfinite(value), value, written)


def calibrate_margin(cases: list[tuple[Scored, np.ndarray, np.ndarray, np.ndarray]], written_attr: str,
                     usage_attr: str, settings: RightsizingSettings) -> float:
    """Smallest margin whose time above request, summed over ``cases``, is at most VPA's.

    Each case is ``(scored, forecast (W, R), vpa (W, R), vpa per-sample request)``.
    """
    def above(scored: Scored, req: np.ndarray) -> float:
        u = getattr(scored.samples, usage_attr)
        return float(scored.samples.run_s[u > req + 1e-9].sum())

    vpa_time = sum(above(c[0], c[3]) for c in cases)
    for m in sorted(settings.margins):
        t = sum(above(c[0], per_sample(c[1] * m, c[2], c[0], getattr(c[0], written_attr))) for c in cases)
        if t <= vpa_time:
            return m
    return max(settings.margins)


def limits(request: np.ndarray, written_request: np.ndarray, written_limit: np.ndarray) -> np.ndarray:
    """Limits keep the written limit/request ratio (VPA's default); no written limit -> none (0)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(written_request > 0, written_limit / written_request, 1.0)
    return np.where(written_limit > 0, np.ceil(request * ratio), 0.0)


def clairvoyant_slack(scored: Scored, refreshes: int, workloads: int, max_throttled_s: float,
                      quantiles: tuple[float, ...] = (0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99, 1.0)
                      ) -> tuple[float, float]:
    """A bound, not a recommender: the CPU slack of the best *clairvoyant* per-workload hourly request.

    Each (workload, refresh) gets the ``q``-quantile of its own pod samples in that hour (seen in
    advance); the smallest ``q`` whose throttled time is at most ``max_throttled_s`` is kept.
    No per-workload recommender refreshed at this rate can do better at that throttled time
    (up to the quantile grid). Returns ``(slack_core_h, q)``.
    """
    key = scored.workload * refreshes + scored.refresh
    order = np.argsort(key, kind="stable")
    usage = scored.samples.cpu[order]
    bounds = np.searchsorted(key[order], np.arange(workloads * refreshes + 1))
    cells = np.flatnonzero(np.diff(bounds))
    for q in quantiles:
        req = np.full(workloads * refreshes, np.nan)
        for c in cells:
            req[c] = np.quantile(usage[bounds[c]:bounds[c + 1]], q)
        o = outcome(scored, req[key], scored.mem_written)
        if o["throttled_s"] <= max_throttled_s or q == quantiles[-1]:
            return o["slack_core_h"], q
    raise AssertionError("unreachable")
