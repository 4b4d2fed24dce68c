"""Off-policy evaluation: a new model's value estimated from logged decisions alone.

Contextual-bandit estimators over the decision log. Each logged decision ``i`` has:
- the chosen candidate ``a_i``;
- its logging propensity ``p_i``;
- an observed reward ``r_i`` (minus the decision's cost);
- the feature rows of all its candidates.

The target policy is the new model's greedy choice (deterministic), so
``pi(a_i | x_i) = 1[a_i = argmin cost]``.

* IPS: ``mean(w_i r_i)`` with ``w_i = pi(a_i|x_i) / p_i``; unbiased, high variance.
* SNIPS: ``sum(w_i r_i) / sum(w_i)``; self-normalised, slightly biased, much steadier.
* DR: ``mean(q(x_i, pi(x_i)) + w_i (r_i - q(x_i, a_i)))`` with ``q`` a reward model (here the
  candidate model's own prediction): unbiased if either the propensities or ``q`` are right.

All three estimate the mean reward per decision under the target policy. Compare them with
the mean reward the simulator measures when the policy actually runs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class OpeEstimate:
    ips: float
    snips: float
    dr: float
    behaviour: float
    """Mean observed reward of the logged (behaviour) decisions."""
    matched: int
    """Decisions where the target policy agrees with the logged choice."""
    decisions: int
    effective_sample_size: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def estimate(group: np.ndarray, chosen: np.ndarray, propensity: np.ndarray, target_choice: np.ndarray,
             q_hat: np.ndarray, reward: np.ndarray) -> OpeEstimate:
    """Estimate the target policy's mean reward per decision.

    Arrays over candidate rows: ``group`` (decision index 0..n-1, rows of a decision adjacent),
    ``chosen`` (the logged choice), ``propensity`` (behaviour probability of each row),
    ``target_choice`` (the target policy's pick), ``q_hat`` (predicted reward of each row).
    ``reward`` has one entry per decision.
    """
    n = int(group.max()) + 1 if group.size else 0
    if n == 0:
        nan = float("nan")
        return OpeEstimate(nan, nan, nan, nan, 0, 0, 0.0)
    chosen_rows = np.flatnonzero(chosen)
    if chosen_rows.size != n or not np.array_equal(group[chosen_rows], np.arange(n)):
        raise ValueError("every decision needs exactly one chosen candidate")
    p = propensity[chosen_rows]
    if (p <= 0).any():
        raise ValueError("a logged choice has propensity 0")
    match = target_choice[chosen_rows].astype(float)
    w = match / p
    q_logged = q_hat[chosen_rows]
    q_target = np.bincount(group, weights=q_hat * target_choice, minlength=n)
    ips = float(np.mean(w * reward))
    snips = float(np.sum(w * reward) / np.sum(w)) if w.sum() > 0 else float("nan")
    dr = float(np.mean(q_target + w * (reward - q_logged)))
    ess = float(w.sum() ** 2 / np.sum(w * w)) if w.sum() > 0 else 0.0
    return OpeEstimate(ips=ips, snips=snips, dr=dr, behaviour=float(reward.mean()), matched=int(match.sum()),
                       decisions=n, effective_sample_size=ess)


def greedy_choice(group: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """One-hot of the lowest-cost row within each group (first on ties)."""
    order = np.lexsort((cost, group))
    first = np.ones(order.size, dtype=bool)
    first[1:] = group[order][1:] != group[order][:-1]
    out = np.zeros(group.size, dtype=bool)
    out[order[first]] = True
    return out
