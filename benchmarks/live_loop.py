"""The live learning curve: ``neurokube loop live`` on a real-data trace, written to docs/BENCHMARKS.md.

Builds a trace from ../shared/data (``neurokube trace build``, 30 nodes) unless ``--trace`` is given,
runs the loop for ``--days`` days (kube-scheduler and NeuroKube on the same slice each day, nights on the
live records), and writes the "live-loop" section: the per-day table, NeuroKube's ratios to
kube-scheduler, and the goals of issue 12 (day 3: less contention than kube-scheduler at no more
node-hours and at most 1.1x its pending time; day 3's ratios no worse than day 1's)::

    .venv/bin/python benchmarks/live_loop.py [--days 3] [--nodes 30] [--no-docs]

About 20-25 minutes on 2 cores at the defaults.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
NK = [sys.executable, "-m", "neurokube.cli.main"]
KEYS = ("contention_core_s", "node_hours", "pending_pod_s")

from neurokube.liveloop.run import table  # noqa: E402
from pipelines.loop import ratio  # noqa: E402


def goals(doc: dict) -> list[tuple[str, bool, str]]:
    """(goal, met, the numbers) for issue 12's live-curve goals."""
    first, last = doc["days"][0], doc["days"][-1]
    ks, nk = last["kube_scheduler"], last["neurokube"]
    out = [(f"day {last['day']}: less contention than kube-scheduler", nk[KEYS[0]] < ks[KEYS[0]],
            f"{nk[KEYS[0]]:,.0f} vs {ks[KEYS[0]]:,.0f} core-s"),
           (f"day {last['day']}: node-hours no more than kube-scheduler's", nk[KEYS[1]] <= ks[KEYS[1]],
            f"{nk[KEYS[1]]:,.2f} vs {ks[KEYS[1]]:,.2f}"),
           (f"day {last['day']}: pending time at most 1.1x kube-scheduler's", nk[KEYS[2]] <= 1.1 * ks[KEYS[2]],
            f"{nk[KEYS[2]]:,.0f} vs {ks[KEYS[2]]:,.0f} pod-s")]
    for key in KEYS[:2]:
        a = ratio(first["neurokube"][key], first["kube_scheduler"][key])
        b = ratio(last["neurokube"][key], last["kube_scheduler"][key])
        met = a is not None and b is not None and b <= a
        shown = lambda v: "n/a" if v is None else f"{v:.2f}x"  # noqa: E731
        out.append((f"{key}: day {last['day']}'s ratio to kube-scheduler no worse than day 1's", met,
                    f"{shown(b)} vs {shown(a)}"))
    return out


def _count(n: int | None) -> str:
    """A night's count, or "-" when the night stopped before counting (a night without a model)."""
    return "-" if n is None else f"{n:,}"


