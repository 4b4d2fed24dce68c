"""Locust's results of one headless run, read back (pure: files and text in, numbers and markdown
out): ``PREFIX_stats.csv`` (whole run), ``PREFIX_stats_history.csv`` (``--csv-full-history``: one
row a second per series, cumulative counts and the current 10-second percentiles),
``PREFIX_failures.csv``, the guard's and the binder scenario's log lines, the functions' /metrics
deltas, and the cluster checks after a run. Used by benchmarks/load_runs.py."""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

AGGREGATED = ("", "Aggregated")
BIND = ("BIND", "create -> bound")
GUARD_STOP = re.compile(r"guard: stopping the run: (.+)")
BACKLOG_SPENT = re.compile(r"binder_events: all (\d+) pods were sent")
OUTCOME_NAME = re.compile(r"-> (\w+)$")


# -- reading Locust's CSV and log (pure) ------------------------------------------------------------


@dataclass(frozen=True)
class Totals:
    """One row of ``PREFIX_stats.csv``."""

    kind: str
    name: str
    requests: int
    failures: int
    median_ms: float | None
    p99_ms: float | None
    rps: float


@dataclass(frozen=True)
class Sample:
    """One row of ``PREFIX_stats_history.csv`` (cumulative counts, current-window percentiles)."""

    ts: int
    users: int
    kind: str
    name: str
    requests: int
    failures: int
    p50_ms: float | None
    p99_ms: float | None


@dataclass(frozen=True)
class StageStats:
    index: int
    users: int
    seconds: float
    requests: int
    failures: int
    p50_ms: float | None
    p99_ms: float | None
    complete: bool
    """False when the run ended before the stage did (guard stop, spent backlog)."""

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class Limits:
    max_fail_ratio: float
    max_p99_ms: float


def _number(text: str) -> float | None:
    text = (text or "").strip()
    if text in ("", "N/A"):
        return None
    return float(text)


def read_totals(path: Path) -> dict[tuple[str, str], Totals]:
    """``PREFIX_stats.csv`` by (Type, Name); the whole run is ``("", "Aggregated")``."""
    out = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            key = (row["Type"], row["Name"])
            out[key] = Totals(row["Type"], row["Name"], int(row["Request Count"]), int(row["Failure Count"]),
                              _number(row["Median Response Time"]), _number(row["99%"]),
                              float(row["Requests/s"]))
    return out


def read_history(path: Path, series: tuple[str, str]) -> list[Sample]:
    """The rows of one (Type, Name) series of ``PREFIX_stats_history.csv``, in time order."""
    out = []
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            if (row["Type"], row["Name"]) != series:
                continue
            out.append(Sample(int(row["Timestamp"]), int(row["User Count"]), row["Type"], row["Name"],
                              int(row["Total Request Count"]), int(row["Total Failure Count"]),
                              _number(row["50%"]), _number(row["99%"])))
    return sorted(out, key=lambda s: s.ts)


def read_failures(path: Path) -> list[tuple[str, str, int]]:
    """(name, error, occurrences) from ``PREFIX_failures.csv``, most frequent first."""
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        rows = [(r["Name"], r["Error"], int(r["Occurrences"])) for r in csv.DictReader(handle)]
    return sorted(rows, key=lambda r: -r[2])


def stages(samples: Sequence[Sample], stage_seconds: float, count: int) -> list[StageStats]:
    """Cut the history into ``count`` stages of ``stage_seconds`` from the first row with users
    (minus the one-second row interval): requests and failures per stage from the cumulative
    counts, users as the most in the stage, percentiles from the stage's last row (Locust's
    10-second window). Rows after the last stage's end (the run stopping) belong to the last stage;
    a stage whose rows end more than a second before its end was cut short."""
    if stage_seconds <= 0 or count <= 0:
        raise ValueError("stage length and count must be positive")
    started = [s for s in samples if s.users > 0]
    if not started:
        return []
    t0 = started[0].ts - 1
    out = []
    for k in range(count):
        lo, hi = t0 + k * stage_seconds, t0 + (k + 1) * stage_seconds
        before = [s for s in samples if s.ts <= lo]
        inside = [s for s in samples if lo < s.ts and (s.ts <= hi or k == count - 1)]
        if not inside:
            break
        end = inside[-1]
        base = before[-1] if before else None
        out.append(StageStats(k, max(s.users for s in inside), end.ts - (base.ts if base else lo),
                              end.requests - (base.requests if base else 0),
                              end.failures - (base.failures if base else 0), end.p50_ms, end.p99_ms,
                              complete=end.ts >= hi - 1))
    return out


def guard_outcome(log_text: str) -> str | None:
    """The guard's reason when it stopped the run, else None."""
    match = GUARD_STOP.search(log_text)
    return match.group(1).strip() if match else None


def backlog_spent(log_text: str) -> int | None:
    match = BACKLOG_SPENT.search(log_text)
    return int(match.group(1)) if match else None


def outcomes(totals: dict[tuple[str, str], Totals]) -> dict[str, int]:
    """Binder outcomes from the request names (``CloudEvent pod add -> bound``)."""
    out: dict[str, int] = {}
    for (_kind, name), row in totals.items():
        match = OUTCOME_NAME.search(name)
        if match and name.startswith("CloudEvent"):
            out[match.group(1)] = out.get(match.group(1), 0) + row.requests
    return out


