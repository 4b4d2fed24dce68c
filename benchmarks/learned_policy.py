"""The learned policy against every peer and the oracle, on traces the model never trained on.

Usage:
  .venv/bin/python benchmarks/learned_policy.py --model MODEL_DIR --trace DIR [--trace DIR ...]
      [--train-command "the neurokube train command that produced MODEL_DIR"]

Writes the "learned-policy" section of docs/BENCHMARKS.md: one table per trace (contention,
node-hours, pending, hot nodes for default, tlp, lvrb, koordinator, oracle, neurokube) and the
issue's goals with their ratios.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._report import write_section  # noqa: E402
from neurokube.adapters.model_files import load_value_model  # noqa: E402
from neurokube.adapters.trace_files import read_trace  # noqa: E402
from neurokube.learning.evaluate import compare  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--trace", type=Path, action="append", required=True)
    ap.add_argument("--train-command", default="")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    model = load_value_model(args.model)
    parts, verdicts = [], {}
    for path in args.trace:
        trace = read_trace(path)
        v = compare(trace, model)
        verdicts[str(path)] = {"metrics": v.metrics, "goals": v.goals, "ratios": v.ratios}
        rows = [f"### {path} ({len(trace.nodes)} nodes, {len(trace.pods):,} pods)", "",
                "| policy | contention core-s | node-hours | pending pod-s | hot | unscheduled |",
                "|---|---:|---:|---:|---:|---:|"]
        for name, m in v.metrics.items():
            rows.append(f"| {name} | {m['contention_core_s']:,.0f} | {m['node_hours']:,.1f} | "
                        f"{m['pending_pod_s']:,.0f} | {m['hot_node_fraction']:.3f} | {m['unscheduled_pods']} |")
        rows.append("")
        rows.append("Goals: " + "; ".join(f"{k}: {'met' if ok else 'NOT met'}" for k, ok in v.goals.items()))
        rows.append("Ratios: " + ", ".join(f"{k} {r:.2f}" for k, r in v.ratios.items()))
        parts.append("\n".join(rows))
        print(parts[-1], flush=True)
    cmd = "python benchmarks/learned_policy.py --model " + str(args.model) + "".join(f" --trace {t}" for t in args.trace)
    body = (f"Model `{args.model}` (version {model.version}, trained on {model.info.get('traces')}, "
            f"{model.info.get('decisions'):,} decisions)."
            + (f" Trained with: `{args.train_command}`." if args.train_command else "") + "\n\n" + "\n\n".join(parts))
    write_section("learned-policy", "Learned policy on unseen traces", cmd, body)
    if args.json:
        args.json.write_text(json.dumps(verdicts, indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
