"""Step 6: the promotion rule, and publishing a night to MLflow (run, model version, alias).

The rule (:class:`pipelines.settings.PromotionRule`): on the held-out replay the candidate's
cost must be below the incumbent's by at least ``min_relative_gain``, and its pending
pod-seconds at most ``max_pending_ratio`` times the incumbent's. When the logged days gave a
rollout estimate (pipelines/evaluate.py, neurokube/learning/rollout.py), the candidate's estimated
cost on them must also be at most ``1 + rollout_max_relative_loss`` times the incumbent's: the
held-out trace is one synthetic day, the logged days are the cluster's own. The incumbent is the
champion, or the default policy when there is none. Every version is registered; only a winner
gets the alias, and every version carries tags saying whether and why.
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
    """Relative cost reduction against the incumbent on the held-out replay (positive: better)."""
    estimated_gain: float | None = None
    """The same by the rollout estimate on the logged days; None without one."""


def relative_gain(candidate: float, incumbent: float) -> float:
    """``(incumbent - candidate) / incumbent``; 0 when both are 0, -1 when only the incumbent is."""
    return (incumbent - candidate) / incumbent if incumbent > 0 else (0.0 if candidate == 0 else -1.0)


def decide(replay: dict[str, dict[str, float]], rule: PromotionRule,
           rollout: dict[str, dict[str, float]] | None = None) -> Verdict:
    """The verdict from the held-out ``replay`` metrics and, when given, the ``rollout`` estimate's
    (policy name -> metrics with ``cost``, the same names as ``replay``)."""
    incumbent = "champion" if "champion" in replay else "default"
    cand, inc = replay["candidate"], replay[incumbent]
    gain = relative_gain(cand["cost"], inc["cost"])
    pending_ok = cand["pending_pod_s"] <= rule.max_pending_ratio * inc["pending_pod_s"] + 1e-9
    numbers = (f"cost {cand['cost']:,.1f} vs {incumbent} {inc['cost']:,.1f} ({gain:+.2%}); pending "
               f"{cand['pending_pod_s']:,.0f} vs {inc['pending_pod_s']:,.0f} pod-s")
    estimated = None
    if rollout is not None and "candidate" in rollout and incumbent in rollout:
        est_c, est_i = rollout["candidate"]["cost"], rollout[incumbent]["cost"]
        estimated = relative_gain(est_c, est_i)
        numbers += f"; rollout estimate on the logged days: cost {est_c:,.1f} vs {est_i:,.1f} ({estimated:+.2%})"
    if gain < rule.min_relative_gain:
        return Verdict(False, f"not better than the {incumbent} by {rule.min_relative_gain:.0%}: {numbers}",
                       incumbent, gain, estimated)
    if not pending_ok:
        return Verdict(False, f"pending more than {rule.max_pending_ratio:.2f}x the {incumbent}: {numbers}",
                       incumbent, gain, estimated)
    if (estimated is not None and rule.rollout_max_relative_loss is not None
            and estimated < -rule.rollout_max_relative_loss - 1e-12):
        return Verdict(False, f"estimated worse than the {incumbent} on the logged days by more than "
                              f"{rule.rollout_max_relative_loss:.0%}: {numbers}", incumbent, gain, estimated)
    return Verdict(True, f"beats the {incumbent}: {numbers}", incumbent, gain, estimated)
