"""Right-sizing rules on the validation traces: the per-workload percentile against the priced rule.

What the choice in docs/FORECASTS.md ("The priced rule") rests on, reproducible. Trains the models
on ``synth-1`` and ``real-1`` (as ``benchmarks/forecast_quality.py``), then, on the four validation
traces ``synth-3``, ``real-3``, ``synth-4``, ``real-4`` (never the evaluation traces, seed 2), for
each rule (``RightsizingSettings.allocation``):

* the frontier: per VPA percentile (0.8, 0.9, 0.95) and resource, the closest margin's
  ``max(slack ratio, time-above ratio)`` (at most 1 exactly when some margin dominates VPA's point);
* the calibrated point (the rule's margin calibrated on the training traces): its throttled time
  against VPA's default and its CPU slack against the requests as written, i.e. whether the
  calibration carries over to traces it was not made on.

Without ../shared/data it uses synthetic traces only (train 1 and 5, validate 3 and 4).
Writes the "rightsizing-validation" section of docs/BENCHMARKS.md (``--no-docs``: print only).
About 6 minutes on 2 cores.

``--rule``, ``--half-life``, ``--long-weight`` and ``--growth`` evaluate one rule with the histogram's
memory and the forecast growth set explicitly instead of the rule's defaults
(``rightsizing.RULE_DEFAULTS``): the grid in docs/FORECASTS.md, "The priced rule's memory and growth",
is one such run per row, printed only (they imply ``--no-docs``).

Usage: .venv/bin/python benchmarks/rightsizing_validation.py [--no-docs]
       [--rule per_workload|priced] [--half-life S] [--long-weight W] [--growth LOW,HIGH]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._report import write_section  # noqa: E402
from benchmarks.forecast_quality import BITBRAINS, OPENB, data, real, synth  # noqa: E402
from neurokube.errors import InputError  # noqa: E402
from neurokube.forecast.evaluation import RecommenderSettings, evaluate, train  # noqa: E402
from neurokube.forecast.frontier import closest, points_of  # noqa: E402
from neurokube.forecast.rightsizing import ALLOCATIONS, RightsizingSettings  # noqa: E402

RESOURCES = (("cpu", "CPU"), ("mem", "memory"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-docs", action="store_true", help="print the section, do not write docs/BENCHMARKS.md")
    parser.add_argument("--rule", choices=ALLOCATIONS, help="evaluate this rule only")
    parser.add_argument("--half-life", type=float, help="the histogram's half-life, seconds (default: the rule's)")
    parser.add_argument("--long-weight", type=float, help="the slow 24-hour term's weight (default: the rule's)")
    parser.add_argument("--growth", type=_bounds, help="forecast growth bounds LOW,HIGH (default: the rule's)")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in (("half_life_s", args.half_life), ("long_weight", args.long_weight),
                                   ("growth_bounds", args.growth)) if v is not None}
    if overrides or args.rule:
        args.no_docs = True  # a variant: the section keeps the rules' defaults
    rules = (args.rule,) if args.rule else ("per_workload", *(r for r in ALLOCATIONS if r != "per_workload"))
    try:
        variants = {rule: RightsizingSettings(allocation=rule, **overrides) for rule in rules}
    except InputError as exc:
        parser.error(str(exc))
    t0 = time.perf_counter()
    if (OPENB / "openb_pod_list_default.csv").is_file() and BITBRAINS.is_dir():
        train_traces, val_traces = [synth(1), real(1)], [synth(3), real(3), synth(4), real(4)]
    else:
        print("no real data under ../shared/data: synthetic traces only", flush=True)
        train_traces, val_traces = [synth(1), synth(5)], [synth(3), synth(4)]
    train_data = [data(t) for t in train_traces]
    # the same forecasts for every rule (deterministic), margins calibrated under each
    models = {rule: train(train_data, RecommenderSettings(rightsizing=rs)) for rule, rs in variants.items()}
    frontier_rows, point_rows = [], []
    scores: dict[tuple[str, str], list[float]] = {}
    for trace in val_traces:
        prepared = data(trace)
        for rule, model in models.items():
            report = evaluate(model, prepared)
            cells = []
            for res, _ in RESOURCES:
                section = report["rightsizing_frontier"] if res == "cpu" else report["rightsizing_frontier"]["memory"]
                ours, vpas = points_of(section, res)
                for v in vpas:
                    best, score = closest(ours, v)
                    scores.setdefault((rule, res), []).append(score)
                    cells.append(f"{score:.3f} (x{best.setting:g})")
            frontier_rows.append(f"| {trace.name} | `{rule}` | {' / '.join(cells[:3])} | {' / '.join(cells[3:])} |")
            rs = report["rightsizing"]
            point_rows.append(f"| {trace.name} | `{rule}` | x{rs['cpu_margin']:g} | "
                              f"{rs['throttled_s'] / rs['vpa_throttled_s']:.2f}x | "
                              f"{rs['slack_core_h'] / rs['requested_slack_core_h']:.2f}x "
                              f"(VPA {rs['vpa_slack_core_h'] / rs['requested_slack_core_h']:.2f}x) |")
            print(frontier_rows[-1], flush=True)
    summary = ["| rule | resource | VPA points dominated | worst | mean |", "|---|---|---:|---:|---:|"]
    for (rule, res), values in scores.items():
        summary.append(f"| `{rule}` | {dict(RESOURCES)[res]} | {sum(v <= 1 for v in values)} of {len(values)} | "
                       f"{max(values):.3f} | {np.mean(values):.3f} |")
    if overrides:
        print(f"histogram memory and growth set to {overrides}", flush=True)
    body = "\n".join([
        f"Trained on {', '.join(t.name for t in train_traces)}; scored on the validation traces "
        f"{', '.join(t.name for t in val_traces)} (not the evaluation traces of the \"forecast-quality\" "
        "section). Per VPA target percentile 0.8 / 0.9 / 0.95, the closest margin's max(slack ratio, "
        "time-above ratio) to VPA's point, at most 1.000 exactly when that margin dominates it (docs/FORECASTS.md):",
        "",
        "| trace | rule | CPU p80 / p90 / p95 | memory p80 / p90 / p95 |",
        "|---|---|---|---|",
        *frontier_rows,
        "",
        *summary,
        "",
        "The calibrated point of each rule (its CPU margin calibrated on the training traces), on the "
        "validation traces: throttled time against VPA's default, CPU slack against the requests as written:",
        "",
        "| trace | rule | CPU margin | throttled vs VPA | CPU slack vs as written |",
        "|---|---|---|---:|---:|",
        *point_rows,
        "",
        f"Wall time {time.perf_counter() - t0:.0f} s.",
    ])
    if args.no_docs:
        print(body)
        return 0
    path = write_section("rightsizing-validation", "Right-sizing rules on the validation traces",
                         "python benchmarks/rightsizing_validation.py", body)
    print(f"wrote {path}")
    return 0


def _bounds(text: str) -> tuple[float, float]:
    try:
        low, high = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH (two numbers), got {text!r}") from None
    return low, high


if __name__ == "__main__":
    raise SystemExit(main())
