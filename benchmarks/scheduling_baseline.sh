#!/usr/bin/env bash
# `neurokube bench scheduling` before and after a change, side by side in one run: the tree of
# REV (exported with `git archive`, the working tree is not touched) and the working tree (also
# exported, so edits made while it runs do not leak in), alternating PAIRS times so that both see
# the same machine load. Each bench run has its own kube-scheduler phase, so the NeuroKube/kube-
# scheduler ratios are within one run. Prints the markdown rows of docs/BENCHMARKS.md's
# "before and after" tables (summarised by benchmarks/scheduling_pairs.py).
#
#   benchmarks/scheduling_baseline.sh REV [PAIRS]     (NODES=500 PODS=2000 by default)
#
# One pair at 500 nodes / 2,000 pods takes about 8 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
REV=${1:?usage: benchmarks/scheduling_baseline.sh REV [PAIRS]}
PAIRS=${2:-2}
NODES=${NODES:-500}
PODS=${PODS:-2000}
WORK=$(mktemp -d /tmp/neurokube-baseline-XXXXXX)
trap 'rm -rf "$WORK/before" "$WORK/after"' EXIT
mkdir -p "$WORK/before" "$WORK/after" "$WORK/out"
git archive "$REV" | tar -x -C "$WORK/before"
git ls-files -z | tar --null -T - -c | tar -x -C "$WORK/after"
PY=$(pwd)/.venv/bin/python
for i in $(seq 1 "$PAIRS"); do
  for tree in before after; do
    echo "pair $i: $tree ($(date +%T))" >&2
    (cd "$WORK/$tree" && PYTHONPATH="$WORK/$tree" "$PY" -m neurokube.cli.main bench scheduling --nodes "$NODES" \
      --pods "$PODS" --rounds 1 --no-docs --json "$WORK/out/$tree-$i.json") > "$WORK/out/$tree-$i.log" 2>&1
  done
done
"$PY" benchmarks/scheduling_pairs.py --docs "$REV" "$WORK"/out/*.json
echo "JSON and logs: $WORK/out" >&2
