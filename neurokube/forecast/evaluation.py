"""Train every model on some traces, score them on another: the protocol behind ``neurokube recommend``.

Inputs are a trace and the placements of its replay under the ``default`` policy (``node_of``,
``bind_s``); the caller runs the replay, so this module never imports the simulator.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

from neurokube.errors import InputError
from neurokube.forecast.bottleneck import (
    BottleneckModel,
    BottleneckSettings,
    fit_bottleneck,
    lead_report,
    node_features,
    node_forecasts,
    onset_leads,
)
from neurokube.forecast.features import targets
from neurokube.forecast.frontier import VPA_PERCENTILES, Requests, sweep
from neurokube.forecast.frontier import report as frontier_report
from neurokube.forecast.metrics import coverage, mape, precision_recall, rmse
from neurokube.forecast.models import ForecastModels, ForecastSettings, fit_forecasters, horizon_bins
from neurokube.forecast.rightsizing import (
    RightsizingSettings,
    Scored,
    calibrate_margin,
    clairvoyant_slack,
    forecast_growth,
    growth_at_refreshes,
    limits,
    outcome,
    per_sample,
    score_frame,
    targets_at,
    vpa_recommendations_at,
    workload_target,
)
from neurokube.forecast.series import (
    NodeSeries,
    PodSamples,
    SeriesSettings,
    WorkloadSeries,
    node_series,
    pod_samples,
    workload_series,
)
from neurokube.trace.model import Trace

FORMAT_VERSION = 3
"""Of ``manifest.json``. 3: ``rightsizing.allocation`` (``per_workload`` by default, or ``priced``)
and its price units; 2: the right-sizing recommender is the short-memory histogram x forecast growth,
every workload at its margin's percentile (read as ``allocation="per_workload"``); 1 held residual
quantiles (refused)."""
READS = (2, FORMAT_VERSION)


@dataclass(frozen=True)
class RecommenderSettings:
    series: SeriesSettings = field(default_factory=SeriesSettings)
    forecast: ForecastSettings = field(default_factory=ForecastSettings)
    rightsizing: RightsizingSettings = field(default_factory=RightsizingSettings)
    bottleneck: BottleneckSettings = field(default_factory=BottleneckSettings)


@dataclass(frozen=True)
class TraceData:
    """A trace with the series derived from its replay."""

    trace: Trace
    samples: PodSamples
    series: WorkloadSeries
    nodes: NodeSeries
    node_of: np.ndarray

    def refreshes(self, refresh_s: int) -> int:
        """Refresh points covering the series (the last one may be partial)."""
        return int(np.ceil(self.series.bins * self.series.bin_s / refresh_s)) + 1


def prepare(trace: Trace, node_of: np.ndarray, bind_s: np.ndarray,
            settings: SeriesSettings = SeriesSettings()) -> TraceData:
    samples = pod_samples(trace, bind_s, settings)
    if samples.pod.size == 0:
        raise InputError("no pod ran in the replay", trace.name, "nothing to forecast")
    return TraceData(trace, samples, workload_series(trace, samples, settings),
                     node_series(trace, node_of, bind_s, settings.step_s), node_of)


@dataclass
class Recommender:
    settings: RecommenderSettings
    forecast: ForecastModels
    bottleneck: BottleneckModel
    cpu_margin: float
    """Calibrated on the training traces; a margin moves the histogram's target percentile
    (:meth:`RightsizingSettings.percentile`)."""
    mem_margin: float
    trained_on: list[str]

    def to_texts(self) -> dict[str, str]:
        files = {**self.forecast.to_texts(), **self.bottleneck.to_texts()}
        files["manifest.json"] = json.dumps({
            "format_version": FORMAT_VERSION, "kind": "neurokube-recommender", "cpu_margin": self.cpu_margin,
            "mem_margin": self.mem_margin, "trained_on": self.trained_on,
            "rightsizing": asdict(self.settings.rightsizing), "series": asdict(self.settings.series)}, indent=2)
        return files

    @classmethod
    def from_texts(cls, files: dict[str, str]) -> "Recommender":
        try:
            m = json.loads(files["manifest.json"])
            if m.get("kind") != "neurokube-recommender" or m.get("format_version") not in READS:
                raise ValueError(f"kind {m.get('kind')!r}, format_version {m.get('format_version')!r} "
                                 f"(this version reads {', '.join(map(str, READS))}; retrain with --train-trace)")
            forecast = ForecastModels.from_texts(files)
            bottleneck = BottleneckModel.from_texts(files)
            rs = dict(m["rightsizing"])
            rs.pop("vpa", None)  # VPA's defaults are constants of the baseline, not trained state
            rs["margins"] = tuple(rs["margins"])
            if rs.get("growth_bounds") is not None:
                rs["growth_bounds"] = tuple(rs["growth_bounds"])
            if m["format_version"] == 2:  # before the priced rule existed: its margins are percentiles
                rs["allocation"] = "per_workload"
            settings = RecommenderSettings(SeriesSettings(**m["series"]), forecast.settings,
                                           RightsizingSettings(**rs), bottleneck.settings)
            return cls(settings, forecast, bottleneck, float(m["cpu_margin"]), float(m["mem_margin"]),
                       list(m["trained_on"]))
        except (KeyError, ValueError, TypeError) as exc:
            raise InputError("not a recommender model directory", "manifest.json", str(exc)) from None


def node_forecast_features(forecast: ForecastModels, data: TraceData, lead_min: int = 15
                           ) -> tuple[np.ndarray, np.ndarray]:
    """(q50, q95) node forecasts (bins, nodes) from the workloads' ``lead_min`` CPU forecasts."""
    from neurokube.forecast.series import workload_keys

    _, wid = workload_keys(data.trace)
    cap = data.trace.nodes.cpu_milli.astype(float)
    return tuple(node_forecasts(data.samples, data.node_of, wid, data.series.cpu,
                                forecast.predict(data.series, "cpu", lead_min, a), cap)
                 for a in (0.5, 0.95))  # type: ignore[return-value]


