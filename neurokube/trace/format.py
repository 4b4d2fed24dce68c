"""Trace format v1 without files: the checks that turn its three tables' columns into a
:class:`~neurokube.trace.model.Trace`, and the tables a trace is written as.

The files themselves are read and written by :mod:`neurokube.adapters.trace_files`, which hands
this module each file's columns as strings (:class:`CsvColumns`) and writes the frames of
:func:`trace_frames`: the format is the core's own contract, its storage is not.

Every problem is reported as an :class:`~neurokube.errors.InputError` naming the file, the line
(1 is the header) and the column, so a producer can fix its output without reading our code.
Numbers must be finite and within the limits below (docs/TRACE_FORMAT.md, "Limits"); a value
outside them is refused, never cast or clipped.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from neurokube.errors import InputError
from neurokube.logs import event
from neurokube.trace.model import (
    OPTIONAL_POD_COLUMNS,
    POD_COLUMNS,
    QOS_CLASSES,
    NodeTable,
    PodTable,
    ProfileTable,
    Trace,
)

log = logging.getLogger(__name__)

MAX_CPU_MILLI = 10**9
"""Largest CPU quantity (millicores: a million cores) in any CPU column."""
MAX_MEMORY_MIB = 10**12
"""Largest memory quantity (MiB: about an exbibyte) in any memory column."""
MAX_TIME_S = 10**8
"""Largest time (seconds: about 3.2 years) in creation_s, duration_s, profile_offset_s and t_s."""
MAX_PROFILE_VALUE = 10**6
"""Largest usage-shape value (a multiplier of the pod's scale) in profiles' cpu and memory."""
MIN_PROFILE_STEP_S = 0.001
"""Smallest step between two samples of a profile (the writer keeps t_s to the millisecond)."""
STEP_RTOL, STEP_ATOL_S = 1e-6, 1e-6
"""How far a profile's steps may differ from its first step and still count as uniform."""
MIN_PRIORITY, MAX_PRIORITY = -2**31, 2_000_001_000
"""Range of pods' optional ``priority``: Kubernetes' int32 priorities, up to ``system-node-critical``
(user classes stop at 10^9; the two system classes sit above it)."""
MAX_UNAVAILABLE = 2**31 - 1
"""Largest ``max_unavailable`` (a pod count, an int32 as in a PodDisruptionBudget)."""

_INT_NODE = {"cpu_milli": MAX_CPU_MILLI, "memory_mib": MAX_MEMORY_MIB}
_INT_POD = {"cpu_request_milli": MAX_CPU_MILLI, "memory_request_mib": MAX_MEMORY_MIB,
            "cpu_limit_milli": MAX_CPU_MILLI, "memory_limit_mib": MAX_MEMORY_MIB}
_FLOAT_POD = {"creation_s": MAX_TIME_S, "duration_s": MAX_TIME_S, "profile_offset_s": MAX_TIME_S,
              "cpu_scale_milli": MAX_CPU_MILLI, "memory_scale_mib": MAX_MEMORY_MIB}
_NAN_TEXT = re.compile(r"^[+-]?nan$", re.IGNORECASE)


def _record_line(record: int) -> int:
    """The line of CSV record ``record`` (0 is the header) when no field spans lines."""
    return record + 1


@dataclass(frozen=True)
class CsvColumns:
    """The required columns of one CSV file, and the optional ones it has (:func:`select_columns`),
    as stripped strings; ``frame.index`` holds each row's record number (0 is the header), from
    which :meth:`where` finds its line in the file.

    ``source`` names the file in messages; ``line_of`` maps a record number to the line on which it
    starts (the reader supplies it: only the file knows where a quoted field spans lines, and it is
    asked only when an error is reported)."""

    source: str
    frame: pd.DataFrame
    line_of: Callable[[int], int] = field(default=_record_line, compare=False)

    def line(self, row: int) -> int:
        """The line of positional data row ``row``."""
        return self.line_of(int(self.frame.index[row]))

    def where(self, row: int) -> str:
        """``file:line`` of positional data row ``row``."""
        return f"{self.source}:{self.line(row)}"

    def column(self, name: str) -> pd.Series:
        return self.frame[name]

    def has(self, name: str) -> bool:
        """Whether the file has column ``name`` (always, for a required one)."""
        return name in self.frame.columns


def select_columns(rows: pd.DataFrame, source: str, required: tuple[str, ...], optional: tuple[str, ...] = (),
                   line_of: Callable[[int], int] = _record_line) -> CsvColumns:
    """The ``required`` columns of a CSV file's ``rows`` (every record as strings, the header
    first, indexed by record number), and those of the ``optional`` ones it has. Refused with an
    :class:`InputError` naming ``source`` (and line): a missing required column, a duplicate
    required or optional column, no data rows. Blank lines are skipped; extra columns are ignored."""
    header = [str(c).strip().lstrip("\ufeff").strip() for c in rows.iloc[0]]
    names, positions = [], []
    for name in (*required, *optional):
        found = [i for i, c in enumerate(header) if c == name]
        if not found and name in optional:
            continue
        if not found:
            raise InputError(f"missing column {name!r}", source, f"v1 needs columns {', '.join(required)}")
        if len(found) > 1:
            raise InputError(f"duplicate column {name!r}", f"{source}:1", "each column may appear once")
        names.append(name)
        positions.append(found[0])
    data = pd.DataFrame({name: rows.iloc[1:, i].str.strip() for name, i in zip(names, positions)})
    blank = np.array((data == "").all(axis=1), dtype=bool)
    if blank.any():  # a blank line, unless a column we do not read has something
        others = [i for i in range(rows.shape[1]) if i not in positions]
        for i in others:
            blank[blank] = (rows.iloc[1:, i][blank].str.strip() == "").to_numpy()
        data = data[~blank]
    if len(data) == 0:
        raise InputError("empty file", source, "a header but no rows")
    return CsvColumns(source=source, frame=data, line_of=line_of)


def _numeric(table: CsvColumns, column: str, *, maximum: int, integral: bool = False, minimum: int = 0) -> np.ndarray:
    """``column`` as float64; every value a finite number in ``[minimum, maximum]``, and a whole
    number when ``integral`` (a quantity in millicores or MiB is never rounded for the producer)."""
    raw = table.column(column)
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)

    def refuse(bad: np.ndarray, what: str, why: str | None = None, *, quote: bool = True) -> None:
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            shown = repr(raw.iloc[row]) if quote else raw.iloc[row]
            raise InputError(f"column {column!r}: {shown} {what}", table.where(row), why)

    nan = np.isnan(values)
    if nan.any():
        refuse(nan & ~raw.str.match(_NAN_TEXT).to_numpy(dtype=bool), "is not a number")
    refuse(~np.isfinite(values), "is not a finite number", "inf and nan are refused")
    if minimum == 0:
        refuse(values < 0, "is negative", quote=False)
    refuse(values < minimum, "is too small", f"at least {minimum:,}; docs/TRACE_FORMAT.md, Limits")
    refuse(values > maximum, "is too large", f"at most {maximum:,}; docs/TRACE_FORMAT.md, Limits")
    if integral:
        refuse(values != np.floor(values), "is not a whole number", "this column counts whole units")
    return values


