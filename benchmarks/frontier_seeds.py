"""The frontier's verdicts against the training seed: does "every peer point dominated" hold for
models trained alike but at another seed, with one exploration collection and with pooled ones?

For each training seed in ``--seeds`` and each collection count in ``--collections``, trains
``neurokube train --trace real-0 --trace real-2 --iterations 0 --seed S --collections K`` (the
"Frontier" section's command at ``S=0, K=1``), then:

* **validation** (traces seeds 3 and 4, never the evaluation traces): replays the model at its
  default and at eight wide near-tie settings (four of them widened only in a nearly full cluster,
  ``tie_from_requested``) beside ``most-allocated`` and ``tlp``; the table says which near-tie
  setting waits within 2 % of ``most-allocated`` with every model, and which of those has the least
  contention (how ``node_hour_cost=1000,tie_core_s=30`` and then
  ``node_hour_cost=1000,tie_core_s=30,tie_from_requested=0.8`` joined the frontier's settings);
* **evaluation** (the unseen traces real-101 and real-202-40n): ``neurokube bench frontier`` with its
  default settings, every peer at three settings and the oracle; the table gives each goal of
  issue 17 per model and the peer points left undominated.

Usage: .venv/bin/python benchmarks/frontier_seeds.py [--out out/frontier/seeds] [--seeds 0,1]
           [--collections 1,3] [--reuse] [--no-docs]
``--reuse`` keeps models and result files that exist. About 45 minutes on 2 cores from nothing
(two frontier runs at a time). Writes the "frontier-seeds" section of docs/BENCHMARKS.md.
Exits 2 when ../shared/data is missing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._report import write_section  # noqa: E402
from benchmarks._traces import EVAL, NK, TRAIN, VALIDATION, ensure_trace, missing_data  # noqa: E402

WIDE_TIES = ("tie_core_s=30", "tie_core_s=100", "node_hour_cost=1000,tie_core_s=30",
             "node_hour_cost=1000,tie_core_s=100", "tie_core_s=30,tie_from_requested=0.8",
             *(f"node_hour_cost=1000,tie_core_s=30,tie_from_requested={share}" for share in (0.7, 0.8, 0.9)))
VALIDATION_PEERS = ("most-allocated", "tlp")
SLACK = 1.02  # the frontier's 2 % on pending
GOALS = ("every peer point dominated", "default beats default at its default", "default beats tlp at its default",
         "oracle goal")


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas, got {text!r}") from None
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"expected non-negative integers, got {text!r}")
    return values


def _run(command: list[str], log: Path) -> None:
    with log.open("w") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise SystemExit(f"frontier_seeds: `{' '.join(command)}` failed (exit {done.returncode}); see {log}")


def model_name(seed: int, collections: int) -> str:
    return f"c{collections}-s{seed}"


def train_command(train: list[Path], out: Path, seed: int, collections: int) -> list[str]:
    return ["train", *(x for t in train for x in ("--trace", str(t))), "--out", str(out), "--iterations", "0",
            "--seed", str(seed), "--collections", str(collections)]


def validate(out: Path, models: dict[str, Path], reuse: bool) -> dict:
    """Per validation trace: the metrics of every model at its default and wide near-ties, and the peers."""

    def one(item: tuple[str, list[str]]) -> tuple[str, dict]:
        name, seed_args = item
        trace = ensure_trace(out.parent / "val" / name, seed_args)
        target = out / f"validation-{name}.json"
        if not (reuse and target.is_file()):
            policies = [f"neurokube:model={m}{',' + s if s else ''}" for m in models.values() for s in ("", *WIDE_TIES)]
            command = [NK, "replay", "--trace", str(trace), *(x for p in (*policies, *VALIDATION_PEERS)
                                                               for x in ("--policy", p)), "--json", str(target)]
            print(f"validation: {name}", flush=True)
            _run(command, out / f"validation-{name}.log")
        return name, json.loads(target.read_text())["policies"]

    with ThreadPoolExecutor(2) as pool:  # one replay process per trace
        return dict(pool.map(one, VALIDATION.items()))


def evaluate(out: Path, models: dict[str, Path], reuse: bool) -> dict:
    """Per model: the frontier benchmark's document on the unseen traces (two runs at a time)."""
    traces = [ensure_trace(out.parent / "eval" / name, args) for name, args in EVAL.items()]

    def one(item: tuple[str, Path]) -> tuple[str, dict]:
        name, model = item
        target = out / f"frontier-{name}.json"
        if not (reuse and target.is_file()):
            print(f"evaluation: bench frontier with {name}", flush=True)
            _run([NK, "bench", "frontier", *(x for t in traces for x in ("--trace", str(t))), "--model", str(model),
                  "--json", str(target)], out / f"frontier-{name}.log")
        return name, json.loads(target.read_text())

    with ThreadPoolExecutor(2) as pool:
        return dict(pool.map(one, models.items()))


