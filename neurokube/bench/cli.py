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
    p.add_argument("--model", type=Path, metavar="DIR",
                   help="a trained champion model directory (default: a small generated packing model)")
    p.add_argument("--extender", action="store_true",
                   help="a third phase: a second kube-scheduler calling NeuroKube's extender (filter, prioritize)")
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


def cmd_scheduling(args: argparse.Namespace) -> int:
    if args.model is not None and not args.model.is_dir():
        raise InputError("not a directory", where=str(args.model), why="--model needs a champion model directory")
    options = scheduling.BenchOptions(
        nodes=args.nodes, pods=args.pods, state_dir=args.state_dir.absolute() if args.state_dir else None,
        model_dir=args.model, extender=args.extender, threads=args.threads, rate=float(args.rate),
        binder_threads=args.binder_threads, timeout_s=float(args.timeout), seed=args.seed,
        direct=args.direct, rounds=args.rounds)
    try:
        result = scheduling.run(options, out=sys.stderr, progress=progress)
    except OSError as exc:
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        raise TemporaryError(f"{where}{exc.strerror or exc}") from None
    doc = result.to_json()
    print(stats.table(result.results))
    print()
    print(stats.goals_table(stats.verdicts(result.results, options.nodes)))
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