def _names(table: CsvColumns, column: str, *, unique: bool) -> np.ndarray:
    values = table.column(column).to_numpy(dtype=object)
    empty = values == ""
    if empty.any():
        row = int(np.flatnonzero(empty)[0])
        raise InputError(f"column {column!r} is empty", table.where(row))
    if unique:
        dup = pd.Series(values).duplicated().to_numpy()
        if dup.any():
            row = int(np.flatnonzero(dup)[0])
            raise InputError(f"duplicate {column} {values[row]!r}", table.where(row))
    return values


def nodes_from(table: CsvColumns) -> NodeTable:
    """The nodes of ``table`` (the columns of nodes.csv), checked."""
    name = _names(table, "name", unique=True)
    cpu, mem = (_numeric(table, c, maximum=m, integral=True).astype(np.int64) for c, m in _INT_NODE.items())
    for col, arr in zip(_INT_NODE, (cpu, mem)):
        if (arr == 0).any():
            row = int(np.flatnonzero(arr == 0)[0])
            raise InputError(f"column {col!r} is 0", table.where(row), "a node needs capacity")
    return NodeTable(name=name, cpu_milli=cpu, memory_mib=mem)


def profiles_from(table: CsvColumns) -> ProfileTable:
    """The profiles of ``table`` (the columns of profiles.csv), checked; each one's samples sorted by t_s."""
    name = _names(table, "profile", unique=False)
    t_s = _numeric(table, "t_s", maximum=MAX_TIME_S)
    cpu = _numeric(table, "cpu", maximum=MAX_PROFILE_VALUE)
    mem = _numeric(table, "memory", maximum=MAX_PROFILE_VALUE)
    # Rows may come in any order: each profile's samples are sorted by t_s.
    order = np.lexsort((t_s, pd.factorize(name)[0]))
    codes, names = pd.factorize(name[order])
    t_sorted = t_s[order]
    boundaries = np.flatnonzero(np.diff(codes)) + 1
    starts = np.concatenate([[0], boundaries]).astype(np.int64)
    lengths = np.diff(np.concatenate([starts, [len(codes)]])).astype(np.int64)
    steps = np.empty(len(starts))
    for i, (s, n) in enumerate(zip(starts, lengths)):
        if n == 1:
            steps[i] = 1.0  # a constant profile
            continue
        d = np.diff(t_sorted[s:s + n])
        step = d[0]
        bad = (d <= 0) | ~np.isclose(d, step, rtol=STEP_RTOL, atol=STEP_ATOL_S)
        if step < MIN_PROFILE_STEP_S:
            bad[0] = True
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            where = table.where(int(order[s + k + 1]))
            if d[k] <= 0:
                why = f"two samples share t_s {t_sorted[s + k]:g}"
            elif step < MIN_PROFILE_STEP_S:
                why = f"the step {step:g} s is below the minimum {MIN_PROFILE_STEP_S:g} s"
            else:
                why = (f"expected every step to be {step:g} s as from the first sample, "
                       f"got {d[k]:.9g} s after t_s {t_sorted[s + k]:g}")
            raise InputError(f"profile {names[i]!r}: t_s steps are not uniform", where, why)
        steps[i] = step
    return ProfileTable(names=np.asarray(names, dtype=object), step_s=steps, start=starts,
                        length=lengths, cpu=cpu[order], memory=mem[order])


