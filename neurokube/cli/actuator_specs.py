"""``--actuator`` at the edge: validate the spec up front, read NeuroKube's prediction models, build one
actuator per replay (an actuator keeps state, so every policy's replay gets a fresh one)."""

from __future__ import annotations

from pathlib import Path

from neurokube.acting.registry import FLAG, LEARNED, REGISTRY, unknown_actuator
from neurokube.errors import InputError
from neurokube.policies.spec import PolicySpec, parse_spec, typed_args


def check_actuator(text: str) -> tuple[PolicySpec, object]:
    """The parsed spec and its typed arguments; one :class:`InputError` if anything is wrong."""
    spec = parse_spec(text, FLAG)
    if spec.name not in REGISTRY:
        raise unknown_actuator(spec.name)
    args = typed_args(REGISTRY[spec.name].args(), spec, FLAG)
    if spec.name == LEARNED and not getattr(args, "model", None):
        raise InputError("the neurokube actuator needs prediction models", f"{FLAG} {spec.text}",
                         "train them with `neurokube recommend --train-trace T --model-dir DIR`, "
                         "then pass neurokube:model=DIR")
    return spec, args


def load_models(spec: PolicySpec, args: object):
    """NeuroKube's prediction models for ``spec`` (None for the other actuators)."""
    if spec.name != LEARNED:
        return None
    from neurokube.adapters.forecast_models import load_model_dir

    return load_model_dir(Path(args.model))


def build_actuator(spec: PolicySpec, args: object, models):
    """A fresh actuator for one replay; its name is the spec text as given."""
    return REGISTRY[spec.name].factory(args, spec.text, models)
