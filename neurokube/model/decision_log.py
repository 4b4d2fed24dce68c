"""The decision log: one schema for the replay's experience and the live binder's decisions.

Two tables, written as Parquet by :mod:`neurokube.adapters.decision_store`:

``decisions``: one row per placement decision.
  decision_id, source, ts_s, pod, pod_uid, workload, qos, policy, model_version, node,
  propensity, n_candidates, fallback, f_<feature>... (the chosen node's features), and the
  outcome columns added_contention_core_s, added_node_h, node_contention_core_s (the node's
  whole overflow while the pod ran there), cost (empty until outcomes are joined).
``candidates``: one row per (decision, feasible node).
  decision_id, node, propensity (under the behaviour policy), chosen, f_<feature>...
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from neurokube.features import FEATURE_NAMES
from neurokube.policies.base import ClusterView, PodSpec

QOS_NAMES = ("Guaranteed", "Burstable", "BestEffort")
FEATURE_COLUMNS = tuple(f"f_{n}" for n in FEATURE_NAMES)
DECISION_COLUMNS = (
    "decision_id", "source", "ts_s", "pod", "pod_uid", "workload", "qos", "policy", "model_version",
    "node", "propensity", "n_candidates", "fallback", *FEATURE_COLUMNS,
    "added_contention_core_s", "added_node_h", "node_contention_core_s", "cost",
)
CANDIDATE_COLUMNS = ("decision_id", "node", "propensity", "chosen", *FEATURE_COLUMNS)
OUTCOME_COLUMNS = ("added_contention_core_s", "added_node_h", "node_contention_core_s", "cost")


def check_schema(frame: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        from neurokube.errors import InputError

        raise InputError(f"{what} lacks column {missing[0]!r}", what, f"{len(missing)} of the schema's columns missing")


@dataclass
class DecisionRecorder:
    """Collects decisions during a replay (or in the binder) with their candidates' features."""

    source: str
    policy: str
    node_names: np.ndarray
    pod_names: np.ndarray | None = None
    workload_names: np.ndarray | None = None
    model_version: str = ""
    run: str = ""
    """Tells apart the decision ids of several replays of one policy on one trace (pooled
    collections): ``source:policy:run:seq`` when set, ``source:policy:seq`` otherwise."""
    rows: list[dict] = field(default_factory=list)
    candidate_blocks: list[tuple[int, np.ndarray, np.ndarray, int, np.ndarray]] = field(default_factory=list)

    def record(self, pod: PodSpec, view: ClusterView, candidates: np.ndarray, chosen: int,
               candidate_propensity: np.ndarray, features: np.ndarray, fallback: str = "") -> None:
        seq = len(self.rows)
        where = int(np.flatnonzero(candidates == chosen)[0])
        self.rows.append({
            "seq": seq, "ts_s": float(view.now_s), "pod_index": pod.index, "workload_id": pod.workload,
            "qos": QOS_NAMES[pod.qos], "node_index": int(chosen),
            "propensity": float(candidate_propensity[where]), "n_candidates": int(candidates.size),
            "fallback": fallback, "features": features[where],
        })
        self.candidate_blocks.append((seq, candidates.astype(np.int64), candidate_propensity.astype(np.float64),
                                      where, features))

    def decisions(self) -> pd.DataFrame:
        n = len(self.rows)
        if n == 0:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in DECISION_COLUMNS})
        seq = np.array([r["seq"] for r in self.rows])
        pod_idx = np.array([r["pod_index"] for r in self.rows])
        wl_idx = np.array([r["workload_id"] for r in self.rows])
        frame = pd.DataFrame({
            "decision_id": self._ids(seq),
            "source": self.source,
            "ts_s": [r["ts_s"] for r in self.rows],
            "pod": self.pod_names[pod_idx] if self.pod_names is not None else pod_idx.astype(str),
            "pod_uid": "",
            "workload": self.workload_names[wl_idx] if self.workload_names is not None else wl_idx.astype(str),
            "qos": [r["qos"] for r in self.rows],
            "policy": self.policy, "model_version": self.model_version,
            "node": self.node_names[[r["node_index"] for r in self.rows]],
            "propensity": [r["propensity"] for r in self.rows],
            "n_candidates": [r["n_candidates"] for r in self.rows],
            "fallback": [r["fallback"] for r in self.rows],
        })
        feats = pd.DataFrame(np.vstack([r["features"] for r in self.rows]), columns=list(FEATURE_COLUMNS))
        frame = pd.concat([frame, feats], axis=1)
        for c in OUTCOME_COLUMNS:
            frame[c] = np.nan
        return frame

    def _ids(self, seq: np.ndarray) -> list[str]:
        prefix = f"{self.source}:{self.policy}:{self.run}:" if self.run else f"{self.source}:{self.policy}:"
        return [f"{prefix}{s}" for s in seq]

    def indices(self) -> tuple[np.ndarray, np.ndarray]:
        """Pod and node index (in the replayed trace) of every decision, in order."""
        return (np.array([r["pod_index"] for r in self.rows], dtype=np.int64),
                np.array([r["node_index"] for r in self.rows], dtype=np.int64))

    def candidates(self) -> pd.DataFrame:
        if not self.candidate_blocks:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in CANDIDATE_COLUMNS})
        ids, nodes, props, chosen, feats = [], [], [], [], []
        for seq, cand, prop, where, f in self.candidate_blocks:
            ids.append(np.full(cand.size, seq))
            nodes.append(cand)
            props.append(prop)
            mark = np.zeros(cand.size, dtype=bool)
            mark[where] = True
            chosen.append(mark)
            feats.append(f)
        seq = np.concatenate(ids)
        frame = pd.DataFrame({
            "decision_id": self._ids(seq),
            "node": self.node_names[np.concatenate(nodes)],
            "propensity": np.concatenate(props), "chosen": np.concatenate(chosen),
        })
        return pd.concat([frame, pd.DataFrame(np.vstack(feats), columns=list(FEATURE_COLUMNS))], axis=1)