def pods_from(table: CsvColumns, profiles: ProfileTable) -> PodTable:
    """The pods of ``table`` (the columns of pods.csv), checked against ``profiles``."""
    name = _names(table, "name", unique=False)
    namespace = _names(table, "namespace", unique=False)
    key = pd.Series(namespace + "/" + name)
    dup = key.duplicated().to_numpy()
    if dup.any():
        row = int(np.flatnonzero(dup)[0])
        raise InputError(f"duplicate pod {key.iloc[row]!r}", table.where(row))
    workload = _names(table, "workload", unique=False)
    qos_raw = table.column("qos")
    qos = qos_raw.map({q: i for i, q in enumerate(QOS_CLASSES)})
    if qos.isna().any():
        row = int(np.flatnonzero(qos.isna().to_numpy())[0])
        raise InputError(f"column 'qos': unknown class {qos_raw.iloc[row]!r}", table.where(row),
                         f"one of {', '.join(QOS_CLASSES)}")
    ints = {c: _numeric(table, c, maximum=m, integral=True).astype(np.int64) for c, m in _INT_POD.items()}
    floats = {c: _numeric(table, c, maximum=m) for c, m in _FLOAT_POD.items()}
    profile_names = table.column("profile")
    lookup = {str(n): i for i, n in enumerate(profiles.names)}
    profile = profile_names.map(lookup)
    if profile.isna().any():
        row = int(np.flatnonzero(profile.isna().to_numpy())[0])
        raise InputError(f"column 'profile': unknown profile {profile_names.iloc[row]!r}",
                         table.where(row), "not in profiles.csv")
    pods = PodTable(
        name=name, namespace=namespace, workload=workload,
        qos=qos.to_numpy(dtype=np.int8),
        profile=profile.to_numpy(dtype=np.int32),
        **ints, **floats, **_optional_pod_columns(table, namespace, workload),
    )
    _warn_inconsistent(pods, table)
    return pods


