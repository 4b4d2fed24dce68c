"""Build a policy from its name."""

from __future__ import annotations

import numpy as np

from neurokube.errors import InputError
from neurokube.policies.base import Policy
from neurokube.trace.model import Trace

POLICY_NAMES: tuple[str, ...] = (
    "default", "most-allocated", "tlp", "lvrb", "koordinator", "random", "oracle",
)
PEER_POLICIES: tuple[str, ...] = ("default", "tlp", "lvrb", "koordinator")
"""The hand-written schedulers NeuroKube must beat."""


def make_policy(name: str, *, trace: Trace, seed: int = 0, step_s: int = 60) -> Policy:
    rng = np.random.default_rng(seed)
    if name == "default":
        from neurokube.policies.default import DefaultPolicy
        return DefaultPolicy(rng)
    if name == "most-allocated":
        from neurokube.policies.most_allocated import MostAllocatedPolicy
        return MostAllocatedPolicy(rng)
    if name == "tlp":
        from neurokube.policies.tlp import TargetLoadPackingPolicy
        return TargetLoadPackingPolicy(rng)
    if name == "lvrb":
        from neurokube.policies.lvrb import LoadVariationRiskBalancingPolicy
        return LoadVariationRiskBalancingPolicy(rng)
    if name == "koordinator":
        from neurokube.policies.koordinator import KoordinatorPolicy
        return KoordinatorPolicy(rng)
    if name == "random":
        from neurokube.policies.random_policy import RandomPolicy
        return RandomPolicy(rng)
    if name == "oracle":
        from neurokube.policies.oracle import OraclePolicy
        return OraclePolicy(trace, step_s)
    raise InputError(f"unknown policy {name!r}", "--policy", f"one of {', '.join(POLICY_NAMES)}")
