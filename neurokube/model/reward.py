"""What a placement decision costs, and the exchange rate between its parts.

A decision is judged on what it changes over the pod's lifetime on the chosen node (the
marginal, counterfactual-free attribution used by :mod:`neurokube.learning.outcomes`):

* **added contention**: ``sum_t max(0, U_t - cap) - max(0, U_t - u_t - cap)`` core-seconds, where
  ``U_t`` is the node's CPU usage with the pod and ``u_t`` the pod's own;
* **added node-hours**: the hours in which the pod was the only one on its node (without it the
  node would have been empty and could be switched off);
* **added memory overflow**: the same marginal attribution as contention for memory,
  ``sum_t max(0, M_t - cap) - max(0, M_t - m_t - cap)`` GiB-seconds: the OOM risk the pod
  brought. It is 0 for decisions logged without it (the live decision log), and a model trained
  without it predicts 0.

The three are predicted separately by the value model and combined with these weights at decision
time, so the exchange rate can change without retraining.

Pending time does not enter: the learned policy binds every pod that fits somewhere (it never
holds a feasible pod back), so which node it picks does not change the pod's own wait.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from neurokube.errors import InputError


@dataclass(frozen=True)
class RewardWeights:
    contention_per_core_s: float = 1.0
    """Cost of one core-second of CPU demand above a node's capacity."""
    node_hour: float = 360.0
    """Cost of one node-hour, in core-seconds of contention: by default a node-hour weighs as much
    as 6 core-minutes of contention. Raise it to pack harder, lower it to spread."""
    memory_overflow_per_gib_s: float = 4.0
    """Cost of one GiB-second of memory demand above a node's capacity, in core-seconds of
    contention. Overflowing memory kills pods (OOM) where overflowing CPU only slows them, and our
    nodes carry about 4 GiB per core, so by default the same share of capacity costs about 16 times
    more in memory than in CPU."""

    def __post_init__(self) -> None:
        if self.contention_per_core_s < 0 or self.node_hour < 0 or self.memory_overflow_per_gib_s < 0:
            raise InputError("reward weights must not be negative", "reward weights", str(asdict(self)))

    def cost(self, contention_core_s, node_hours, mem_overflow_gib_s=0.0):
        return (self.contention_per_core_s * contention_core_s + self.node_hour * node_hours
                + self.memory_overflow_per_gib_s * mem_overflow_gib_s)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)
