"""Forecast, right-sizing and bottleneck quality on traces the models did not train on.

Trains on 2 traces (synthetic seed 1 and, when ../shared/data is present, real seed 1; else
synthetic seeds 1 and 3) and evaluates on 2 unseen ones (seed 2 of each kind; else synthetic
seeds 2 and 4). 24-hour traces with the builders' defaults, replayed under the ``default``
policy. Writes the "forecast-quality" section of docs/BENCHMARKS.md with the goals met or not.

Usage: .venv/bin/python benchmarks/forecast_quality.py
Equivalent CLI (see docs/FORECASTS.md): ``neurokube recommend --trace EVAL --train-trace A
--train-trace B --model-dir D --json OUT``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._report import write_section  # noqa: E402
from neurokube.forecast.evaluation import RecommenderSettings, evaluate, prepare, train  # noqa: E402
from neurokube.forecast.frontier import (  # noqa: E402
    VPA_PERCENTILES,
    closest,
    dominated_by,
    points_of,
)
from neurokube.forecast.rightsizing import RightsizingSettings  # noqa: E402
from neurokube.policies import make_policy  # noqa: E402
from neurokube.sim import SimConfig, replay  # noqa: E402
from neurokube.trace.assemble import ArrivalSettings  # noqa: E402
from neurokube.trace.model import Trace  # noqa: E402
from neurokube.trace.synth import SynthSettings, synth_trace  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
OPENB = DATA / "alibaba-openb"
BITBRAINS = DATA / "bitbrains-rnd-2013-7"


def synth(seed: int) -> Trace:
    return synth_trace(f"synth-{seed}", SynthSettings(arrivals=ArrivalSettings(seed=seed)))


def real(seed: int) -> Trace:
    from neurokube.adapters.rawdata import (
        read_bitbrains,
        read_openb_nodes,
        read_openb_pods,
    )
    from neurokube.trace.build import BuildSettings, build_trace

    return build_trace(f"real-{seed}", read_openb_pods(OPENB / "openb_pod_list_default.csv"),
                       read_openb_nodes(OPENB / "openb_node_list_all_node.csv"), read_bitbrains(BITBRAINS),
                       BuildSettings(arrivals=ArrivalSettings(seed=seed)))


def data(trace: Trace):
    r = replay(trace, make_policy("default", trace=trace), SimConfig())
    return prepare(trace, r.node_of, r.bind_s)


def _rule(s, cpu_margin: float) -> str:
    """What a margin does under the recommender's allocation rule, in words."""
    if s.allocation == "priced":
        return (f"rule `priced`: margin m prices a pod-second above the request at m x "
                f"{s.price_unit_cpu_milli / 1000:g} core-seconds of idle request, and each workload takes the "
                f"request of least idle request plus priced time above it; the CPU margin prices it at "
                f"{s.price(cpu_margin, 'cpu') / 1000:g} core-seconds")
    return (f"rule `per_workload`: a margin m targets the histogram's 1 - 0.1/m percentile: CPU "
            f"p{100 * s.percentile(cpu_margin):.1f}")


def verdict(ok: bool) -> str:
    return "met" if ok else "**NOT met**"


