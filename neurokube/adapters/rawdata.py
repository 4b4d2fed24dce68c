"""Readers for the raw public traces the builder uses (formats in ../shared/data/README.md).

* Alibaba ``openb`` pod and node lists (cluster-trace-gpu-v2023): CSV with a header.
* Bitbrains GWA-T-12 ``Rnd`` per-VM series: ``;``+tab separated, gzipped, one file per VM, a
  sample every 300 s; the "Timestamp [ms]" column holds Unix *seconds*.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd

from neurokube.errors import InputError
from neurokube.trace.build import VmSeries

OPENB_POD_COLUMNS = ("name", "cpu_milli", "memory_mib", "qos", "creation_time", "deletion_time")
OPENB_NODE_COLUMNS = ("sn", "cpu_milli", "memory_mib")


def _csv(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    if not path.is_file():
        raise InputError("file not found", str(path))
    try:
        frame = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError("cannot be read as CSV", str(path), str(exc).splitlines()[0]) from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"missing column {missing[0]!r}", str(path), "is this an openb list?")
    return frame


def read_openb_pods(path: Path) -> pd.DataFrame:
    """Pods with a CPU request and a known lifetime: name, cpu_milli, memory_mib, qos, lifetime_s."""
    frame = _csv(path, OPENB_POD_COLUMNS)
    life = pd.to_numeric(frame["deletion_time"], errors="coerce") - pd.to_numeric(
        frame["creation_time"], errors="coerce")
    out = pd.DataFrame({
        "name": frame["name"].astype(str),
        "cpu_milli": pd.to_numeric(frame["cpu_milli"], errors="coerce"),
        "memory_mib": pd.to_numeric(frame["memory_mib"], errors="coerce"),
        "qos": frame["qos"].astype(str),
        "lifetime_s": life,
    })
    out = out.dropna()
    out = out[(out.cpu_milli > 0) & (out.lifetime_s >= 0)]
    if out.empty:
        raise InputError("no usable pods", str(path), "every row lacks a CPU request or lifetime")
    return out.reset_index(drop=True)


def read_openb_nodes(path: Path) -> pd.DataFrame:
    frame = _csv(path, OPENB_NODE_COLUMNS)
    out = pd.DataFrame({"name": frame["sn"].astype(str),
                        "cpu_milli": pd.to_numeric(frame["cpu_milli"], errors="coerce"),
                        "memory_mib": pd.to_numeric(frame["memory_mib"], errors="coerce")}).dropna()
    out = out[(out.cpu_milli > 0) & (out.memory_mib > 0)]
    if out.empty:
        raise InputError("no usable nodes", str(path))
    return out.reset_index(drop=True)


def read_bitbrains(directory: Path, limit: int | None = None) -> list[VmSeries]:
    """Every ``*.csv`` / ``*.csv.gz`` VM file in ``directory`` (sorted by VM number)."""
    if not directory.is_dir():
        raise InputError("not a directory", str(directory), "--bitbrains takes the folder of VM files")
    files = sorted(
        [*directory.glob("*.csv.gz"), *directory.glob("*.csv")],
        key=lambda p: (int(p.name.split(".")[0]) if p.name.split(".")[0].isdigit() else 10**9, p.name))
    if not files:
        raise InputError("no VM files (*.csv or *.csv.gz)", str(directory))
    series = []
    for path in files[:limit]:
        opener = gzip.open if path.suffix == ".gz" else open
        try:
            with opener(path, "rt") as fh:
                frame = pd.read_csv(fh, sep=";")
        except (OSError, EOFError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise InputError("cannot be read", str(path), str(exc).splitlines()[0]) from None
        frame.columns = [c.strip() for c in frame.columns]
        need = ("Timestamp [ms]", "CPU usage [MHZ]", "Memory usage [KB]")
        if any(c not in frame.columns for c in need):
            raise InputError("not a Bitbrains VM file", str(path), f"needs columns {', '.join(need)}")
        series.append(VmSeries(
            name=path.name.split(".")[0],
            t_s=frame[need[0]].to_numpy(dtype=np.float64),
            cpu_mhz=frame[need[1]].to_numpy(dtype=np.float64),
            memory_kb=frame[need[2]].to_numpy(dtype=np.float64),
        ))
    return series
