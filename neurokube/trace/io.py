"""Read and write trace format v1, validating as we read.

Every problem is reported as an :class:`~neurokube.errors.InputError` naming the file, the line
(1 is the header) and the column, so a producer can fix its output without reading our code.
"""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from neurokube.errors import InputError
from neurokube.logs import event
from neurokube.trace.model import (
    NODE_COLUMNS,
    POD_COLUMNS,
    PROFILE_COLUMNS,
    QOS_CLASSES,
    NodeTable,
    PodTable,
    ProfileTable,
    Trace,
)

log = logging.getLogger(__name__)

_INT_NODE = ("cpu_milli", "memory_mib")
_INT_POD = ("cpu_request_milli", "memory_request_mib", "cpu_limit_milli", "memory_limit_mib")
_FLOAT_POD = ("creation_s", "duration_s", "profile_offset_s", "cpu_scale_milli", "memory_scale_mib")


def _read_csv(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise InputError("empty file", str(path), "no header and no rows") from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, gzip.BadGzipFile, EOFError) as exc:
        raise InputError("cannot be read as CSV", str(path), str(exc).splitlines()[0]) from None
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise InputError(f"missing column {missing[0]!r}", str(path),
                         f"v1 needs columns {', '.join(required)}")
    if len(frame) == 0:
        raise InputError("empty file", str(path), "a header but no rows")
    return frame[list(required)]


def _numeric(frame: pd.DataFrame, column: str, path: Path, *, allow_negative: bool = False) -> np.ndarray:
    raw = frame[column].str.strip()
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InputError(f"column {column!r}: {raw.iloc[row]!r} is not a number",
                         f"{path}:{row + 2}")
    if not allow_negative and (values < 0).any():
        row = int(np.flatnonzero(values < 0)[0])
        raise InputError(f"column {column!r}: {raw.iloc[row]} is negative", f"{path}:{row + 2}")
    return values


def _names(frame: pd.DataFrame, column: str, path: Path, *, unique: bool) -> np.ndarray:
    values = frame[column].str.strip().to_numpy(dtype=object)
    empty = values == ""
    if empty.any():
        row = int(np.flatnonzero(empty)[0])
        raise InputError(f"column {column!r} is empty", f"{path}:{row + 2}")
    if unique:
        dup = pd.Series(values).duplicated().to_numpy()
        if dup.any():
            row = int(np.flatnonzero(dup)[0])
            raise InputError(f"duplicate {column} {values[row]!r}", f"{path}:{row + 2}")
    return values


def _find(directory: Path, stem: str) -> Path:
    for candidate in (directory / f"{stem}.csv", directory / f"{stem}.csv.gz"):
        if candidate.is_file():
            return candidate
    raise InputError(f"{stem}.csv (or {stem}.csv.gz) not found", str(directory),
                     "a v1 trace has nodes.csv, pods.csv and profiles.csv[.gz]")


def read_nodes(path: Path) -> NodeTable:
    frame = _read_csv(path, NODE_COLUMNS)
    name = _names(frame, "name", path, unique=True)
    cpu, mem = (np.rint(_numeric(frame, c, path)).astype(np.int64) for c in _INT_NODE)
    for col, arr in zip(_INT_NODE, (cpu, mem)):
        if (arr == 0).any():
            row = int(np.flatnonzero(arr == 0)[0])
            raise InputError(f"column {col!r} is 0", f"{path}:{row + 2}", "a node needs capacity")
    return NodeTable(name=name, cpu_milli=cpu, memory_mib=mem)


def read_profiles(path: Path) -> ProfileTable:
    frame = _read_csv(path, PROFILE_COLUMNS)
    name = _names(frame, "profile", path, unique=False)
    t_s = _numeric(frame, "t_s", path)
    cpu = _numeric(frame, "cpu", path)
    mem = _numeric(frame, "memory", path)
    order = np.lexsort((t_s, pd.factorize(name)[0]))
    codes, names = pd.factorize(name[order])
    t_sorted = t_s[order]
    boundaries = np.flatnonzero(np.diff(codes)) + 1
    starts = np.concatenate([[0], boundaries]).astype(np.int64)
    lengths = np.diff(np.concatenate([starts, [len(codes)]])).astype(np.int64)
    steps = np.empty(len(starts))
    for i, (s, n) in enumerate(zip(starts, lengths)):
        ts = t_sorted[s:s + n]
        if n == 1:
            steps[i] = 1.0  # a constant profile
            continue
        d = np.diff(ts)
        if d[0] <= 0 or not np.allclose(d, d[0], rtol=1e-6, atol=1e-6):
            bad = int(np.flatnonzero((d <= 0) | ~np.isclose(d, d[0]))[0]) if d[0] > 0 else 0
            line = int(order[s + bad + 1]) + 2
            raise InputError(f"profile {names[i]!r}: t_s steps are not uniform", f"{path}:{line}",
                             f"expected every step to be {d[0]:g} s" if d[0] > 0
                             else "two samples share one t_s")
        steps[i] = d[0]
    return ProfileTable(names=np.asarray(names, dtype=object), step_s=steps, start=starts,
                        length=lengths, cpu=cpu[order], memory=mem[order])


