#!/usr/bin/env bash
# Reproduce the learned-policy result end to end: build training and unseen evaluation traces
# from ../shared/data (and one synthetic), train, and evaluate against every peer and the oracle.
# Writes the "learned-policy" section of docs/BENCHMARKS.md. About 30-40 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
NK=.venv/bin/neurokube
D=${DATA:-../shared/data}
OUT=${OUT:-out/learned}
NODE_HOUR_COST=${NODE_HOUR_COST:-60}
ITERATIONS=${ITERATIONS:-3}
RAW="--openb-pods $D/alibaba-openb/openb_pod_list_default.csv --openb-nodes $D/alibaba-openb/openb_node_list_all_node.csv --bitbrains $D/bitbrains-rnd-2013-7"
# training traces: real data, seeds 0 and 2
$NK trace build $RAW --out $OUT/train/real-0 --seed 0
$NK trace build $RAW --out $OUT/train/real-2 --seed 2
# unseen traces: other seeds, another cluster size and load, and a synthetic workload
$NK trace build $RAW --out $OUT/eval/real-101 --seed 101
$NK trace build $RAW --out $OUT/eval/real-202-40n --seed 202 --nodes 40 --target-load 0.75
$NK trace synth --out $OUT/eval/synth-303 --seed 303 --nodes 50
TRAIN="$NK train --trace $OUT/train/real-0 --trace $OUT/train/real-2 --out $OUT/model --iterations $ITERATIONS --node-hour-cost $NODE_HOUR_COST"
$TRAIN
.venv/bin/python benchmarks/learned_policy.py --model $OUT/model --train-command "$TRAIN" \
  --trace $OUT/eval/real-101 --trace $OUT/eval/real-202-40n --trace $OUT/eval/synth-303 --json $OUT/verdicts.json
