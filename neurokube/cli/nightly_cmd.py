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
    from pipelines.settings import NightlySettings, WorldSettings

    if args.state_dir and not args.stack:
        raise InputError("--state-dir needs --stack")
    state_dir = None
    if args.stack:
        from neurokube.stack.settings import default_state_dir

        state_dir = args.state_dir or default_state_dir()
    base = NightlySettings()
    settings = NightlySettings(world=WorldSettings(seed=args.seed),
                               fit=dataclasses.replace(base.fit, rounds=args.rounds, seed=args.seed))
    trace = None
    if args.trace:
        from neurokube.trace.io import read_trace

        trace = read_trace(args.trace)
    rows = loop.run(loop.LoopSettings(days=args.days, out=args.out, trace=trace, stack_state_dir=state_dir,
                                      nightly=settings), say=lambda m: print(m, flush=True))
    print()
    print(loop.table(rows))
    print(f"\nlearning curve: {args.out / 'learning_curve.png'}; day table: {args.out / 'days.json'}")
    return 0
