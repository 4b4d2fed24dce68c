"""Replay speed: seconds per policy for a 15,000-pod, 60-node, 24-hour trace (target < 60 s per
request-based policy on a 2-core machine), and a 1,000-node trace to show scale works.

Usage: .venv/bin/python benchmarks/replay_speed.py [--repeats 3]
Writes the "replay-speed" section of docs/BENCHMARKS.md. Medians of ``--repeats`` runs, all
policies measured in the same process, one after the other.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._report import write_section  # noqa: E402
from neurokube.policies import make_policy  # noqa: E402
from neurokube.sim import SimConfig, replay  # noqa: E402
from neurokube.trace.assemble import ArrivalSettings  # noqa: E402
from neurokube.trace.model import Trace  # noqa: E402
from neurokube.trace.synth import SynthSettings, synth_trace  # noqa: E402

REQUEST_BASED = ("default", "most-allocated", "random")
LOAD_AWARE = ("tlp", "lvrb", "koordinator")


def subsample(trace: Trace, pods: int, seed: int = 0) -> Trace:
    p = trace.pods
    if len(p) <= pods:
        return trace
    keep = np.sort(np.random.default_rng(seed).choice(len(p), pods, replace=False))
    return replace(trace, pods=p.take(keep))


def time_policy(trace: Trace, name: str, repeats: int) -> tuple[float, float]:
    seconds = []
    for r in range(repeats):
        t0 = time.perf_counter()
        result = replay(trace, make_policy(name, trace=trace, seed=r), SimConfig(), clock=time.perf_counter_ns)
        seconds.append(time.perf_counter() - t0)
    return statistics.median(seconds), result.metrics["decision_us_p99"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--pods", type=int, default=15000)
    ap.add_argument("--nodes", type=int, default=60)
    ap.add_argument("--big-nodes", type=int, default=1000)
    ap.add_argument("--big-pods", type=int, default=40000)
    args = ap.parse_args()

    main_trace = subsample(synth_trace("bench-60", SynthSettings(
        arrivals=ArrivalSettings(hours=24, target_load=0.75, seed=11), nodes=args.nodes)), args.pods)
    rows = ["| trace | policy | median s | decision p99 us | goal |", "|---|---|---:|---:|---|"]
    for name in (*REQUEST_BASED, *LOAD_AWARE, "oracle"):
        sec, p99 = time_policy(main_trace, name, args.repeats)
        goal = ("< 60 s: " + ("met" if sec < 60 else "NOT met")) if name in REQUEST_BASED else "-"
        rows.append(f"| {len(main_trace.pods):,} pods, {args.nodes} nodes, 24 h | {name} | {sec:.1f} | {p99:.0f} | {goal} |")
        print(rows[-1], flush=True)

    big = subsample(synth_trace("bench-big", SynthSettings(
        arrivals=ArrivalSettings(hours=6, target_load=0.6, warmup_hours=2, seed=12), nodes=args.big_nodes,
        workloads=800)), args.big_pods)
    for name in ("default", "tlp"):
        sec, p99 = time_policy(big, name, 1)
        rows.append(f"| {len(big.pods):,} pods, {args.big_nodes} nodes, 6 h | {name} | {sec:.1f} | {p99:.0f} | works |")
        print(rows[-1], flush=True)
    body = "\n".join(rows) + (
        f"\n\nMedian of {args.repeats} runs per policy (1 run on the 1,000-node trace). Synthetic traces "
        "(`neurokube trace synth`), subsampled to the pod count. Request-based policies carry the "
        "< 60 s goal; the others are listed for comparison.")
    path = write_section("replay-speed", "Replay speed", "python benchmarks/replay_speed.py", body)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
