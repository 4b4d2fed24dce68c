"""Step 6: the promotion rule, and publishing a night to MLflow (run, model version, alias).

The rule (:class:`pipelines.settings.PromotionRule`): on the held-out replay the candidate's
cost must be below the incumbent's by at least ``min_relative_gain``, and its pending
pod-seconds at most ``max_pending_ratio`` times the incumbent's. The incumbent is the champion,
or the default policy when there is none. Every version is registered; only a winner gets the
alias, and every version carries tags saying whether and why.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.settings import PromotionRule


@dataclass(frozen=True)
class Verdict:
    promote: bool
    reason: str
    incumbent: str
    """``champion`` or ``default``."""
    gain: float
    """Relative cost reduction against the incumbent (positive: better)."""


def decide(replay: dict[str, dict[str, float]], rule: PromotionRule) -> Verdict:
    incumbent = "champion" if "champion" in replay else "default"
    cand, inc = replay["candidate"], replay[incumbent]
    gain = (inc["cost"] - cand["cost"]) / inc["cost"] if inc["cost"] > 0 else (0.0 if cand["cost"] == 0 else -1.0)
    pending_ok = cand["pending_pod_s"] <= rule.max_pending_ratio * inc["pending_pod_s"] + 1e-9
    numbers = (f"cost {cand['cost']:,.1f} vs {incumbent} {inc['cost']:,.1f} ({gain:+.2%}); pending "
               f"{cand['pending_pod_s']:,.0f} vs {inc['pending_pod_s']:,.0f} pod-s")
    if gain < rule.min_relative_gain:
        return Verdict(False, f"not better than the {incumbent} by {rule.min_relative_gain:.0%}: {numbers}",
                       incumbent, gain)
    if not pending_ok:
        return Verdict(False, f"pending more than {rule.max_pending_ratio:.2f}x the {incumbent}: {numbers}",
                       incumbent, gain)
    return Verdict(True, f"beats the {incumbent}: {numbers}", incumbent, gain)
