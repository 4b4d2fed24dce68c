"""Step 5: judge the candidate two ways.

* Off-policy, on the logged decisions: IPS / SNIPS / DR estimates of the candidate's mean reward
  per decision (:func:`neurokube.learning.loop.ope_report`), beside the logged policy's own.
* In replay, on a held-out trace no model trained on: the candidate, the current champion and
  kube-scheduler's default scoring, each scored with the reward weights:
  ``cost = weights.cost(contention_core_s, node_hours)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from neurokube.learning.collect import Episode
from neurokube.learning.loop import ope_report
from neurokube.model.policy import LearnedPolicy
from neurokube.model.reward import RewardWeights
from neurokube.model.value_model import ValueModel
from neurokube.policies import make_policy
from neurokube.sim import SimConfig, replay
from neurokube.sim.engine import ReplayResult
from neurokube.trace.model import Trace


@dataclass
class Evaluation:
    ope: dict[str, float]
    replay: dict[str, dict[str, float]]
    """Policy name (``candidate``, ``champion``, ``default``) -> replay metrics with ``cost``."""
    results: list[ReplayResult]


def off_policy(model: ValueModel, dataset: pd.DataFrame, candidates: pd.DataFrame, sample: int,
               seed: int) -> dict[str, float]:
    logged = candidates[candidates["decision_id"].isin(set(dataset["decision_id"]))]
    counts = logged.groupby("decision_id")["chosen"].sum()
    complete = set(counts[counts == 1].index)
    dataset = dataset[dataset["decision_id"].isin(complete)]
    if dataset.empty:
        return {"dr": float("nan"), "snips": float("nan"), "ips": float("nan"), "decisions": 0}
    episode = Episode(decisions=dataset, candidates=logged[logged["decision_id"].isin(complete)], metrics={})
    return ope_report(model, [episode], sample=sample, seed=seed)


def held_out(candidate: ValueModel, champion: ValueModel | None, trace: Trace, weights: RewardWeights,
             seed: int, config: SimConfig = SimConfig()) -> tuple[dict[str, dict[str, float]], list[ReplayResult]]:
    policies = {"default": make_policy("default", trace=trace, seed=seed, step_s=config.step_s),
                "candidate": LearnedPolicy(candidate, np.random.default_rng(seed))}
    if champion is not None:
        policies["champion"] = LearnedPolicy(champion, np.random.default_rng(seed))
    metrics, results = {}, []
    for name, policy in policies.items():
        result = replay(trace, policy, config)
        result.policy = name
        m = {k: float(v) for k, v in result.metrics.items() if np.isfinite(v)}
        m["cost"] = float(weights.cost(m["contention_core_s"], m["node_hours"]))
        metrics[name] = m
        results.append(result)
    return metrics, results


def evaluate(candidate: ValueModel, champion: ValueModel | None, dataset: pd.DataFrame, candidates: pd.DataFrame,
             trace: Trace, weights: RewardWeights, *, seed: int = 0, ope_sample: int = 5000) -> Evaluation:
    metrics, results = held_out(candidate, champion, trace, weights, seed)
    return Evaluation(ope=off_policy(candidate, dataset, candidates, ope_sample, seed), replay=metrics,
                      results=results)