def _spec_model(spec: str, models: dict[str, Path]) -> tuple[str, str] | None:
    """(model name, setting) of a validation policy spec, or None for a peer."""
    for name, path in models.items():
        prefix = f"neurokube:model={path}"
        if spec == prefix or spec.startswith(prefix + ","):
            return name, spec[len(prefix) + 1:] or "default"
    return None


def validation_table(results: dict, models: dict[str, Path]) -> list[str]:
    """One row per model and setting, then the peers; ``models``' paths as the replay's specs name them."""
    lines = ["| model | setting | " + " | ".join(f"{t}: contention core-s / node-h / pending pod-s"
                                                for t in results) + " |",
             "|---|---|" + "---|" * len(results)]
    rows: dict[tuple[str, str], list[str]] = {}
    for trace, policies in results.items():
        for spec, doc in policies.items():
            m = doc
            key = _spec_model(spec, models) or ("peer", spec)
            rows.setdefault(key, []).append(f"{m['contention_core_s']:,.0f} / {m['node_hours']:,.1f} / "
                                            f"{m['pending_pod_s']:,.0f}")
    for (model, setting), cells in rows.items():
        lines.append(f"| {model} | `{setting}` | " + " | ".join(cells) + " |")
    return lines


def within_packing(results: dict, models: dict[str, Path], trace: str = "real-4-40n") -> dict[str, float]:
    """The wide near-ties with which every model waits within 2 % of ``most-allocated`` on ``trace``,
    each with its contention there summed over the models."""
    policies = results[trace]
    packing = policies["most-allocated"]["pending_pod_s"]
    out = {}
    for setting in WIDE_TIES:
        points = [policies[f"neurokube:model={path},{setting}"] for path in models.values()]
        if all(p["pending_pod_s"] <= SLACK * packing for p in points):
            out[setting] = float(sum(p["contention_core_s"] for p in points))
    return out


def _goal_cell(goal: dict | None) -> str:
    if goal is None:
        return "-"
    if "of" in goal:
        return f"{goal['dominated']}/{goal['of']}" if goal["met"] else f"**{goal['dominated']}/{goal['of']}**"
    return "met" if goal["met"] else "**NOT met**"


