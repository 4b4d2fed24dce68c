"""Step 5: judge the candidate three ways.

* Off-policy, on the logged decisions: IPS / SNIPS / DR estimates of the candidate's mean reward
  per decision (:func:`neurokube.learning.loop.ope_report`), beside the logged policy's own. One
  step each: optimistic, they cannot see that the candidate leaves other states for later pods.
* By model-based rollout, on the logged days: the logged period rebuilt as a trace from the
  decision log, the per-pod usage and the node snapshots (:mod:`neurokube.learning.rollout`,
  which says what the logs lack and how it is filled), and the candidate, the champion and
  kube-scheduler's default scoring replayed on it. Sees the state shift; ``None`` when the logs
  cannot give it (no per-pod usage), with the reason.
* In replay, on a held-out trace no model trained on: the same three policies, each scored with
  the reward weights: ``cost = weights.cost(contention_core_s, node_hours)``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from neurokube.errors import InputError
from neurokube.learning import rollout
from neurokube.learning.collect import Episode
from neurokube.learning.loop import ope_report
from neurokube.logs import event
from neurokube.model.policy import LearnedPolicy
from neurokube.model.reward import RewardWeights
from neurokube.model.value_model import ValueModel
from neurokube.policies import make_policy
from neurokube.sim import SimConfig, replay
from neurokube.sim.engine import ReplayResult
from neurokube.trace.model import Trace

log = logging.getLogger("neurokube.pipelines.evaluate")


@dataclass
class Evaluation:
    ope: dict[str, float]
    replay: dict[str, dict[str, float]]
    """Policy name (``candidate``, ``champion``, ``default``) -> replay metrics with ``cost``."""
    results: list[ReplayResult]
    rollout: rollout.RolloutEstimate | None = None
    """The same policies' estimated metrics on the logged days (same names as :attr:`replay`)."""
    rollout_note: str = ""
    """Why there is no rollout estimate, when there is none."""


@dataclass(frozen=True)
class LoggedDays:
    """What the rollout estimate reads: the logs of ``[start_s, end_s)`` (epoch seconds), as ingested."""

    decisions: pd.DataFrame
    candidates: pd.DataFrame
    snapshots: pd.DataFrame
    pod_usage: pd.DataFrame
    start_s: float
    end_s: float
    step_s: int
    """The snapshots' resolution."""

    def window(self, frame: pd.DataFrame, column: str) -> pd.DataFrame:
        if frame is None or frame.empty or column not in frame.columns:
            return frame
        t = frame[column].astype(float)
        return frame[(t >= self.start_s) & (t < self.end_s)]


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


def policies(candidate: ValueModel, champion: ValueModel | None, seed: int, step_s: int
             ) -> dict[str, rollout.PolicyFactory]:
    """The policies every judgement replays: ``default``, ``candidate`` and, when there is one, ``champion``."""
    out: dict[str, rollout.PolicyFactory] = {
        "default": lambda trace: make_policy("default", trace=trace, seed=seed, step_s=step_s),
        "candidate": lambda trace: LearnedPolicy(candidate, np.random.default_rng(seed))}
    if champion is not None:
        out["champion"] = lambda trace: LearnedPolicy(champion, np.random.default_rng(seed))
    return out


def held_out(candidate: ValueModel, champion: ValueModel | None, trace: Trace, weights: RewardWeights,
             seed: int, config: SimConfig = SimConfig()) -> tuple[dict[str, dict[str, float]], list[ReplayResult]]:
    metrics, results = {}, []
    for name, make in policies(candidate, champion, seed, config.step_s).items():
        result = replay(trace, make(trace), config)
        result.policy = name
        m = {k: float(v) for k, v in result.metrics.items() if np.isfinite(v)}
        m["cost"] = float(weights.cost(m["contention_core_s"], m["node_hours"]))
        metrics[name] = m
        results.append(result)
    return metrics, results


def by_rollout(candidate: ValueModel, champion: ValueModel | None, logs: LoggedDays, weights: RewardWeights,
               seed: int, config: SimConfig = SimConfig()) -> tuple[rollout.RolloutEstimate | None, str]:
    """The rollout estimate of every policy on ``logs``, or None and why not."""
    decisions = logs.window(logs.decisions, "ts_s")
    pods = logs.window(logs.pod_usage, "ts")
    why = ("no logged decisions in the window" if decisions is None or decisions.empty else
           "no per-pod usage in the window (pod_usage/)" if pods is None or pods.empty else "")
    if not why:
        try:
            estimate = rollout.estimate(
                decisions, pods, policies(candidate, champion, seed, config.step_s), weights, step_s=logs.step_s,
                nodes=logs.window(logs.snapshots, "ts"), candidates=logs.candidates, config=config, name="logged-days")
        except InputError as exc:
            why = f"the logs could not be rebuilt: {exc}"
        else:
            r = estimate.reconstruction
            event(log, "rollout estimate", pods=int(r["pods"]), nodes=int(r["nodes"]), hours=round(r["hours"], 1),
                  **{f"{p}_cost": round(m["cost"], 1) for p, m in estimate.metrics.items()},
                  logged_observed_cost=round(estimate.logged["observed_cost"], 1),
                  logged_replayed_cost=round(estimate.logged["replayed_cost"], 1))
            return estimate, ""
    event(log, "no rollout estimate", level=logging.WARNING, why=why, start_s=logs.start_s, end_s=logs.end_s)
    return None, why


def evaluate(candidate: ValueModel, champion: ValueModel | None, dataset: pd.DataFrame, candidates: pd.DataFrame,
             trace: Trace, weights: RewardWeights, *, seed: int = 0, ope_sample: int = 5000,
             logs: LoggedDays | None = None) -> Evaluation:
    metrics, results = held_out(candidate, champion, trace, weights, seed)
    estimate, note = by_rollout(candidate, champion, logs, weights, seed) if logs is not None else (
        None, "not asked (rollout_days 0)")
    return Evaluation(ope=off_policy(candidate, dataset, candidates, ope_sample, seed), replay=metrics,
                      results=results, rollout=estimate, rollout_note=note)
