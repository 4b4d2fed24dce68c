"""Acting on running pods, in the replay: NeuroKube's actuator against VPA in place and the descheduler.

Builds two training and two unseen evaluation traces from ../shared/data (the seeds of the
"Frontier" section: train 0 and 2; evaluate 101, and 202 with 40 nodes at target load 0.75),
trains the prediction models on the training traces only (``neurokube recommend --train-trace``),
and replays each evaluation trace under kube-scheduler's default scoring with every actuator:
``none``, ``vpa-inplace``, ``descheduler`` (each at its defaults) and NeuroKube's at several
eviction budgets (``max_evictions``). Writes the "acting" section of docs/BENCHMARKS.md with the
issue's goals met or not, the JSON (``--json``) and a plot (``--plot``). About 15 minutes on 2 cores.

Usage: .venv/bin/python benchmarks/acting.py [--out out/acting] [--no-docs]
Equivalent CLI per cell: ``neurokube replay --trace EVAL --policy default --actuator SPEC --json OUT``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._traces import DATA, EVAL, NK, TRAIN, ensure_trace  # noqa: E402

VALIDATION = {"real-3": ["--seed", "3"], "real-4-40n": ["--seed", "4", "--nodes", "40", "--target-load", "0.75"],
              "real-5": ["--seed", "5"], "real-6-40n": ["--seed", "6", "--nodes", "40", "--target-load", "0.75"]}
"""Traces the actuator's defaults are chosen on (``--validation``): neither trained on nor reported above."""
VALIDATION_VARIANTS = (
    "", "destination=requests,evict_while_pending=true", "downsize=false", "destination=requests",
    "evict_while_pending=true", "victim=smallest", "victim=least_work",
    "victim=relief_per_work,relief_horizon_s=0,work_floor_core_s=60",
    "relieve=warned", "relieve=forecast_or_warned", "margin=1.2",
)
"""NeuroKube's settings compared on the validation traces (``""``: its defaults, ``victim=relief_per_work``
with ``work_floor_core_s=600`` and ``relief_horizon_s=3600``, ``destination=usage``,
``evict_while_pending=false``, ``downsize=true``; the second row is the defaults before the first two);
docs/ACTING.md says what each is and why, and lists the variants tried with earlier code."""
OTHER_VICTIMS = ("victim=smallest", "victim=least_work")
"""Victim rules shown beside the default on the evaluation traces, at the budgets above 0."""
BUDGETS = (0.0, 0.0025, 0.005, 0.01)
DEFAULT_BUDGET = 0.01


def actuators(model: Path) -> list[str]:
    return ["none", "vpa-inplace", "descheduler",
            *(f"neurokube:model={model},max_evictions={b:g}" for b in BUDGETS),
            *(f"neurokube:model={model},max_evictions={b:g},{v}" for v in OTHER_VICTIMS for b in BUDGETS[1:])]


def run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def replay_one(trace: Path, spec: str, out: Path, reuse: bool = False) -> dict:
    if not (reuse and out.is_file()):
        run([NK, "replay", "--trace", str(trace), "--policy", "default", "--actuator", spec, "--json", str(out)])
    doc = json.loads(out.read_text())
    if doc["config"].get("actuator") != spec:
        raise SystemExit(f"{out} is a replay with --actuator {doc['config'].get('actuator')}, not {spec}")
    return doc["policies"]["default"]


def short(spec: str) -> str:
    """``neurokube:model=...,max_evictions=0.01`` -> ``neurokube max_evictions=0.01``."""
    if not spec.startswith("neurokube:"):
        return spec
    return "neurokube " + ",".join(p for p in spec.split(":", 1)[1].split(",") if not p.startswith("model="))


def slug(spec: str) -> str:
    """A file name for one actuator setting: ``neurokube max_evictions=0.01`` -> ``neurokube_max_evictions-0.01``."""
    return "".join(c if c.isalnum() or c in ".-_" else "-" if c == "=" else "_" for c in short(spec)).strip("_")


