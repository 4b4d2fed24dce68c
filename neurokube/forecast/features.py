"""Past-only features of a usage series, for forecasting at every (workload, bin).

The feature row at bin ``t`` ("now" is the end of bin ``t``) is a function of bins ``<= t`` only:
lags, trailing rolling statistics, the time of day of now, the running pods and the request as
written. Values are divided by a *scale* known at ``t`` -- the trailing mean over
``scale_bins`` -- so one global model serves workloads of any size; the forecast is multiplied
back. tests/unit/test_forecast_features.py checks that changing the future leaves every feature
row unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from neurokube.errors import InputError

DAY_S = 86400.0


@dataclass(frozen=True)
class FeatureSettings:
    lags: tuple[int, ...] = (1, 2, 3, 6, 12)
    """Lagged values, in bins before now (5-minute bins: 5 minutes to 1 hour)."""
    windows: tuple[int, ...] = (3, 12, 36)
    """Trailing windows (bins) for mean, std, max and min: 15 minutes, 1 hour, 3 hours."""
    scale_bins: int = 12
    """Trailing window (bins) of the normalising scale (1 hour)."""
    min_scale: float = 1.0
    """Floor of the scale, in the series' unit (1 milli-CPU or 1 MiB), so idle series stay finite."""

    def __post_init__(self) -> None:
        if not self.lags or min(self.lags) < 1 or not self.windows or min(self.windows) < 2:
            raise InputError("lags must be >= 1 bin and windows >= 2 bins", "feature settings")
        if self.scale_bins < 1 or self.min_scale <= 0:
            raise InputError("scale_bins and min_scale must be positive", "feature settings")


def feature_names(settings: FeatureSettings = FeatureSettings()) -> list[str]:
    names = ["last", "delta1", "log_scale", "log_request", "last_over_request", "pods", "history_bins",
             "tod_sin", "tod_cos", "pods_delta1", "pods_mean12", "ewm3", "ewm12"]
    names += [f"lag{k}" for k in settings.lags]
    for w in settings.windows:
        names += [f"mean{w}", f"std{w}", f"max{w}", f"min{w}"]
    return names


def trailing_scale(x: np.ndarray, settings: FeatureSettings = FeatureSettings()) -> np.ndarray:
    """(W, B) scale at each bin: trailing nan-mean over ``scale_bins``, floored at ``min_scale``."""
    frame = pd.DataFrame(x.T)
    scale = frame.rolling(settings.scale_bins, min_periods=1).mean().to_numpy().T
    return np.maximum(np.nan_to_num(scale, nan=settings.min_scale), settings.min_scale)


def series_features(x: np.ndarray, pods: np.ndarray, request: np.ndarray, bin_s: int,
                    settings: FeatureSettings = FeatureSettings()) -> np.ndarray:
    """Features for every (workload, bin): an array (W, B, F) in :func:`feature_names` order.

    ``x`` (W, B) is the usage series (NaN where no pod ran), ``pods`` (W, B) the running pods,
    ``request`` (W,) the per-pod request as written (0 for none).
    """
    if x.shape != pods.shape or x.shape[0] != len(request):
        raise InputError("series shapes disagree", "features", f"{x.shape}, {pods.shape}, {len(request)}")
    n_w, n_b = x.shape
    scale = trailing_scale(x, settings)
    z = x / scale  # every value seen relative to the scale known *now*: broadcast below per lag
    frame = pd.DataFrame(x.T)
    out: list[np.ndarray] = []
    last = x
    prev = _shift(x, 1)
    req = np.where(request > 0, request, np.nan)[:, None]
    hist = np.cumsum(np.isfinite(x), axis=1).astype(float)
    tod = ((np.arange(n_b) + 1) * bin_s % DAY_S) / DAY_S * 2 * np.pi
    out += [z, (last - prev) / scale, np.log(scale), np.broadcast_to(np.log1p(np.nan_to_num(req, nan=0.0)), x.shape),
            last / req, pods, hist,
            np.broadcast_to(np.sin(tod)[None, :], x.shape), np.broadcast_to(np.cos(tod)[None, :], x.shape),
            pods - _shift(pods, 1), pd.DataFrame(pods.T).rolling(12, min_periods=1).mean().to_numpy().T,
            frame.ewm(halflife=3, ignore_na=True).mean().to_numpy().T / scale,
            frame.ewm(halflife=12, ignore_na=True).mean().to_numpy().T / scale]
    out += [_shift(x, k) / scale for k in settings.lags]
    for w in settings.windows:
        roll = frame.rolling(w, min_periods=1)
        for stat in (roll.mean(), roll.std(), roll.max(), roll.min()):
            out.append(stat.to_numpy().T / scale)
    del z
    return np.stack([np.asarray(a, dtype=np.float64) for a in out], axis=-1)


def _shift(x: np.ndarray, k: int) -> np.ndarray:
    """``x`` delayed by ``k`` bins along the time axis (NaN-padded): value at ``t`` is ``x[t-k]``."""
    out = np.full_like(x, np.nan, dtype=np.float64)
    if k < x.shape[1]:
        out[:, k:] = x[:, :-k]
    return out


def targets(x: np.ndarray, horizon_bins: int) -> np.ndarray:
    """(W, B): the value ``horizon_bins`` after each bin (NaN past the end)."""
    out = np.full_like(x, np.nan, dtype=np.float64)
    if horizon_bins < x.shape[1]:
        out[:, :-horizon_bins] = x[:, horizon_bins:]
    return out
