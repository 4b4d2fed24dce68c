"""Outcomes attributed from Prometheus agree with the simulator's own (the live path, end to end).

A contended simulated day (tests/unit/test_attribution.py) is mapped onto past hours and its usage
backfilled into the stack's Prometheus through the emulator's OpenMetrics path
(neurokube.stack.backfill); the node table is read back by the snapshot step's reader
(``PrometheusUsage``, default queries: ``rate()`` over 3 minutes), the per-pod table by the
cAdvisor query the per-pod snapshot is meant to run, with the same rate window (read here with
prometheus-api-client, as ``PrometheusUsage`` would). Attributing the day's decisions from those
tables agrees with the simulator's outcomes within 10 %, meaning: the totals of added contention,
added node-hours and experienced contention over the attributed decisions are within 10 % of the
simulator's for the same decisions; the median per-decision relative error of added contention
(over the decisions the simulator gave some) is at most 10 %; the rank correlation of added
contention over the decisions is at least 0.9.

Why not exact: ``rate()`` averages a pod's CPU over its window, and needs two samples of its
counter, so a pod that ran a single step (60 s) has no series at all: exactly those decisions
get no outcome (``no_usage``).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from neurokube.learning.attribution import OUTCOME_NAMES
from neurokube.stack.backfill import backfill
from pipelines import attribute
from pipelines.settings import HOUR_S, AttributionSettings, PrometheusQueries
from pipelines.usage import PrometheusUsage
from tests.unit.test_attribution import STEP, compare, contended_day

pytestmark = pytest.mark.integration

def test_outcomes_from_prometheus_agree_with_the_simulators(stack):
    start = int(time.time() // HOUR_S) * HOUR_S - 20 * HOUR_S
    day, end = contended_day(start)
    url = stack.endpoints["prometheus"]["url"]
    backfill(stack.state_dir, day.usage, start, end, step_s=STEP)

    nodes = PrometheusUsage(url, PrometheusQueries()).read(start, end, STEP)
    nodes = nodes[nodes["node"].str.startswith("attr-")]
    # the snapshot step's own per-pod read, restricted to this test's pods
    pods = PrometheusUsage(url, PrometheusQueries(pod_selector='namespace="attr-test"')).read_pods(start, end, STEP)
    assert len(pods) > 1000 and set(pods["node"]) <= set(nodes["node"])
    tables = {"decisions": day.decisions, "outcomes": day.outcomes.iloc[0:0], "snapshots": nodes, "pod_usage": pods}
    got, counts = attribute.outcomes(tables, AttributionSettings(), STEP)
    steps = pd.Series(day.usage.run_steps, index=day.usage.namespaces + "/" + day.usage.pod_names)
    one_step = day.decisions.loc[steps[day.decisions["pod"]].to_numpy() == 1, "decision_id"]
    assert counts["outcomes_attributed"] == len(day.decisions) - len(one_step) > 150
    assert not got["decision_id"].isin(one_step).any()

    report = compare(day.outcomes, got)
    both = day.outcomes.merge(got, on="decision_id", suffixes=("_sim", "_prom"))
    some = both[both["added_contention_core_s_sim"] > 0]
    error = np.abs(some["added_contention_core_s_prom"] - some["added_contention_core_s_sim"]) \
        / some["added_contention_core_s_sim"]
    report["added_contention_median_rel"] = float(error.median())
    for name in OUTCOME_NAMES:
        assert report[f"{name}_total_rel"] <= 0.10, (name, report)
    assert report["added_contention_median_rel"] <= 0.10 and report["rank_corr"] >= 0.90, report