def goals(cells: dict[str, dict], pods: int) -> list[str]:
    """The issue's acting goals on one trace, each with its numbers."""
    none, vpa, desch = cells["none"], cells["vpa-inplace"], cells["descheduler"]
    ours = {k: v for k, v in cells.items() if k.startswith("neurokube")}
    default = ours[next(k for k in ours if k.endswith(f"max_evictions={DEFAULT_BUDGET:g}"))]
    ratio = default["contention_core_s"] / none["contention_core_s"]
    share = default["evictions"] / pods
    nh = default["node_hours"] / none["node_hours"]
    lines = [f"- NeuroKube (max_evictions={DEFAULT_BUDGET:g}) contention {ratio:.2f}x no actuation (goal <= 0.70), "
             f"evictions {default['evictions']:,} = {share:.2%} of pods (goal <= 1 %), node-hours {nh:.3f}x "
             f"(goal <= 1.02): {verdict(ratio <= 0.7 and share <= 0.01 and nh <= 1.02)}"]
    for name, peer in (("vpa-inplace", vpa), ("descheduler", desch)):
        ok = [k for k, v in ours.items() if v["contention_core_s"] < peer["contention_core_s"]
              and v["evictions"] <= peer["evictions"] and v["lost_work_core_s"] <= peer["lost_work_core_s"]]
        best = min(ok, key=lambda k: ours[k]["contention_core_s"]) if ok else None
        lines.append(f"- less contention than `{name}` ({peer['contention_core_s']:,.0f} core-s, "
                     f"{peer['evictions']:,} evictions, {peer['lost_work_core_s']:,.0f} core-s lost) at no more "
                     f"evictions and lost work: " + (f"met by `{short(best)}` ({ours[best]['contention_core_s']:,.0f} "
                                                      f"core-s, {ours[best]['evictions']:,} evictions)"
                                                      if best else "**NOT met** by any budget"))
    return lines


def verdict(ok: bool) -> str:
    return "met" if ok else "**NOT met**"


COLUMNS = (("contention_core_s", "contention core-s", "{:,.0f}"), ("node_hours", "node-h", "{:,.1f}"),
           ("pending_pod_s", "pending pod-s", "{:,.0f}"), ("resizes", "resizes", "{:,}"),
           ("evictions", "evictions", "{:,}"), ("evictions_refused", "refused", "{:,}"),
           ("lost_work_core_s", "evicted work core-s", "{:,.0f}"), ("throttled_s", "throttled pod-s", "{:,.0f}"),
           ("oom_kills", "OOM kills", "{:,}"))


def table(cells: dict[str, dict]) -> str:
    head = "| actuator | " + " | ".join(c[1] for c in COLUMNS) + " |"
    rows = [head, "|" + "---|" * (len(COLUMNS) + 1)]
    for spec, m in cells.items():
        rows.append(f"| `{short(spec)}` | " + " | ".join(fmt.format(m[k]) for k, _, fmt in COLUMNS) + " |")
    return "\n".join(rows)


