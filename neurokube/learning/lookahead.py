"""State-aware values: fitted Q iteration over the later decisions on the same node (off by default).

Why: today's targets are one-step (:mod:`neurokube.learning.outcomes`). A decision is charged the
contention, node-hours and memory overflow its own pod added over its lifetime, and nothing for
what its placement does to the pods that come after it: a later pod placed on the same node while
this one still runs finds the node fuller, and may add contention there that it would not have
added on an emptier node; a node opened for a short pod keeps being used (and alone) after it.

The choice (docs/LEARNING.md, "State-aware values: what was tried"): a node-level decomposition
of the cluster's value, fitted by Q iteration with the same trees and features as today.

* **Successor.** The successor of a decision is the next decision, in the same episode, that
  chose the same node while the first pod still ran there (:func:`successors`). A decision whose
  pod left before anything else came to its node has none: its placement shaped no later choice
  on that node.
* **Target.** For each cost component ``k`` (contention, node-hours, memory overflow), sweep
  ``m + 1`` sets ``y_k = c_k + discount x Q^m_k(x_succ)``, where ``c_k`` is the one-step outcome,
  ``x_succ`` the features of the successor's chosen node at its decision, and ``Q^m_k`` the model
  fitted in sweep ``m`` (sweep 0 fits today's one-step targets). A decision without a successor
  keeps ``y_k = c_k``. After ``sweeps`` sweeps a target holds about ``sweeps`` steps of the node's
  later decisions, discounted.
* **Components stay apart**, so the policy still combines them with the weights at decision time
  (``node_hour_cost`` works unchanged) and the targets keep their units.
* **Bootstrapping** from the model's prediction, not the successor's realized chain, averages
  the successor's cost over the states it looks like, and keeps each target's noise to one
  decision's.

It is replay experience only (the successor needs the pod's end, which the decision log does not
carry) and changes nothing in the policy or the model format: only the labels the value model is
fitted on. ``TrainSettings.state_aware_discount`` (``neurokube train --state-aware-discount``)
turns it on; 0, the default, fits today's one-step targets exactly.

Measured (docs/LEARNING.md): on the validation traces it was worse at the default rate (on the
trace with much contention, CPU contention +7-8 % and memory overflow +45-56 % for discounts 0.5
and 0.2), so it stays off and was never replayed on the evaluation traces.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from neurokube.errors import InputError
from neurokube.learning.fit import OVERFLOW_COLUMN, FitSettings, fit_value_model
from neurokube.logs import event
from neurokube.model.decision_log import FEATURE_COLUMNS
from neurokube.model.reward import RewardWeights
from neurokube.model.value_model import ValueModel

log = logging.getLogger(__name__)

SUCCESSOR_COLUMN = "next_on_node_decision_id"
"""Replay experience only: the ``decision_id`` of the decision's successor on its node, or empty."""
SWEEPS = 3
"""Fitted Q sweeps after the one-step fit: the targets look about this many decisions ahead."""


def successors(ts_s: np.ndarray, end_s: np.ndarray, node: np.ndarray) -> np.ndarray:
    """Index of each decision's successor (-1 for none): the next decision, in order, on the same
    ``node`` at a time ``ts_s`` before the first pod's end ``end_s``.

    Decisions must be given in the order they were made (``ts_s`` non-decreasing)."""
    ts_s, end_s, node = np.asarray(ts_s, float), np.asarray(end_s, float), np.asarray(node)
    if not (ts_s.shape == end_s.shape == node.shape):
        raise InputError("ts_s, end_s and node must have one value per decision", "lookahead",
                         f"shapes {ts_s.shape}, {end_s.shape}, {node.shape}")
    if np.any(np.diff(ts_s) < 0):
        raise InputError("decisions must be in the order they were made", "lookahead", "ts_s decreases")
    out = np.full(ts_s.size, -1, dtype=np.int64)
    if ts_s.size < 2:
        return out
    order = np.lexsort((np.arange(ts_s.size), node))  # by node, then in decision order
    same = node[order][1:] == node[order][:-1]
    first, nxt = order[:-1][same], order[1:][same]
    alive = ts_s[nxt] < end_s[first]
    out[first[alive]] = nxt[alive]
    return out


def component_columns(settings: FitSettings) -> dict[str, str]:
    """The one-step outcome column each predicted component is fitted on."""
    return {"contention": settings.contention_target, "occupancy": "added_node_h", "overflow": OVERFLOW_COLUMN}


def bootstrapped_targets(decisions: pd.DataFrame, model: ValueModel, discount: float,
                         settings: FitSettings = FitSettings()) -> pd.DataFrame:
    """``decisions`` with each component's outcome column replaced by ``c + discount x Q(x_succ)``
    (``c`` alone where there is no successor). The one-step columns are read from ``decisions``,
    never from an earlier sweep's output, so sweeps do not compound the outcome."""
    if not 0.0 <= discount <= 1.0:
        raise InputError("the state-aware discount must be in [0, 1]", "lookahead", f"got {discount}")
    if SUCCESSOR_COLUMN not in decisions:
        raise InputError(f"decisions lack {SUCCESSOR_COLUMN!r}", "lookahead",
                         "state-aware targets need replay experience with successors")
    ids = decisions["decision_id"].astype(str)
    position = pd.Series(np.arange(len(decisions)), index=ids.to_numpy())
    if not position.index.is_unique:
        repeated = int(position.index.duplicated().sum())
        raise InputError("decision ids must be unique", "lookahead", f"{repeated} repeated")
    succ = decisions[SUCCESSOR_COLUMN].fillna("").astype(str).to_numpy()
    has = succ != ""
    where = position.reindex(succ[has]).to_numpy()
    known = ~np.isnan(where)  # a successor outside these rows (dropped for lack of outcome) bootstraps nothing
    rows = np.flatnonzero(has)[known]
    succ_rows = where[known].astype(np.int64)
    future = model.components(decisions[list(FEATURE_COLUMNS)].to_numpy(dtype=np.float32)[succ_rows])
    out = decisions.copy()
    for name, column in component_columns(settings).items():
        if column not in out:
            continue
        y = out[column].to_numpy(dtype=np.float64, copy=True)
        y[rows] = np.nan_to_num(y[rows]) + discount * future[name]
        out[column] = y
    return out


def fit_state_aware(decisions: pd.DataFrame, weights: RewardWeights, discount: float,
                    settings: FitSettings = FitSettings(), sweeps: int = SWEEPS, version: str = "dev",
                    info: dict | None = None) -> ValueModel:
    """Fitted Q iteration: the one-step fit, then ``sweeps`` refits on bootstrapped targets."""
    if sweeps < 0:
        raise InputError("sweeps must not be negative", "lookahead", f"got {sweeps}")
    facts = {**(info or {}), "state_aware": {"discount": discount, "sweeps": sweeps}}
    usable = decisions.dropna(subset=["added_contention_core_s", "added_node_h"]).reset_index(drop=True)
    model = fit_value_model(usable, weights, settings, version=version, info=facts)
    for sweep in range(1, sweeps + 1 if discount > 0 else 1):
        targets = bootstrapped_targets(usable, model, discount, settings)
        column = settings.contention_target
        event(log, "state-aware targets bootstrapped", sweep=sweep, discount=discount,
              with_successor=int((usable[SUCCESSOR_COLUMN].fillna("") != "").sum()),
              mean_contention_target=float(targets[column].mean()),
              mean_node_h_target=float(targets["added_node_h"].mean()))
        model = fit_value_model(targets, weights, settings, version=version, info=facts)
    return model
