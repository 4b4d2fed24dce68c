"""``neurokube train``: learn the placement model from replay experience."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from neurokube.cli.options import float_range, fraction, int_range, output_dir, seed
from neurokube.cli.outputs import Outputs
from neurokube.model.reward import RewardWeights


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train the learned placement model (collect -> fit -> improve)")
    p.add_argument("--trace", type=Path, action="append", required=True, metavar="DIR",
                   help="training trace (repeatable)")
    p.add_argument("--out", type=output_dir, required=True, metavar="MODEL_DIR", help="where to write the model")
    p.add_argument("--iterations", type=int_range(0, 1000), default=3,
                   help="improvement iterations after the first fit (default 3)")
    d = RewardWeights()
    p.add_argument("--node-hour-cost", type=float_range(0.0, 1e9), default=d.node_hour,
                   help=f"cost of a node-hour in contention core-seconds (default {d.node_hour:g})")
    p.add_argument("--epsilon", type=fraction, default=0.1, help="exploration around the model (default 0.1)")
    p.add_argument("--epsilon-initial", type=fraction, default=0.2,
                   help="exploration around the hand-written policies in iteration 0 (default 0.2)")
    p.add_argument("--rounds", type=int_range(1, 100_000), default=200, help="boosting rounds per model (default 200)")
    p.add_argument("--contention-target", choices=("added", "experienced"), default="added",
                   help="label of the contention model: the decision's marginal contention (added) or the "
                        "contention the pod experienced on its node (default added)")
    p.add_argument("--state-aware-discount", type=fraction, default=0.0, metavar="G",
                   help="state-aware targets: add G x the model's predicted cost of the next decision on the same "
                        "node while the pod runs there, by fitted Q iteration (neurokube/learning/lookahead.py); "
                        "0 fits today's one-step targets (default 0)")
    p.add_argument("--collections", type=int_range(1, 100), default=1, metavar="K",
                   help="exploration runs of each behaviour policy on each trace, each with its own seed, pooled "
                        "into one fit: K times the decisions, the same model size (docs/LEARNING.md, "
                        "\"Pooled collections\"; default 1)")
    p.add_argument("--log-dir", type=output_dir, help="also write the decision logs (Parquet) here")
    p.add_argument("--seed", type=seed, default=0)
    p.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> int:
    from neurokube.adapters.decision_store import write_log
    from neurokube.adapters.model_files import save_value_model
    from neurokube.adapters.plots import plot_learning_curve
    from neurokube.adapters.trace_files import read_trace
    from neurokube.cli.progress import progress
    from neurokube.learning.fit import FitSettings
    from neurokube.learning.loop import TrainSettings, train

    traces = [read_trace(t) for t in args.trace]
    settings = TrainSettings(iterations=args.iterations, epsilon=args.epsilon, epsilon_initial=args.epsilon_initial,
                             weights=RewardWeights(node_hour=args.node_hour_cost),
                             fit=FitSettings(rounds=args.rounds, seed=args.seed,
                                             contention_target="added_contention_core_s"
                                             if args.contention_target == "added" else "node_contention_core_s"),
                             seed=args.seed, state_aware_discount=args.state_aware_discount,
                             collections=args.collections)
    from neurokube.learning.loop import BEHAVIOUR_POLICIES

    steps = args.collections * len(traces) * len(BEHAVIOUR_POLICIES) + (args.iterations + 1) * (1 + len(traces)) \
        + args.iterations * len(traces)
    with progress("train", total=steps, unit="stage") as update:
        done = [0]

        def tick(message: str) -> None:
            done[0] += 1
            update(done[0], steps)
            print(message, flush=True)

        result = train(traces, settings, progress=tick)
    result.model.info["learning_curve"] = result.curve
    with Outputs() as outputs:  # the model directory and the logs, complete or not at all
        model_dir = outputs.directory(args.out, "--out")
        save_value_model(result.model, model_dir)
        (model_dir / "learning_curve.json").write_text(json.dumps(result.curve, indent=2) + "\n")
        (model_dir / "ope.json").write_text(json.dumps(result.ope, indent=2) + "\n")
        plot_learning_curve(model_dir / "learning_curve.png", result.curve, result.ope)
        if args.log_dir:
            write_log(outputs.directory(args.log_dir, "--log-dir"), "training", result.decisions)
    out: Path = args.out
    print("\niteration  contention core-s  node-hours  reward/decision  OPE DR  OPE SNIPS")
    for row, o in zip(result.curve, result.ope):
        print(f"{row['iteration']:9d}  {row['contention_core_s']:17,.0f}  {row['node_hours']:10,.1f}  "
              f"{row['actual_reward_per_decision']:15,.3f}  {o['dr']:6,.3f}  {o['snips']:9,.3f}")
    print(f"wrote {out} (model {result.model.version}, learning curve and OPE report beside it)")
    return 0
