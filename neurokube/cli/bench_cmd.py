"""``neurokube bench scheduling``: NeuroKube against kube-scheduler on the local control plane.

Progress goes to stderr; stdout carries the result table. ``--json OUT`` writes
``{"kube_scheduler": {"pods_per_s", "p50_ms", "p99_ms", ...}, "neurokube": {...}, ...}``, and the
"scheduling" section of docs/BENCHMARKS.md ("scheduling-extender" with ``--extender``) is
rewritten unless ``--no-docs``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shlex
import sys
from pathlib import Path

from neurokube.bench import scheduling, stats
from neurokube.cli.options import non_negative_int, output_path, positive_int
from neurokube.cli.progress import progress
from neurokube.errors import InputError, TemporaryError

SECTION = "scheduling"
TITLE = "Scheduling throughput and latency against kube-scheduler"


def register(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser("bench", help="benchmarks against the real local control plane",
                                  description="Benchmarks that need the local control plane (neurokube cluster).")
    commands = group.add_subparsers(dest="bench_command", metavar="COMMAND")
    group.set_defaults(func=lambda args: _usage(group))

    p = commands.add_parser(
        "scheduling", help="the same pods placed by kube-scheduler and by NeuroKube: pods/s, p50/p99 create-to-bound",
        description="Create the same pods once for kube-scheduler (default profile) and once for NeuroKube's binder "
                    "on a local cluster of KWOK nodes, and compare pods/s and create-to-bound latency.")
    p.add_argument("--nodes", type=positive_int, default=500, help="KWOK nodes (default 500)")
    p.add_argument("--pods", type=positive_int, default=2000, help="pods per scheduler (default 2000)")
    p.add_argument("--json", type=output_path, metavar="OUT", help="write the results as JSON")
    p.add_argument("--state-dir", type=Path, metavar="DIR",
                   help="use the cluster running in DIR (left running), or start one there (taken down); default: "
                        "a temporary cluster")
    p.add_argument("--kubeconfig", type=Path, metavar="FILE",
                   help="the bench's own API requests (pods, watches, cleanup) as this kubeconfig's user, e.g. an "
                        "exec credential plugin's; with --state-dir of a running cluster (default: its admin)")
    p.add_argument("--model", type=Path, metavar="DIR",
                   help="a trained champion model directory (default: a small generated packing model)")
    p.add_argument("--extender", action="store_true",
                   help="a third phase: a second kube-scheduler calling NeuroKube's extender "
                        "(prioritize only, as deployed)")
    p.add_argument("--threads", type=positive_int, default=8, help="client threads creating pods (default 8)")
    p.add_argument("--rate", type=non_negative_int, default=0, metavar="PODS_PER_S",
                   help="create at this rate; 0 (default): as fast as the threads can")
    p.add_argument("--binder-threads", type=positive_int, default=scheduling.BINDER_THREADS,
                   help=f"gunicorn threads of the binder, and deliveries at a time "
                        f"(default {scheduling.BINDER_THREADS}, as deploy/knative/services.yaml)")
    p.add_argument("--timeout", type=positive_int, default=0, metavar="S",
                   help="seconds per phase until every pod is bound (default 60 + pods/2)")
    p.add_argument("--direct", action="store_true",
                   help="the receive adapter posts straight to the binder, one event at a time, instead of through "
                        "the loopback stand-in for the deployed Broker and Triggers")
    p.add_argument("--rounds", type=positive_int, default=1,
                   help="run kube-scheduler then NeuroKube this many times in turn and report the medians (default 1)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the pod mix and node metrics")
    p.add_argument("--no-docs", action="store_true", help="do not rewrite the section of docs/BENCHMARKS.md")
    p.set_defaults(func=cmd_scheduling)
    _register_frontier(commands)


def _register_frontier(commands: argparse._SubParsersAction) -> None:
    from neurokube.bench import frontier
    from neurokube.cli.options import output_path, seed

    p = commands.add_parser(
        "frontier", help="every peer at several settings and NeuroKube at several node_hour_cost values: "
                         "contention, node-hours and pending time, Pareto fronts, domination, the oracle goal",
        description="Replay each peer at its default and two other settings, NeuroKube at several "
                    "node_hour_cost values and other settings of one model, and the clairvoyant oracle as a "
                    "reference, on each trace; "
                    "write every point, each family's Pareto front, whether each peer point is dominated by a "
                    "NeuroKube point (no more contention, node-hours and pending time, 2 %% slack on each) and "
                    "on which axis not, the oracle goal, and a plot.")
    p.add_argument("--trace", type=Path, action="append", required=True, metavar="DIR", help="trace (repeatable)")
    p.add_argument("--model", type=Path, required=True, metavar="DIR", help="NeuroKube model directory")
    p.add_argument("--node-hour-cost", type=_cost_list, default=frontier.NODE_HOUR_COSTS, metavar="C,C,...",
                   help="NeuroKube's rates besides its default, core-s of contention per node-hour (default "
                        f"{','.join(f'{c:g}' for c in frontier.NODE_HOUR_COSTS)})")
    p.add_argument("--setting", action="append", metavar="KEY=VALUE[,...]",
                   help="NeuroKube's other settings to replay (repeatable; default "
                        f"{' '.join(frontier.LEARNED_SETTINGS)})")
    p.add_argument("--peer", action="append", metavar="SPEC",
                   help="peer specs to replay instead of the built-in settings (repeatable; a plain name is that "
                        "family's default)")
    p.add_argument("--no-oracle", dest="oracle", action="store_false",
                   help="do not replay the clairvoyant oracle (no oracle goal)")
    p.add_argument("--json", type=output_path, metavar="OUT", help="write every point, the fronts and the verdicts")
    p.add_argument("--plot", type=output_path, metavar="OUT.png", help="contention against node-hours, pending as colour")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--docs", action="store_true", help="rewrite the 'frontier' section of docs/BENCHMARKS.md")
    p.set_defaults(func=cmd_frontier)


def _cost_list(text: str) -> tuple[float, ...]:
    from neurokube.cli.options import float_range

    parse = float_range(0.0, 1e9)
    values = tuple(parse(t) for t in text.split(",") if t.strip())
    if not values:
        raise argparse.ArgumentTypeError(f"{text!r} names no rate")
    return values


def cmd_frontier(args: argparse.Namespace) -> int:
    from neurokube.adapters.trace_files import read_trace
    from neurokube.bench import frontier
    from neurokube.cli.outputs import Outputs
    from neurokube.cli.policy_specs import build_policy, check_specs
    from neurokube.sim import SimConfig, replay

    if not (args.model / "manifest.json").is_file():
        raise InputError("not a model directory (no manifest.json)", str(args.model))
    peers = args.peer or [s for settings in frontier.PEER_SETTINGS.values() for s in settings]
    oracle = [frontier.ORACLE] if args.oracle and frontier.ORACLE not in peers else []
    settings = frontier.LEARNED_SETTINGS if args.setting is None else args.setting
    texts = [*peers, *frontier.learned_specs(None, args.node_hour_cost, settings), *oracle]
    specs = {s.text: s for s in check_specs(texts, args.model)}
    traces = [(t.name, read_trace(t)) for t in args.trace]
    config = SimConfig(seed=args.seed)

    def one(text: str, trace) -> dict:
        policy = build_policy(specs[text], trace, seed=args.seed, step_s=config.step_s, model_dir=args.model)
        metrics = dict(replay(trace, policy, config).metrics)
        if policy.fallbacks:
            metrics["fallback_decisions"] = int(policy.fallbacks)
        return metrics

    total = len(traces) * len(texts)
    with progress("frontier", total=total, unit="replay") as update:
        done = [0]

        def tick(_label: str) -> None:
            update(done[0], total)
            done[0] += 1

        doc = frontier.run(traces, texts, one, tick)
        update(total, total)
    doc["model"] = str(args.model)
    doc["trace_dirs"] = [str(t) for t in args.trace]
    text = frontier.markdown(doc)
    print(text)
    with Outputs() as out:
        if args.json:
            out.file(args.json, "--json").write_text(json.dumps(_finite(doc), indent=2) + "\n")
        if args.plot:
            from neurokube.adapters.plots import plot_frontier

            plot_frontier(out.file(args.plot, "--plot"), doc,
                          f"NeuroKube ({args.model.name}) across its settings against peers across theirs, "
                          "and the oracle")
    for target in (args.json, args.plot):
        if target:
            print(f"wrote {target}")
    if args.docs:
        command = "neurokube bench frontier " + " ".join(shlex.quote(a) for a in _replayable_after(sys.argv, "frontier"))
        body = text + (f"\n![frontier]({_relative_to_docs(args.plot)})\n" if args.plot else "")
        path = _write_docs("frontier", "Frontier: contention, node-hours and pending time across settings", body,
                           command)
        print(f"wrote the 'frontier' section of {path}", file=sys.stderr)
    return 0


def _finite(value: object) -> object:
    """``value`` with every non-finite float as null (strict JSON)."""
    import math

    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _replayable_after(argv: list[str], word: str) -> list[str]:
    try:
        return argv[argv.index(word) + 1:]
    except ValueError:
        return argv[1:]


def _relative_to_docs(path: Path) -> str:
    import os

    from neurokube.cluster.functions import repo_root

    return os.path.relpath(Path(path).absolute(), repo_root() / "docs")


def cmd_scheduling(args: argparse.Namespace) -> int:
    if args.model is not None and not args.model.is_dir():
        raise InputError("not a directory", where=str(args.model), why="--model needs a champion model directory")
    options = scheduling.BenchOptions(
        nodes=args.nodes, pods=args.pods, state_dir=args.state_dir.absolute() if args.state_dir else None,
        model_dir=args.model, extender=args.extender, threads=args.threads, rate=float(args.rate),
        binder_threads=args.binder_threads, timeout_s=float(args.timeout), seed=args.seed,
        direct=args.direct, rounds=args.rounds, kubeconfig=args.kubeconfig)
    try:
        result = scheduling.run(options, out=sys.stderr, progress=progress)
    except OSError as exc:
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        raise TemporaryError(f"{where}{exc.strerror or exc}") from None
    doc = result.to_json()
    print(stats.table(result.results))
    print()
    print(stats.goals_table(result.verdicts()))
    profile = result.phases[stats.NEUROKUBE].profile
    if profile:
        print()
        print(scheduling.profile_text(profile))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    if not args.no_docs:
        command = "neurokube bench scheduling " + " ".join(shlex.quote(a) for a in _replayable(sys.argv))
        section, title = (f"{SECTION}-extender", f"{TITLE}, and as an extender") if args.extender else (SECTION, TITLE)
        path = _write_docs(section, title, scheduling.markdown(result, command), command)
        print(f"wrote the {section!r} section of {path}", file=sys.stderr)
    return 0


def _replayable(argv: list[str]) -> list[str]:
    """The arguments after ``bench scheduling`` as given (for the docs' command line)."""
    try:
        return argv[argv.index("scheduling") + 1:]
    except ValueError:
        return argv[1:]


def _write_docs(section: str, title: str, body: str, command: str) -> Path:
    """benchmarks/_report.py of the source checkout (the bench runs the functions from it too)."""
    from neurokube.cluster.functions import repo_root

    path = repo_root() / "benchmarks" / "_report.py"
    spec = importlib.util.spec_from_file_location("neurokube_benchmarks_report", path)
    if spec is None or spec.loader is None or not path.is_file():
        raise TemporaryError(f"cannot write docs/BENCHMARKS.md: {path} not found (use --no-docs)")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.write_section(section, title, command, body)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2
