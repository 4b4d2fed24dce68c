"""Trace format v1 on disk: read a trace directory's CSV files (gzip when they end in .gz) and write
one, for the CLI, the benchmarks and the tests.

The checks live in the core (:mod:`neurokube.trace.format`); this module only finds, opens,
parses and writes the files, and reports what the file system or the CSV parser refuses as an
:class:`~neurokube.errors.InputError` naming the file (and line), like every check of the format.
"""

from __future__ import annotations

import csv
import gzip
import re
import zlib
from functools import partial
from pathlib import Path

import pandas as pd

from neurokube.errors import InputError
from neurokube.trace.format import CsvColumns, nodes_from, pods_from, profiles_from, select_columns, trace_frames
from neurokube.trace.model import NODE_COLUMNS, OPTIONAL_POD_COLUMNS, POD_COLUMNS, PROFILE_COLUMNS, Trace

_PANDAS_LINE = re.compile(r"\bin line (\d+)")  # pandas' parser errors: a line ...
_PANDAS_ROW = re.compile(r"\bstarting at row (\d+)")  # ... or a record (0 is the header)


def _line_of(path: Path, record: int) -> int:
    """The line on which CSV record ``record`` (0 is the header) starts.

    Records and lines agree unless a quoted field spans lines, so the file is scanned again, only
    when an error is reported, to count the lines exactly; a file the csv module cannot follow
    falls back to one line per record.
    """
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh)
            start = 1
            for index, _ in enumerate(reader):
                if index == record:
                    return start
                start = reader.line_num + 1
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, csv.Error):
        pass
    return record + 1


def read_columns(path: Path, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> CsvColumns:
    """The ``required`` columns of the CSV file ``path`` (gzip when it ends in .gz), and those of
    the ``optional`` ones it has, for the trace files and the replay's placements alike. Refused
    with an :class:`InputError` naming the file (and line): an unreadable, undecodable or empty
    file, a row with more fields than the header, and what :func:`~neurokube.trace.format.select_columns`
    refuses (a missing required column, a duplicate column, no rows)."""
    try:
        # header=None: the header row is data to us, so a row longer than the header is an error
        # (pandas would otherwise take the extra field as an index and shift the columns).
        frame = pd.read_csv(path, dtype=str, header=None, keep_default_na=False, skip_blank_lines=False,
                            skipinitialspace=True, encoding="utf-8")
    except pd.errors.EmptyDataError:
        raise InputError("empty file", str(path), "no header and no rows") from None
    except pd.errors.ParserError as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        line, row = _PANDAS_LINE.search(message), _PANDAS_ROW.search(message)
        where = f"{path}:{line.group(1)}" if line else f"{path}:{_line_of(path, int(row.group(1)))}" if row \
            else str(path)
        raise InputError("cannot be read as CSV", where, message.removeprefix("Error tokenizing data. ")) from None
    except UnicodeDecodeError as exc:
        raise InputError("cannot be read as CSV", str(path), f"not UTF-8 text: {exc.reason} at byte {exc.start}") \
            from None
    except ValueError as exc:  # anything else the parser refuses
        raise InputError("cannot be read as CSV", str(path), _reason(exc)) from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:  # not gzip, truncated, corrupt
        raise InputError("not a readable gzip file", str(path), _reason(exc)) from None
    except OSError as exc:  # PermissionError, IsADirectoryError, ...
        raise InputError("cannot be read", str(path), _reason(exc)) from None
    return select_columns(frame, str(path), required, optional, line_of=partial(_line_of, path))


def _reason(exc: BaseException) -> str:
    """One line saying why an OS or decompression error happened."""
    text = getattr(exc, "strerror", None) or str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _find(directory: Path, stem: str) -> Path:
    for candidate in (directory / f"{stem}.csv", directory / f"{stem}.csv.gz"):
        try:
            if candidate.is_file():
                return candidate
            if candidate.exists():
                raise InputError("not a regular file", str(candidate), "a v1 trace file must be a file")
        except OSError as exc:
            raise InputError("cannot be read", str(candidate), _reason(exc)) from None
    raise InputError(f"{stem}.csv (or {stem}.csv.gz) not found", str(directory),
                     "a v1 trace has nodes.csv, pods.csv and profiles.csv[.gz]")


def read_trace(directory: str | Path) -> Trace:
    """Load and validate the v1 trace in ``directory``."""
    directory = Path(directory)
    try:
        is_dir = directory.is_dir()
    except OSError as exc:  # e.g. a parent that cannot be searched, a name too long
        raise InputError("cannot be read", str(directory), _reason(exc)) from None
    if not is_dir:
        why = "it does not exist" if not _exists(directory) else "it is a file"
        raise InputError("not a directory", str(directory), f"a v1 trace is a directory; {why}")
    profiles = profiles_from(read_columns(_find(directory, "profiles"), PROFILE_COLUMNS))
    nodes = nodes_from(read_columns(_find(directory, "nodes"), NODE_COLUMNS))
    pods = pods_from(read_columns(_find(directory, "pods"), POD_COLUMNS, OPTIONAL_POD_COLUMNS), profiles)
    return Trace(name=directory.name, nodes=nodes, pods=pods, profiles=profiles)


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:
        return False


def write_trace(trace: Trace, directory: str | Path, *, compress_profiles: bool = True) -> Path:
    """Write ``trace`` as v1 into ``directory`` (created); returns the directory. A stale
    profiles.csv or profiles.csv.gz is removed, so the directory holds one profiles file."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    frames = trace_frames(trace)
    frames["nodes"].to_csv(directory / "nodes.csv", index=False)
    frames["pods"].to_csv(directory / "pods.csv", index=False)
    for stale in (directory / "profiles.csv", directory / "profiles.csv.gz"):
        stale.unlink(missing_ok=True)
    target = directory / ("profiles.csv.gz" if compress_profiles else "profiles.csv")
    frames["profiles"].to_csv(target, index=False)
    return directory
