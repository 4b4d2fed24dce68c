"""A state directory that a NeuroKube tool manages: the local cluster's and the data stack's.

Both keep the same things in it:
- a marker file that proves the tool created the directory;
- a lock that serialises `up` and `down`;
- a versioned JSON record of what runs, written atomically so that a crash never loses the pids
  of running processes.

Each tool keeps its own layout and record type (``neurokube.cluster.state``,
``neurokube.stack.state``) and uses these functions for the mechanism.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TypeVar

from neurokube.errors import InputError

T = TypeVar("T")
LOCK = ".lock"


def refuse_foreign(root: Path, marker: str) -> None:
    """Raise unless ``root`` is absent, empty, or carries ``marker``."""
    if not root.exists():
        return
    if not root.is_dir():
        raise InputError("state directory is a file", where=str(root))
    if not (root / marker).exists() and any(c.name != LOCK for c in root.iterdir()):
        raise InputError("state directory is not empty and was not created by NeuroKube", where=str(root),
                         why="choose another --state-dir")


def read_record(path: Path, what: str, version: int, parse: Callable[[dict], T]) -> T | None:
    """The record at ``path`` (None when absent); ``what`` names it in errors ("cluster record")."""
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"unreadable {what}", where=str(path), why=str(exc)) from None
    if doc.get("format") != version:
        raise InputError(f"{what} from another NeuroKube version", where=str(path),
                         why="stop its processes by hand or remove the state directory")
    try:
        return parse(doc)
    except (KeyError, TypeError) as exc:
        raise InputError(f"incomplete {what}", where=str(path), why=str(exc)) from None


def write_record(path: Path, doc: dict) -> None:
    """Write atomically: a crash mid-write must not lose the pids of running processes."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(partial, path)


def purge(root: Path, marker: str) -> None:
    """Delete the directory, but only one this tool created."""
    if (root / marker).exists():
        shutil.rmtree(root)


@contextmanager
def locked(root: Path) -> Iterator[None]:
    """Serialise the commands that change one state directory."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / LOCK, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def stop_recorded(processes: Sequence, stop: Callable[[object], str], out: IO[str]) -> list[tuple[str, str]]:
    """Stop recorded processes, last started first, printing one line each; (name, outcome) pairs."""
    outcomes = []
    for process in reversed(processes):
        outcome = stop(process)
        outcomes.append((process.name, outcome))
        print(f"  {process.name} (pid {process.pid}): {outcome}", file=out)
    return outcomes
