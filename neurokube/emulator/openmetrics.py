"""The emulated series over a past window, as OpenMetrics text with explicit timestamps.

This is the input of ``promtool tsdb create-blocks-from openmetrics``: how simulated days get into a
real Prometheus. The source is sampled every ``step_s`` from ``start_s`` to ``end_s`` (both
included) exactly as the live exporter is scraped, so counters integrate the same way. The output
follows the OpenMetrics rules promtool relies on: each family written once, each series' samples
together and in time order, timestamps in seconds, ``# EOF`` at the end.

Memory grows with series x steps (8 bytes a sample); a day of 100 nodes at a 60 s step is ~100 MB.
"""

from __future__ import annotations

import math
import re
from array import array
from typing import IO

from neurokube.adapters.usage import UsageSource
from neurokube.emulator.series import FAMILY_HELP, SERIES_LABELS, Counters, Labels, families
from neurokube.errors import InputError

_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def timestamps(start_s: float, end_s: float, step_s: float) -> list[float]:
    if step_s <= 0:
        raise InputError("the backfill step must be positive", why=f"got {step_s}")
    if end_s <= start_s:
        raise InputError("the backfill window is empty", why=f"start {start_s} is not before end {end_s}")
    count = int(math.floor((end_s - start_s) / step_s)) + 1
    return [start_s + i * step_s for i in range(count)]


def write_window(source: UsageSource, start_s: float, end_s: float, step_s: float, out: IO[str],
                 extra_labels: dict[str, str] | None = None) -> int:
    """Write every family over the window to ``out``; return the number of samples written.

    ``extra_labels`` go on every series: the backfill's ``job``, and the cluster's own label (e.g.
    ``cluster``), so that one Prometheus can hold several clusters with the same node names and a
    snapshot selects its own (pipelines/settings.py, ``PrometheusQueries.selector``)."""
    times = timestamps(start_s, end_s, step_s)
    extra = check_labels(extra_labels or {})
    counters = Counters()
    # family -> series labels -> one value per timestamp (NaN where the series did not exist)
    values: dict[str, dict[Labels, array]] = {name: {} for name in FAMILY_HELP}
    for index, now in enumerate(times):
        snapshot = source.snapshot(now)
        counters.advance(snapshot, now)
        for family in families(snapshot, counters):
            series = values[family.name]
            for labels, value in family.samples:
                column = series.get(labels)
                if column is None:
                    column = series[labels] = array("d", [math.nan] * index)
                column.append(value)
            for column in series.values():  # series absent at this time
                if len(column) == index:
                    column.append(math.nan)
    written = 0
    for name, (kind, text) in FAMILY_HELP.items():
        out.write(f"# HELP {name} {text}\n# TYPE {name} {kind}\n")
        sample_name = f"{name}_total" if kind == "counter" else name
        for labels in sorted(values[name]):
            rendered = _render(tuple(sorted(labels + extra)))
            for at, value in zip(times, values[name][labels], strict=True):
                if not math.isnan(value):
                    out.write(f"{sample_name}{rendered} {_number(value)} {at:.3f}\n")
                    written += 1
    out.write("# EOF\n")
    return written


def check_labels(labels: dict[str, str]) -> Labels:
    """``labels`` as sorted pairs; InputError for a name that is not a label name, is reserved
    (``__``), or is one the series carry already (it would be written twice)."""
    for name, value in labels.items():
        if not isinstance(name, str) or not _LABEL_NAME.fullmatch(name) or name.startswith("__"):
            raise InputError(f"{name!r} is not a label name to attach to the series",
                             why="use [a-zA-Z_][a-zA-Z0-9_]*, not starting with __")
        if name in SERIES_LABELS:
            raise InputError(f"the series carry a label {name!r} already", why="attach another name, e.g. cluster")
        if not isinstance(value, str):
            raise InputError(f"label {name}={value!r} is not a string")
    return tuple(sorted(labels.items()))


def _render(labels: Labels) -> str:
    if not labels:
        return ""
    body = ",".join(f'{key}="{_escape(value)}"' for key, value in labels)
    return "{" + body + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    return repr(float(value))
