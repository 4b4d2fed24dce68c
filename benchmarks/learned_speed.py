"""Learned-policy speed: scoring 1,000 candidate nodes for one pod (goal p99 <= 2 ms) and
training on 1 million logged decisions (goal < 5 minutes), on this machine.

Usage: .venv/bin/python benchmarks/learned_speed.py [--model MODEL_DIR]
Writes the "learned-speed" section of docs/BENCHMARKS.md.

* Scoring: ``LearnedPolicy.select`` on a 1,000-node cluster with varied requests and usage:
  features for all feasible nodes, the model on the shortlist (64), the choice; once with the
  model's trees compiled (lleaves, as the live functions serve it with
  ``NEUROKUBE_COMPILED_MODEL_DIR``) and once with LightGBM's own predict, pod by pod in turn. It
  also reports the model run on all 1,000 rows, so the shortlist's effect is visible.
* Training: experience is collected by replaying a synthetic trace under the hand-written
  policies with exploration (real decision logs, real outcomes). It is resampled to 1,000,000
  rows with 1 % feature jitter, and ``fit_value_model`` runs with the default settings.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._report import write_section  # noqa: E402
from neurokube.adapters.compiled_model import compile_model  # noqa: E402
from neurokube.adapters.model_files import load_value_model  # noqa: E402
from neurokube.features import candidate_features  # noqa: E402
from neurokube.learning.collect import run_episode  # noqa: E402
from neurokube.learning.fit import FitSettings, fit_value_model  # noqa: E402
from neurokube.model.decision_log import FEATURE_COLUMNS  # noqa: E402
from neurokube.model.policy import LearnedPolicy  # noqa: E402
from neurokube.model.reward import RewardWeights  # noqa: E402
from neurokube.policies import make_policy  # noqa: E402
from neurokube.policies.base import ClusterView, NodeMetrics, PodSpec, WorkloadUsage  # noqa: E402
from neurokube.trace.assemble import ArrivalSettings  # noqa: E402
from neurokube.trace.synth import SynthSettings, synth_trace  # noqa: E402


def experience() -> pd.DataFrame:
    trace = synth_trace("bench-exp", SynthSettings(arrivals=ArrivalSettings(hours=12, seed=5), nodes=40))
    frames = []
    for j, name in enumerate(("default", "most-allocated", "tlp")):
        ep = run_episode(trace, make_policy(name, trace=trace, seed=j), epsilon=0.2, seed=j,
                         weights=RewardWeights(), keep_candidates=False)
        frames.append(ep.decisions)
    return pd.concat(frames, ignore_index=True)


def big_view(n: int, rng: np.random.Generator) -> ClusterView:
    cap_c = rng.choice([16000, 32000, 64000, 96000], n).astype(np.int64)
    cap_m = (cap_c // 1000 * 4096).astype(np.int64)
    req_c = (cap_c * rng.uniform(0, 0.9, n)).astype(np.int64)
    req_m = (cap_m * rng.uniform(0, 0.9, n)).astype(np.int64)
    used = req_c * rng.uniform(0.2, 1.2, n)
    m = NodeMetrics(cpu_mean=used, cpu_max=used * 1.3, cpu_std=used * 0.1, cpu_trend=np.zeros(n),
                    mem_mean=req_m * 0.7, mem_max=req_m * 0.8, mem_std=req_m * 0.05, mem_trend=np.zeros(n),
                    samples=np.full(n, 5), age_s=np.full(n, 60.0))
    hist = WorkloadUsage(samples=np.full(50, 100), cpu_mean=rng.uniform(100, 2000, 50), cpu_std=rng.uniform(10, 300, 50),
                         cpu_max=rng.uniform(500, 4000, 50), mem_mean=rng.uniform(100, 4000, 50),
                         mem_max=rng.uniform(200, 6000, 50), cpu_ratio_mean=rng.uniform(0.2, 1.0, 50))
    return ClusterView(now_s=50_000.0, alloc_cpu=cap_c, alloc_mem=cap_m, req_cpu=req_c, req_mem=req_m,
                       nz_req_cpu=req_c, nz_req_mem=req_m, pod_count=rng.integers(0, 30, n), metrics=m,
                       lim_cpu=req_c, unlimited_pods=rng.integers(0, 3, n), workloads=hist)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, help="score with this model (default: the one trained here)")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--decisions", type=int, default=2000)
    args = ap.parse_args()
    rng = np.random.default_rng(0)

    base = experience()
    idx = rng.integers(0, len(base), args.rows)
    big = base.iloc[idx].reset_index(drop=True)
    feats = big[list(FEATURE_COLUMNS)].to_numpy(dtype=np.float32)
    big[list(FEATURE_COLUMNS)] = feats * rng.normal(1.0, 0.01, feats.shape).astype(np.float32)
    t0 = time.perf_counter()
    model = fit_value_model(big, RewardWeights(), FitSettings())
    train_s = time.perf_counter() - t0
    print(f"training on {len(big):,} decisions: {train_s:.1f} s", flush=True)
    if args.model:
        model = load_value_model(args.model)

    view = big_view(1000, rng)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="neurokube-compiled-") as cache:
        compiled_model = model.with_compiled(compile_model(model, Path(cache)))
    compile_s = time.perf_counter() - started
    print(f"compiled the model's {len(model.boosters)} boosters: {compile_s:.1f} s", flush=True)
    policies = {"lightgbm": LearnedPolicy(model, np.random.default_rng(1)),
                "compiled": LearnedPolicy(compiled_model, np.random.default_rng(1))}
    pods = [PodSpec(int(rng.choice([250, 500, 1000, 2000])), int(rng.choice([256, 1024, 4096])),
                    0, 0, 1, int(rng.integers(0, 50))) for _ in range(args.decisions)]
    for policy in policies.values():
        for pod in pods[:20]:  # warm-up
            policy.select(pod, view)
    select_us: dict[str, list[float]] = {name: [] for name in policies}
    same = 0
    for pod in pods:  # side by side: each pod by one policy, then the other
        chosen = []
        for name, policy in policies.items():
            t = time.perf_counter_ns()
            chosen.append(policy.select(pod, view))
            select_us[name].append((time.perf_counter_ns() - t) / 1000)
        same += chosen[0] == chosen[1]
    full_us = []
    for pod in pods[:200]:
        t = time.perf_counter_ns()
        model.cost(candidate_features(pod, view, np.arange(1000)))
        full_us.append((time.perf_counter_ns() - t) / 1000)
    p50, p99 = np.percentile(select_us["lightgbm"], [50, 99])
    c50, c99 = np.percentile(select_us["compiled"], [50, 99])
    f50, f99 = np.percentile(full_us, [50, 99])
    print(f"select, 1,000 nodes: LightGBM p50 {p50:.0f} us, p99 {p99:.0f} us; compiled p50 {c50:.0f} us, "
          f"p99 {c99:.0f} us; same node {same} of {len(pods)}; model on all 1,000 rows: p50 {f50:.0f} us, "
          f"p99 {f99:.0f} us", flush=True)
    rows = [
        "| measurement | result | goal |", "|---|---:|---|",
        f"| select one node among 1,000 (features for all, model on a 64-node shortlist), compiled trees "
        f"(as the functions serve with `NEUROKUBE_COMPILED_MODEL_DIR`), p50 | {c50 / 1000:.2f} ms | |",
        f"| same, p99 ({args.decisions:,} decisions) | {c99 / 1000:.2f} ms | <= 2 ms: "
        f"{'met' if c99 <= 2000 else 'NOT met'} |",
        f"| same with LightGBM's own predict, p50 / p99 | {p50 / 1000:.2f} / {p99 / 1000:.2f} ms | <= 2 ms p99: "
        f"{'met' if p99 <= 2000 else 'NOT met'} |",
        f"| same node chosen by both | {same:,} of {len(pods):,} | |",
        f"| compiling the model's {len(model.boosters)} boosters (lleaves, once per model; cached) | "
        f"{compile_s:.1f} s | |",
        f"| model on all 1,000 rows (no shortlist), LightGBM, p50 / p99 | {f50 / 1000:.1f} / {f99 / 1000:.1f} ms "
        f"| for comparison |",
        f"| fit both models on {len(big):,} decisions ({FitSettings().rounds} rounds, 2 threads) | "
        f"{train_s:.0f} s | < 300 s: {'met' if train_s < 300 else 'NOT met'} |",
    ]
    body = "\n".join(rows) + f"\n\nModel: {'--model ' + str(args.model) if args.model else 'trained in this run'}; " \
        "the two forms of the same model timed alternately, pod by pod, in one process on a machine shared " \
        f"with nothing else by this script ({statistics.median(select_us['compiled']):.0f} us median select " \
        f"compiled, {statistics.median(select_us['lightgbm']):.0f} us with LightGBM)."
    write_section("learned-speed", "Learned policy speed", "python benchmarks/learned_speed.py", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
