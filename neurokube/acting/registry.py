"""Actuators by name: ``--actuator NAME[:key=value,...]`` (the policy spec syntax, neurokube/policies/spec.py).

Each name maps to its arguments dataclass (defaults are upstream's) and a factory. NeuroKube's
own actuator needs its prediction models, which are read at the edge (cli/actuator_specs.py) and
passed in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from neurokube.acting.base import Actuator, NoActuator
from neurokube.errors import InputError

FLAG = "--actuator"
LEARNED = "neurokube"


@dataclass(frozen=True)
class Entry:
    """A registered actuator: its arguments dataclass (None: no arguments) and a factory(args, name, models)."""

    args: Callable[[], type | None]
    factory: Callable[[Any, str, Any], Actuator]


def _none_factory(args, name, models) -> Actuator:
    actuator = NoActuator()
    actuator.name = name
    return actuator


def _vpa_args():
    from neurokube.acting.vpa_inplace import VpaInPlaceArgs
    return VpaInPlaceArgs


def _vpa(args, name, models) -> Actuator:
    from neurokube.acting.vpa_inplace import VpaInPlace
    return VpaInPlace(args, name=name)


def _descheduler_args():
    from neurokube.acting.descheduler import DeschedulerArgs
    return DeschedulerArgs


def _descheduler(args, name, models) -> Actuator:
    from neurokube.acting.descheduler import Descheduler
    return Descheduler(args, name=name)


def _learned_args():
    from neurokube.acting.neurokube_actuator import NeuroKubeActuatorArgs
    return NeuroKubeActuatorArgs


def _learned(args, name, models) -> Actuator:
    from neurokube.acting.neurokube_actuator import NeuroKubeActuator
    return NeuroKubeActuator(args, models, name=name)


REGISTRY: dict[str, Entry] = {
    "none": Entry(lambda: None, _none_factory),
    "vpa-inplace": Entry(_vpa_args, _vpa),
    "descheduler": Entry(_descheduler_args, _descheduler),
    LEARNED: Entry(_learned_args, _learned),
}


def unknown_actuator(name: str) -> InputError:
    return InputError(f"unknown actuator {name!r}", FLAG, f"one of {', '.join(REGISTRY)}")
