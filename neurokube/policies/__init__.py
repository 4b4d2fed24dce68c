"""Placement policies, one module each, and :func:`make_policy` to build one by name."""

from neurokube.policies.registry import PEER_POLICIES, POLICY_NAMES, make_policy

__all__ = ["PEER_POLICIES", "POLICY_NAMES", "make_policy"]