def markdown(doc: dict, table: str, seconds: float, trace: str) -> str:
    s = doc["settings"]  # a JSON from before commit 441cf3b has no binder_threads: those runs used 8
    lines = [f"Trace `{trace}` ({s['nodes']} nodes used), {s['slice_hours']:g} trace hour(s) per day at {s['speed']:g}x "
             f"(one run lasts {2 * s['slice_hours'] * 3600 / s['speed']:.0f} s), exploration {s['epsilon']:g}, "
             f"Prometheus scraping the emulator every {s['scrape_s']:g} s, the binder placing "
             f"{s.get('binder_threads', 8)} pods at a time; the whole run took {seconds / 60:.1f} min "
             "on 2 shared cores. Outcomes in trace seconds, read from Prometheus (docs/LEARNING_LOOP.md, "
             "\"The live loop\").", "", "```", table, "```", "",
             "| day | NeuroKube served by | night: new version | promoted | why | decisions | with outcome |",
             "|---:|---|---|---|---|---:|---:|"]
    for d in doc["days"]:
        lines.append(f"| {d['day']} | {'v' + d['model_version'] if d['model_version'] else 'default scoring'} | "
                     f"{d.get('new_version') or '-'} | {'yes' if d.get('promoted') else 'no'} | "
                     f"{str(d.get('reason') or '')[:120]} | {_count(d.get('decisions'))} | {_count(d.get('with_outcome'))} |")
    lines += ["", "How the waits are spread (trace seconds; a long wait is a trace minute or more, its share is of "
              "the day's pending pod-s):", "",
              "| day | scheduler | median wait | p90 | longest | long waits | their share |",
              "|---:|---|---:|---:|---:|---:|---:|"]
    for d in doc["days"]:
        for name, key in (("kube-scheduler", "kube_scheduler"), ("NeuroKube", "neurokube")):
            w = d[key]
            if "wait_p50_s" in w:
                lines.append(f"| {d['day']} | {name} | {w['wait_p50_s']:,.1f} | {w['wait_p90_s']:,.1f} | "
                             f"{w['wait_max_s']:,.0f} | {w['long_waits']} | {w['long_wait_share']:.0%} |")
    placed = [(d["day"], d["neurokube"]["bound_by"]) for d in doc["days"] if "bound_by" in d["neurokube"]]
    if placed:
        lines += ["", "Who bound NeuroKube's pods (the functions' own counters):", "",
                  "| day | binder, on the pod's event | binder, retry when room was freed | sweeper |",
                  "|---:|---:|---:|---:|"]
        lines += [f"| {day} | {by['binder_event']} | {by['release_retry']} | {by['sweeper']} |" for day, by in placed]
    lines += ["", "| goal | met | numbers |", "|---|---|---|"]
    lines += [f"| {g} | {'yes' if ok else '**no**'} | {numbers} |" for g, ok, numbers in goals(doc)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trace", type=Path, help="a trace directory (default: built from ../shared/data)")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--days", type=int, default=3)
    ap.add_argument("--nodes", type=int, default=30)
    ap.add_argument("--slice-hours", type=float, default=1.0)
    ap.add_argument("--speed", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "live-loop")
    ap.add_argument("--no-docs", action="store_true")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    trace = args.trace
    build = ""
    if trace is None:
        trace = args.out / "trace"
        d = args.data
        build = (f"neurokube trace build --openb-pods {d}/alibaba-openb/openb_pod_list_default.csv --openb-nodes "
                 f"{d}/alibaba-openb/openb_node_list_all_node.csv --bitbrains {d}/bitbrains-rnd-2013-7 "
                 f"--nodes {args.nodes} --hours {args.days * args.slice_hours + 1:g} --seed {args.seed} --out {trace}")
        subprocess.run([*NK, *build.split()[1:]], check=True)
    out_json = args.out / "live.json"
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="nk-live-loop-") as state:
        run = subprocess.run([*NK, "loop", "live", "--trace", str(trace), "--days", str(args.days), "--nodes",
                              str(args.nodes), "--slice-hours", str(args.slice_hours), "--speed", str(args.speed),
                              "--seed", str(args.seed), "--state-dir", state, "--json", str(out_json)],
                             capture_output=True, text=True)
    seconds = time.monotonic() - started
    (args.out / "loop.log").write_text(run.stdout + run.stderr)
    if run.returncode != 0:
        print(run.stdout[-4000:], run.stderr[-4000:], sep="\n")
        return run.returncode
    doc = json.loads(out_json.read_text())
    body = markdown(doc, table(doc), seconds, trace.name)
    print(body)
    if not args.no_docs:
        from benchmarks._report import write_section

        command = "python benchmarks/live_loop.py" + (f" --days {args.days}" if args.days != 3 else "")
        if build:
            shown = build.replace(str(ROOT) + "/", "").replace(str(ROOT.parent), "..")
            body = f"Trace: `{shown}`.\n\n" + body
        write_section("live-loop", "The learning loop on the local cluster (live, day over day)", command, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