def plot(results: dict[str, dict[str, dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6.5 * len(results), 6), squeeze=False)
    for ax, (trace, cells) in zip(axes[0], results.items()):
        for victim, color in (("", "tab:green"), *zip(OTHER_VICTIMS, ("tab:olive", "tab:gray"))):
            ours = [(m["evictions"], m["contention_core_s"]) for k, m in cells.items() if k.startswith("neurokube")
                    and (victim in k if victim else not any(v in k for v in OTHER_VICTIMS))]
            ax.plot([e for e, _ in ours], [c for _, c in ours], "o-", color=color,
                    label=f"NeuroKube, {victim or 'default (victim=relief_per_work)'}, max_evictions " + ", ".join(
                        f"{b:g}" for b in (BUDGETS[1:] if victim else BUDGETS)))
        for name, marker, color in (("none", "s", "black"), ("vpa-inplace", "^", "tab:blue"),
                                    ("descheduler", "D", "tab:orange")):
            m = cells[name]
            ax.scatter([m["evictions"]], [m["contention_core_s"]], marker=marker, color=color, s=60, label=name,
                       zorder=3)
        ax.set_xscale("symlog", linthresh=10)
        ax.set_xlabel("evictions")
        ax.set_ylabel("contention (core-s)")
        ax.set_title(trace)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    fig.suptitle("Acting on running pods under kube-scheduler's default scoring (lower left is better)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "acting")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "img" / "acting.png")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-docs", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    parser.add_argument("--validation", action="store_true",
                        help="replay the validation traces (seeds 3 to 6) the actuator's defaults were chosen on, "
                             "with the settings compared there; writes the 'acting-validation' section")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse the replays and models already in --out (to rewrite the section only)")
    args = parser.parse_args(argv)
    if not (DATA / "alibaba-openb").is_dir() or not (DATA / "bitbrains-rnd-2013-7").is_dir():
        print(f"no workload data in {DATA}: the acting benchmark needs ../shared/data", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    out = args.out
    traces = {}
    for name, extra in {**TRAIN, **EVAL}.items():
        traces[name] = ensure_trace(out / "traces" / name, extra)
    model = out / "models"
    first_eval = traces[next(iter(EVAL))]
    if not (args.reuse and (model / "manifest.json").is_file()):
        run([NK, "recommend", "--trace", str(first_eval),
             *[a for t in TRAIN for a in ("--train-trace", str(traces[t]))], "--model-dir", str(model)])
    if args.validation:
        return validation(args, model, t0)
    jobs = {}
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for name in EVAL:
            for spec in actuators(model):
                jobs[(name, spec)] = pool.submit(replay_one, traces[name], spec,
                                                 out / "runs" / f"{name}-{slug(spec)}.json", args.reuse)
        results = {name: {spec: jobs[(name, spec)].result() for spec in actuators(model)}
                   for name in EVAL}
    pods = {}
    from neurokube.adapters.trace_files import read_trace

    for name in EVAL:
        pods[name] = len(read_trace(traces[name]).pods)
    doc = {"traces": {n: {"pods": pods[n], "actuators": {short(k): v for k, v in results[n].items()}} for n in EVAL},
           "budgets": list(BUDGETS), "default_budget": DEFAULT_BUDGET}
    (out / "acting.json").write_text(json.dumps(doc, indent=2) + "\n")
    plot(results, args.plot)
    parts = [f"Placement: kube-scheduler's default scoring (`--policy default`) on traces the prediction models "
             f"never saw; models trained on {', '.join(TRAIN)} (`neurokube recommend --train-trace ...`). "
             f"Every actuator at its defaults; NeuroKube's at eviction budgets {', '.join(f'{b:g}' for b in BUDGETS)} "
             f"(share of pods; {DEFAULT_BUDGET:g} is its default), with its default victim choice "
             f"(`relief_per_work`: the most predicted relief, over the pod's expected remaining run, per unit of "
             f"work its eviction loses), with `victim=smallest` (the smallest pod that covers the predicted "
             f"excess; the default before) and with `victim=least_work` (of those, the one whose eviction loses "
             f"the least work), each with its other defaults (`destination=usage`, `evict_while_pending=false`, "
             f"`downsize=true`). Its defaults were chosen on four validation traces (seeds 3 to 6), not on these "
             f"(docs/ACTING.md; BENCHMARKS \"the validation traces\"). \"evicted work\" is the CPU work evicted pods "
             f"had done since they started; OOM kills are the same for every actuator that leaves memory alone "
             f"(docs/ACTING.md).\n\n![acting](img/{args.plot.name})\n"]
    for name in EVAL:
        parts.append(f"### {name} ({pods[name]:,} pods)\n\n{table(results[name])}\n\n" + "\n".join(
            goals(results[name], pods[name])) + "\n")
    parts.append("Replays reused from an earlier run of this script (`--reuse`): about 3 minutes per trace on "
                 "2 workers." if args.reuse else f"Wall time {time.monotonic() - t0:,.0f} s.")
    return publish(args, parts, "acting", "Acting on running pods: NeuroKube against VPA in place and the descheduler",
                   ".venv/bin/python benchmarks/acting.py")


def publish(args: argparse.Namespace, parts: list[str], section: str, title: str, command: str) -> int:
    """Print the section's body and, unless ``--no-docs``, write it into docs/BENCHMARKS.md."""
    body = "\n".join(parts)
    print(body)
    if not args.no_docs:
        from benchmarks._report import write_section

        write_section(section, title, command, body)
    return 0


def validation(args: argparse.Namespace, model: Path, t0: float) -> int:
    """The settings docs/ACTING.md compares on the validation traces, at HEAD's code."""
    from neurokube.adapters.trace_files import read_trace

    specs = ["none", "descheduler",
             *(f"neurokube:model={model}" + (f",{v}" if v else "") for v in VALIDATION_VARIANTS)]
    traces = {}
    for name, extra in VALIDATION.items():
        traces[name] = ensure_trace(args.out / "traces" / name, extra)
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        jobs = {(n, s): pool.submit(replay_one, traces[n], s, args.out / "validation" / f"{n}-{slug(s)}.json",
                                    args.reuse)
                for n in VALIDATION for s in specs}
        results = {n: {s: jobs[(n, s)].result() for s in specs} for n in VALIDATION}
    parts = ["The traces NeuroKube's actuator's defaults were chosen on (`trace build --seed 3`, `--seed 4 "
             "--nodes 40 --target-load 0.75`, `--seed 5` and `--seed 6 --nodes 40 --target-load 0.75`; neither "
             "trained on nor reported in the section above), under kube-scheduler's default scoring, with the "
             "models of the section above. `neurokube` is the default (margin 1.5, `victim=relief_per_work`, "
             "`work_floor_core_s=600`, `relief_horizon_s=3600`, `relieve=forecast`, `destination=usage`, "
             "`evict_while_pending=false`, `downsize=true`, budget 1 %); every other row changes what it names. "
             "docs/ACTING.md says what each is; variants tried with earlier code are "
             "listed there.\n"]
    for n in VALIDATION:
        none = results[n]["none"]["contention_core_s"]
        ratios = ", ".join(f"`{short(s) if s != f'neurokube:model={model}' else 'neurokube (default)'}` "
                           f"{m['contention_core_s'] / none:.2f}x" for s, m in results[n].items() if s != "none")
        parts.append(f"### {n} ({len(read_trace(traces[n]).pods):,} pods)\n\n{table(results[n])}\n\n"
                     f"Contention against no actuation: {ratios}.\n")
    def ratio(n: str, s: str) -> float:
        return results[n][s]["contention_core_s"] / results[n]["none"]["contention_core_s"]

    gmean = {s: float(np.exp(np.mean([np.log(ratio(n, s)) for n in VALIDATION]))) for s in specs if s != "none"}
    lost = {s: sum(results[n][s]["lost_work_core_s"] for n in VALIDATION) for s in specs if s != "none"}
    parts.append("### Over the four traces\n\n| actuator | contention vs none, geometric mean | evicted work core-s, "
                 "total |\n|---|---|---|\n" + "\n".join(
                     f"| `{short(s) if s != f'neurokube:model={model}' else 'neurokube (default)'}` | {g:.3f}x | "
                     f"{lost[s]:,.0f} |" for s, g in sorted(gmean.items(), key=lambda kv: kv[1])) + "\n")
    parts.append("Replays reused from earlier runs of this script where their setting was unchanged (`--reuse`)."
                 if args.reuse else f"Wall time {time.monotonic() - t0:,.0f} s.")
    return publish(args, parts, "acting-validation", "Acting on running pods: the validation traces",
                   ".venv/bin/python benchmarks/acting.py --validation")


if __name__ == "__main__":
    sys.exit(main())
