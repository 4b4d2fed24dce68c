"""Step 2b: every decision's outcome, the simulator's where it has one, else from the usage snapshots.

A simulated day writes an outcomes table (the simulator's own attribution); a live decision has
none, and gets its outcome from the sampled usage (:func:`neurokube.learning.attribution.attribute`,
the same definitions). ``AttributionSettings.replace_simulated`` attributes every decision from
the snapshots instead.

The snapshots' node table (``snapshots``) is not enough: attribution needs each pod's own usage
and which pods share a node, one row per (``ts``, ``pod``, ``node``). Ingest returns that table,
when the store has it, as ``pod_usage`` (:data:`POD_USAGE_TABLE`); without it every decision to
attribute is left without an outcome and counted (``outcomes_no_usage``), and the night goes on
with the outcomes it has.
"""

from __future__ import annotations

import logging

import pandas as pd

from neurokube.learning.attribution import OUTCOME_NAMES, attribute
from neurokube.logs import event
from pipelines.settings import AttributionSettings

log = logging.getLogger("neurokube.pipelines.attribute")
POD_USAGE_TABLE = "pod_usage"


def outcomes(tables: dict[str, pd.DataFrame], settings: AttributionSettings, step_s: int
             ) -> tuple[pd.DataFrame, dict[str, int]]:
    """The outcomes table of every decision that has one, and how each was obtained.

    ``tables`` are ingest's (``decisions``, ``outcomes``, ``snapshots`` and, when present,
    ``pod_usage``); the counts are ``outcomes_simulated``, ``outcomes_attributed``,
    ``outcomes_running`` (pod still running at the newest sample) and ``outcomes_no_usage``.
    """
    decisions = tables["decisions"].drop_duplicates("decision_id", keep="last")
    given = tables["outcomes"].drop_duplicates("decision_id", keep="last")
    given = given[["decision_id", *OUTCOME_NAMES]]
    if settings.replace_simulated:
        given = given.iloc[0:0]
    kept = given[given["decision_id"].isin(decisions["decision_id"])]
    todo = decisions[~decisions["decision_id"].isin(given["decision_id"])]
    pods = tables.get(POD_USAGE_TABLE)
    if pods is None or pods.empty:
        pods = pd.DataFrame({c: pd.Series(dtype=object) for c in ("ts", "pod", "node", "cpu_used_milli")})
        if len(todo):
            event(log, "no per-pod usage in the snapshots: decisions left without an outcome",
                  level=logging.WARNING, decisions=len(todo))
    result = attribute(todo, tables["snapshots"], pods, step_s)
    parts = [f for f in (kept, result.outcomes) if len(f)]
    table = pd.concat(parts, ignore_index=True) if parts else kept.reset_index(drop=True)
    counts = {"outcomes_simulated": len(kept), "outcomes_attributed": result.counts["attributed"],
              "outcomes_running": result.counts["running"], "outcomes_no_usage": result.counts["no_usage"]}
    event(log, "outcomes", replace_simulated=settings.replace_simulated, **counts)
    return table, counts
