"""``neurokube nightly``: N simulated days, each followed by a night of snapshot -> train -> register -> promote."""

from __future__ import annotations

import argparse
from pathlib import Path

from neurokube.cli.options import int_range, output_dir, seed


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("nightly", help="simulate days and run the nightly learning loop after each")
    p.add_argument("--days", type=int_range(1, 3650), default=3, help="simulated days (default 3)")
    p.add_argument("--stack", action="store_true",
                   help="use the running data stack (MinIO, Prometheus via backfill, MLflow server)")
    p.add_argument("--state-dir", type=Path, help="the stack's state directory (with --stack)")
    p.add_argument("--cluster", metavar="NAME",
                   help='with --stack: label the backfilled series cluster="NAME" and read only those back '
                        "(a Prometheus shared with other clusters or runs); default: no label, every series")
    p.add_argument("--out", type=output_dir, default="out/nightly",
                   help="plots, day table, spool, model cache; embedded MLflow and store (default out/nightly)")
    p.add_argument("--trace", type=Path, metavar="DIR", help="the world's trace (default: a synthetic one)")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--rounds", type=int_range(1, 100_000), default=40, help="boosting rounds per regressor (default 40)")
    p.set_defaults(func=_nightly)


def _nightly(args: argparse.Namespace) -> int:
    import dataclasses

    from neurokube.errors import InputError
    from pipelines import loop
    from pipelines.settings import NightlySettings, PrometheusQueries, SnapshotSettings, WorldSettings

    if args.state_dir and not args.stack:
        raise InputError("--state-dir needs --stack")
    if args.cluster is not None and not args.stack:
        raise InputError("--cluster needs --stack")
    selector = "" if args.cluster is None else PrometheusQueries(selector=f'cluster="{args.cluster}"').selector
    snapshot = SnapshotSettings(queries=PrometheusQueries(selector=selector))
    state_dir = None
    if args.stack:
        from neurokube.stack.settings import default_state_dir

        state_dir = args.state_dir or default_state_dir()
    base = NightlySettings()
    settings = NightlySettings(world=WorldSettings(seed=args.seed),
                               fit=dataclasses.replace(base.fit, rounds=args.rounds, seed=args.seed))
    trace = None
    if args.trace:
        from neurokube.adapters.trace_files import read_trace

        trace = read_trace(args.trace)
    services = loop.local_services if state_dir is None else (lambda s: _stack_services(state_dir, s))
    rows = loop.run(loop.LoopSettings(days=args.days, out=args.out, trace=trace, nightly=settings, snapshot=snapshot),
                    say=lambda m: print(m, flush=True), services=services)
    print()
    print(loop.table(rows))
    print(f"\nlearning curve: {args.out / 'learning_curve.png'}; day table: {args.out / 'days.json'}")
    return 0


def _stack_services(state_dir: Path, s):
    """The running local stack's MinIO, MLflow server and Prometheus (fed by the backfill) for
    ``pipelines.loop`` (the nightly package does not import the local platform)."""
    import io

    from neurokube.adapters.objectstore import open_store
    from neurokube.errors import TemporaryError
    from neurokube.registry import Registry
    from neurokube.stack import control
    from neurokube.stack.backfill import backfill
    from pipelines.loop import Services
    from pipelines.settings import selector_labels
    from pipelines.usage import PrometheusUsage

    doc = control.status(state_dir)
    if not doc.get("running"):
        raise TemporaryError(f"no running data stack in {state_dir}; run `neurokube stack up "
                             f"--state-dir {state_dir}` first")
    prom = doc["prometheus"]["url"]
    sink = io.StringIO()
    labels = selector_labels(s.snapshot.queries.selector)  # what the backfill attaches, the reader selects
    return Services(
        store=open_store(doc), registry=Registry(doc["mlflow"]["url"], s.nightly.model_name),
        reader=lambda _usage: PrometheusUsage(prom, s.snapshot.queries, s.snapshot.timeout_s),
        backfill=lambda usage, start, end: backfill(state_dir, usage, start, end - s.snapshot.step_s,
                                                    s.snapshot.step_s, out=sink, labels=labels),
        where={"store": f"{doc['minio']['endpoint']}/{doc['minio']['bucket']}", "mlflow": doc["mlflow"]["url"],
               "metrics": prom})
