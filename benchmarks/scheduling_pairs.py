"""Summarise before/after `neurokube bench scheduling` runs (benchmarks/scheduling_baseline.sh).

Usage: .venv/bin/python benchmarks/scheduling_pairs.py [--docs REV] DIR/before-1.json DIR/after-1.json ...

Files are named ``before-N.json`` / ``after-N.json`` (``old``/``new`` are read as the same). Prints
one markdown row per run and a median row per side: kube-scheduler's and NeuroKube's pods/s and
p99 create-to-bound, NeuroKube's ratios to kube-scheduler in the same run, and the binder's mean
time per pod (reserve, bind, total) from the bench's profile. ``--docs REV`` also writes the
"scheduling-baseline" section of docs/BENCHMARKS.md (REV: the "before" revision).
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._report import write_section  # noqa: E402

SIDES = {"old": "before", "before": "before", "new": "after", "after": "after"}


def row(path: Path) -> tuple[str, int, dict[str, float]]:
    match = re.fullmatch(r"(old|new|before|after)-(\d+)\.json", path.name)
    if not match:
        raise SystemExit(f"{path}: expected a name like before-1.json or after-2.json")
    doc = json.loads(path.read_text())
    ks, nk = doc["kube_scheduler"], doc["neurokube"]
    stages = doc["profile"]["neurokube"]["decision_stages"]
    values = {
        "ks_pods_per_s": ks["pods_per_s"], "ks_p99_ms": ks["p99_ms"],
        "nk_pods_per_s": nk["pods_per_s"], "nk_p99_ms": nk["p99_ms"],
        "throughput_ratio": nk["pods_per_s"] / ks["pods_per_s"], "p99_ratio": nk["p99_ms"] / ks["p99_ms"],
        "reserve_ms": stages["reserve"]["mean_ms"], "bind_ms": stages["bind"]["mean_ms"],
        "total_ms": stages["total"]["mean_ms"],
    }
    return SIDES[match.group(1)], int(match.group(2)), values


def line(label: str, v: dict[str, float]) -> str:
    return (f"| {label} | {v['ks_pods_per_s']:.1f} | {v['ks_p99_ms']:,.0f} | {v['nk_pods_per_s']:.1f} | "
            f"{v['nk_p99_ms']:,.0f} | {v['throughput_ratio']:.2f}x | {v['p99_ratio']:.2f}x | "
            f"{v['reserve_ms']:.0f} / {v['bind_ms']:.0f} / {v['total_ms']:.0f} |")


def table(rows: list[tuple[str, int, dict[str, float]]]) -> list[str]:
    lines = ["| run | kube-scheduler pods/s | kube-scheduler p99 ms | NeuroKube pods/s | NeuroKube p99 ms | "
             "throughput ratio | p99 ratio | binder mean ms: reserve / bind / total |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [line(f"{side} {number}", values) for side, number, values in rows]
    for side in ("before", "after"):
        mine = [v for s, _, v in rows if s == side]
        if mine:
            lines.append(line(f"**{side}, median**", {k: statistics.median(v[k] for v in mine) for k in mine[0]}))
    return lines


def main(argv: list[str]) -> int:
    rev = None
    if argv[:1] == ["--docs"]:
        if len(argv) < 2:
            print("--docs needs the before revision", file=sys.stderr)
            return 2
        rev, argv = argv[1], argv[2:]
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    rows = sorted((row(Path(p)) for p in argv), key=lambda r: (r[1], r[0] != "before"))
    lines = table(rows)
    print("\n".join(lines))
    if rev is not None:
        first = json.loads(Path(argv[0]).read_text())
        body = (f"`neurokube bench scheduling` at {first['nodes']} nodes / {first['pods']} pods, one round per run, "
                f"alternating the tree of `{rev}` (before) and the working tree (after) so that both see the same "
                "machine load; each run has its own kube-scheduler phase, so the ratios are within one run. "
                "The binder's mean times per pod come from its own stage histograms.\n\n" + "\n".join(lines) + "\n")
        path = write_section("scheduling-baseline", "Scheduling before and after a change (side by side)",
                             f"benchmarks/scheduling_baseline.sh {rev}", body)
        print(f"wrote {path}", file=sys.stderr)
    return 0

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
