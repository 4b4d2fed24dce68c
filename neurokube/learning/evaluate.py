"""Judge a model on traces it never saw: replay it beside every peer and the oracle."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurokube.model.policy import LearnedPolicy
from neurokube.model.value_model import ValueModel
from neurokube.policies import PEER_POLICIES, make_policy
from neurokube.sim import SimConfig, replay
from neurokube.trace.model import Trace

GOAL_CONTENTION_VS_ORACLE = 1.15
GOAL_PENDING_VS_BEST_PEER = 1.10


@dataclass
class Verdict:
    trace: str
    metrics: dict[str, dict[str, float]]
    goals: dict[str, bool]
    ratios: dict[str, float]


def compare(trace: Trace, model: ValueModel, config: SimConfig = SimConfig(), seed: int = 0) -> Verdict:
    metrics = {}
    for name in (*PEER_POLICIES, "oracle"):
        metrics[name] = replay(trace, make_policy(name, trace=trace, seed=seed, step_s=config.step_s), config).metrics
    learned = LearnedPolicy(model, np.random.default_rng(seed))
    metrics["neurokube"] = dict(replay(trace, learned, config).metrics)
    metrics["neurokube"]["fallback_decisions"] = learned.fallbacks
    nk, oracle = metrics["neurokube"], metrics["oracle"]
    peers = [metrics[p] for p in PEER_POLICIES]
    best_peer_contention = min(p["contention_core_s"] for p in peers)
    best_peer_pending = min(p["pending_pod_s"] for p in peers)
    ratios = {
        "contention_vs_oracle": nk["contention_core_s"] / oracle["contention_core_s"]
        if oracle["contention_core_s"] > 0 else (0.0 if nk["contention_core_s"] == 0 else float("inf")),
        "contention_vs_best_peer": nk["contention_core_s"] / best_peer_contention
        if best_peer_contention > 0 else (0.0 if nk["contention_core_s"] == 0 else float("inf")),
        "node_hours_vs_best_peer": nk["node_hours"] / min(p["node_hours"] for p in peers),
        "pending_vs_best_peer": nk["pending_pod_s"] / best_peer_pending if best_peer_pending > 0 else 1.0,
    }
    goals = {
        "contention <= 1.15 x oracle": nk["contention_core_s"] <= GOAL_CONTENTION_VS_ORACLE * oracle["contention_core_s"]
        + 1e-9,
        "contention < every peer": all(nk["contention_core_s"] < p["contention_core_s"] for p in peers)
        or nk["contention_core_s"] == 0 == best_peer_contention,
        "node_hours <= every peer": all(nk["node_hours"] <= p["node_hours"] for p in peers),
        "pending <= 1.1 x best peer": nk["pending_pod_s"] <= GOAL_PENDING_VS_BEST_PEER * best_peer_pending + 1e-9,
    }
    return Verdict(trace=trace.name, metrics=metrics, goals=goals, ratios=ratios)
