#!/usr/bin/env bash
# NeuroKube against kube-scheduler on the local control plane: the same 2,000 pods on 500 KWOK
# nodes, placed once by kube-scheduler (default profile) and once by NeuroKube's binder, in one
# run. Writes out/bench/scheduling.json and the "scheduling" section of docs/BENCHMARKS.md.
# Three rounds (kube-scheduler, then NeuroKube, in turn; medians reported): about 15 minutes on
# 2 cores. ROUNDS=1 for a single round.
# EXTRA="--extender" adds the extender phase; NODES=1000 for the extender goal's size.
set -euo pipefail
cd "$(dirname "$0")/.."
NODES=${NODES:-500}
PODS=${PODS:-2000}
ROUNDS=${ROUNDS:-3}
mkdir -p out/bench
# shellcheck disable=SC2086 # EXTRA holds several arguments on purpose
.venv/bin/neurokube bench scheduling --nodes "$NODES" --pods "$PODS" --rounds "$ROUNDS" --json out/bench/scheduling.json ${EXTRA:-}
