"""``neurokube replay`` and ``neurokube audit``."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from neurokube.cli.options import float_range, int_range, output_dir, output_path, seed
from neurokube.cli.outputs import Outputs
from neurokube.cli.progress import progress
from neurokube.errors import InputError

DEFAULT_POLICIES = ("default", "most-allocated", "tlp", "lvrb", "koordinator", "random", "oracle")
MAX_STEP_S = 86_400
"""Longest simulation step and scrape interval (a day)."""
MAX_WINDOW_S = 7 * 86_400


def register(sub: argparse._SubParsersAction) -> None:
    replay = sub.add_parser("replay", help="replay a v1 trace under one or more policies")
    replay.add_argument("--trace", type=Path, required=True, help="v1 trace directory")
    replay.add_argument("--policy", action="append", metavar="SPEC",
                        help=f"policy to replay, NAME[:key=value,...] with the fields of its arguments dataclass "
                             f"(e.g. tlp:target_utilization=60, neurokube:model=DIR,node_hour_cost=60); "
                             f"repeatable (default: all of {', '.join(DEFAULT_POLICIES)}); 'neurokube' needs a model")
    replay.add_argument("--model", type=Path, help="model directory for the neurokube policy")
    replay.add_argument("--actuator", metavar="SPEC", default="none",
                        help="act on running pods, NAME[:key=value,...]: none (default), vpa-inplace, descheduler "
                             "(e.g. descheduler:strategy=low,cpu_target=60), neurokube:model=DIR (models from "
                             "`neurokube recommend --model-dir DIR`); docs/ACTING.md")
    replay.add_argument("--seed", type=seed, default=0, help="tie-break and random seed (default 0)")
    replay.add_argument("--step-s", type=int_range(1, MAX_STEP_S), default=60,
                        help=f"simulation step, at most {MAX_STEP_S} (default 60)")
    replay.add_argument("--scrape-s", type=int_range(1, MAX_STEP_S), default=60,
                        help=f"metrics scrape interval, at most {MAX_STEP_S} (default 60)")
    replay.add_argument("--window-s", type=int_range(1, MAX_WINDOW_S), default=300,
                        help=f"metrics window, at most {MAX_WINDOW_S} (default 300)")
    replay.add_argument("--json", type=output_path, metavar="OUT", help="write metrics as JSON")
    replay.add_argument("--placements-out", type=output_dir, metavar="DIR", help="write <policy>.csv placements")
    replay.add_argument("--plot", type=output_path, metavar="OUT.png", help="plot contention and active nodes")
    replay.set_defaults(func=_replay)

    audit = sub.add_parser("audit", help="recompute replay metrics from placements, independently")
    audit.add_argument("--trace", type=Path, required=True)
    audit.add_argument("--placements", type=Path, required=True, help="directory of <policy>.csv files")
    audit.add_argument("--report", type=Path, required=True, help="the replay's --json output")
    audit.add_argument("--tolerance", type=float_range(0.0, 1e6), default=0.05,
                       help="largest relative error allowed (default 0.05)")
    audit.set_defaults(func=_audit)


def _replay(args: argparse.Namespace) -> int:
    from neurokube.adapters.reports import write_json, write_placements
    from neurokube.adapters.trace_files import read_trace
    from neurokube.cli.actuator_specs import build_actuator, check_actuator, load_models
    from neurokube.cli.policy_specs import build_policy, check_specs
    from neurokube.sim import SimConfig, replay
    from neurokube.sim.acting import PodRules
    from neurokube.sim.table import format_table

    specs = check_specs(args.policy or list(DEFAULT_POLICIES), args.model)
    actuator_spec, actuator_args = check_actuator(args.actuator)
    acting = actuator_spec.name != "none"
    if acting and args.placements_out:
        raise InputError("--placements-out cannot be used with an actuator", "--actuator",
                         "placements files hold one node per pod, and evicted pods move; replay without --actuator")
    config = SimConfig(step_s=args.step_s, scrape_s=args.scrape_s, window_s=args.window_s,
                       lag_s=args.scrape_s, seed=args.seed)
    trace = read_trace(args.trace)
    models = load_models(actuator_spec, actuator_args)
    results = []
    for spec in specs:
        policy = build_policy(spec, trace, seed=args.seed, step_s=args.step_s, model_dir=args.model)
        actuator = build_actuator(actuator_spec, actuator_args, models)
        label = f"replay {spec.text}" + (f" + {actuator_spec.text}" if acting else "")
        with progress(label) as update:
            results.append(replay(trace, policy, config, clock=time.perf_counter_ns, on_step=update,
                                  actuator=actuator, rules=PodRules.of(trace.pods)))
        results[-1].policy = spec.text  # reports key each policy by its spec, exactly as given
        if policy.fallbacks:
            results[-1].metrics["fallback_decisions"] = int(policy.fallbacks)
    print(f"trace {args.trace} ({len(trace.nodes)} nodes, {len(trace.pods)} pods)")
    if acting:
        print(f"actuator {actuator_spec.text}")
    print(format_table({r.policy: r.metrics for r in results}, acting=acting))
    wrote = []
    with Outputs() as out:  # every output or none
        if args.json:
            write_json(out.file(args.json, "--json"), str(args.trace), results,
                       {"step_s": config.step_s, "scrape_s": config.scrape_s, "window_s": config.window_s,
                        "lag_s": config.lag_s, "seed": config.seed, "actuator": actuator_spec.text})
            wrote.append(f"wrote {args.json}")
        if args.placements_out:
            directory = out.directory(args.placements_out, "--placements-out")
            for r in results:
                write_placements(directory, trace, r)
            wrote.append(f"wrote placements to {args.placements_out}/")
        if args.plot:
            from neurokube.adapters.plots import plot_replay

            plot_replay(out.file(args.plot, "--plot"), results,
                        f"{trace.name}: {len(trace.pods)} pods on {len(trace.nodes)} nodes")
            wrote.append(f"wrote {args.plot}")
    for line in wrote:
        print(line)
    return 0


def _audit(args: argparse.Namespace) -> int:
    from neurokube.adapters.reports import placements_file, pod_keys
    from neurokube.adapters.trace_files import read_trace
    from neurokube.sim.audit import recompute, relative_errors

    trace = read_trace(args.trace)
    policies, step_s, ends = _read_report(args.report)
    index = {k: i for i, k in enumerate(pod_keys(trace))}
    names = np.array(list(trace.nodes.name))
    node_index = {n: i for i, n in enumerate(names)}
    worst = 0.0
    for policy, metrics in policies.items():
        node_of, bind_s = _read_placements(args.placements / placements_file(policy), index, node_index)
        again = recompute(trace, node_of, bind_s, step_s=step_s, end_s=ends[policy])
        errors = relative_errors(metrics, again)
        if not errors:
            raise InputError(f"policy {policy!r} has no metric to compare", str(args.report))
        key, err = max(errors.items(), key=lambda kv: kv[1])
        worst = max(worst, err)
        print(f"{policy:15s} largest relative difference {err:.2%} ({key})")
    ok = worst <= args.tolerance
    print(f"{'OK' if ok else 'MISMATCH'}: largest difference {worst:.2%}, tolerance {args.tolerance:.0%}")
    return 0 if ok else 1


def _read_report(path: Path) -> tuple[dict[str, dict[str, float | None]], int, dict[str, float]]:
    """The policies' metrics, the step and each policy's end time from a replay ``--json`` report."""

    def number(value: object, what: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
            raise InputError("not a replay JSON report", str(path), f"{what} is not a finite number")
        return float(value)

    try:
        report = json.loads(path.read_text(encoding="utf-8"))
        policies = report["policies"]
        step = number(report["config"]["step_s"], "config.step_s")
        ends = report["replay_end_s"]
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError("cannot be read", str(path), getattr(exc, "strerror", None) or str(exc)) from None
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError("not a replay JSON report", str(path), str(exc).splitlines()[0] if str(exc) else
                         type(exc).__name__) from None
    actuator = report.get("config", {}).get("actuator", "none") if isinstance(report.get("config"), dict) else "none"
    if actuator != "none":
        raise InputError("a replay with an actuator cannot be audited", str(path),
                         f"it ran with --actuator {actuator}, and evicted pods move; audit a replay without one")
    if not isinstance(policies, dict) or not policies or not isinstance(ends, dict):
        raise InputError("not a replay JSON report", str(path), "'policies' and 'replay_end_s' must be objects")
    if step != int(step) or not 1 <= step <= MAX_STEP_S:
        raise InputError("not a replay JSON report", str(path), f"config.step_s must be a whole number in 1..{MAX_STEP_S}")
    checked: dict[str, dict[str, float | None]] = {}
    end_s: dict[str, float] = {}
    for policy, metrics in policies.items():
        name = policy.partition(":")[0]  # a spec's values may hold paths; its file name is encoded
        if Path(name).name != name or name in ("", ".", ".."):
            raise InputError(f"policy name {policy!r} is not a file name", str(path))
        if not isinstance(metrics, dict):
            raise InputError(f"policy {policy!r}: metrics must be an object", str(path))
        checked[policy] = {k: None if v is None else number(v, f"policies.{policy}.{k}") for k, v in metrics.items()}
        end = number(ends.get(policy), f"replay_end_s.{policy}")
        if not 0 <= end <= 10**9:
            raise InputError("not a replay JSON report", str(path), f"replay_end_s.{policy} is out of range")
        end_s[policy] = end
    return checked, int(step), end_s


def _read_placements(path: Path, index: dict[str, int], node_index: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """``node_of`` and ``bind_s`` per trace pod from a ``<policy>.csv`` placements file."""
    from neurokube.adapters.trace_files import read_columns

    if not path.is_file():
        raise InputError("placements file missing", str(path))
    table = read_columns(path, ("pod", "node", "bind_s"))
    node_of = np.full(len(index), -1, dtype=np.int64)
    bind_s = np.full(len(index), np.nan)
    for row, (pod, node, t) in enumerate(table.frame.itertuples(index=False)):
        if pod not in index:
            raise InputError(f"unknown pod {pod!r}", table.where(row))
        if node:
            if node not in node_index:
                raise InputError(f"unknown node {node!r}", table.where(row))
            try:
                value = float(t)
            except ValueError:
                value = float("nan")
            if not (np.isfinite(value) and value >= 0):
                raise InputError(f"column 'bind_s': {t!r} is not a time", table.where(row),
                                 "a finite number of seconds, not negative")
            node_of[index[pod]] = node_index[node]
            bind_s[index[pod]] = value
    return node_of, bind_s