def evaluation_table(docs: dict[str, dict]) -> list[str]:
    traces = list(next(iter(docs.values()))["traces"])
    lines = ["| model | trace | peers dominated | beats `default` | beats `tlp` | oracle goal | "
             "not dominated (closest NeuroKube point: its pending / the peer's) |", "|---|---|---|---|---|---|---|"]
    for name, doc in docs.items():
        for trace in [*traces, "total"]:
            part = doc["total"] if trace == "total" else doc["traces"][trace]
            goals = part["goals"]
            missed = [f"`{spec}` (`{v['closest'].removeprefix('neurokube:') or 'neurokube'}`: "
                      f"{v['closest_ratio']:.3f}x on {', '.join(v['fails_on'])})"
                      for spec, v in part["dominated"].items() if not v["dominated"]]
            lines.append(f"| {name} | {trace} | " + " | ".join(_goal_cell(goals.get(g)) for g in GOALS) + " | "
                         + ("; ".join(missed) or "none") + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "frontier" / "seeds")
    ap.add_argument("--seeds", type=_int_list, default=[0, 1], help="training seeds (default 0,1)")
    ap.add_argument("--collections", type=_int_list, default=[1, 3],
                    help="exploration collections pooled per model (default 1,3)")
    ap.add_argument("--reuse", action="store_true", help="keep models and result files that exist")
    ap.add_argument("--no-docs", action="store_true", help="do not write docs/BENCHMARKS.md")
    args = ap.parse_args(argv)
    missing = missing_data()
    if missing:
        print(f"frontier_seeds: the real data is missing ({', '.join(missing)}): this benchmark needs "
              "../shared/data (see its README.md)", file=sys.stderr)
        return 2
    if min(args.collections) < 1:
        print("frontier_seeds: --collections must be at least 1", file=sys.stderr)
        return 2
    started = time.monotonic()
    args.out.mkdir(parents=True, exist_ok=True)
    train = [ensure_trace(args.out.parent / "train" / name, seed_args) for name, seed_args in TRAIN.items()]
    models: dict[str, Path] = {}
    for collections in args.collections:
        for seed in args.seeds:
            name = model_name(seed, collections)
            path = args.out / name
            if not (args.reuse and (path / "manifest.json").is_file()):
                print(f"training {name}", flush=True)
                _run([NK, *train_command(train, path, seed, collections)], args.out / f"train-{name}.log")
            models[name] = path
    validation = validate(args.out, models, args.reuse)
    evaluation = evaluate(args.out, models, args.reuse)
    shown = {name: path.relative_to(ROOT) if path.is_relative_to(ROOT) else path for name, path in models.items()}
    packing = within_packing(validation, models)
    body = [
        "Models: `neurokube train --trace out/frontier/train/real-0 --trace out/frontier/train/real-2 --iterations 0 "
        "--seed S --collections K` as `cK-sS` (`c1-s0` is the \"Frontier\" section's model, the same files). "
        "Validation: the traces of seeds 3 and 4 (40 nodes), never the evaluation traces; evaluation: "
        "`neurokube bench frontier` on real-101 and real-202-40n with its default settings.",
        "",
        f"**Validation**: each model at its default and {len(WIDE_TIES)} wide near-ties (those with "
        "`tie_from_requested` only while the cluster's requested CPU is at least that share of its allocatable), "
        "beside the peers:",
        "",
        *validation_table(validation, models),
        "",
        "Wide near-ties waiting within 2 % of `most-allocated` on real-4-40n with every model, with their contention "
        "there summed over the models: " + (", ".join(f"`{s}` ({c:,.0f} core-s)" for s, c in packing.items())
                                           or "none") + (f"; the least: `{min(packing, key=packing.get)}`."
                                                         if packing else "."),
        "",
        "**Evaluation** (issue 17's goals per model; a bold count or verdict is a miss):",
        "",
        *evaluation_table(evaluation),
        "",
        f"Wall time {(time.monotonic() - started) / 60:.0f} min"
        + (" (`--reuse`: the models and result files that existed were kept, not run again)." if args.reuse else "."),
    ]
    text = "\n".join(body)
    print(text)
    (args.out / "frontier_seeds.json").write_text(json.dumps(
        {"models": {k: str(v) for k, v in shown.items()}, "validation": validation,
         "evaluation": {k: {"traces": v["traces"], "total": v["total"]} for k, v in evaluation.items()}},
        indent=2, default=float) + "\n")
    if not args.no_docs:
        command = "python benchmarks/frontier_seeds.py" + (f" --seeds {','.join(map(str, args.seeds))}"
                                                          if args.seeds != [0, 1] else "")
        path = write_section("frontier-seeds", "Frontier: the verdicts against the training seed", command, text)
        print(f"wrote the 'frontier-seeds' section of {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
