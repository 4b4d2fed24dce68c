"""Policy specs at the edge: validate every ``--policy`` up front and build each policy.

The peers are built by :func:`neurokube.policies.make_policy`. The learned policy is resolved
here because it reads a model directory: ``neurokube:model=DIR,node_hour_cost=C``, or plain
``neurokube`` with ``--model DIR``.
"""

from __future__ import annotations

from pathlib import Path

from neurokube.errors import InputError
from neurokube.model.policy import LearnedArgs
from neurokube.policies.registry import LEARNED, REGISTRY, make_policy, unknown_policy
from neurokube.policies.spec import FLAG, PolicySpec, parse_spec, typed_args


def check_specs(texts: list[str], model_dir: Path | None) -> list[PolicySpec]:
    """Parse and validate every spec before any work is done (one :class:`InputError` if any is bad)."""
    specs, seen = [], set()
    for text in texts:
        spec = parse_spec(text)
        if spec.text in seen:
            raise InputError(f"policy {spec.text!r} given twice", FLAG)
        seen.add(spec.text)
        if spec.name == LEARNED:
            args = typed_args(LearnedArgs, spec)
            if args.model is None and model_dir is None:
                raise InputError("the neurokube policy needs a model", f"{FLAG} {spec.text}",
                                 "pass --model MODEL_DIR or neurokube:model=MODEL_DIR")
        elif spec.name in REGISTRY:
            typed_args(REGISTRY[spec.name].args, spec)
        else:
            raise unknown_policy(spec.name, learned=True)
        specs.append(spec)
    return specs


def build_policy(spec: PolicySpec, trace, *, seed: int, step_s: int, model_dir: Path | None = None):
    """The policy for a checked spec; its ``name`` is the spec text as given."""
    if spec.name == LEARNED:
        from neurokube.adapters.model_files import load_learned_policy

        args = typed_args(LearnedArgs, spec)
        directory = Path(args.model) if args.model is not None else model_dir
        policy = load_learned_policy(directory, trace=trace, seed=seed, node_hour_cost=args.node_hour_cost,
                                     max_wait_steps=args.max_wait_steps, wait_above_core_s=args.wait_above_core_s,
                                     tie_core_s=args.tie_core_s, tie_from_requested=args.tie_from_requested)
        policy.name = spec.text
        return policy
    return make_policy(spec, trace=trace, seed=seed, step_s=step_s)
