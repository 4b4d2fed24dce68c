"""A simulated day of the world: the serving policy places the day's pods, decisions are logged.

The trace is cut into days (pods by creation time; each day starts on an empty cluster and its
pods run to completion). The day is replayed with the current champion inside
:class:`LearnedPolicy` (no champion: the default-scoring fallback, counted) under epsilon-greedy
exploration, so every decision carries its logging propensity. What the world observes is
returned separately: the decision log (as the binder writes it, outcomes empty), the outcomes
attributed to each decision, and the usage the cluster exposed (a :class:`UsageSource` for the
emulator's backfill and for the snapshot step).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from neurokube.adapters.usage import NodeUsage, PodUsage, Snapshot
from neurokube.learning.outcomes import attribute
from neurokube.model.decision_log import OUTCOME_COLUMNS, DecisionRecorder
from neurokube.model.explore import ExploringPolicy
from neurokube.model.policy import LearnedPolicy
from neurokube.model.reward import RewardWeights
from neurokube.model.value_model import ValueModel
from neurokube.sim import SimConfig, replay
from neurokube.sim.engine import ReplayResult
from neurokube.trace.model import Trace
from neurokube.trace.usage import pod_usage
from pipelines.settings import DAY_S

OUTCOME_TABLE_COLUMNS = ("decision_id", *(c for c in OUTCOME_COLUMNS if c != "cost"))
"""The outcomes table: every outcome column of the decision log except the derived ``cost``."""


def days_in(trace: Trace) -> int:
    return max(1, int(np.ceil(float(trace.pods.creation_s.max(initial=0.0) + 1) / DAY_S)))


def day_trace(trace: Trace, day: int) -> Trace:
    """Pods created during day ``day`` (0-based), with times from that day's midnight."""
    p = trace.pods
    mask = (p.creation_s >= day * DAY_S) & (p.creation_s < (day + 1) * DAY_S)
    cut = p.take(mask)
    cut = dataclasses.replace(cut, creation_s=cut.creation_s - day * DAY_S)
    return Trace(name=f"{trace.name}-d{day}", nodes=trace.nodes, pods=cut, profiles=trace.profiles)


@dataclass
class DayResult:
    metrics: dict[str, float]
    decisions: pd.DataFrame
    """As logged at decision time: outcome columns empty."""
    candidates: pd.DataFrame
    outcomes: pd.DataFrame
    usage: ReplayUsage
    model_version: str
    fallbacks: int


class ReplayUsage:
    """The usage a replayed day exposed, as the emulator's ``UsageSource`` (epoch seconds)."""

    def __init__(self, trace: Trace, result: ReplayResult, start_epoch_s: int, step_s: int) -> None:
        self.trace, self.start, self.step = trace, start_epoch_s, step_s
        pods = trace.pods
        self.bind_step = np.where(np.isfinite(result.bind_s), np.rint(np.nan_to_num(result.bind_s) / step_s), -1
                                  ).astype(np.int64)
        self.run_steps = np.ceil(np.round(pods.duration_s / step_s, 9)).astype(np.int64)
        self.node_of = result.node_of
        self.pod_names = pods.name.astype(str)
        self.namespaces = pods.namespace.astype(str)
        steps = DAY_S // step_s
        self.day_cpu_core_s = float(result.node_cpu[:steps].sum()) * step_s / 1000.0 if result.node_cpu is not None \
            else 0.0
        """CPU used on all nodes during the day's 24 hours (what its snapshots should add up to)."""

    def snapshot(self, now_s: float) -> Snapshot:
        nodes, pods = self.trace.nodes, self.trace.pods
        k = int((now_s - self.start) // self.step)
        bound = self.bind_step
        running = np.flatnonzero((bound >= 0) & (bound <= k) & (k < bound + self.run_steps))
        cpu, mem = pod_usage(pods, self.trace.profiles, running, (k - self.bind_step[running]) * float(self.step))
        where = self.node_of[running]
        node_cpu = np.bincount(where, weights=cpu, minlength=len(nodes))
        node_mem = np.bincount(where, weights=mem, minlength=len(nodes))
        node_names = nodes.name.astype(str)
        return Snapshot(
            nodes=[NodeUsage(node_names[i], int(nodes.cpu_milli[i]), int(nodes.memory_mib[i]), float(node_cpu[i]),
                             float(node_mem[i])) for i in range(len(nodes))],
            pods=[PodUsage(self.namespaces[p], self.pod_names[p], node_names[n], int(pods.cpu_request_milli[p]),
                           int(pods.memory_request_mib[p]), float(c), float(m))
                  for p, n, c, m in zip(running, where, cpu, mem, strict=True)])


def run_day(trace: Trace, champion: ValueModel | None, *, start_epoch_s: int, epsilon: float, seed: int,
            weights: RewardWeights, config: SimConfig = SimConfig()) -> DayResult:
    learned = LearnedPolicy(champion, np.random.default_rng(seed))
    recorder = DecisionRecorder(
        source=trace.name, policy=learned.name, node_names=np.asarray(trace.nodes.name, dtype=object),
        pod_names=np.char.add(np.char.add(trace.pods.namespace.astype(str), "/"), trace.pods.name.astype(str)),
        workload_names=_workload_names(trace), model_version=learned.version)
    behaviour = ExploringPolicy(learned, epsilon, np.random.default_rng(seed + 10_007), recorder)
    result = replay(trace, behaviour, config, record=True)
    decisions = recorder.decisions()
    decisions["ts_s"] = decisions["ts_s"].astype(float) + start_epoch_s  # epoch seconds, as the live log has them
    outcomes = pd.DataFrame({c: pd.Series(dtype="float64") for c in OUTCOME_TABLE_COLUMNS})
    if len(decisions):
        pod_index, node_index = recorder.indices()
        contention, node_h, experienced = attribute(trace, result, pod_index, node_index, config.step_s)
        outcomes = pd.DataFrame({"decision_id": decisions["decision_id"], "added_contention_core_s": contention,
                                 "added_node_h": node_h, "node_contention_core_s": experienced})
    for column in OUTCOME_COLUMNS:
        decisions[column] = np.nan
    metrics = {k: float(v) for k, v in result.metrics.items()}
    metrics["fallback_decisions"] = float(learned.fallbacks)
    metrics["cost"] = float(weights.cost(metrics["contention_core_s"], metrics["node_hours"]))
    return DayResult(metrics=metrics, decisions=decisions, candidates=recorder.candidates(), outcomes=outcomes,
                     usage=ReplayUsage(trace, result, start_epoch_s, config.step_s), model_version=learned.version,
                     fallbacks=learned.fallbacks)


def _workload_names(trace: Trace) -> np.ndarray:
    ids = trace.pods.workload_ids()
    names = np.empty(ids.max() + 1 if ids.size else 0, dtype=object)
    names[ids] = np.char.add(np.char.add(trace.pods.namespace.astype(str), "/"), trace.pods.workload.astype(str))
    return names