def frontier_rows(name: str, frontier: dict, rule: str = "margin") -> list[str]:
    """One row per VPA percentile: does some CPU margin (of ``rule``) dominate it (no more slack *and* no
    more throttled time)? With the closest margin: the smallest max(slack ratio, throttled ratio)."""
    margins, vpas = points_of(frontier, "cpu")
    rows = []
    for v in vpas:
        won = dominated_by(margins, v)
        best, score = closest(margins, v)
        which = (f"margins {', '.join(f'x{m:g}' for m in won)}; " if 0 < len(won) <= 6 else
                 f"{len(won)} margins, x{won[0]:g}..x{won[-1]:g}; " if won else "")
        rows.append(f"| {name} | some CPU {rule} dominates VPA p{v.setting * 100:g} (slack and throttled both <=) | "
                    f"VPA {v.slack:,.0f} core-h / {v.over_s / 3600:,.0f} pod-h; {which}closest x{best.setting:g}: "
                    f"{best.slack:,.0f} core-h / {best.over_s / 3600:,.0f} pod-h | {score:.3f} | "
                    f"{verdict(bool(won))} |")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args()
    have_real = (OPENB / "openb_pod_list_default.csv").is_file() and BITBRAINS.is_dir()
    if have_real:
        train_traces, eval_traces = [synth(1), real(1)], [synth(2), real(2)]
    else:
        print(f"no real data at {DATA}: synthetic traces only", flush=True)
        train_traces, eval_traces = [synth(1), synth(3)], [synth(2), synth(4)]
    t0 = time.perf_counter()
    train_data = [data(t) for t in train_traces]
    model = train(train_data, RecommenderSettings())
    fit_s = time.perf_counter() - t0
    priced = train(train_data, RecommenderSettings(rightsizing=RightsizingSettings(allocation="priced")))
    rows = ["| eval trace | goal | measured | ratio | verdict |", "|---|---|---:|---:|---|"]
    for trace in eval_traces:
        prepared = data(trace)
        rep = evaluate(model, prepared)
        rep_priced = evaluate(priced, prepared)
        first = len(rows)
        f, r, b = rep["forecast"], rep["rightsizing"], rep["bottleneck"]
        name = trace.name
        for h in (15, 60):
            ratio = f[f"rmse_{h}m"] / f[f"persistence_rmse_{h}m"]
            rows.append(f"| {name} | CPU RMSE {h} min <= 0.8 x persistence | {f[f'rmse_{h}m']:.3f} vs "
                        f"{f[f'persistence_rmse_{h}m']:.3f} cores | {ratio:.2f} | {verdict(ratio <= 0.8)} |")
        for h in (15, 60):
            ratio = f[f"mem_rmse_{h}m"] / f[f"mem_persistence_rmse_{h}m"]
            rows.append(f"| {name} | memory RMSE {h} min (reported) | {f[f'mem_rmse_{h}m']:.3f} vs "
                        f"{f[f'mem_persistence_rmse_{h}m']:.3f} GiB | {ratio:.2f} | - |")
            rows.append(f"| {name} | CPU MAPE {h} min, points >= 5 % of request (reported) | "
                        f"{f[f'mape_{h}m']:.1%} vs {f[f'persistence_mape_{h}m']:.1%} | "
                        f"{f[f'mape_{h}m'] / f[f'persistence_mape_{h}m']:.2f} | - |")
        ratio = r["slack_core_h"] / r["requested_slack_core_h"]
        rows.append(f"| {name} | CPU slack <= 0.6 x as written | {r['slack_core_h']:,.0f} vs "
                    f"{r['requested_slack_core_h']:,.0f} core-h (VPA {r['vpa_slack_core_h']:,.0f}) | {ratio:.2f} | "
                    f"{verdict(ratio <= 0.6)} |")
        rows.append(f"| {name} | (bound) clairvoyant hourly per-workload request at VPA's throttled time | "
                    f"{r['clairvoyant_slack_core_h']:,.0f} core-h (q{r['clairvoyant_quantile']:.2f}) | "
                    f"{r['clairvoyant_slack_core_h'] / r['requested_slack_core_h']:.2f} | - |")
        ratio = r["throttled_s"] / r["vpa_throttled_s"]
        rows.append(f"| {name} | throttled time <= VPA | {r['throttled_s'] / 3600:,.0f} vs "
                    f"{r['vpa_throttled_s'] / 3600:,.0f} pod-h (as written {r['requested_throttled_s'] / 3600:,.0f}) | "
                    f"{ratio:.2f} | {verdict(ratio <= 1.0)} |")
        ratio = r["mem_over_request_s"] / r["vpa_mem_over_request_s"]
        rows.append(f"| {name} | memory over-request time <= VPA | {r['mem_over_request_s'] / 3600:,.0f} vs "
                    f"{r['vpa_mem_over_request_s'] / 3600:,.0f} pod-h | {ratio:.2f} | {verdict(ratio <= 1.0)} |")
        rows.append(f"| {name} | bottleneck precision >= 0.8 | {b['precision']:.2f} ({b['events']} events in "
                    f"{b['decisions']:,} node-decisions) | - | {verdict(b['precision'] >= 0.8)} |")
        rows.append(f"| {name} | bottleneck recall >= 0.8 | {b['recall']:.2f} (onset only: precision "
                    f"{b['onset_precision']:.2f}, recall {b['onset_recall']:.2f}) | - | {verdict(b['recall'] >= 0.8)} |")
        rows.append(f"| {name} | onset recall >= 0.6 with >= 10 min of lead | {b['onset_recall_10m']:.2f} of "
                    f"{b['onset_events_lead']} onsets (warned at any lead: {b['onset_recall_any_lead']:.2f}, median "
                    f"lead {b['onset_median_lead_min']:.0f} min) | - | {verdict(b['onset_recall_10m'] >= 0.6)} |")
        rows.extend(frontier_rows(name, rep["rightsizing_frontier"]))
        rows.extend(frontier_rows(name, rep_priced["rightsizing_frontier"], "margin of `--allocation priced`"))
        rp = rep_priced["rightsizing"]
        rows.append(f"| {name} | (reported) `--allocation priced` at its calibrated x{rp['cpu_margin']:g}: throttled "
                    f"time vs VPA, CPU slack vs as written | {rp['throttled_s'] / 3600:,.0f} vs "
                    f"{rp['vpa_throttled_s'] / 3600:,.0f} pod-h; {rp['slack_core_h']:,.0f} vs "
                    f"{rp['requested_slack_core_h']:,.0f} core-h | {rp['throttled_s'] / rp['vpa_throttled_s']:.2f}; "
                    f"{rp['slack_core_h'] / rp['requested_slack_core_h']:.2f} | - |")
        print("\n".join(rows[first:]), flush=True)
    body = "\n".join(rows) + (
        f"\n\nTrained on {', '.join(t.name for t in train_traces)} ({fit_s:.0f} s including replays); evaluated on "
        f"{', '.join(t.name for t in eval_traces)}, which the models never saw. 24-hour traces, builder defaults, "
        f"replayed under `default`. Right-sizing margins calibrated on the training traces: CPU x{model.cpu_margin}, "
        f"memory x{model.mem_margin} ({_rule(model.settings.rightsizing, model.cpu_margin)}); with "
        f"`--allocation priced` CPU x{priced.cpu_margin:g}, memory x{priced.mem_margin:g} "
        f"({_rule(priced.settings.rightsizing, priced.cpu_margin)}); "
        f"bottleneck probability threshold {model.bottleneck.probability_threshold:.3f} "
        "(best F1 out of fold on the training traces). Frontier rows: every margin of "
        f"{model.settings.rightsizing.margins[0]:g}..{model.settings.rightsizing.margins[-1]:g} "
        f"({len(model.settings.rightsizing.margins)} of them), under each rule, against VPA at "
        f"target percentiles {', '.join(f'{p:g}' for p in VPA_PERCENTILES)} (0.9 is its default); the ratio is the "
        "closest margin's max(slack ratio, throttled ratio) to VPA's, at most 1.00 exactly when it dominates. "
        "Definitions: docs/FORECASTS.md.")
    path = write_section("forecast-quality", "Forecast, right-sizing and bottleneck quality",
                         "python benchmarks/forecast_quality.py", body)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
