"""LightGBM quantile forecasts of a workload's per-pod CPU and memory usage.

One global model per (resource, horizon, quantile): ``cpu``/``mem`` x 15/60 minutes x alpha
0.5/0.95, trained on every (workload, bin) of the training series where the workload runs now and
at the horizon. Target and features are divided by the trailing scale (features.py); forecasts
are multiplied back and clipped at zero. Models serialise to LightGBM's text format plus a JSON
manifest (no pickle); files are written by the caller (the core does no I/O).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import lightgbm as lgb
import numpy as np

from neurokube.errors import InputError
from neurokube.forecast.features import FeatureSettings, feature_names, series_features, targets, trailing_scale
from neurokube.forecast.series import WorkloadSeries

RESOURCES = ("cpu", "mem")
FORMAT_VERSION = 1


@dataclass(frozen=True)
class ForecastSettings:
    horizons_min: tuple[int, ...] = (15, 60)
    """Forecast horizons, minutes ahead of now (multiples of the 5-minute bin)."""
    alphas: tuple[float, ...] = (0.5, 0.95)
    """Quantiles fitted (LightGBM objective ``quantile``); 0.5 is the point forecast."""
    num_boost_round: int = 80
    learning_rate: float = 0.1
    num_leaves: int = 31
    min_data_in_leaf: int = 100
    feature_fraction: float = 0.9
    max_rows: int = 60_000
    """Training rows per model at most (a seeded uniform subsample beyond), to bound fit time."""
    clip_over_max: float = 2.0
    """A forecast is at most this times the largest value of the longest trailing window."""
    weight_by_scale: bool = True
    """Weight each row by its scale, so the loss on normalised targets equals the pinball loss in
    milli-CPU / MiB: big workloads count as much as they weigh in a cluster-wide RMSE."""
    seed: int = 0
    features: FeatureSettings = field(default_factory=FeatureSettings)

    def __post_init__(self) -> None:
        if not self.horizons_min or any(h <= 0 or h % 5 for h in self.horizons_min):
            raise InputError("horizons must be positive multiples of 5 minutes", "forecast settings",
                             f"got {self.horizons_min}")
        if any(not 0 < a < 1 for a in self.alphas) or 0.5 not in self.alphas:
            raise InputError("alphas must lie in (0, 1) and include 0.5", "forecast settings")

    def lgb_params(self, alpha: float) -> dict:
        return {"objective": "quantile", "alpha": alpha, "learning_rate": self.learning_rate,
                "num_leaves": self.num_leaves, "min_data_in_leaf": self.min_data_in_leaf,
                "feature_fraction": self.feature_fraction, "seed": self.seed, "deterministic": True,
                "num_threads": 1, "max_bin": 63, "verbose": -1}


def _resource(series: WorkloadSeries, resource: str) -> tuple[np.ndarray, np.ndarray]:
    if resource == "cpu":
        return series.cpu, series.cpu_request
    if resource == "mem":
        return series.mem, series.mem_request
    raise InputError(f"unknown resource {resource!r}", "forecast", f"one of {', '.join(RESOURCES)}")


def horizon_bins(horizon_min: int, bin_s: int) -> int:
    return int(round(horizon_min * 60 / bin_s))


@dataclass
class ForecastModels:
    settings: ForecastSettings
    boosters: dict[tuple[str, int, float], lgb.Booster]
    bin_s: int = 300

    def predict(self, series: WorkloadSeries, resource: str, horizon_min: int, alpha: float) -> np.ndarray:
        """(W, B) forecast made at each bin for ``horizon_min`` later; NaN where nothing runs now."""
        key = (resource, horizon_min, alpha)
        if key not in self.boosters:
            raise InputError(f"no model for {key}", "forecast")
        x, req = _resource(series, resource)
        feats = series_features(x, series.pods, req, series.bin_s, self.settings.features)
        scale = trailing_scale(x, self.settings.features)
        out = np.full(x.shape, np.nan)
        now = np.isfinite(x)
        if now.any():
            top = feats[now][:, feature_names(self.settings.features).index(
                f"max{max(self.settings.features.windows)}")] * self.settings.clip_over_max
            out[now] = np.clip(self.boosters[key].predict(feats[now]), 0.0, top) * scale[now]
        return out

    def to_texts(self) -> dict[str, str]:
        """``{file name: content}``: one LightGBM text model per key and ``manifest.json``."""
        files, entries = {}, []
        for (res, h, a), booster in sorted(self.boosters.items()):
            name = f"{res}_{h}m_q{int(round(a * 100)):02d}.txt"
            files[name] = booster.model_to_string()
            entries.append({"resource": res, "horizon_min": h, "alpha": a, "file": name})
        files["forecast_manifest.json"] = json.dumps({
            "format_version": FORMAT_VERSION, "kind": "neurokube-forecast", "bin_s": self.bin_s,
            "lightgbm": lgb.__version__, "features": feature_names(self.settings.features),
            "settings": asdict(self.settings), "models": entries}, indent=2)
        return files

    @classmethod
    def from_texts(cls, files: dict[str, str]) -> "ForecastModels":
        try:
            manifest = json.loads(files["forecast_manifest.json"])
            if manifest.get("format_version") != FORMAT_VERSION:
                raise ValueError(f"format_version {manifest.get('format_version')}")
            s = dict(manifest["settings"])
            s["features"] = FeatureSettings(**{k: tuple(v) if isinstance(v, list) else v
                                              for k, v in s["features"].items()})
            settings = ForecastSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in s.items()})
            boosters = {(e["resource"], int(e["horizon_min"]), float(e["alpha"])):
                        lgb.Booster(model_str=files[e["file"]]) for e in manifest["models"]}
        except (KeyError, ValueError, TypeError) as exc:
            raise InputError("not a forecast model bundle", "forecast_manifest.json", str(exc)) from None
        return cls(settings, boosters, int(manifest["bin_s"]))


def training_rows(series: WorkloadSeries, resource: str, horizon_min: int,
                  settings: FeatureSettings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Feature rows, normalised targets and scales where the workload runs now and at the horizon."""
    x, req = _resource(series, resource)
    feats = series_features(x, series.pods, req, series.bin_s, settings)
    scale = trailing_scale(x, settings)
    y = targets(x, horizon_bins(horizon_min, series.bin_s)) / scale
    ok = np.isfinite(x) & np.isfinite(y)
    return feats[ok], y[ok], scale[ok]


