"""Build a policy from its spec: ``NAME[:key=value,...]`` (see :mod:`neurokube.policies.spec`).

Each name maps to a factory and its arguments dataclass, whose defaults are upstream's; a plain
name builds exactly the policy it always did. The learned policy (``neurokube``) is not built
here: it needs a model directory read at the edge (``neurokube.model.policy.LearnedArgs``), so
the CLI resolves it.

A new scoring plugin needs one module and one line here: ``"name": Entry(ArgsClass,
score_plugin(PluginClass))`` builds a policy whose profile is the NodeResourcesFit filter plus
that plugin (docs/ARCHITECTURE.md, "Adding a scoring plugin").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from neurokube.errors import InputError
from neurokube.policies.base import Policy
from neurokube.policies.default import DefaultArgs
from neurokube.policies.koordinator import KoordinatorArgs
from neurokube.policies.lvrb import LVRBArgs
from neurokube.policies.spec import FLAG, PolicySpec, parse_spec, typed_args
from neurokube.policies.tlp import TLPArgs
from neurokube.trace.model import Trace

PEER_POLICIES: tuple[str, ...] = ("default", "tlp", "lvrb", "koordinator")
"""The hand-written schedulers NeuroKube must beat."""
LEARNED = "neurokube"


@dataclass(frozen=True)
class Entry:
    """A registered policy: its arguments dataclass (None: no arguments) and a factory."""

    args: type | None
    factory: Callable[..., Policy]


def score_plugin(plugin: Callable[..., Any]) -> Callable[..., Policy]:
    """A factory for a policy whose profile is the shared Fit filter plus one score plugin.

    ``plugin`` is called with the spec's arguments dataclass (without, when it has none) and must
    return a score plugin (:class:`~neurokube.policies.framework.ScorePlugin`).
    """
    def factory(rng, args, trace, step_s):
        from neurokube.policies.default import FIT_FILTER
        from neurokube.policies.framework import Profile, ProfilePolicy, Weighted

        built = plugin(args) if args is not None else plugin()
        return ProfilePolicy(built.name, Profile(filters=(FIT_FILTER,), scores=(Weighted(built),)), rng, args)
    return factory


def _default(rng, args, trace, step_s):
    from neurokube.policies.default import DefaultPolicy
    return DefaultPolicy(rng, args)


def _most_allocated(rng, args, trace, step_s):
    from neurokube.policies.most_allocated import MostAllocatedPolicy
    return MostAllocatedPolicy(rng, args)


def _tlp(rng, args, trace, step_s):
    from neurokube.policies.tlp import TargetLoadPackingPolicy
    return TargetLoadPackingPolicy(rng, args)


def _lvrb(rng, args, trace, step_s):
    from neurokube.policies.lvrb import LoadVariationRiskBalancingPolicy
    return LoadVariationRiskBalancingPolicy(rng, args)


def _koordinator(rng, args, trace, step_s):
    from neurokube.policies.koordinator import KoordinatorPolicy
    return KoordinatorPolicy(rng, args)


def _random(rng, args, trace, step_s):
    from neurokube.policies.random_policy import RandomPolicy
    return RandomPolicy(rng)


def _oracle(rng, args, trace, step_s):
    from neurokube.policies.oracle import OraclePolicy
    return OraclePolicy(trace, step_s)


REGISTRY: dict[str, Entry] = {
    "default": Entry(DefaultArgs, _default),
    "most-allocated": Entry(DefaultArgs, _most_allocated),
    "tlp": Entry(TLPArgs, _tlp),
    "lvrb": Entry(LVRBArgs, _lvrb),
    "koordinator": Entry(KoordinatorArgs, _koordinator),
    "random": Entry(None, _random),
    "oracle": Entry(None, _oracle),
}
POLICY_NAMES: tuple[str, ...] = tuple(REGISTRY)


def unknown_policy(name: str, *, learned: bool = False) -> InputError:
    names = (*REGISTRY, LEARNED) if learned else tuple(REGISTRY)
    return InputError(f"unknown policy {name!r}", FLAG, f"one of {', '.join(names)}")


def policy_args(spec: PolicySpec | str) -> Any:
    """The validated arguments of a registered policy's spec (None for a policy without arguments)."""
    spec = parse_spec(spec) if isinstance(spec, str) else spec
    entry = REGISTRY.get(spec.name)
    if entry is None:
        raise unknown_policy(spec.name)
    return typed_args(entry.args, spec)


def make_policy(spec: PolicySpec | str, *, trace: Trace, seed: int = 0, step_s: int = 60) -> Policy:
    """Build the policy ``spec`` names (``"tlp"`` or ``"tlp:target_utilization=60"``).

    The policy's ``name`` is the spec's text as given, so results are keyed by it.
    """
    spec = parse_spec(spec) if isinstance(spec, str) else spec
    args = policy_args(spec)
    policy = REGISTRY[spec.name].factory(np.random.default_rng(seed), args, trace, step_s)
    if not spec.plain or policy.name != spec.name:
        policy.name = spec.text
    return policy