def _bottleneck_inputs(forecast: ForecastModels, data: TraceData, s: BottleneckSettings):
    fc = node_forecast_features(forecast, data, s.lead_steps * data.nodes.step_s // 60) if s.use_forecasts else None
    return node_features(data.nodes, s, fc)


@dataclass(frozen=True)
class RightsizingInputs:
    """Everything right-sizing needs on one trace, all (W, R) per workload and refresh."""

    scored: Scored
    ours: dict[float, tuple[np.ndarray, np.ndarray]]
    """Per margin: our (CPU, memory) targets (NaN without history)."""
    vpa: dict[float, tuple[np.ndarray, np.ndarray]]
    """Per target percentile: VPA's (CPU, memory) targets (NaN without history)."""

    def per_sample(self, targets: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(CPU, memory) request per scored sample; without history, the request as written."""
        nan = np.full_like(targets[0], np.nan)
        sc = self.scored
        return per_sample(targets[0], nan, sc, sc.cpu_written), per_sample(targets[1], nan, sc, sc.mem_written)


def _rightsizing_inputs(forecast: ForecastModels, data: TraceData, s: RightsizingSettings,
                        margins=(), vpa_percentiles=()) -> RightsizingInputs:
    """Our targets at each of ``margins`` (one histogram per workload and refresh serves them all)
    and VPA's at its default percentile and each of ``vpa_percentiles``."""
    scored = score_frame(data.trace, data.samples, data.series.bin_s, s)
    refreshes = data.refreshes(s.refresh_s)
    margins = tuple(dict.fromkeys(margins))
    h_cpu, h_mem = targets_at(data.trace, data.samples, data.series.bin_s, refreshes, s, margins)
    per = s.refresh_s // data.series.bin_s
    g_cpu, g_mem = (growth_at_refreshes(forecast_growth(forecast, data.series, res, s), refreshes, per)
                    for res in ("cpu", "mem"))
    ps = tuple(dict.fromkeys((s.vpa.target_percentile, *vpa_percentiles)))
    v_cpu, v_mem = vpa_recommendations_at(data.trace, data.samples, data.series.bin_s, refreshes, s, ps)
    return RightsizingInputs(scored, {m: (h_cpu[i] * g_cpu, h_mem[i] * g_mem) for i, m in enumerate(margins)},
                             {p: (v_cpu[i], v_mem[i]) for i, p in enumerate(ps)})


def train(data: list[TraceData], settings: RecommenderSettings = RecommenderSettings()) -> Recommender:
    """Fit the forecasts and the bottleneck classifier, then calibrate the right-sizing margins."""
    if not data:
        raise InputError("no training traces", "recommend", "pass --train-trace or --model-dir")
    forecast = fit_forecasters([d.series for d in data], settings.forecast)
    b = settings.bottleneck
    bottleneck = fit_bottleneck([d.nodes for d in data], b,
                                [node_forecast_features(forecast, d, b.lead_steps * d.nodes.step_s // 60)
                                 for d in data] if b.use_forecasts else None)
    s = settings.rightsizing
    cpu_cases, mem_cases = [], []
    for d in data:
        x = _rightsizing_inputs(forecast, d, s, s.margins)
        ours = {m: x.per_sample(x.ours[m]) for m in s.margins}
        vpa = x.per_sample(x.vpa[s.vpa.target_percentile])
        cpu_cases.append((x.scored, {m: r[0] for m, r in ours.items()}, vpa[0]))
        mem_cases.append((x.scored, {m: r[1] for m, r in ours.items()}, vpa[1]))
    return Recommender(settings, forecast, bottleneck, calibrate_margin(cpu_cases, "cpu", s.margins),
                       calibrate_margin(mem_cases, "mem", s.margins), [d.trace.name for d in data])


def evaluate(rec: Recommender, data: TraceData, cpu_margin: float | None = None,
             vpa_percentiles: tuple[float, ...] = VPA_PERCENTILES) -> dict:
    """The report of ``neurokube recommend --json`` (docs/FORECASTS.md defines every key).

    ``cpu_margin`` replaces the calibrated CPU margin for the reported point (an operator's
    ``--margin``; ``cpu_margin_source`` says which was used). ``rightsizing_frontier`` scores every
    margin of the settings and VPA at each of ``vpa_percentiles`` (neurokube/forecast/frontier.py).
    """
    margin, source = _cpu_margin(rec, cpu_margin)
    if not all(0 < p <= 1 for p in vpa_percentiles):
        raise InputError("VPA target percentiles must be in (0, 1]", "rightsizing frontier", f"{vpa_percentiles}")
    series = data.series
    fc: dict[str, float] = {}
    for res, x, req in (("cpu", series.cpu, series.cpu_request), ("mem", series.mem, series.mem_request)):
        prefix = "" if res == "cpu" else "mem_"
        scale = 1000.0 if res == "cpu" else 1024.0  # cores, GiB
        for h in rec.forecast.settings.horizons_min:
            y = targets(x, horizon_bins(h, series.bin_s))
            ok = np.isfinite(x) & np.isfinite(y)
            p50 = rec.forecast.predict(series, res, h, 0.5)
            fc[f"{prefix}rmse_{h}m"] = rmse(p50[ok] / scale, y[ok] / scale)
            fc[f"{prefix}persistence_rmse_{h}m"] = rmse(x[ok] / scale, y[ok] / scale)
            reqm = np.broadcast_to(req[:, None], x.shape)
            fc[f"{prefix}mape_{h}m"] = mape(p50[ok], y[ok], reqm[ok])
            fc[f"{prefix}persistence_mape_{h}m"] = mape(x[ok], y[ok], reqm[ok])
            if 0.95 in rec.forecast.settings.alphas:
                fc[f"{prefix}q95_coverage_{h}m"] = coverage(rec.forecast.predict(series, res, h, 0.95)[ok], y[ok])
            fc[f"{prefix}points_{h}m"] = int(ok.sum())

    s = rec.settings.rightsizing
    x = _rightsizing_inputs(rec.forecast, data, s, (*s.margins, margin, rec.mem_margin), vpa_percentiles)
    scored = x.scored
    ours_cpu, _ = x.per_sample(x.ours[margin])
    _, ours_mem = x.per_sample(x.ours[rec.mem_margin])
    ours = outcome(scored, ours_cpu, ours_mem)
    vpa = outcome(scored, *x.per_sample(x.vpa[s.vpa.target_percentile]))
    written = outcome(scored, scored.cpu_written, scored.mem_written)
    rs = {"slack_core_h": ours["slack_core_h"], "requested_slack_core_h": written["slack_core_h"],
          "throttled_s": ours["throttled_s"], "vpa_slack_core_h": vpa["slack_core_h"],
          "vpa_throttled_s": vpa["throttled_s"], "requested_throttled_s": written["throttled_s"],
          "mem_slack_gib_h": ours["mem_slack_gib_h"], "requested_mem_slack_gib_h": written["mem_slack_gib_h"],
          "vpa_mem_slack_gib_h": vpa["mem_slack_gib_h"], "mem_over_request_s": ours["mem_over_request_s"],
          "vpa_mem_over_request_s": vpa["mem_over_request_s"],
          "requested_mem_over_request_s": written["mem_over_request_s"],
          "scored_pod_s": ours["pod_s"], "cpu_margin": margin, "cpu_margin_source": source,
          "allocation": s.allocation,
          "cpu_target_percentile": s.percentile(margin) if s.allocation == "per_workload" else None,
          "cpu_price": s.price(margin, "cpu") if s.allocation == "priced" else None,
          "half_life_s": s.memory_half_life_s, "long_weight": s.memory_long_weight,
          "growth_bounds": list(s.growth_range), "mem_margin": rec.mem_margin}

    v_cpu = x.vpa[s.vpa.target_percentile][0]
    bound, bound_q = clairvoyant_slack(scored, v_cpu.shape[1], v_cpu.shape[0], vpa["throttled_s"])
    rs["clairvoyant_slack_core_h"], rs["clairvoyant_quantile"] = bound, bound_q

    ours_at = {m: x.per_sample(x.ours[m]) for m in s.margins}
    vpa_at = {p: x.per_sample(x.vpa[p]) for p in vpa_percentiles}
    frontier = frontier_report(sweep(
        scored, Requests({m: r[0] for m, r in ours_at.items()}, {p: r[0] for p, r in vpa_at.items()}),
        Requests({m: r[1] for m, r in ours_at.items()}, {p: r[1] for p, r in vpa_at.items()}), s.margins))

    X, y, now = _bottleneck_inputs(rec.forecast, data, rec.bottleneck.settings)
    warned = rec.bottleneck.warn(X)
    precision, recall = precision_recall(warned, y.astype(bool))
    onset = now <= rec.bottleneck.settings.threshold
    o_precision, o_recall = precision_recall(warned[onset], y[onset].astype(bool))
    bn = {"precision": precision, "recall": recall, "probability_threshold": rec.bottleneck.probability_threshold,
          "events": int(y.sum()), "decisions": int(len(y)), "onset_precision": o_precision,
          "onset_recall": o_recall, "onset_events": int(y[onset].sum()),
          "onset_threshold": rec.bottleneck.onset_threshold,
          **lead_report(onset_leads(data.nodes.util, warned, rec.bottleneck.settings, data.nodes.step_s))}
    return {"forecast": fc, "rightsizing": rs, "bottleneck": bn, "rightsizing_frontier": frontier}


def _cpu_margin(rec: Recommender, override: float | None) -> tuple[float, str]:
    """The CPU margin to report and where it came from (``calibrated`` or ``--margin``)."""
    if override is None:
        return rec.cpu_margin, "calibrated"
    if not np.isfinite(override) or override <= 0:
        raise InputError("the CPU margin must be a positive number", "--margin", f"got {override!r}")
    return float(override), "--margin"


def recommendations(rec: Recommender, data: TraceData, cpu_margin: float | None = None) -> list[dict]:
    """Per workload: the request and limit to use from the end of ``data``, with expected outcomes.

    The request is the workload's histogram target over all its samples in ``data`` (decayed to the
    end of ``data``) at the percentile of the calibrated margin (for CPU: ``cpu_margin`` instead when
    given, as :func:`evaluate`), times the forecast growth made at its last running bin (``source``
    ``forecast``). A workload that never ran keeps its request as written (``as-written``).
    ``expected_*`` are its outcomes over the evaluation (throttled share: share of its scored
    pod-time above the recommended CPU request).
    """
    from neurokube.forecast.series import workload_keys

    series, s = data.series, rec.settings.rightsizing
    keys = series.keys
    W = len(keys)
    cpu_margin, _ = _cpu_margin(rec, cpu_margin)
    x = _rightsizing_inputs(rec.forecast, data, s, (cpu_margin,))
    scored = x.scored
    cpu_req, _ = x.per_sample(x.ours[cpu_margin])
    w = scored.workload
    run = scored.samples.run_s
    pod_s = np.bincount(w, weights=run, minlength=W)
    slack = np.bincount(w, weights=np.maximum(cpu_req - scored.samples.cpu, 0) * run, minlength=W) / 1000 / 3600
    thr = np.bincount(w, weights=run * (scored.samples.cpu > cpu_req + 1e-9), minlength=W)
    _, wid = workload_keys(data.trace)
    smp = data.samples
    w_of = wid[smp.pod]
    times = (smp.bin + 1) * float(series.bin_s)
    end_s = series.bins * float(series.bin_s)
    req_cores = data.trace.pods.cpu_request_milli[smp.pod] / 1000.0
    growth = {res: forecast_growth(rec.forecast, series, res, s) for res in ("cpu", "mem")}
    margins = {"cpu": cpu_margin, "mem": rec.mem_margin}
    p = data.trace.pods
    rows = []
    for i, key in enumerate(keys):
        pods_i = np.flatnonzero(wid == i)
        mine = w_of == i
        running = np.flatnonzero(np.isfinite(series.cpu[i]))
        values, source = {}, "forecast"
        for res in ("cpu", "mem"):
            if mine.any() and running.size:
                usage = smp.cpu if res == "cpu" else smp.mem
                target = workload_target(usage[mine], times[mine], req_cores[mine], res, end_s, s, (margins[res],))[0]
                values[res] = target * growth[res][i, running[-1]]
            else:
                values[res] = series.cpu_request[i] if res == "cpu" else series.mem_request[i]
                source = "as-written"
        cpu, mem = float(np.ceil(values["cpu"])), float(np.ceil(values["mem"]))
        ns, wl = key.split("/", 1)
        written_cpu_lim = float(np.median(p.cpu_limit_milli[pods_i]))
        written_mem_lim = float(np.median(p.memory_limit_mib[pods_i]))
        rows.append({
            "namespace": ns, "workload": wl, "source": source,
            "cpu_request_milli": cpu,
            "cpu_limit_milli": float(limits(np.array([cpu]), np.array([series.cpu_request[i]]),
                                            np.array([written_cpu_lim]))[0]),
            "memory_request_mib": mem,
            "memory_limit_mib": float(limits(np.array([mem]), np.array([series.mem_request[i]]),
                                             np.array([written_mem_lim]))[0]),
            "written_cpu_request_milli": float(series.cpu_request[i]),
            "written_memory_request_mib": float(series.mem_request[i]),
            "expected_slack_core_h": float(slack[i]),
            "expected_throttled_share": float(thr[i] / pod_s[i]) if pod_s[i] > 0 else float("nan"),
        })
    return rows


REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "forecast": ("rmse_15m", "rmse_60m", "persistence_rmse_15m", "persistence_rmse_60m"),
    "rightsizing": ("slack_core_h", "requested_slack_core_h", "throttled_s", "vpa_slack_core_h", "vpa_throttled_s"),
    "bottleneck": ("precision", "recall"),
}


def json_report(report: dict) -> dict:
    """The ``--json`` document: exactly :data:`REQUIRED_KEYS` per section; everything else under
    ``<section>_details``; ``rightsizing_frontier`` as :func:`evaluate` made it. NaN becomes ``null``."""
    def clean(v):
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return None if isinstance(v, float) and not np.isfinite(v) else v

    doc: dict = {}
    for section, keys in REQUIRED_KEYS.items():
        doc[section] = {k: clean(report[section][k]) for k in keys}
    for section, keys in REQUIRED_KEYS.items():
        doc[f"{section}_details"] = {k: clean(v) for k, v in report[section].items() if k not in keys}
    if "rightsizing_frontier" in report:
        doc["rightsizing_frontier"] = clean(report["rightsizing_frontier"])
    return doc
