"""Off-policy estimators on cases with a known answer."""

import numpy as np
import pytest

from neurokube.model.ope import estimate, greedy_choice


def bandit(n=20000, seed=0):
    """Two arms per decision, logged uniformly; arm 0 pays -1, arm 1 pays -3."""
    rng = np.random.default_rng(seed)
    group = np.repeat(np.arange(n), 2)
    logged = rng.integers(0, 2, n)
    chosen = np.zeros(2 * n, bool)
    chosen[2 * np.arange(n) + logged] = True
    propensity = np.full(2 * n, 0.5)
    reward = np.where(logged == 0, -1.0, -3.0)
    return group, chosen, propensity, reward


def test_all_estimators_recover_the_value_of_a_deterministic_target():
    group, chosen, propensity, reward = bandit()
    target = np.tile([True, False], group.size // 2)  # always arm 0: true value -1
    q = np.tile([-1.0, -3.0], group.size // 2)
    est = estimate(group, chosen, propensity, target, q, reward)
    assert est.snips == pytest.approx(-1.0)
    assert est.dr == pytest.approx(-1.0)
    assert est.ips == pytest.approx(-1.0, abs=0.05)
    assert est.behaviour == pytest.approx(-2.0, abs=0.05)


def test_doubly_robust_survives_a_wrong_reward_model():
    group, chosen, propensity, reward = bandit(seed=1)
    target = np.tile([True, False], group.size // 2)
    wrong_q = np.zeros(group.size)
    assert estimate(group, chosen, propensity, target, wrong_q, reward).dr == pytest.approx(-1.0, abs=0.05)


def test_greedy_choice_picks_lowest_cost_per_group():
    group = np.array([0, 0, 0, 1, 1])
    assert greedy_choice(group, np.array([3.0, 1.0, 2.0, 5.0, 4.0])).tolist() == [False, True, False, False, True]


def test_inputs_are_checked():
    with pytest.raises(ValueError, match="exactly one chosen"):
        estimate(np.array([0, 0]), np.array([True, True]), np.ones(2), np.ones(2, bool), np.zeros(2), np.zeros(1))
