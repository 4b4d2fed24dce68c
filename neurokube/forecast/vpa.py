"""The baseline recommender: VPA's decaying histogram (kubernetes/autoscaler, vertical-pod-autoscaler).

Written from VPA's documented design, not its code. Defaults are VPA's recommender defaults:

* exponential buckets: the first is ``first_bucket`` wide (CPU 10 millicores, memory 10 MB, here
  9.54 MiB), each next one ``bucket_growth`` (1.05) times wider;
* a sample's weight grows as ``2 ** (t / half_life)`` (half-life 24 h), which is the same as
  decaying old samples; CPU samples are also weighted by the pod's CPU request in cores, at
  least ``min_sample_weight`` (0.1), as VPA does;
* the target is the 90th percentile of the histogram -- the *end* of the bucket in which the
  cumulative weight reaches 90 % -- times ``1 + safety_margin`` (15 %);
* at least ``min_cpu_milli`` (25m) and ``min_memory_mib`` (250 MiB) per pod.

Deviation, stated: VPA feeds memory with per-day peaks; our traces are 24 h long, where that would
degenerate to the maximum, so memory is fed the same 5-minute pod samples as CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurokube.errors import InputError


@dataclass(frozen=True)
class HistogramSettings:
    first_bucket: float
    """Width of the first bucket, in the sample unit (millicores or MiB)."""
    max_value: float
    """Upper end of the last bucket; larger samples go into it."""
    bucket_growth: float = 1.05
    """Each bucket is this many times wider than the previous one."""

    def __post_init__(self) -> None:
        if self.first_bucket <= 0 or self.bucket_growth <= 1 or self.max_value <= self.first_bucket:
            raise InputError("bad histogram settings", "vpa", f"{self}")

    def edges(self) -> np.ndarray:
        """Bucket start points: 0, w, w(1+g), ... up to ``max_value``."""
        g = self.bucket_growth
        n = int(np.ceil(np.log(self.max_value * (g - 1) / self.first_bucket + 1) / np.log(g)))
        return np.concatenate([[0.0], self.first_bucket * (g ** np.arange(1, n + 1) - 1) / (g - 1)])


@dataclass(frozen=True)
class VpaSettings:
    cpu: HistogramSettings = HistogramSettings(first_bucket=10.0, max_value=1e6)
    memory: HistogramSettings = HistogramSettings(first_bucket=1e7 / 2**20, max_value=1e7)
    half_life_s: float = 24 * 3600.0
    """Half-life of a sample's weight (VPA: 24 h)."""
    target_percentile: float = 0.9
    safety_margin: float = 0.15
    min_sample_weight: float = 0.1
    min_cpu_milli: float = 25.0
    min_memory_mib: float = 250.0


def decayed_percentile(values: np.ndarray, times_s: np.ndarray, weights: np.ndarray, percentile: float,
                       hist: HistogramSettings, half_life_s: float, now_s: float) -> float:
    """Percentile of a decaying histogram: the end of the bucket where cumulative weight reaches it.

    Returns NaN when there are no samples (or all weights are zero).
    """
    return float(decayed_percentiles(values, times_s, weights, (percentile,), hist, half_life_s, now_s)[0])


def decayed_percentiles(values: np.ndarray, times_s: np.ndarray, weights: np.ndarray, percentiles,
                        hist: HistogramSettings, half_life_s: float, now_s: float) -> np.ndarray:
    """:func:`decayed_percentile` at several percentiles from one histogram (the frontier's VPA settings).

    All NaN when there are no samples (or all weights are zero).
    """
    w = np.asarray(weights, dtype=float) * np.exp2((np.asarray(times_s, dtype=float) - now_s) / half_life_s)
    return histogram_percentiles(values, w, percentiles, hist)


def histogram_percentiles(values: np.ndarray, weights: np.ndarray, percentiles, hist: HistogramSettings
                          ) -> np.ndarray:
    """Percentiles of VPA's histogram of ``values`` with the given (already decayed) ``weights``: for
    each, the end of the bucket where the cumulative weight reaches it. All NaN with no weight."""
    percentiles = np.asarray(percentiles, dtype=float)
    if len(values) == 0:
        return np.full(percentiles.shape, np.nan)
    edges = hist.edges()
    w = np.asarray(weights, dtype=float)
    bucket = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 1)
    total = np.bincount(bucket, weights=w, minlength=len(edges))
    if total.sum() <= 0:
        return np.full(percentiles.shape, np.nan)
    cum = np.cumsum(total)
    b = np.searchsorted(cum, percentiles * cum[-1] * (1 - 1e-12))
    return edges[np.minimum(b + 1, len(edges) - 1)].astype(float)  # the last bucket ends at its start


def vpa_target(values: np.ndarray, times_s: np.ndarray, weights: np.ndarray, resource: str,
               now_s: float, settings: VpaSettings = VpaSettings()) -> float:
    """VPA's target request (``cpu`` milli or ``mem`` MiB) from past pod samples; NaN with none."""
    return float(vpa_targets(values, times_s, weights, resource, now_s, settings, (settings.target_percentile,))[0])


def vpa_targets(values: np.ndarray, times_s: np.ndarray, weights: np.ndarray, resource: str, now_s: float,
                settings: VpaSettings, percentiles) -> np.ndarray:
    """:func:`vpa_target` for ``VpaSettings(target_percentile=p)``, each ``p`` in ``percentiles``, from
    one histogram; NaN with no samples."""
    hist = settings.cpu if resource == "cpu" else settings.memory
    floor = settings.min_cpu_milli if resource == "cpu" else settings.min_memory_mib
    p = decayed_percentiles(values, times_s, weights, percentiles, hist, settings.half_life_s, now_s)
    return np.where(np.isnan(p), np.nan, np.maximum(p * (1 + settings.safety_margin), floor))