def verdict(requests: int, failures: int, p99_ms: float | None, limits: Limits) -> str:
    """Against the guard's limits (the goals): ``ok`` or what is over."""
    over = []
    if requests and failures / requests > limits.max_fail_ratio:
        over.append(f"failures {failures / requests:.1%} > {limits.max_fail_ratio:.0%}")
    if p99_ms is not None and p99_ms > limits.max_p99_ms:
        over.append(f"p99 {_ms(p99_ms)} > {_ms(limits.max_p99_ms)}")
    return "ok" if not over else "over: " + "; ".join(over)


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms"


def conf_values(path: Path) -> dict[str, str]:
    """``key = value`` lines of a Locust config file (comments and blanks skipped)."""
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out


def stage_table(rows: Sequence[StageStats], total: Totals, limits: Limits, guard: str | None,
                ended_early: str | None) -> str:
    """The markdown table of one run: a row per stage, then the whole run with the guard's verdict."""
    lines = [f"| stage | users | requests | failures | req/s | p50 | p99 | goal: <= {limits.max_fail_ratio:.0%} "
             f"failures, p99 <= {_ms(limits.max_p99_ms)} |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for s in rows:
        label = f"{s.index + 1}" + ("" if s.complete else " (cut)")
        lines.append(f"| {label} | {s.users} | {s.requests:,} | {s.failures:,} | {s.rps:.1f} | {_ms(s.p50_ms)} | "
                     f"{_ms(s.p99_ms)} | {verdict(s.requests, s.failures, s.p99_ms, limits)} |")
    if guard:
        run_verdict = f"guard stopped the run: {guard}"
    else:
        run_verdict = "guard held; " + verdict(total.requests, total.failures, total.p99_ms, limits)
    if ended_early:
        run_verdict += f"; {ended_early}"
    lines.append(f"| **whole run** | | **{total.requests:,}** | **{total.failures:,}** | **{total.rps:.1f}** | "
                 f"**{_ms(total.median_ms)}** | **{_ms(total.p99_ms)}** | {run_verdict} |")
    return "\n".join(lines)


# -- server-side metrics (pure parsing) ---------------------------------------------------------------


def parse_metrics(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def metric_delta(before: dict, after: dict, name: str, **labels: str) -> float:
    def total(doc: dict) -> float:
        return sum(v for (n, ls), v in doc.items()
                   if n == name and all(dict(ls).get(k) == x for k, x in labels.items()))

    return total(after) - total(before)


def by_label(before: dict, after: dict, name: str, label: str) -> dict[str, float]:
    values = sorted({dict(ls).get(label) for (n, ls) in after if n == name} - {None})
    out = {v: metric_delta(before, after, name, **{label: v}) for v in values}
    return {k: v for k, v in out.items() if v}


# -- after the run ------------------------------------------------------------------------------------


def server_side(before: dict, after: dict, binder: bool) -> str:
    if binder:
        decisions = by_label(before, after, "neurokube_decisions_total", "policy")
        means = []
        for stage in ("total", "decide", "bind"):
            count = metric_delta(before, after, "neurokube_decision_duration_seconds_count", stage=stage)
            total = metric_delta(before, after, "neurokube_decision_duration_seconds_sum", stage=stage)
            if count:
                means.append(f"{stage} {total / count * 1000:.0f} ms")
        conflicts = by_label(before, after, "neurokube_bind_conflicts_total", "kind")
        parts = [f"decisions by policy {counts(decisions)}", "mean per placement: " + ", ".join(means or ["-"]),
                 f"bind conflicts {counts(conflicts)}"]
    else:
        count = metric_delta(before, after, "neurokube_extender_duration_seconds_count", verb="prioritize")
        total = metric_delta(before, after, "neurokube_extender_duration_seconds_sum", verb="prioritize")
        parts = [f"prioritize mean {total / count * 1000:.0f} ms over {count:.0f} calls" if count else "no calls"]
    fallbacks = by_label(before, after, "neurokube_fallbacks_total", "reason")
    parts.append(f"fallbacks {counts(fallbacks)}")
    return "; ".join(parts)


def counts(doc: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.0f}" for k, v in doc.items()) if doc else "none"


def invariants_line(found: dict, expected_bound: int | None = None, unbound_expected: bool = False) -> str:
    bits = [f"{found['pods']:,} pods, {found['bound']:,} bound (on {found.get('nodes', '?')} of the nodes)"]
    if found["unbound"] and not unbound_expected:
        bits.append(f"unbound e.g. {', '.join(found['unbound'])}")
    if expected_bound is not None:
        same = "=" if expected_bound == found["bound"] else "!="
        bits.append(f"bound pods {same} the binder's `bound` decisions ({expected_bound:,})")
    bits.append("over-committed nodes: " + ("; ".join(found["over_committed"][:3]) or "none"))
    if found["unknown_nodes"]:
        bits.append(f"bound to unknown nodes: {', '.join(found['unknown_nodes'])}")
    return "; ".join(bits)


def ok_invariants(found: dict, expected_bound: int | None = None, all_bound: bool = True) -> bool:
    return (not found["over_committed"] and not found["unknown_nodes"]
            and (not all_bound or not found["unbound"])
            and (expected_bound is None or expected_bound == found["bound"]))
