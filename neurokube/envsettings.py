"""One way to declare, read, check and document settings: a frozen dataclass per component.

Each field is declared with :func:`setting`, which records in the field's ``metadata`` the
environment variable it is read from (``env``) and its meaning, units included (``doc``).
:func:`from_env` converts every set variable by the field's type, collects every problem (a
value that does not convert, then the component's own checks) and raises one
:class:`~neurokube.errors.InputError` listing them all, so a misconfigured process stops at
start-up with every reason at once. :func:`table` renders the Markdown reference the docs carry
(tests compare it with the docs, so the reference cannot drift from the code).

Why one module: the live functions, the snapshot, trainer and recommender functions and the data
stack each had their own reader (``env.get`` calls, a number parser, docstrings under fields);
each now declares fields and calls these functions. Reading the environment stays at the edge:
callers pass the mapping (``os.environ`` by default), and nothing here touches a file.
"""

from __future__ import annotations

import os
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field, field, fields
from pathlib import Path
from typing import Any, TypeVar

from neurokube.errors import InputError

T = TypeVar("T")

TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")


def setting(env: str | None, default: Any = MISSING, doc: str = "", *, factory: Callable[[], Any] | None = None,
            read: Callable[[Mapping[str, str]], Any] | None = None, flag: str | None = None,
            shown: str | None = None) -> Any:
    """A dataclass field read from the environment variable ``env`` (None: set in code or by a flag
    only), with its meaning ``doc``.

    ``factory`` computes the default (as ``default_factory``); ``read`` reads the field from the
    whole environment instead of one variable (a family such as ``NEUROKUBE_PROM_QUERY_<STAT>``);
    ``flag`` names the command-line option that sets it, for :func:`table` ``by="flag"``;
    ``shown`` is the default as the reference shows it (Markdown), for a computed default."""
    metadata = {"env": env, "doc": doc, "read": read, "flag": flag, "shown": shown}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def convert(raw: str, hint: object) -> object:
    """``raw`` as the type ``hint`` (bool, int, float, Path, str, or one of them ``| None``); a
    ValueError says what was expected."""
    args = typing.get_args(hint)
    target = next((a for a in args if a is not type(None)), hint) if args else hint
    if target is bool:
        lowered = raw.lower()
        if lowered in TRUE:
            return True
        if lowered in FALSE:
            return False
        raise ValueError("expected true or false")
    if target is int:
        try:
            return int(raw)
        except ValueError:
            raise ValueError("expected an integer") from None
    if target is float:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError("expected a number") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("expected a finite number")
        return value
    if target is Path:
        return Path(raw).expanduser()
    return raw


def read(cls: type, environ: Mapping[str, str]) -> tuple[dict[str, object], list[str]]:
    """The values of ``cls``'s fields whose variables are set in ``environ`` (blank counts as
    unset: the field keeps its default), and one ``VAR='raw': what was expected`` per value that
    does not convert."""
    hints = typing.get_type_hints(cls)
    values: dict[str, object] = {}
    problems: list[str] = []
    for f in fields(cls):
        if not f.init:
            continue
        reader = f.metadata.get("read")
        if reader is not None:
            values[f.name] = reader(environ)
            continue
        env = f.metadata.get("env")
        if not env:
            continue
        raw = environ.get(env)
        if raw is None or raw.strip() == "":
            continue
        try:
            values[f.name] = convert(raw.strip(), hints[f.name])
        except ValueError as exc:
            problems.append(f"{env}={raw!r}: {exc}")
    return values, problems


def refuse(problems: list[str], where: str = "environment") -> None:
    """Raise one InputError listing ``problems``, if there are any."""
    if problems:
        raise InputError("invalid settings", where=where, why="; ".join(problems))


def from_env(cls: type[T], environ: Mapping[str, str] | None = None, *,
             defaults: Mapping[str, object] | None = None,
             extra: Callable[[Mapping[str, str]], list[str]] | None = None,
             check: Callable[[T], list[str]] | None = None) -> T:
    """An instance of ``cls`` from ``environ`` (default ``os.environ``); one InputError lists every problem.

    ``defaults`` replace the dataclass defaults of unset variables (a default that depends on
    the environment); ``extra`` adds problems found in the raw environment (an unknown variable
    of a family); ``check`` returns the problems of the converted settings (each ``VAR: why``).
    ``cls``'s own ``__post_init__`` may refuse the values too (an InputError, raised as is)."""
    environ = os.environ if environ is None else environ
    values, problems = read(cls, environ)
    if extra is not None:
        problems += extra(environ)
    refuse(problems)
    settings = cls(**{**(defaults or {}), **values})
    if check is not None:
        refuse(check(settings))
    return settings


def table(cls: type, by: str = "env", header: str = "variable") -> str:
    """``cls``'s settings as a Markdown table: one row per field with an ``env`` (or, with
    ``by="flag"``, a ``flag``), its default and its meaning."""
    rows = [f"| {header} | default | meaning |", "|---|---|---|"]
    for f in fields(cls):
        name = f.metadata.get(by)
        if name:
            rows.append(f"| `{name}` | {_default(f)} | {f.metadata['doc']} |")
    return "\n".join(rows)


def _default(f: Field) -> str:
    if f.metadata.get("shown") is not None:
        return f.metadata["shown"]
    default = f.default if f.default is not MISSING and f.default not in (None, ()) else ""
    default = "" if default == "" else f"`{default}`"
    return default.replace("|", "\\|")
