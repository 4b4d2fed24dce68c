"""Argument parsing helpers shared by the command modules.

Every numeric type refuses what it cannot mean: text that is not a number, ``inf`` and ``nan``,
values out of its range, and integers too large to be useful (argparse turns the refusal into
one line and exit code 2). The output-path types check, before any work is done, that the path
could be written: nothing on the way is a regular file, and the place is not the wrong kind.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path

MAX_INT = 10**12
"""Largest whole number any count or duration flag accepts unless it says otherwise."""
MAX_SEED = 2**31 - 1
"""Largest seed: every random source we seed (numpy, LightGBM) accepts it."""
MAX_FLOAT = 1e12
"""Largest value a float flag accepts unless it says otherwise."""


def _int(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def int_range(low: int, high: int = MAX_INT) -> Callable[[str], int]:
    """An argparse type: a whole number in ``[low, high]``."""

    def parse(text: str) -> int:
        value = _int(text)
        if value < low:
            raise argparse.ArgumentTypeError(
                f"{text!r} must be positive" if low == 1 else
                f"{text!r} must not be negative" if low == 0 else f"{text!r} must be at least {low}")
        if value > high:
            raise argparse.ArgumentTypeError(f"{text!r} is too large (at most {high:,})")
        return value

    return parse


def float_range(low: float, high: float = MAX_FLOAT, *, low_open: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number in ``[low, high]`` (``(low, high]`` with ``low_open``)."""

    def parse(text: str) -> float:
        value = _float(text)
        if value < low or (low_open and value == low):
            raise argparse.ArgumentTypeError(
                f"{text!r} must be positive" if low == 0 and low_open else
                f"{text!r} must not be negative" if low == 0 else
                f"{text!r} must be {'above' if low_open else 'at least'} {low:g}")
        if value > high:
            raise argparse.ArgumentTypeError(f"{text!r} is too large (at most {high:g})")
        return value

    return parse


positive_int = int_range(1)
non_negative_int = int_range(0)
seed = int_range(0, MAX_SEED)
positive_float = float_range(0.0, low_open=True)
non_negative_float = float_range(0.0)


def fraction(text: str) -> float:
    value = _float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be between 0 and 1")
    return value


def mapping(text: str) -> dict[str, str]:
    """``A=B,C=D`` -> {"A": "B", "C": "D"}."""
    out = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise argparse.ArgumentTypeError(f"{item!r} is not KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


def writable_problem(path: Path, *, directory: bool) -> str | None:
    """Why ``path`` could not be created or replaced as a file (or a directory), or None.

    The nearest existing ancestor must be a directory we may write into; an existing ``path``
    must be of the right kind. Nothing is created.
    """
    try:
        path = Path(os.path.abspath(path))
        if os.path.lexists(path):
            if directory and not path.is_dir():
                return "it exists and is not a directory"
            if not directory and path.is_dir():
                return "it is a directory, a file path is needed"
            writable = os.access(path if directory else path.parent, os.W_OK | os.X_OK)
            return None if writable else "permission denied"
        ancestor = path.parent
        while not os.path.lexists(ancestor) and ancestor != ancestor.parent:
            ancestor = ancestor.parent
        if not ancestor.is_dir():
            return f"{ancestor} is not a directory"
        if not os.access(ancestor, os.W_OK | os.X_OK):
            return f"{ancestor} is not writable"
        return None
    except (OSError, ValueError) as exc:  # a name too long, an embedded NUL byte, ...
        return getattr(exc, "strerror", None) or str(exc)


def output_path(text: str) -> Path:
    """An argparse type: a file the command will write (checked up front, written atomically)."""
    path = Path(text)
    problem = writable_problem(path, directory=False)
    if problem:
        raise argparse.ArgumentTypeError(f"{text!r} cannot be written: {problem}")
    return path


def output_dir(text: str) -> Path:
    """An argparse type: a directory the command will create or write into."""
    path = Path(text)
    problem = writable_problem(path, directory=True)
    if problem:
        raise argparse.ArgumentTypeError(f"{text!r} cannot be written: {problem}")
    return path


# -- shared by the platform command groups (cluster_cmd, stack_cmd) ------------------------------


def usage(parser: argparse.ArgumentParser) -> int:
    """A command group called without a command: its help on stderr, exit 2."""
    parser.print_help(sys.stderr)
    return 2


def add_state_dir(parser: argparse.ArgumentParser, holds: str, default: str) -> None:
    """``--state-dir DIR``: where the group keeps ``holds``; ``default`` names the default place."""
    parser.add_argument("--state-dir", type=Path, default=None, metavar="DIR",
                        help=f"where {holds} live (default {default})")


def resolve_state_dir(args: argparse.Namespace, default: Callable[[], Path]) -> Path:
    """``--state-dir`` as an absolute path, else ``default()``."""
    return (args.state_dir or default()).expanduser().absolute()


def print_processes(components: dict[str, dict], width: int) -> None:
    """One line per recorded process: name, pid, running or not, its log."""
    for name, proc in components.items():
        state = "running" if proc["running"] else "NOT RUNNING"
        print(f"  {name:<{width}} pid {proc['pid']:<8} {state:<12} {proc['log']}")

