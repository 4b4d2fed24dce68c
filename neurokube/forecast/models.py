"""LightGBM forecasts of a workload's per-pod CPU and memory usage: a point forecast and quantiles.

One global model per (resource, horizon, quantile): ``cpu``/``mem`` x 15/60 minutes x alpha
0.5/0.95, trained on every (workload, bin) of the training series where the workload runs now and
at the horizon. Target and features are divided by the trailing scale (features.py); forecasts
are multiplied back and clipped to ``[0, clip_over_max x trailing max]``.

**Point forecast** (``predict(..., 0.5)``, what every caller uses as "the forecast"): the goal is
RMSE, which the conditional *mean* minimises, while the 0.5 quantile minimises absolute error.
A plain L2 fit does not serve: on scale-normalised targets the tails are heavy (an idle
workload's burst is many times its 1-hour mean) and squared loss chases them (on validation
traces it was worse than the median model). So a second model per (resource, horizon) fits the
**Huber** loss (squared within ``huber_delta`` scale units of the target, linear beyond): a mean
estimate that outliers move only linearly. The point forecast is the average of the median and
the Huber forecasts: two estimates of the centre whose errors are only partly shared, so their
mean has less variance than either (``point_huber=False`` gives the median model alone).
Chosen on validation traces (seeds 3 and 4, trained on seed 1); docs/FORECASTS.md has the numbers.

Models serialise to LightGBM's text format plus a JSON manifest (no pickle); files are written
by the caller (the core does no I/O).
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
FORMAT_VERSION = 2
"""Of ``forecast_manifest.json``. 2: the point forecast adds a Huber model per (resource, horizon)
(1: the 0.5 quantile alone)."""


@dataclass(frozen=True)
class ForecastSettings:
    horizons_min: tuple[int, ...] = (15, 60)
    """Forecast horizons, minutes ahead of now (multiples of the 5-minute bin)."""
    alphas: tuple[float, ...] = (0.5, 0.95)
    """Quantiles fitted (LightGBM objective ``quantile``); 0.5 is (part of) the point forecast."""
    point_huber: bool = True
    """Fit a Huber model per (resource, horizon) and make the point forecast the mean of it and
    the 0.5 quantile (module docstring)."""
    huber_delta: float = 1.0
    """Huber threshold, in units of the trailing scale: errors beyond one 1-hour mean count linearly."""
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
        if not self.huber_delta > 0:
            raise InputError("huber_delta must be positive", "forecast settings", f"got {self.huber_delta}")

    def lgb_params(self, alpha: float | None) -> dict:
        """LightGBM parameters of the ``alpha`` quantile model, or of the Huber model for ``None``."""
        objective = {"objective": "huber", "alpha": self.huber_delta} if alpha is None else \
            {"objective": "quantile", "alpha": alpha}
        return {**objective, "learning_rate": self.learning_rate,
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
    """The quantile models, by (resource, horizon, alpha)."""
    bin_s: int = 300
    huber: dict[tuple[str, int], lgb.Booster] = field(default_factory=dict)
    """The Huber models of the point forecast, by (resource, horizon); empty without ``point_huber``."""

    def predict(self, series: WorkloadSeries, resource: str, horizon_min: int, alpha: float) -> np.ndarray:
        """(W, B) forecast made at each bin for ``horizon_min`` later; NaN where nothing runs now.

        ``alpha`` 0.5 is the point forecast (with ``point_huber``, the mean of the median and the
        Huber forecasts); any other fitted alpha is that quantile."""
        key = (resource, horizon_min, alpha)
        if key not in self.boosters:
            raise InputError(f"no model for {key}", "forecast")
        members = [self.boosters[key]]
        if alpha == 0.5 and self.settings.point_huber:
            if (resource, horizon_min) not in self.huber:
                raise InputError(f"no Huber model for {(resource, horizon_min)}", "forecast")
            members.append(self.huber[(resource, horizon_min)])
        x, req = _resource(series, resource)
        feats = series_features(x, series.pods, req, series.bin_s, self.settings.features)
        scale = trailing_scale(x, self.settings.features)
        out = np.full(x.shape, np.nan)
        now = np.isfinite(x)
        if now.any():
            rows = feats[now]
            top = rows[:, feature_names(self.settings.features).index(
                f"max{max(self.settings.features.windows)}")] * self.settings.clip_over_max
            z = np.mean([np.clip(b.predict(rows), 0.0, top) for b in members], axis=0)
            out[now] = z * scale[now]
        return out

    def to_texts(self) -> dict[str, str]:
        """``{file name: content}``: one LightGBM text model per key and ``manifest.json``."""
        files, entries = {}, []
        for (res, h, a), booster in sorted(self.boosters.items()):
            name = f"{res}_{h}m_q{int(round(a * 100)):02d}.txt"
            files[name] = booster.model_to_string()
            entries.append({"resource": res, "horizon_min": h, "alpha": a, "file": name})
        for (res, h), booster in sorted(self.huber.items()):
            name = f"{res}_{h}m_huber.txt"
            files[name] = booster.model_to_string()
            entries.append({"resource": res, "horizon_min": h, "objective": "huber", "file": name})
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
                raise ValueError(f"format_version {manifest.get('format_version')!r}; this version reads "
                                 f"{FORMAT_VERSION}, retrain with --train-trace")
            s = dict(manifest["settings"])
            s["features"] = FeatureSettings(**{k: tuple(v) if isinstance(v, list) else v
                                              for k, v in s["features"].items()})
            settings = ForecastSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in s.items()})
            entries = manifest["models"]
            boosters = {(e["resource"], int(e["horizon_min"]), float(e["alpha"])):
                        lgb.Booster(model_str=files[e["file"]]) for e in entries if "alpha" in e}
            huber = {(e["resource"], int(e["horizon_min"])): lgb.Booster(model_str=files[e["file"]])
                     for e in entries if e.get("objective") == "huber"}
        except (KeyError, ValueError, TypeError) as exc:
            raise InputError("not a forecast model bundle", "forecast_manifest.json", str(exc)) from None
        return cls(settings, boosters, int(manifest["bin_s"]), huber)


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
    """Fit every (resource, horizon, alpha) model, and the Huber models, on the pooled rows of ``train``."""
    if not train:
        raise InputError("no training series", "forecast", "pass at least one training trace")
    bin_s = train[0].bin_s
    rng = np.random.default_rng(settings.seed)
    names = feature_names(settings.features)
    boosters, huber = {}, {}
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
            data = lgb.Dataset(X, y, weight=w / w.mean(), feature_name=names, free_raw_data=False)
            for a in settings.alphas:
                boosters[(res, h, a)] = lgb.train(settings.lgb_params(a), data, settings.num_boost_round)
            if settings.point_huber:
                huber[(res, h)] = lgb.train(settings.lgb_params(None), data, settings.num_boost_round)
    return ForecastModels(settings, boosters, bin_s, huber)
