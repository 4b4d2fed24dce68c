"""Right-sizing: per-workload requests from a short-memory usage histogram and the forecast, scored
against the requests as written and VPA.

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

The recommender keeps what makes VPA good -- a histogram of the workload's pod samples, so the
spread between its pods is in the request -- and changes two things:

* **memory**: a sample's weight decays with a 1-hour half-life plus a small 24-hour term
  (``2 ** (-age / 1 h) + 0.05 x 2 ** (-age / 24 h)``; the priced rule's: below) instead of VPA's
  24-hour half-life alone.
  A workload's usage moves over the day; the last hours say more about the next one than the
  whole day does, and the long term keeps a tail when the recent samples are few;
* **forecast growth**: the histogram's target is multiplied by the forecast's predicted change of
  the workload's per-pod level, ``mean over the horizons of the median forecast / trailing 1-hour
  mean`` (the forecast models' own scale), bounded to ``growth_bounds`` ([1, 1.5] by default: a
  rising forecast raises the request, a falling one does not lower it).

The **margin** ``m`` moves the histogram's target percentile, not a multiplier on the request:
``p = 1 - (1 - 0.9) / m``, so the share of (weighted) samples above the target is VPA's 10 %
divided by ``m`` (x1 is p90, x2 p95, x0.5 p80). A multiplier raises every workload by the same
factor whatever its spread, which wastes slack on steady workloads and under-covers bursty ones;
moving the percentile raises each by its own spread. The target is the percentile times VPA's
15 % safety margin, at least VPA's minimum, as VPA. The margin is calibrated on the *training*
traces: the smallest on a grid whose throttled (over-request) time is no more than VPA's on each.

``allocation="priced"`` (a setting, :func:`priced_target`) spends time above request across
workloads instead: one price for all, each workload at the request of least idle request plus
priced time above it. It traces a better frontier against VPA on the validation traces, but a
price does not transfer between clusters as a percentile does (docs/FORECASTS.md). It has its own
memory and growth (:data:`RULE_DEFAULTS`): a 15-minute half-life and no forecast growth, since a
growth factor applied after the priced choice moves each workload off the price's optimum.

The weights, bounds and the growth horizons' mean were chosen on the training traces only
(docs/FORECASTS.md, "Right-sizing: how the recommender was chosen"). Fallback: a workload with no
history at all keeps the request as written (VPA too).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from neurokube.errors import InputError
from neurokube.forecast.features import trailing_scale
from neurokube.forecast.models import ForecastModels
from neurokube.forecast.series import PodSamples, WorkloadSeries, workload_keys
from neurokube.forecast.vpa import VpaSettings, histogram_percentiles, vpa_targets
from neurokube.trace.model import Trace

MARGINS: tuple[float, ...] = tuple(sorted({float(f"{m:.3g}") for m in np.geomspace(0.1, 200.0, 226)}
                                          | {0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0,
                                             1.05, 1.1, 1.15, 1.2, 1.3, 1.4, 1.5, 1.75, 2.0, 2.25, 2.5, 3.0}))
"""The margin grid: calibration picks from it, the frontier sweeps it. 0.4-3 served the percentile rule
(about 5 % apart); the priced rule's prices span more, 0.1-200 (1 to 2,000 cores of idle request per pod
above request) about 3.4 % apart (248 values): a few large workloads switch requests at once as the
price moves, so on real traces the curve jumps, and a coarser grid steps over the settings between the
jumps (at 7 % apart, the grid before, the priced rule missed VPA's p90 point on ``real-2`` by 0.4 %;
at 3.4 % a margin dominates it. On the validation traces the two grids differ by noise:
docs/FORECASTS.md)."""
ALLOCATIONS = ("priced", "per_workload")
RULE_DEFAULTS: dict[str, dict] = {
    "per_workload": {"half_life_s": 3600.0, "long_weight": 0.05, "growth_bounds": (1.0, 1.5)},
    "priced": {"half_life_s": 900.0, "long_weight": 0.02, "growth_bounds": (1.0, 1.0)},
}
"""Each rule's histogram memory and forecast growth, where :class:`RightsizingSettings` leaves them None.
Chosen on the validation traces (docs/FORECASTS.md, "The priced rule's memory and growth"): the priced
rule already weighs each workload's time above request against its idle request, and a growth factor
applied after that choice raises requests the price did not ask for; without it, and with a shorter
memory, its frontier against VPA is closer on all four validation traces."""
CANDIDATE_PERCENTILES: tuple[float, ...] = tuple(float(q) for q in np.linspace(0.5, 1.0, 101))
"""The requests :func:`priced_target` chooses among, per workload: its histogram at these percentiles
(p50 .. p100, half a percentile apart, so that a large workload's request moves in small steps)."""


@dataclass(frozen=True)
class RightsizingSettings:
    refresh_s: int = 3600
    """Recommendations are recomputed this often (seconds) and applied until the next refresh."""
    half_life_s: float | None = None
    """Half-life of a sample's weight in the histogram (VPA: 24 h); None: the rule's
    (:data:`RULE_DEFAULTS`: 1 h for ``per_workload``, 15 minutes for ``priced``)."""
    long_half_life_s: float = 24 * 3600.0
    """Half-life of the second, slow term of a sample's weight (VPA's half-life)."""
    long_weight: float | None = None
    """Weight of the slow term relative to the fast one (0: the fast term alone); None: the rule's
    (0.05 for ``per_workload``, 0.02 for ``priced``)."""
    target_percentile: float = 0.9
    """Histogram percentile at margin x1 (VPA's); margin ``m`` targets ``1 - (1 - this) / m``."""
    forecast_alpha: float = 0.5
    """Forecast quantile the growth is taken from (the median), averaged over the model's horizons."""
    growth_bounds: tuple[float, float] | None = None
    """The forecast growth factor is clipped to ``[low, high]`` (``low <= 1 <= high``); None: the
    rule's (``[1, 1.5]`` for ``per_workload``; ``[1, 1]``, no growth, for ``priced``)."""
    margins: tuple[float, ...] = MARGINS
    """Candidate margins; the calibration picks one on training traces, the frontier sweeps them all."""
    allocation: str = "per_workload"
    """What a margin does: ``per_workload`` (every workload at the percentile ``1 - (1 -
    target_percentile) / m`` of its own histogram, :meth:`percentile`) or ``priced`` (margin ``m``
    prices time above request, :meth:`price`, and every workload takes the request of least idle
    request plus priced time above it: :func:`priced_target`). ``priced`` traces a better frontier
    against VPA, but its price is absolute: one calibrated on the training traces leaves the large
    workloads of another cluster throttled longer than VPA, where the per-workload percentile
    transfers (docs/FORECASTS.md); so it is a setting, not the default."""
    price_unit_cpu_milli: float = 10_000.0
    """``priced``: margin 1 prices one pod-second above the CPU request at this many millicore-seconds
    of idle request (10 cores)."""
    price_unit_mem_mib: float = 10_240.0
    """``priced``: margin 1 prices one pod-second above the memory request at this many MiB-seconds of
    idle request (10 GiB)."""
    vpa: VpaSettings = field(default_factory=VpaSettings)
    """The VPA baseline; its safety margin, minimums and histogram buckets are also ours."""

    def __post_init__(self) -> None:
        if self.refresh_s <= 0 or not self.margins or min(self.margins) <= 0:
            raise InputError("refresh_s and margins must be positive", "rightsizing settings")
        if self.allocation not in ALLOCATIONS:
            raise InputError(f"allocation must be one of {', '.join(ALLOCATIONS)}", "rightsizing settings",
                             f"got {self.allocation!r}")
        if self.memory_half_life_s <= 0 or self.long_half_life_s <= 0 or self.memory_long_weight < 0:
            raise InputError("half-lives must be positive and long_weight >= 0", "rightsizing settings")
        if not 0 < self.target_percentile <= 1:
            raise InputError("target_percentile must be in (0, 1]", "rightsizing settings")
        if self.price_unit_cpu_milli <= 0 or self.price_unit_mem_mib <= 0:
            raise InputError("price units must be positive", "rightsizing settings")
        lo, hi = self.growth_range
        if not 0 < lo <= 1 <= hi:
            raise InputError("growth_bounds must satisfy 0 < low <= 1 <= high", "rightsizing settings",
                             f"got {self.growth_bounds}")

    def _in_effect(self, name: str):
        """Field ``name`` as set, or the rule's default (:data:`RULE_DEFAULTS`) when it is None."""
        value = getattr(self, name)
        return RULE_DEFAULTS[self.allocation][name] if value is None else value

    @property
    def memory_half_life_s(self) -> float:
        """The half-life in effect: ``half_life_s``, or the rule's default."""
        return float(self._in_effect("half_life_s"))

    @property
    def memory_long_weight(self) -> float:
        """The slow term's weight in effect: ``long_weight``, or the rule's default."""
        return float(self._in_effect("long_weight"))

    @property
    def growth_range(self) -> tuple[float, float]:
        """The growth bounds in effect: ``growth_bounds``, or the rule's default."""
        lo, hi = self._in_effect("growth_bounds")
        return float(lo), float(hi)

    def percentile(self, margin: float) -> float:
        """The histogram percentile margin ``margin`` targets: ``1 - (1 - target_percentile) / margin``,
        in ``[0, 1]``."""
        if not np.isfinite(margin) or margin <= 0:
            raise InputError("a margin must be a positive number", "rightsizing", f"got {margin!r}")
        return float(np.clip(1 - (1 - self.target_percentile) / margin, 0.0, 1.0))

    def price(self, margin: float, resource: str) -> float:
        """``priced``: what margin ``margin`` prices one pod-second above the request at, in idle request
        (millicore-seconds for ``cpu``, MiB-seconds for ``mem``): ``margin x`` the resource's unit."""
        if not np.isfinite(margin) or margin <= 0:
            raise InputError("a margin must be a positive number", "rightsizing", f"got {margin!r}")
        return float(margin) * (self.price_unit_cpu_milli if resource == "cpu" else self.price_unit_mem_mib)


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


def _by_workload_and_refresh(trace: Trace, samples: PodSamples, bin_s: int, refreshes: int, refresh_s: int,
                             width: int, targets) -> tuple[np.ndarray, np.ndarray]:
    """(P, W, R) CPU and memory values at each refresh ``r >= 1`` from the workload's samples before
    it (NaN without any). ``targets(values, times_s, request_cores, resource, now_s)`` returns the
    ``width`` (P) values of one workload, resource and refresh; a sample is known at the end of its bin."""
    keys, wid = workload_keys(trace)
    per = refresh_s // bin_s
    w_of = wid[samples.pod]
    order = np.argsort(w_of, kind="stable")
    bounds = np.searchsorted(w_of[order], np.arange(len(keys) + 1))
    req_cores = trace.pods.cpu_request_milli[samples.pod] / 1000.0
    cpu = np.full((width, len(keys), refreshes), np.nan)
    mem = np.full((width, len(keys), refreshes), np.nan)
    for w in range(len(keys)):
        idx = order[bounds[w]:bounds[w + 1]]
        if idx.size == 0:
            continue
        b = samples.bin[idx]
        t = (b + 1) * float(bin_s)
        for r in range(1, refreshes):
            past = b < r * per
            if not past.any():
                continue
            now = r * per * float(bin_s)
            cpu[:, w, r] = targets(samples.cpu[idx][past], t[past], req_cores[idx][past], "cpu", now)
            mem[:, w, r] = targets(samples.mem[idx][past], t[past], req_cores[idx][past], "mem", now)
    return cpu, mem


def vpa_recommendations_at(trace: Trace, samples: PodSamples, bin_s: int, refreshes: int,
                           settings: RightsizingSettings, percentiles: tuple[float, ...]
                           ) -> tuple[np.ndarray, np.ndarray]:
    """(P, W, R) VPA CPU and memory targets at each refresh, from samples before it (NaN without
    history), with ``settings.vpa``'s target percentile set to each of ``percentiles`` in turn; one
    histogram per workload and refresh serves them all."""
    v = settings.vpa

    def targets(values, times_s, req_cores, resource, now_s):
        weights = np.maximum(req_cores, v.min_sample_weight) if resource == "cpu" else np.ones(len(values))
        return vpa_targets(values, times_s, weights, resource, now_s, v, percentiles)

    return _by_workload_and_refresh(trace, samples, bin_s, refreshes, settings.refresh_s, len(percentiles), targets)


def sample_weights(age_s: np.ndarray, settings: RightsizingSettings) -> np.ndarray:
    """A sample's weight by its age: ``2 ** (-age / half_life) + long_weight x 2 ** (-age / long_half_life)``
    (VPA's is the slow term alone)."""
    age = np.asarray(age_s, dtype=float)
    return (np.exp2(-age / settings.memory_half_life_s)
            + settings.memory_long_weight * np.exp2(-age / settings.long_half_life_s))


def history_target(values: np.ndarray, times_s: np.ndarray, req_cores: np.ndarray, resource: str, now_s: float,
                   settings: RightsizingSettings, percentiles) -> np.ndarray:
    """Our histogram target of one workload at ``now_s``, per percentile: VPA's histogram, buckets,
    request weighting (CPU), safety margin and minimum, with :func:`sample_weights` for the decay;
    NaN with no samples."""
    v = settings.vpa
    p = histogram_percentiles(values, _histogram_weights(times_s, req_cores, resource, now_s, settings),
                              percentiles, v.cpu if resource == "cpu" else v.memory)
    return np.where(np.isnan(p), np.nan, _as_target(p, resource, settings))


def _histogram_weights(times_s: np.ndarray, req_cores: np.ndarray, resource: str, now_s: float,
                       settings: RightsizingSettings) -> np.ndarray:
    """Our histogram's sample weights: VPA's request weighting (CPU) times :func:`sample_weights`."""
    v = settings.vpa
    decay = sample_weights(now_s - np.asarray(times_s, dtype=float), settings)
    return decay * np.maximum(req_cores, v.min_sample_weight) if resource == "cpu" else decay


def _as_target(value: np.ndarray, resource: str, settings: RightsizingSettings) -> np.ndarray:
    """A histogram value as a target: VPA's safety margin, at least VPA's minimum."""
    v = settings.vpa
    return np.maximum(value * (1 + v.safety_margin), v.min_cpu_milli if resource == "cpu" else v.min_memory_mib)


def priced_target(values: np.ndarray, times_s: np.ndarray, req_cores: np.ndarray, resource: str, now_s: float,
                  settings: RightsizingSettings, margins: Sequence[float]) -> np.ndarray:
    """Our priced target of one workload at ``now_s``, per margin (``allocation="priced"``).

    The candidates are the workload's histogram (the weights of :func:`history_target`) at
    :data:`CANDIDATE_PERCENTILES`. Each margin ``m`` sets a price, :meth:`RightsizingSettings.price`:
    what one unit of pod-time above the request is worth in idle request. The target is the candidate
    with the least ``expected idle request + price x expected share of time above it`` in the
    histogram, then VPA's safety margin and minimum. One price for every workload puts the time above
    request where a unit of it saves the most idle request: a steady workload, whose tail is short,
    is covered to a high percentile, a bursty one to a lower one; the summed slack is then the least
    for the summed time above request (in the histograms). NaN without samples.
    """
    v = settings.vpa
    values = np.asarray(values, dtype=float)
    w = _histogram_weights(times_s, req_cores, resource, now_s, settings)
    if len(values) == 0 or w.sum() <= 0:
        return np.full(len(margins), np.nan)
    w = w / w.sum()
    cand = histogram_percentiles(values, w, CANDIDATE_PERCENTILES, v.cpu if resource == "cpu" else v.memory)
    gap = cand[:, None] - values[None, :]
    slack = (np.maximum(gap, 0.0) * w).sum(axis=1)
    above = ((gap < -1e-9) * w).sum(axis=1)
    prices = np.array([settings.price(m, resource) for m in margins])
    return _as_target(cand[np.argmin(slack[None, :] + prices[:, None] * above[None, :], axis=1)], resource, settings)


def workload_target(values: np.ndarray, times_s: np.ndarray, req_cores: np.ndarray, resource: str, now_s: float,
                    settings: RightsizingSettings, margins: Sequence[float]) -> np.ndarray:
    """One workload's target at ``now_s`` per margin, by ``settings.allocation`` (before the growth)."""
    if settings.allocation == "priced":
        return priced_target(values, times_s, req_cores, resource, now_s, settings, margins)
    return history_target(values, times_s, req_cores, resource, now_s, settings,
                          [settings.percentile(m) for m in margins])


def targets_at(trace: Trace, samples: PodSamples, bin_s: int, refreshes: int, settings: RightsizingSettings,
               margins: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """(M, W, R) our CPU and memory targets at each refresh for ``margins`` (:func:`workload_target`,
    from the samples before the refresh; before the forecast growth)."""
    def targets(values, times_s, req_cores, resource, now_s):
        return workload_target(values, times_s, req_cores, resource, now_s, settings, margins)

    return _by_workload_and_refresh(trace, samples, bin_s, refreshes, settings.refresh_s, len(margins), targets)


def growth_factor(forecast: np.ndarray, level: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    """``forecast / level`` clipped to ``bounds``; 1 where either is missing (nothing runs now)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        g = forecast / level
    return np.where(np.isfinite(g), np.clip(g, *bounds), 1.0)


def forecast_growth(models: ForecastModels, series: WorkloadSeries, resource: str,
                    settings: RightsizingSettings) -> np.ndarray:
    """(W, B) the forecast's predicted change of the per-pod level, made at each bin: the mean over
    the horizons of the ``forecast_alpha`` forecast over the trailing 1-hour mean (the models' own
    scale), clipped to ``growth_bounds`` (:func:`growth_factor`). Bounds ``[1, 1]`` (the priced
    rule's) clip every forecast to 1, so then no model is asked (about 1.7 s a trace otherwise)."""
    x = series.cpu if resource == "cpu" else series.mem
    if settings.growth_range == (1.0, 1.0):
        return np.ones(x.shape)
    f = np.mean([models.predict(series, resource, h, settings.forecast_alpha)
                 for h in models.settings.horizons_min], axis=0)
    return growth_factor(f, trailing_scale(x, models.settings.features), settings.growth_range)


def growth_at_refreshes(growth: np.ndarray, refreshes: int, bins_per_refresh: int) -> np.ndarray:
    """(W, R) the growth made in the last bin before each refresh (1 at refresh 0 and past the series)."""
    out = np.ones((growth.shape[0], refreshes))
    for r in range(1, refreshes):
        col = r * bins_per_refresh - 1
        if col < growth.shape[1]:
            out[:, r] = growth[:, col]
    return out


def calibrate_margin(cases: list[tuple[Scored, dict[float, np.ndarray], np.ndarray]], usage_attr: str,
                     margins: Sequence[float]) -> float:
    """Smallest margin whose time above request is at most VPA's on *every* one of ``cases`` (the
    training traces), else the largest.

    Each case is ``(scored, {margin: our per-sample request}, VPA's per-sample request)``. Every case,
    not their sum: a priced margin is an absolute price, and the price that matches VPA's time on a
    trace of small workloads leaves a trace of large ones throttled several times longer than VPA (a
    sum over both is met by over-covering the one with more pods).
    """
    def above(scored: Scored, req: np.ndarray) -> float:
        u = getattr(scored.samples, usage_attr)
        return float(scored.samples.run_s[u > req + 1e-9].sum())

    vpa_time = [above(c[0], c[2]) for c in cases]
    for m in sorted(margins):
        if all(above(c[0], c[1][m]) <= v for c, v in zip(cases, vpa_time)):
            return m
    return max(margins)


def per_sample(rec: np.ndarray, fallback: np.ndarray, scored: Scored, written: np.ndarray) -> np.ndarray:
    """Request per scored sample: ``rec``, else ``fallback`` (both (W, R)), else as written."""
    r = np.clip(scored.refresh, 0, rec.shape[1] - 1)
    value = rec[scored.workload, r]
    value = np.where(np.isfinite(value), value, fallback[scored.workload, r])
    return np.where(np.isfinite(value), value, written)


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
