"""A plain-text comparison table of replay metrics."""

from __future__ import annotations

from collections.abc import Mapping

COLUMNS = (
    ("contention_core_s", "contention core-s", "{:,.0f}"),
    ("hot_node_fraction", "hot", "{:.3f}"),
    ("node_hours", "node-h", "{:,.1f}"),
    ("pending_pod_s", "pending pod-s", "{:,.0f}"),
    ("unscheduled_pods", "unsched", "{:d}"),
    ("mem_overflow_mib_s", "mem over MiB-s", "{:,.0f}"),
    ("util_mean", "util", "{:.3f}"),
    ("util_std", "util sd", "{:.3f}"),
    ("decision_us_p50", "p50 us", "{:,.0f}"),
    ("decision_us_p99", "p99 us", "{:,.0f}"),
)
ACTING_COLUMNS = (
    ("resizes", "resizes", "{:,d}"),
    ("evictions", "evictions", "{:,d}"),
    ("throttled_s", "throttled pod-s", "{:,.0f}"),
    ("oom_kills", "OOM kills", "{:,d}"),
    ("lost_work_core_s", "evicted work core-s", "{:,.0f}"),
)
"""Shown when an actuator acted (``--actuator``)."""


def _fmt(fmt: str, value: object) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return str(value)


def format_table(metrics: Mapping[str, Mapping[str, object]], *, acting: bool = False) -> str:
    columns = COLUMNS + ACTING_COLUMNS if acting else COLUMNS
    header = ["policy", *[c[1] for c in columns]]
    rows = [[name, *[_fmt(fmt, m.get(key)) for key, _, fmt in columns]] for name, m in metrics.items()]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths)))]
    lines.append("  ".join("-" * w for w in widths))
    for r in rows:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    return "\n".join(lines)