def fit_forecasters(train: list[WorkloadSeries], settings: ForecastSettings = ForecastSettings()) -> ForecastModels:
    """Fit every (resource, horizon, alpha) model on the pooled rows of ``train``."""
    if not train:
        raise InputError("no training series", "forecast", "pass at least one training trace")
    bin_s = train[0].bin_s
    rng = np.random.default_rng(settings.seed)
    names = feature_names(settings.features)
    boosters = {}
    for res in RESOURCES:
        for h in settings.horizons_min:
            parts = [training_rows(s, res, h, settings.features) for s in train]
            X = np.concatenate([p[0] for p in parts])
            y = np.concatenate([p[1] for p in parts])
            w = np.concatenate([p[2] for p in parts]) if settings.weight_by_scale else np.ones(len(y))
            if len(y) < 100:
                raise InputError("too little training data", "forecast",
                                 f"{len(y)} rows for {res} at {h} min; use longer or more training traces")
            if len(y) > settings.max_rows:
                keep = rng.choice(len(y), settings.max_rows, replace=False)
                X, y, w = X[keep], y[keep], w[keep]
            for a in settings.alphas:
                data = lgb.Dataset(X, y, weight=w / w.mean(), feature_name=names, free_raw_data=False)
                boosters[(res, h, a)] = lgb.train(settings.lgb_params(a), data, settings.num_boost_round)
    return ForecastModels(settings, boosters, bin_s)
