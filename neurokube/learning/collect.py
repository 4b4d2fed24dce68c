"""Experience: replay a trace under a behaviour policy, log every decision, attribute outcomes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from neurokube.learning.lookahead import SUCCESSOR_COLUMN, successors
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
    successor_ids: np.ndarray | None = None
    """The ``decision_id`` of each decision's successor on its node ("" for none;
    :func:`neurokube.learning.lookahead.successors`), aligned with ``decisions``."""

    def training_rows(self) -> pd.DataFrame:
        """The decisions with their memory overflow as one more column, for fitting, and their
        successor on the node when the episode found them (for state-aware targets)."""
        if not len(self.decisions):
            return self.decisions
        extra = {}
        if self.mem_overflow_gib_s is not None:
            extra[MEM_OVERFLOW_COLUMN] = self.mem_overflow_gib_s
        if self.successor_ids is not None:
            extra[SUCCESSOR_COLUMN] = self.successor_ids
        return self.decisions.assign(**extra) if extra else self.decisions


def run_episode(trace: Trace, base: Policy, *, epsilon: float, seed: int, weights: RewardWeights,
                config: SimConfig = SimConfig(), model_version: str = "", keep_candidates: bool = True,
                successors_on_node: bool = False, run: str = "") -> Episode:
    """One replay of ``base`` with epsilon exploration, its decisions and their outcomes;
    ``successors_on_node`` also finds each decision's successor on its node (state-aware targets,
    :mod:`neurokube.learning.lookahead`), work a one-step fit does not need. ``run`` goes into the
    decision ids, to tell apart several replays of one policy on one trace."""
    recorder = DecisionRecorder(
        source=trace.name, policy=base.name, node_names=np.asarray(trace.nodes.name, dtype=object),
        pod_names=np.char.add(np.char.add(trace.pods.namespace.astype(str), "/"), trace.pods.name.astype(str)),
        workload_names=_workload_names(trace), model_version=model_version, run=run)
    behaviour = ExploringPolicy(base, epsilon, np.random.default_rng(seed + 10_007), recorder)
    result = replay(trace, behaviour, config, record=True)
    decisions = recorder.decisions()
    overflow = successor_ids = None
    if len(decisions):
        pod_index, node_index = recorder.indices()
        contention, node_h, experienced = attribute(trace, result, pod_index, node_index, config.step_s)
        decisions["node_contention_core_s"] = experienced
        decisions["added_contention_core_s"] = contention
        decisions["added_node_h"] = node_h
        overflow = added_memory_overflow(trace, result, pod_index, node_index, config.step_s)
        decisions["cost"] = weights.cost(contention, node_h, overflow)
    if len(decisions) and successors_on_node:
        end_s = result.bind_s[pod_index] + trace.pods.duration_s[pod_index]
        nxt = successors(decisions["ts_s"].to_numpy(dtype=np.float64), end_s, node_index)
        ids = decisions["decision_id"].to_numpy(dtype=object)
        successor_ids = np.where(nxt >= 0, ids[np.maximum(nxt, 0)], "").astype(object)
    candidates = recorder.candidates() if keep_candidates else pd.DataFrame()
    return Episode(decisions=decisions, candidates=candidates, metrics=result.metrics, mem_overflow_gib_s=overflow,
                   successor_ids=successor_ids)


def _workload_names(trace: Trace) -> np.ndarray:
    ids = trace.pods.workload_ids()
    names = np.empty(ids.max() + 1 if ids.size else 0, dtype=object)
    keys = np.char.add(np.char.add(trace.pods.namespace.astype(str), "/"), trace.pods.workload.astype(str))
    names[ids] = keys
    return names