def _optional_pod_columns(table: CsvColumns, namespace: np.ndarray, workload: np.ndarray) -> dict[str, np.ndarray]:
    """Those of :data:`OPTIONAL_POD_COLUMNS` that pods.csv has; a present column needs a value on
    every row, and ``max_unavailable``, a budget per workload, one value per workload."""
    found: dict[str, np.ndarray] = {}
    if table.has("priority"):
        found["priority"] = _numeric(table, "priority", minimum=MIN_PRIORITY, maximum=MAX_PRIORITY,
                                     integral=True).astype(np.int64)
    if table.has("controlled"):
        found["controlled"] = _flags(table, "controlled")
    if table.has("max_unavailable"):
        budget = _numeric(table, "max_unavailable", maximum=MAX_UNAVAILABLE, integral=True).astype(np.int64)
        key = namespace + "/" + workload
        first = pd.Series(np.arange(len(budget))).groupby(key, sort=False).transform("first").to_numpy()
        differs = budget != budget[first]  # first: the workload's first row, in file order
        if differs.any():
            row = int(np.flatnonzero(differs)[0])
            raise InputError(f"column 'max_unavailable': workload {key[row]!r} has {budget[row]}", table.where(row),
                             f"but {budget[first[row]]} on line {table.line(int(first[row]))}; "
                             "its pods share one disruption budget")
        found["max_unavailable"] = budget
    return found


_FLAG_VALUES = {"true": True, "1": True, "false": False, "0": False}


def _flags(table: CsvColumns, column: str) -> np.ndarray:
    """``column`` as bool: ``true``/``false`` (any case) or ``1``/``0``."""
    raw = table.column(column)
    values = raw.str.lower().map(_FLAG_VALUES)
    if values.isna().any():
        row = int(np.flatnonzero(values.isna().to_numpy())[0])
        raise InputError(f"column {column!r}: {raw.iloc[row]!r} is not a boolean", table.where(row),
                         "true, false, 1 or 0")
    return values.to_numpy(dtype=bool)


def _warn_inconsistent(pods: PodTable, table: CsvColumns) -> None:
    """Kubernetes would reject these pods; the simulator still replays them as written."""
    below = ((pods.cpu_limit_milli > 0) & (pods.cpu_limit_milli < pods.cpu_request_milli)) | (
        (pods.memory_limit_mib > 0) & (pods.memory_limit_mib < pods.memory_request_mib))
    if below.any():
        event(log, "pods with a limit below their request", level=logging.WARNING,
              file=table.source, count=int(below.sum()), first_line=table.line(int(np.flatnonzero(below)[0])))


def trace_frames(trace: Trace) -> dict[str, pd.DataFrame]:
    """The v1 tables of ``trace`` by file stem (``nodes``, ``pods``, ``profiles``), as they are
    written: names for codes, times rounded to the millisecond, profile values to 5 decimals, and
    of the optional pod columns only those the trace sets (a trace without them writes as before)."""
    n = trace.nodes
    nodes = pd.DataFrame({"name": n.name, "cpu_milli": n.cpu_milli, "memory_mib": n.memory_mib})
    p = trace.pods
    columns = {c: getattr(p, c) for c in POD_COLUMNS}
    columns["qos"] = np.asarray(QOS_CLASSES, dtype=object)[p.qos]
    columns["profile"] = trace.profiles.names[p.profile]
    for c in OPTIONAL_POD_COLUMNS:
        if (values := getattr(p, c)) is not None:
            columns[c] = np.where(values, "true", "false") if c == "controlled" else values
    pods = pd.DataFrame(columns)
    for c in _FLOAT_POD:
        pods[c] = pods[c].round(3)
    pr = trace.profiles
    idx = np.repeat(np.arange(len(pr)), pr.length)
    within = np.arange(len(pr.cpu)) - np.repeat(pr.start, pr.length)
    profiles = pd.DataFrame({
        "profile": pr.names[idx],
        "t_s": (within * pr.step_s[idx]).round(3),
        "cpu": pr.cpu.round(5),
        "memory": pr.memory.round(5),
    })
    return {"nodes": nodes, "pods": pods, "profiles": profiles}
