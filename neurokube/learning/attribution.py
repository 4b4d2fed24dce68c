"""Outcomes of decisions from observed usage: the simulator's attribution, computed from metrics.

The simulator attributes outcomes from its own state (:mod:`neurokube.learning.outcomes`). A live
decision has no simulator; its outcome comes from the usage the metrics pipeline sampled. The
definitions are the same (docs/METRICS.md, "Outcomes of a decision"): over the samples ``t`` of
the pod's life on the chosen node, with ``U_t`` the node's CPU usage (the pod's included),
``u_t`` the pod's own and ``cap_t`` the node's allocatable CPU, all in millicores,

* added contention ``sum_t max(0, U_t - cap_t) - max(0, U_t - u_t - cap_t)`` x step / 1000 core-s;
* experienced contention ``sum_t max(0, U_t - cap_t)`` x step / 1000 core-s;
* added node-hours: the samples at which the pod was the only pod on the node, x step / 3600.

Inputs are plain frames (no I/O here): the node usage of the snapshots, one row per (``ts``,
``node``) with ``cpu_used_milli`` and ``cpu_alloc_milli``; the pod usage, one row per (``ts``,
``pod``, ``node``) with ``cpu_used_milli`` (``pod`` is ``namespace/name``, as in the decision
log); the decisions (``decision_id``, ``ts_s`` in epoch seconds, ``pod``, ``node``).

A decision's pod life is the samples of its pod on its node at or after the decision and before
the next decision about the same pod name (a rescheduled pod is a new decision). A decision is
left without an outcome, and counted, when its pod has no sample on its node (``no_usage``), or
when its pod still runs at the newest sample (``running``: its life is not over, the outcome
would be cut short; a later night, with more snapshots, attributes it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from neurokube.errors import InputError

NODE_USAGE_COLUMNS = ("ts", "node", "cpu_used_milli", "cpu_alloc_milli")
"""What attribution reads of the node snapshot (``pipelines/usage.py`` COLUMNS has these)."""
POD_USAGE_COLUMNS = ("ts", "pod", "node", "cpu_used_milli")
"""What attribution reads of the per-pod usage: one row per (``ts``, ``pod``, ``node``)."""
DECISION_KEY_COLUMNS = ("decision_id", "ts_s", "pod", "node")
OUTCOME_NAMES = ("added_contention_core_s", "added_node_h", "node_contention_core_s")


@dataclass(frozen=True)
class Attribution:
    outcomes: pd.DataFrame
    """``decision_id`` and the :data:`OUTCOME_NAMES` of every attributed decision."""
    counts: dict[str, int]
    """``attributed``, ``running`` (pod alive at the newest sample) and ``no_usage`` (no sample)."""


def attribute(decisions: pd.DataFrame, nodes: pd.DataFrame, pods: pd.DataFrame, step_s: float) -> Attribution:
    """Attribute each decision's outcome from sampled usage (every ``step_s`` seconds)."""
    if step_s <= 0:
        raise InputError("the sample step must be positive", "attribution", f"got {step_s}")
    _require(decisions, DECISION_KEY_COLUMNS, "decisions")
    _require(nodes, NODE_USAGE_COLUMNS, "node usage")
    _require(pods, POD_USAGE_COLUMNS, "pod usage")
    empty = pd.DataFrame({"decision_id": pd.Series(dtype=object),
                          **{c: pd.Series(dtype="float64") for c in OUTCOME_NAMES}})
    n = len(decisions)
    if n == 0 or pods.empty or nodes.empty:
        return Attribution(empty, {"attributed": 0, "running": 0, "no_usage": n})

    d = pd.DataFrame({"decision_id": decisions["decision_id"].astype(str).to_numpy(),
                      "start": decisions["ts_s"].astype(float).to_numpy(),
                      "pod": decisions["pod"].astype(str).to_numpy(),
                      "dnode": decisions["node"].astype(str).to_numpy()})
    d = d.sort_values(["pod", "start"], kind="stable", ignore_index=True)
    d["end"] = d.groupby("pod", sort=False)["start"].shift(-1).fillna(np.inf)

    p = pd.DataFrame({"ts": pods["ts"].astype(np.int64).to_numpy(), "pod": pods["pod"].astype(str).to_numpy(),
                      "node": pods["node"].astype(str).to_numpy(),
                      "own": pods["cpu_used_milli"].astype(float).to_numpy()})
    on_node = p.groupby(["ts", "node"], sort=False).size().rename("pods_on_node")
    usage = pd.DataFrame({"ts": nodes["ts"].astype(np.int64).to_numpy(), "node": nodes["node"].astype(str).to_numpy(),
                          "used": nodes["cpu_used_milli"].astype(float).to_numpy(),
                          "cap": nodes["cpu_alloc_milli"].astype(float).to_numpy()})
    usage = usage.drop_duplicates(["ts", "node"], keep="last")
    horizon = int(usage["ts"].max())

    life = p.merge(d, on="pod", how="inner")
    life = life[(life["node"] == life["dnode"]) & (life["ts"] >= life["start"]) & (life["ts"] < life["end"])]
    life = life.join(on_node, on=["ts", "node"]).merge(usage, on=["ts", "node"], how="inner")

    over = np.maximum(life["used"].to_numpy() - life["cap"].to_numpy(), 0.0)
    without = np.maximum(life["used"].to_numpy() - life["own"].to_numpy() - life["cap"].to_numpy(), 0.0)
    life = life.assign(added=over - without, over=over, alone=(life["pods_on_node"].to_numpy() == 1).astype(float))
    per = life.groupby("decision_id", sort=False).agg(added=("added", "sum"), over=("over", "sum"),
                                                       alone=("alone", "sum"), last=("ts", "max"))
    running = per["last"] >= horizon
    done = per[~running]
    outcomes = pd.DataFrame({"decision_id": done.index.to_numpy(dtype=object),
                             "added_contention_core_s": done["added"].to_numpy() * step_s / 1000.0,
                             "added_node_h": done["alone"].to_numpy() * step_s / 3600.0,
                             "node_contention_core_s": done["over"].to_numpy() * step_s / 1000.0})
    counts = {"attributed": len(outcomes), "running": int(running.sum()), "no_usage": n - len(per)}
    return Attribution(outcomes if len(outcomes) else empty, counts)


def _require(frame: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"{what} lacks column(s) {missing}", "attribution", f"has {sorted(map(str, frame.columns))}")
