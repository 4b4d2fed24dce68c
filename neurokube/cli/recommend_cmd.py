"""``neurokube recommend``: usage forecasts, right-sizing and bottleneck warnings (docs/FORECASTS.md).

Replays each trace under the ``default`` policy, trains the models on ``--train-trace`` (or loads
them from ``--model-dir``), scores them on ``--trace`` and prints a table.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from neurokube.cli.options import output_path, positive_float, seed, writable_problem
from neurokube.cli.outputs import Outputs
from neurokube.errors import InputError

RECOMMENDATIONS_CSV = "recommendations.csv"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("recommend", help="forecast usage, right-size requests, warn of hot nodes")
    p.add_argument("--trace", type=Path, required=True, help="v1 trace to evaluate on (unseen by training)")
    p.add_argument("--train-trace", type=Path, action="append", default=[], metavar="T",
                   help="trace to train on, repeatable; with --model-dir the models are saved there")
    p.add_argument("--model-dir", type=Path, metavar="D",
                   help="load models from D (without --train-trace), or save the trained ones to D")
    p.add_argument("--json", type=output_path, metavar="OUT", help="write the metrics as JSON")
    p.add_argument("--csv", type=output_path, metavar="OUT.csv", help="write per-workload recommendations")
    p.add_argument("--seed", type=seed, default=0, help="model seed (default 0)")
    p.add_argument("--margin", type=positive_float, metavar="M",
                   help="CPU margin for the reported point and the --csv requests, instead of the calibrated one; "
                        "with the default rule margin M targets the usage histogram's 1 - 0.1/M percentile "
                        "(x1: p90, x2: p95), with --allocation priced it prices a pod-second above the request "
                        "at M x 10 core-seconds of idle request (the frontier still sweeps every margin)")
    p.add_argument("--allocation", choices=("per_workload", "priced"),
                   help="right-sizing rule to train with (with --train-trace; default per_workload): every "
                        "workload at the margin's percentile of its own usage histogram, or one price of time "
                        "above request for all workloads (docs/FORECASTS.md)")
    p.set_defaults(func=_recommend)


def _prepare(path: Path):
    from neurokube.adapters.trace_files import read_trace
    from neurokube.forecast.evaluation import prepare
    from neurokube.policies import make_policy
    from neurokube.sim import SimConfig, replay

    trace = read_trace(path)
    config = SimConfig()
    result = replay(trace, make_policy("default", trace=trace), config)
    return prepare(trace, result.node_of, result.bind_s)


def load_model_dir(directory: Path):
    """The models of ``--model-dir`` (the one reader: neurokube.adapters.forecast_models)."""
    from neurokube.adapters.forecast_models import load_model_dir as read

    return read(directory)


def _recommend(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from neurokube.forecast.evaluation import RecommenderSettings, evaluate, json_report, recommendations, train
    from neurokube.forecast.models import ForecastSettings

    resolved = args.trace.resolve()
    for t in args.train_trace:
        if t.resolve() == resolved:
            raise InputError("the evaluation trace is also a training trace", str(t),
                             "evaluate on a trace the models did not train on")
    if not args.train_trace and not args.model_dir:
        raise InputError("no models", "recommend", "pass --train-trace T (repeatable) or --model-dir D")
    if args.allocation and not args.train_trace:
        raise InputError("--allocation needs --train-trace", "recommend",
                         "the rule is part of the trained models (its margins are calibrated with it); "
                         "a loaded --model-dir keeps its own")
    if args.train_trace and args.model_dir:
        problem = writable_problem(args.model_dir, directory=True)
        if problem:
            raise InputError("cannot write --model-dir", str(args.model_dir), problem)
    wrote = []
    with Outputs() as out:  # every output or none
        if args.train_trace:
            settings = RecommenderSettings(forecast=replace(ForecastSettings(), seed=args.seed))
            if args.allocation:
                settings = replace(settings, rightsizing=replace(settings.rightsizing, allocation=args.allocation))
            model = train([_prepare(t) for t in args.train_trace], settings)
            if args.model_dir:
                model_dir = out.directory(args.model_dir, "--model-dir")
                for name, text in model.to_texts().items():
                    (model_dir / name).write_text(text)
                wrote.append(f"wrote models to {args.model_dir}/")
        else:
            model = load_model_dir(args.model_dir)
        data = _prepare(args.trace)
        report = evaluate(model, data, cpu_margin=args.margin)
        print(f"trace {args.trace}; trained on {', '.join(model.trained_on)}")
        print(format_report(report))
        if args.json:
            out.file(args.json, "--json").write_text(json.dumps(json_report(report), indent=2) + "\n")
            wrote.append(f"wrote {args.json}")
        if args.csv:
            rows = recommendations(model, data, cpu_margin=args.margin)
            with out.file(args.csv, "--csv").open("w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["workload"])
                writer.writeheader()
                writer.writerows(rows)
            wrote.append(f"wrote {len(rows)} recommendations to {args.csv}")
    for line in wrote:
        print(line)
    return 0


def format_report(report: dict) -> str:
    f, r, b = report["forecast"], report["rightsizing"], report["bottleneck"]
    lines = [f"{'metric':34s} {'model':>12s} {'baseline':>12s} {'ratio':>7s}  goal"]

    def row(name, ours, base, goal):
        ratio = ours / base if base else float("nan")
        lines.append(f"{name:34s} {ours:12.3f} {base:12.3f} {ratio:7.2f}  {goal}")

    for h in (15, 60):
        row(f"CPU RMSE {h}m (cores) vs persistence", f[f"rmse_{h}m"], f[f"persistence_rmse_{h}m"], "<= 0.80")
        row(f"mem RMSE {h}m (GiB) vs persistence", f[f"mem_rmse_{h}m"], f[f"mem_persistence_rmse_{h}m"], "-")
    row("CPU slack (core-h) vs as written", r["slack_core_h"], r["requested_slack_core_h"], "<= 0.60")
    row("CPU slack (core-h) vs VPA", r["slack_core_h"], r["vpa_slack_core_h"], "-")
    row("clairvoyant bound vs as written", r["clairvoyant_slack_core_h"], r["requested_slack_core_h"],
        "(at VPA's throttled time)")
    row("throttled (pod-h) vs VPA", r["throttled_s"] / 3600, r["vpa_throttled_s"] / 3600, "<= 1.00")
    row("mem over request (pod-h) vs VPA", r["mem_over_request_s"] / 3600, r["vpa_mem_over_request_s"] / 3600,
        "<= 1.00")
    lines.append(f"{'bottleneck precision / recall':34s} {b['precision']:12.3f} {b['recall']:12.3f} "
                 f"{'':7s}  >= 0.80 each (p >= {b['probability_threshold']:.3f}, {b['events']} events)")
    lines.extend(format_frontier(report.get("rightsizing_frontier"), r.get("cpu_margin"),
                                 r.get("cpu_margin_source", "calibrated")))
    return "\n".join(lines)


def format_frontier(frontier: dict | None, margin: float | None, source: str) -> list[str]:
    """The frontier block: per VPA percentile, its CPU and memory point and the margins dominating it."""
    if not frontier:
        return []
    from neurokube.forecast.frontier import closest, dominated_by, points_of

    grid = [m["margin"] for m in frontier["margins"]]
    lines = [f"right-sizing frontier: margins {min(grid):g}..{max(grid):g} vs VPA target percentiles "
             f"(reported CPU margin x{margin:g}, {source})"]
    for res, unit, what, section in (("cpu", "core-h", "throttled", frontier),
                                     ("mem", "GiB-h", "over request", frontier["memory"])):
        ours, theirs = points_of(section, res)
        for v in theirs:
            won = dominated_by(ours, v)
            best, score = closest(ours, v)
            listed = (", ".join(f"{m:g}" for m in won) if len(won) <= 6
                      else f"{len(won)} of them, {won[0]:g}..{won[-1]:g}")
            verdict = (f"dominated by margins [{listed}]" if won else
                       f"not dominated (closest x{best.setting:g}: {score:.3f}x)")
            lines.append(f"  {res:3s} VPA p{v.setting * 100:<4g} slack {v.slack:10.1f} {unit}, {what} "
                         f"{v.over_s / 3600:8.1f} pod-h: {verdict}")
    return lines
