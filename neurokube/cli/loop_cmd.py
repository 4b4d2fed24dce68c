"""``neurokube loop live``: the learning loop on the local control plane and stack (neurokube/liveloop)."""

from __future__ import annotations

import argparse
from pathlib import Path

from neurokube.cli.options import float_range, int_range, output_path, positive_int, seed
from neurokube.cluster.functions import BINDER_THREADS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("loop", help="the learning loop in a live (local) cluster")
    lsub = p.add_subparsers(dest="loop_command", metavar="ACTION", required=True)
    live = lsub.add_parser("live", help="days of a trace through the real apiserver (kube-scheduler and NeuroKube), "
                                        "nights trained on the live records")
    live.add_argument("--trace", type=Path, required=True, metavar="DIR",
                      help="the trace whose slices the days replay (neurokube trace build/synth); its first "
                           "--nodes nodes are the cluster")
    live.add_argument("--days", type=int_range(1, 30), default=3, help="days (default 3)")
    live.add_argument("--nodes", type=int_range(1, 2000), default=30, help="KWOK nodes (default 30)")
    live.add_argument("--state-dir", type=Path, required=True,
                      help="where the run's stack, cluster, logs and nights live (taken down afterwards)")
    live.add_argument("--json", type=output_path, required=True, metavar="OUT", help="the per-day outcomes")
    live.add_argument("--slice-hours", type=float_range(0.0, 24.0, low_open=True), default=1.0,
                      help="trace hours per day (default 1)")
    live.add_argument("--speed", type=float_range(1.0, 3600.0), default=60.0,
                      help="trace seconds per wall second (default 60)")
    live.add_argument("--epsilon", type=float_range(0.0, 1.0), default=0.1,
                      help="the binder's exploration rate (default 0.1)")
    live.add_argument("--rounds", type=int_range(1, 100_000), default=40, help="boosting rounds (default 40)")
    live.add_argument("--binder-threads", type=positive_int, default=BINDER_THREADS,
                      help=f"pod events the binder places at a time: its gunicorn threads and the deliveries "
                           f"(default {BINDER_THREADS}, as deploy/knative/services.yaml)")
    live.add_argument("--seed", type=seed, default=0)
    live.set_defaults(func=_live)


def _live(args: argparse.Namespace) -> int:
    import dataclasses

    from neurokube.adapters.trace_files import read_trace
    from neurokube.liveloop import run as live_run
    from pipelines.settings import NightlySettings, WorldSettings

    trace = read_trace(args.trace)
    base = NightlySettings()
    settings = NightlySettings(world=WorldSettings(nodes=args.nodes, seed=args.seed, eval_hours=3.0),
                               fit=dataclasses.replace(base.fit, rounds=args.rounds, seed=args.seed))
    s = live_run.LiveLoopSettings(state_dir=args.state_dir, trace=trace, days=args.days, nodes=args.nodes,
                                  slice_hours=args.slice_hours, speed=args.speed, epsilon=args.epsilon,
                                  binder_threads=args.binder_threads, nightly=settings)
    doc = live_run.run(s, say=lambda m: print(m, flush=True))
    live_run.write(doc, args.json)
    print(live_run.table(doc))
    print(f"\nper-day outcomes: {args.json}")
    return 0
