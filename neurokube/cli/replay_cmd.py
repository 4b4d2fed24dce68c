"""``neurokube replay`` and ``neurokube audit``."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from neurokube.cli.options import non_negative_int, output_path, positive_int
from neurokube.cli.progress import progress
from neurokube.errors import InputError
from neurokube.policies import POLICY_NAMES

DEFAULT_POLICIES = ("default", "most-allocated", "tlp", "lvrb", "koordinator", "random", "oracle")


def register(sub: argparse._SubParsersAction) -> None:
    replay = sub.add_parser("replay", help="replay a v1 trace under one or more policies")
    replay.add_argument("--trace", type=Path, required=True, help="v1 trace directory")
    replay.add_argument("--policy", action="append", metavar="NAME",
                        help=f"policy to replay, repeatable (default: all of {', '.join(DEFAULT_POLICIES)}); "
                             "'neurokube' needs --model")
    replay.add_argument("--model", type=Path, help="model directory for the neurokube policy")
    replay.add_argument("--seed", type=non_negative_int, default=0, help="tie-break and random seed (default 0)")
    replay.add_argument("--step-s", type=positive_int, default=60, help="simulation step (default 60)")
    replay.add_argument("--scrape-s", type=positive_int, default=60, help="metrics scrape interval (default 60)")
    replay.add_argument("--window-s", type=positive_int, default=300, help="metrics window (default 300)")
    replay.add_argument("--json", type=output_path, metavar="OUT", help="write metrics as JSON")
    replay.add_argument("--placements-out", type=Path, metavar="DIR", help="write <policy>.csv placements")
    replay.add_argument("--plot", type=output_path, metavar="OUT.png", help="plot contention and active nodes")
    replay.set_defaults(func=_replay)

    audit = sub.add_parser("audit", help="recompute replay metrics from placements, independently")
    audit.add_argument("--trace", type=Path, required=True)
    audit.add_argument("--placements", type=Path, required=True, help="directory of <policy>.csv files")
    audit.add_argument("--report", type=Path, required=True, help="the replay's --json output")
    audit.add_argument("--tolerance", type=float, default=0.05, help="largest relative error allowed (default 0.05)")
    audit.set_defaults(func=_audit)


def _replay(args: argparse.Namespace) -> int:
    from neurokube.adapters.reports import write_json, write_placements
    from neurokube.sim import SimConfig, replay
    from neurokube.sim.table import format_table
    from neurokube.trace.io import read_trace

    names = args.policy or list(DEFAULT_POLICIES)
    for name in names:
        if name not in POLICY_NAMES and name != "neurokube":
            raise InputError(f"unknown policy {name!r}", "--policy",
                             f"one of {', '.join((*POLICY_NAMES, 'neurokube'))}")
    if "neurokube" in names and args.model is None:
        raise InputError("the neurokube policy needs a model", "--policy neurokube", "pass --model MODEL_DIR")
    config = SimConfig(step_s=args.step_s, scrape_s=args.scrape_s, window_s=args.window_s,
                       lag_s=args.scrape_s, seed=args.seed)
    trace = read_trace(args.trace)
    results = []
    for name in names:
        policy = _policy(name, trace, args)
        with progress(f"replay {name}") as update:
            results.append(replay(trace, policy, config, clock=time.perf_counter_ns, on_step=update))
        fallbacks = getattr(policy, "fallbacks", None)
        if fallbacks:
            results[-1].metrics["fallback_decisions"] = int(fallbacks)
    print(f"trace {args.trace} ({len(trace.nodes)} nodes, {len(trace.pods)} pods)")
    print(format_table({r.policy: r.metrics for r in results}))
    if args.json:
        write_json(args.json, str(args.trace), results,
                   {"step_s": config.step_s, "scrape_s": config.scrape_s, "window_s": config.window_s,
                    "lag_s": config.lag_s, "seed": config.seed})
        print(f"wrote {args.json}")
    if args.placements_out:
        for r in results:
            write_placements(args.placements_out, trace, r)
        print(f"wrote placements to {args.placements_out}/")
    if args.plot:
        from neurokube.adapters.plots import plot_replay

        plot_replay(args.plot, results, f"{trace.name}: {len(trace.pods)} pods on {len(trace.nodes)} nodes")
        print(f"wrote {args.plot}")
    return 0


def _policy(name: str, trace, args: argparse.Namespace):
    if name == "neurokube":
        from neurokube.model.policy import load_learned_policy

        return load_learned_policy(args.model, trace=trace, seed=args.seed)
    from neurokube.policies import make_policy

    return make_policy(name, trace=trace, seed=args.seed, step_s=args.step_s)


def _audit(args: argparse.Namespace) -> int:
    import pandas as pd

    from neurokube.adapters.reports import pod_keys
    from neurokube.sim.audit import recompute, relative_errors
    from neurokube.trace.io import read_trace

    trace = read_trace(args.trace)
    try:
        report = json.loads(args.report.read_text())
        policies = report["policies"]
        step_s = int(report["config"]["step_s"])
        ends = report["replay_end_s"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError("not a replay JSON report", str(args.report), str(exc)) from None
    index = {k: i for i, k in enumerate(pod_keys(trace))}
    names = np.array(list(trace.nodes.name))
    node_index = {n: i for i, n in enumerate(names)}
    worst = 0.0
    for policy, metrics in policies.items():
        path = args.placements / f"{policy}.csv"
        if not path.is_file():
            raise InputError("placements file missing", str(path))
        frame = pd.read_csv(path, dtype={"pod": str, "node": str}, keep_default_na=False)
        node_of = np.full(len(trace.pods), -1, dtype=np.int64)
        bind_s = np.full(len(trace.pods), np.nan)
        for line, (pod, node, t) in enumerate(frame[["pod", "node", "bind_s"]].itertuples(index=False), 2):
            if pod not in index:
                raise InputError(f"unknown pod {pod!r}", f"{path}:{line}")
            if node:
                if node not in node_index:
                    raise InputError(f"unknown node {node!r}", f"{path}:{line}")
                node_of[index[pod]] = node_index[node]
                bind_s[index[pod]] = float(t)
        again = recompute(trace, node_of, bind_s, step_s=step_s, end_s=float(ends[policy]))
        errors = relative_errors(metrics, again)
        key, err = max(errors.items(), key=lambda kv: kv[1])
        worst = max(worst, err)
        print(f"{policy:15s} largest relative difference {err:.2%} ({key})")
    ok = worst <= args.tolerance
    print(f"{'OK' if ok else 'MISMATCH'}: largest difference {worst:.2%}, tolerance {args.tolerance:.0%}")
    return 0 if ok else 1
