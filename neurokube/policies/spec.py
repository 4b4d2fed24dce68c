"""Policy specs: ``NAME[:key=value,...]``, parsed and validated in one place.

A spec names a policy and, optionally, typed arguments: ``tlp:target_utilization=60``,
``koordinator:cpu_threshold=0.8``, ``lvrb:safe_variance_margin=2``,
``neurokube:model=out/model,node_hour_cost=60``. The keys are the field names of the policy's
arguments dataclass (``TLPArgs``, ``LVRBArgs``, ...), whose defaults are upstream's, so a plain
name means the upstream configuration. Values are converted to the field's type and checked by
the dataclass itself; anything wrong raises one :class:`~neurokube.errors.InputError` that names
the spec, the key and the reason.

The spec string is also the policy's name in reports: a replay keys each result by the spec
exactly as given.
"""

from __future__ import annotations

import math
import types
import typing
from dataclasses import dataclass, fields, is_dataclass
from typing import Any, TypeVar

from neurokube.errors import InputError

T = TypeVar("T")
FLAG = "--policy"


@dataclass(frozen=True)
class PolicySpec:
    """A parsed spec: the text as given, the policy name and the raw ``key=value`` pairs in order."""

    text: str
    name: str
    pairs: tuple[tuple[str, str], ...] = ()

    @property
    def plain(self) -> bool:
        """True when the spec is just a name (upstream defaults)."""
        return not self.pairs


def parse_spec(text: str, flag: str = FLAG) -> PolicySpec:
    """``NAME[:key=value,...]`` -> :class:`PolicySpec`; syntax only (keys are checked by :func:`typed_args`)."""
    if not isinstance(text, str) or not text.strip():
        raise InputError("empty policy spec", flag, "NAME[:key=value,...]")
    name, sep, rest = text.partition(":")
    name = name.strip()
    if not name:
        raise InputError(f"policy spec {text!r} has no name", flag, "NAME[:key=value,...]")
    pairs: list[tuple[str, str]] = []
    if sep:
        if not rest.strip():
            raise InputError(f"policy spec {text!r}: nothing after ':'", flag, "NAME[:key=value,...]")
        for item in rest.split(","):
            key, eq, value = item.partition("=")
            key, value = key.strip(), value.strip()
            if not eq or not key or not value:
                raise InputError(f"policy spec {text!r}: {item!r} is not key=value", flag)
            if any(k == key for k, _ in pairs):
                raise InputError(f"policy spec {text!r}: key {key!r} given twice", flag)
            pairs.append((key, value))
    return PolicySpec(text=text, name=name, pairs=tuple(pairs))


def typed_args(cls: type[T] | None, spec: PolicySpec, flag: str = FLAG) -> T | None:
    """An instance of the arguments dataclass ``cls`` from ``spec``'s pairs (its defaults for the rest).

    ``cls`` None means the policy takes no arguments: any key is an error.
    """
    if cls is None:
        if spec.pairs:
            raise InputError(f"policy spec {spec.text!r}: {spec.name} takes no arguments", flag)
        return None
    assert is_dataclass(cls)
    known = {f.name: f for f in fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for key, raw in spec.pairs:
        if key not in known:
            raise InputError(f"policy spec {spec.text!r}: unknown key {key!r}", flag,
                             f"{spec.name} takes {', '.join(known) or 'no arguments'}")
        values[key] = _convert(raw, hints[key], spec, key, flag)
    try:
        return cls(**values)
    except (ValueError, TypeError) as exc:
        raise InputError(f"policy spec {spec.text!r}: {exc}", flag) from None


def _convert(raw: str, hint: Any, spec: PolicySpec, key: str, flag: str = FLAG) -> Any:
    """``raw`` as the field's type: int, float (finite), bool, str, or ``X | None``."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union \
        else (hint,)
    options = tuple(o for o in options if o is not type(None))
    kind = options[0] if options else str
    where = f"policy spec {spec.text!r}: {key}={raw!r}"
    if kind is bool:
        if raw.lower() in ("true", "1", "yes"):
            return True
        if raw.lower() in ("false", "0", "no"):
            return False
        raise InputError(f"{where} is not true or false", flag)
    if kind is int:
        try:
            return int(raw)
        except ValueError:
            raise InputError(f"{where} is not a whole number", flag) from None
    if kind is float:
        try:
            value = float(raw)
        except ValueError:
            raise InputError(f"{where} is not a number", flag) from None
        if not math.isfinite(value):
            raise InputError(f"{where} is not a finite number", flag)
        return value
    return raw
