"""Experience: replay a trace under a behaviour policy, log every decision, attribute outcomes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from neurokube.learning.outcomes import added_memory_overflow, attribute
from neurokube.model.decision_log import DecisionRecorder
from neurokube.model.explore import ExploringPolicy
from neurokube.model.reward import RewardWeights
from neurokube.policies.base import Policy
from neurokube.sim import SimConfig, replay
from neurokube.trace.model import Trace


MEM_OVERFLOW_COLUMN = "added_mem_overflow_gib_s"
"""Replay experience only (not in the decision-log schema): the decision's added memory overflow."""


@dataclass
class Episode:
    decisions: pd.DataFrame
    """Exactly the decision-log schema (model/decision_log.py)."""
    candidates: pd.DataFrame
    metrics: dict[str, float]
    mem_overflow_gib_s: np.ndarray | None = None
    """Added memory overflow of each decision, aligned with ``decisions``."""

    def training_rows(self) -> pd.DataFrame:
        """The decisions with their memory overflow as one more column, for fitting."""
        if self.mem_overflow_gib_s is None or not len(self.decisions):
            return self.decisions
        return self.decisions.assign(**{MEM_OVERFLOW_COLUMN: self.mem_overflow_gib_s})


def run_episode(trace: Trace, base: Policy, *, epsilon: float, seed: int, weights: RewardWeights,
                config: SimConfig = SimConfig(), model_version: str = "", keep_candidates: bool = True) -> Episode:
    recorder = DecisionRecorder(
        source=trace.name, policy=base.name, node_names=np.asarray(trace.nodes.name, dtype=object),
        pod_names=np.char.add(np.char.add(trace.pods.namespace.astype(str), "/"), trace.pods.name.astype(str)),
        workload_names=_workload_names(trace), model_version=model_version)
    behaviour = ExploringPolicy(base, epsilon, np.random.default_rng(seed + 10_007), recorder)
    result = replay(trace, behaviour, config, record=True)
    decisions = recorder.decisions()
    overflow = None
    if len(decisions):
        pod_index, node_index = recorder.indices()
        contention, node_h, experienced = attribute(trace, result, pod_index, node_index, config.step_s)
        decisions["node_contention_core_s"] = experienced
        decisions["added_contention_core_s"] = contention
        decisions["added_node_h"] = node_h
        overflow = added_memory_overflow(trace, result, pod_index, node_index, config.step_s)
        decisions["cost"] = weights.cost(contention, node_h, overflow)
    candidates = recorder.candidates() if keep_candidates else pd.DataFrame()
    return Episode(decisions=decisions, candidates=candidates, metrics=result.metrics, mem_overflow_gib_s=overflow)


def _workload_names(trace: Trace) -> np.ndarray:
    ids = trace.pods.workload_ids()
    names = np.empty(ids.max() + 1 if ids.size else 0, dtype=object)
    keys = np.char.add(np.char.add(trace.pods.namespace.astype(str), "/"), trace.pods.workload.astype(str))
    names[ids] = keys
    return names