def read_pods(path: Path, profiles: ProfileTable) -> PodTable:
    frame = _read_csv(path, POD_COLUMNS)
    name = _names(frame, "name", path, unique=False)
    namespace = _names(frame, "namespace", path, unique=False)
    key = pd.Series(namespace + "/" + name)
    dup = key.duplicated().to_numpy()
    if dup.any():
        row = int(np.flatnonzero(dup)[0])
        raise InputError(f"duplicate pod {key.iloc[row]!r}", f"{path}:{row + 2}")
    workload = _names(frame, "workload", path, unique=False)
    qos_raw = frame["qos"].str.strip()
    qos = qos_raw.map({q: i for i, q in enumerate(QOS_CLASSES)})
    if qos.isna().any():
        row = int(np.flatnonzero(qos.isna().to_numpy())[0])
        raise InputError(f"column 'qos': unknown class {qos_raw.iloc[row]!r}", f"{path}:{row + 2}",
                         f"one of {', '.join(QOS_CLASSES)}")
    ints = {c: np.rint(_numeric(frame, c, path)).astype(np.int64) for c in _INT_POD}
    floats = {c: _numeric(frame, c, path) for c in _FLOAT_POD}
    profile_names = frame["profile"].str.strip()
    lookup = {str(n): i for i, n in enumerate(profiles.names)}
    profile = profile_names.map(lookup)
    if profile.isna().any():
        row = int(np.flatnonzero(profile.isna().to_numpy())[0])
        raise InputError(f"column 'profile': unknown profile {profile_names.iloc[row]!r}",
                         f"{path}:{row + 2}", "not in profiles.csv")
    pods = PodTable(
        name=name, namespace=namespace, workload=workload,
        qos=qos.to_numpy(dtype=np.int8),
        profile=profile.to_numpy(dtype=np.int32),
        **ints, **floats,
    )
    _warn_inconsistent(pods, path)
    return pods


def _warn_inconsistent(pods: PodTable, path: Path) -> None:
    """Kubernetes would reject these pods; the simulator still replays them as written."""
    below = ((pods.cpu_limit_milli > 0) & (pods.cpu_limit_milli < pods.cpu_request_milli)) | (
        (pods.memory_limit_mib > 0) & (pods.memory_limit_mib < pods.memory_request_mib))
    if below.any():
        event(log, "pods with a limit below their request", level=logging.WARNING,
              file=str(path), count=int(below.sum()), first_line=int(np.flatnonzero(below)[0]) + 2)


def read_trace(directory: str | Path) -> Trace:
    """Load and validate the v1 trace in ``directory``."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError("not a directory", str(directory), "--trace takes a v1 trace directory")
    profiles = read_profiles(_find(directory, "profiles"))
    nodes = read_nodes(_find(directory, "nodes"))
    pods = read_pods(_find(directory, "pods"), profiles)
    return Trace(name=directory.name, nodes=nodes, pods=pods, profiles=profiles)


def write_trace(trace: Trace, directory: str | Path, *, compress_profiles: bool = True) -> Path:
    """Write ``trace`` as v1 into ``directory`` (created); returns the directory."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    n = trace.nodes
    pd.DataFrame({"name": n.name, "cpu_milli": n.cpu_milli, "memory_mib": n.memory_mib}).to_csv(
        directory / "nodes.csv", index=False)
    p = trace.pods
    columns = {c: getattr(p, c) for c in POD_COLUMNS}
    columns["qos"] = np.asarray(QOS_CLASSES, dtype=object)[p.qos]
    columns["profile"] = trace.profiles.names[p.profile]
    frame = pd.DataFrame(columns)
    for c in _FLOAT_POD:
        frame[c] = frame[c].round(3)
    frame.to_csv(directory / "pods.csv", index=False)
    pr = trace.profiles
    idx = np.repeat(np.arange(len(pr)), pr.length)
    within = np.arange(len(pr.cpu)) - np.repeat(pr.start, pr.length)
    profiles = pd.DataFrame({
        "profile": pr.names[idx],
        "t_s": (within * pr.step_s[idx]).round(3),
        "cpu": pr.cpu.round(5),
        "memory": pr.memory.round(5),
    })
    for stale in (directory / "profiles.csv", directory / "profiles.csv.gz"):
        stale.unlink(missing_ok=True)
    target = directory / ("profiles.csv.gz" if compress_profiles else "profiles.csv")
    profiles.to_csv(target, index=False)
    return directory
