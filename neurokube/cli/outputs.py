"""Command outputs, written all or nothing.

A command collects what it writes in an :class:`Outputs` transaction. Each file or directory is
first written to a hidden temporary beside its target, on the same file system, and all of them
are renamed into place only when the command has finished. A failure (an error, an interrupt, a
full disk) removes the temporaries and every directory the transaction created, so no partial
output is left behind. An ``OSError`` while writing a temporary becomes an
:class:`~neurokube.errors.InputError` naming the target.

A target directory that already exists keeps its other files: the new ones are moved into it,
one rename each, at the end.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Self

from neurokube.cli.options import writable_problem
from neurokube.errors import InputError


class Outputs:
    """``with Outputs() as out: write(out.file(path, "--json"))``: published on success only."""

    def __init__(self) -> None:
        self._pending: list[tuple[Path, Path, str, tuple[str, ...]]] = []  # temp, target, flag, stale
        self._created: list[Path] = []  # directories this transaction made, outermost first

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if kind is None:
            try:
                self._publish()
            except OSError as error:
                target = _target_of(error, self._pending)
                self._discard()
                raise InputError("cannot write output", target, _reason(error)) from None
            return
        target = _target_of(exc, self._pending, strict=True) if isinstance(exc, OSError) else None
        self._discard()
        if target is not None:
            raise InputError("cannot write output", target, _reason(exc)) from None

    def file(self, target: Path, flag: str) -> Path:
        """A temporary path to write ``target`` to. It ends in ``target``'s name, so a writer that
        picks its format by suffix (matplotlib) still picks the right one."""
        target = Path(target)
        self._check(target, flag, directory=False)
        parent = Path(os.path.abspath(target)).parent
        self._make_dirs(parent, target, flag)
        temp = parent / f".partial-{secrets.token_hex(4)}-{target.name}"
        self._pending.append((temp, target, flag, ()))
        return temp

    def directory(self, target: Path, flag: str, *, stale: Iterable[str] = ()) -> Path:
        """A temporary directory whose files become ``target``'s; names in ``stale`` that the
        command did not write are removed from ``target`` when publishing."""
        target = Path(target)
        self._check(target, flag, directory=True)
        absolute = Path(os.path.abspath(target))
        if absolute.is_dir():
            temp = absolute / f".partial-{secrets.token_hex(4)}"
        else:
            self._make_dirs(absolute.parent, target, flag)
            temp = absolute.parent / f".partial-{secrets.token_hex(4)}-{absolute.name}"
        try:
            temp.mkdir()
        except OSError as exc:
            self._discard()
            raise InputError(f"cannot write {flag}", str(target), _reason(exc)) from None
        self._pending.append((temp, target, flag, tuple(stale)))
        return temp

    def _check(self, target: Path, flag: str, *, directory: bool) -> None:
        problem = writable_problem(target, directory=directory)
        if problem:
            self._discard()
            raise InputError(f"cannot write {flag}", str(target), problem)

    def _make_dirs(self, directory: Path, target: Path, flag: str) -> None:
        missing = []
        while not os.path.lexists(directory) and directory != directory.parent:
            missing.append(directory)
            directory = directory.parent
        for d in reversed(missing):
            try:
                d.mkdir()
            except OSError as exc:
                self._discard()
                raise InputError(f"cannot write {flag}", str(target), _reason(exc)) from None
            self._created.append(d)

    def _publish(self) -> None:
        for temp, target, _, stale in self._pending:
            absolute = Path(os.path.abspath(target))
            if temp.is_dir() and temp.parent == absolute:  # into an existing directory
                written = {p.name for p in temp.iterdir()}
                _merge(temp, absolute)
                for name in stale:
                    if name not in written:
                        (absolute / name).unlink(missing_ok=True)
            elif temp.is_dir():
                os.rename(temp, absolute)
            else:
                if not temp.exists():  # the command chose not to write it
                    continue
                os.replace(temp, absolute)
        self._pending.clear()
        self._created.clear()

    def _discard(self) -> None:
        for temp, _, _, _ in self._pending:
            if temp.is_dir():
                shutil.rmtree(temp, ignore_errors=True)
            else:
                temp.unlink(missing_ok=True)
        for d in reversed(self._created):
            try:
                d.rmdir()
            except OSError:
                pass  # not empty: something else wrote there meanwhile
        self._pending.clear()
        self._created.clear()


def _merge(source: Path, target: Path) -> None:
    """Move every entry of ``source`` into ``target`` (one rename each), then remove ``source``."""
    for entry in source.iterdir():
        dest = target / entry.name
        if entry.is_dir() and dest.is_dir():
            _merge(entry, dest)
        else:
            os.replace(entry, dest)
    source.rmdir()


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def _target_of(exc: OSError, pending: list[tuple[Path, Path, str, tuple[str, ...]]],
               *, strict: bool = False) -> str | None:
    """The target whose temporary ``exc`` is about, or (unless ``strict``) the file it names."""
    name = str(exc.filename) if exc.filename is not None else ""
    for temp, target, _, _ in pending:
        if name and (name == str(temp) or name.startswith(f"{temp}{os.sep}")):
            return str(target)
    if strict:
        return None
    return name or (str(pending[0][1]) if pending else "output")
