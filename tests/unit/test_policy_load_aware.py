"""Trimaran TLP and LVRB, and Koordinator LoadAware: worked examples from SCHEDULERS.md."""

import numpy as np
import pytest

from neurokube.policies.base import PodSpec
from neurokube.policies.koordinator import KoordinatorPolicy, estimate
from neurokube.policies.lvrb import LoadVariationRiskBalancingPolicy, LVRBArgs, risk_score
from neurokube.policies.tlp import TargetLoadPackingPolicy, predicted_cpu, target_load_score
from tests.conftest import make_view


@pytest.mark.parametrize("u, expected", [(0, 40), (20, 70), (40, 100), (70, 20), (100, 0), (101, 0), (55, 30)])
def test_tlp_curve(u, expected):
    # U <= 40: round(60*U/40 + 40); 40 < U <= 100: round(40*(100-U)/60)
    assert target_load_score(np.array([u]), 40.0)[0] == expected


def test_tlp_prediction_limit_then_request_then_default():
    assert predicted_cpu(np.array([1000, 1000, 0]), np.array([2500, 0, 0])).tolist() == [2500, 1500, 1000]


def test_tlp_counts_recent_bindings_and_scores_missing_metrics_zero():
    view = make_view([10000, 10000], [1, 1], cpu_mean=[1000, 1000])
    view.recent_node = np.array([1])
    view.recent_cpu_request = np.array([2000])
    view.recent_cpu_limit = np.array([0])
    pol = TargetLoadPackingPolicy(np.random.default_rng(0))
    pod = PodSpec(1000, 0)  # predicted 1500
    # node 0: U = (1000 + 1500)/100 = 25 -> round(60*25/40+40) = 78
    # node 1: U = (1000 + 3000 + 1500)/100 = 55 -> round(40*45/60) = 30
    assert pol.scores(pod, view).tolist() == [78, 30]
    view.metrics.samples = np.array([0, 1])
    assert pol.scores(pod, view).tolist() == [0, 30]


def test_lvrb_risk():
    # mu = (0.3+0.1)/1 = .4, sigma = .1, risk = .25 -> 75
    assert risk_score(np.array([300.0]), np.array([100.0]), 100.0, np.array([1000.0]))[0] == 75
    # sensitivity 2: sigma' = sqrt(.1) = .3162 -> risk = .3581 -> 64
    args = LVRBArgs(safe_variance_sensitivity=2.0)
    assert risk_score(np.array([300.0]), np.array([100.0]), 100.0, np.array([1000.0]), args)[0] == 64


def test_lvrb_takes_the_worse_resource():
    view = make_view([1000, 1000], [1000, 1000], cpu_mean=[100, 500], cpu_std=[0, 0],
                     mem_mean=[800, 100], mem_std=[0, 0])
    pol = LoadVariationRiskBalancingPolicy(np.random.default_rng(0))
    # node0: cpu mu=.1 -> 95, mem mu=.8 -> 60 => 60 ; node1: cpu .5 -> 75, mem .1 -> 95 => 75
    assert pol.scores(PodSpec(0, 0), view).tolist() == [60, 75]
    assert pol.select(PodSpec(0, 0), view) == 1


def test_koordinator_estimates():
    # max(limit, request) * factor, capped at limit; no request and no limit -> default
    assert estimate(np.array([1000, 1000, 0]), np.array([2000, 0, 0]), 0.85, 250).tolist() == [1700, 850, 250]
    assert estimate(np.array([1000]), np.array([1000]), 0.85, 250).tolist() == [850]


def test_koordinator_filter_threshold_and_expiry():
    pol = KoordinatorPolicy(np.random.default_rng(0))
    view = make_view([10000, 10000], [10000, 10000], cpu_mean=[5800, 1000], mem_mean=[0, 0])
    pod = PodSpec(1000, 0, 0, 0)  # estimate 850: node0 -> 6650 > 6500 -> filtered
    cpu, mem = pol.estimated_usage(pod, view)
    assert pol.feasible(pod, view, cpu, mem).tolist() == [False, True]
    view.metrics.age_s = np.array([60.0, 181.0])  # node1's metrics are stale
    assert pol.select(pod, view) is None


def test_koordinator_score():
    pol = KoordinatorPolicy(np.random.default_rng(0))
    view = make_view([10000, 10000], [10000, 10000], cpu_mean=[1000, 3000], mem_mean=[5000, 1000])
    pod = PodSpec(1000, 1000, 0, 0)  # estimates 850m, 700 MiB
    # node0: cpu (10000-1850)*100//10000 = 81, mem (10000-5700)*100//10000 = 43 -> 62
    # node1: cpu 61, mem 83 -> 72
    assert pol.scores(pod, view).tolist() == [62, 72]
