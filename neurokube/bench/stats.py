"""The arithmetic of ``neurokube bench scheduling``: per-phase throughput and latency, the ratios
between schedulers, the goal verdicts, and the JSON and Markdown they are reported in.

Pure: timestamps come in as numbers (seconds on one monotonic clock), nothing here reads a clock,
a file or the network.

* create-to-bound latency of a pod = bound - created, where ``created`` is when the pod is known
  to exist (its create call returned, or the bench's watch saw it, whichever came first) and
  ``bound`` is when the bench's watch first saw ``spec.nodeName`` set. Never negative.
* pods/s = pods bound / (last bound - first created): the whole phase, creation included.
* percentiles are nearest-rank (the smallest value with at least q % of the values at or below
  it): p99 of 2,000 pods is the 1,980th fastest, a latency some pod really had.
* kube-scheduler's own scheduling-attempt duration (its ``scheduler_scheduling_attempt_duration_seconds``
  histogram) is read as bucket counts before and after a phase; its quantiles are interpolated
  linearly inside the bucket, as Prometheus' ``histogram_quantile`` does, because the counts are
  all the scheduler exposes: a quantile is only as fine as the bucket it falls in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

KUBE_SCHEDULER = "kube_scheduler"
NEUROKUBE = "neurokube"
EXTENDER = "kube_scheduler_extender"
LABELS = {KUBE_SCHEDULER: "kube-scheduler (default profile)", NEUROKUBE: "NeuroKube binder",
          EXTENDER: "kube-scheduler + NeuroKube extender"}

#: The issue's goals.
THROUGHPUT_RATIO_MIN = 1.0  # NeuroKube pods/s >= 1.0 x kube-scheduler's
P99_RATIO_MAX = 1.5  # NeuroKube p99 create-to-bound <= 1.5 x kube-scheduler's
EXTENDER_ADDED_P99_MS_MAX = 5.0  # the extender adds <= 5 ms to the p99 ...
EXTENDER_GOAL_NODES = 1000  # ... at 1,000 nodes
EXTENDER_ADDED_ATTEMPT_P99_MS_MAX = 5.0  # ... and to kube-scheduler's own p99 scheduling attempt


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile, ``0 < q <= 100``; ValueError for no values."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 < q <= 100:
        raise ValueError(f"percentile {q} is not in (0, 100]")
    ordered = sorted(values)
    rank = math.ceil(q / 100 * len(ordered))
    return float(ordered[max(rank, 1) - 1])


@dataclass(frozen=True)
class PhaseResult:
    scheduler: str  # KUBE_SCHEDULER, NEUROKUBE or EXTENDER
    pods: int  # created
    bound: int
    pods_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    span_s: float  # first created -> last bound
    create_span_s: float  # first created -> last created

    def to_json(self) -> dict:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def summarize(scheduler: str, created: Mapping[str, float], bound: Mapping[str, float]) -> PhaseResult:
    """One phase from per-pod timestamps (seconds, one clock). Pods never bound count in ``pods``
    but not in the latencies; ValueError if no pod was created or none was bound."""
    if not created:
        raise ValueError("no pod was created")
    latencies = [max(0.0, bound[name] - t) * 1000.0 for name, t in created.items() if name in bound]
    if not latencies:
        raise ValueError("no pod was bound")
    first_created = min(created.values())
    last_bound = max(bound[name] for name in created if name in bound)
    span = last_bound - first_created
    return PhaseResult(
        scheduler=scheduler, pods=len(created), bound=len(latencies),
        pods_per_s=len(latencies) / span if span > 0 else math.inf,
        p50_ms=percentile(latencies, 50), p99_ms=percentile(latencies, 99), max_ms=max(latencies),
        mean_ms=sum(latencies) / len(latencies), span_s=span,
        create_span_s=max(created.values()) - first_created)


def median_of(rounds: Sequence[PhaseResult]) -> PhaseResult:
    """One scheduler's rounds as one row: the median of each measure over the rounds (the middle
    round's value for an odd count); pods and bound are the rounds' smallest."""
    if not rounds:
        raise ValueError("no rounds")
    if len({r.scheduler for r in rounds}) != 1:
        raise ValueError("rounds of different schedulers")
    fields = ("pods_per_s", "p50_ms", "p99_ms", "max_ms", "mean_ms", "span_s", "create_span_s")
    return PhaseResult(rounds[0].scheduler, min(r.pods for r in rounds), min(r.bound for r in rounds),
                       **{f: _median([getattr(r, f) for r in rounds]) for f in fields})


def _median(values: Sequence[float]) -> float:
    """The middle value (odd count) or the mean of the two middle values."""
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


# -- API requests per bound pod -----------------------------------------------------------------------

WRITE_VERBS = ("POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION")
"""The apiserver's ``verb`` label values that change state (``APPLY`` is server-side apply)."""

RequestCounts = Mapping[tuple[str, str, str], float]
"""``apiserver_request_total`` summed per (verb, resource, subresource), as read from /metrics."""


def api_requests_per_pod(before: RequestCounts, after: RequestCounts, pods: int) -> dict:
    """What the apiserver served during a phase, per bound pod: ``by_verb``, ``by_request``
    (``"POST pods/binding"``; only requests of at least 0.005 per pod) and ``writes`` (the verbs of
    :data:`WRITE_VERBS`). Everyone's requests are in the counter (the bench's creates, KWOK's status
    updates, the controllers), the same for every scheduler: differences between phases are the
    schedulers'."""
    if pods <= 0:
        raise ValueError("no bound pods")
    by_verb: dict[str, float] = {}
    by_request: dict[str, float] = {}
    for key, value in after.items():
        d = value - before.get(key, 0.0)
        if d <= 0:
            continue
        verb, resource, subresource = key
        by_verb[verb] = by_verb.get(verb, 0.0) + d
        name = f"{verb} {resource}/{subresource}" if subresource else f"{verb} {resource}"
        by_request[name] = by_request.get(name, 0.0) + d
    return {"by_verb": {k: round(v / pods, 3) for k, v in sorted(by_verb.items())},
            "writes": round(sum(v for k, v in by_verb.items() if k in WRITE_VERBS) / pods, 3),
            "by_request": {k: round(v / pods, 3) for k, v in sorted(by_request.items(), key=lambda kv: -kv[1])
                           if v / pods >= 0.005}}


def median_requests(rounds: Sequence[dict]) -> dict:
    """The per-verb and write medians over rounds of :func:`api_requests_per_pod` results."""
    verbs = sorted({v for r in rounds for v in r["by_verb"]})
    return {"by_verb": {v: round(_median([r["by_verb"].get(v, 0.0) for r in rounds]), 3) for v in verbs},
            "writes": round(_median([r["writes"] for r in rounds]), 3)}


# -- CPU per bound pod -------------------------------------------------------------------------------

#: The local processes whose CPU time a phase reads (user + system, children included), and for each
#: phase the ones that are that phase's scheduler: kube-scheduler alone; the binder, the sweeper and
#: the Knative receive adapter that delivers the binder's events; the second kube-scheduler and the
#: extender function. The others (apiserver, etcd, KWOK, controllers, the bench's own process with
#: its creators, watch and Broker stand-in) are shared: what a scheduler costs them shows as their
#: difference between phases.
CPU_PROCESSES = ("kube-scheduler", "binder", "sweeper", "receive-adapter", "kube-scheduler-extender", "extender",
                 "kube-apiserver", "etcd", "kwok", "kube-controller-manager", "bench")
OWN_PROCESSES = {KUBE_SCHEDULER: ("kube-scheduler",), NEUROKUBE: ("binder", "sweeper", "receive-adapter"),
                 EXTENDER: ("kube-scheduler-extender", "extender")}
SHARED_PROCESSES = ("kube-apiserver", "etcd", "kwok", "kube-controller-manager", "bench")


def cpu_ms_per_pod(before: Mapping[str, float], after: Mapping[str, float], pods: int) -> dict[str, float]:
    """CPU milliseconds per bound pod of every process read both times (seconds in, ms out)."""
    if pods <= 0:
        return {}
    return {name: round(max(after[name] - before[name], 0.0) * 1000.0 / pods, 3)
            for name in CPU_PROCESSES if name in before and name in after}


def median_cpu(rounds: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Per process, the median over the rounds that read it."""
    names = [n for n in CPU_PROCESSES if any(n in r for r in rounds)]
    return {n: round(_median([r[n] for r in rounds if n in r]), 3) for n in names}


def own_cpu(scheduler: str, cpu: Mapping[str, float]) -> float | None:
    """The CPU ms per pod of ``scheduler``'s own processes (None if none was read)."""
    found = [cpu[n] for n in OWN_PROCESSES.get(scheduler, ()) if n in cpu]
    return round(sum(found), 3) if found else None


def cpu_table(per_scheduler: Mapping[str, Mapping[str, float]]) -> str:
    """Markdown: per scheduler, its own processes' CPU per pod, then the shared processes'."""
    shared = [n for n in SHARED_PROCESSES if any(n in c for c in per_scheduler.values())]
    rows = ["| scheduler | its own processes | own ms | " + " | ".join(shared) + " | all ms |",
            "|---|---|---:|" + "---:|" * len(shared) + "---:|"]
    for name, cpu in per_scheduler.items():
        own = own_cpu(name, cpu)
        everyone = sum(cpu.get(n, 0.0) for n in (*OWN_PROCESSES.get(name, ()), *shared))
        rows.append(f"| {LABELS.get(name, name)} | {', '.join(OWN_PROCESSES.get(name, ()))} | "
                    + (f"{own:.2f}" if own is not None else "not read") + " | "
                    + " | ".join(f"{cpu[n]:.2f}" if n in cpu else "" for n in shared) + f" | {everyone:.2f} |")
    return "\n".join(rows)


# -- kube-scheduler's scheduling attempts ------------------------------------------------------------

Buckets = Mapping[tuple[str, float], float]
"""One profile of ``scheduler_scheduling_attempt_duration_seconds`` as read from /metrics: the
cumulative count per (``result`` label, bucket upper bound ``le`` in seconds, ``math.inf`` for
``+Inf``)."""


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """The ``q``-quantile (``0 < q <= 1``) of cumulative histogram buckets ``(upper bound, count)``,
    as Prometheus' ``histogram_quantile``: the bucket holding rank ``q * total`` is found and the
    value interpolated linearly between its lower bound (the previous bucket's upper bound, 0 for
    the first bucket) and its upper bound. A rank in the ``+Inf`` bucket gives the highest finite
    bound. None when the buckets count nothing; ValueError without a ``+Inf`` bucket or a finite
    one, or for ``q`` outside (0, 1]."""
    if not 0 < q <= 1:
        raise ValueError(f"quantile {q} is not in (0, 1]")
    merged: dict[float, float] = {}
    for bound, count in buckets:
        merged[float(bound)] = merged.get(float(bound), 0.0) + count
    ordered = sorted(merged.items())
    if not ordered or ordered[-1][0] != math.inf:
        raise ValueError("histogram buckets without a +Inf bucket")
    if len(ordered) < 2:
        raise ValueError("histogram buckets without a finite bucket")
    cumulative, highest = [], 0.0
    for bound, count in ordered:  # counts never fall with the bound (as Prometheus ensures)
        highest = max(highest, count)
        cumulative.append((bound, highest))
    total = cumulative[-1][1]
    if total <= 0:
        return None
    rank = q * total
    index = next((i for i, (_, count) in enumerate(cumulative[:-1]) if count >= rank), len(cumulative) - 1)
    if index == len(cumulative) - 1:
        return cumulative[-2][0]
    end, count = cumulative[index]
    if index == 0:
        if end <= 0:
            return end
        start, below = 0.0, 0.0
    else:
        start, below = cumulative[index - 1]
    return start + (end - start) * (rank - below) / (count - below)


def bucket_deltas(before: Buckets, after: Buckets) -> dict[tuple[str, float], float]:
    """What a phase added to each bucket: after minus before (a bucket new in ``after`` counts from 0)."""
    return {key: value - before.get(key, 0.0) for key, value in after.items()}


def pooled(deltas: Sequence[Buckets]) -> dict[tuple[str, float], float]:
    """Several phases' bucket deltas as one (summed per bucket): the attempts of all rounds together."""
    out: dict[tuple[str, float], float] = {}
    for d in deltas:
        for key, value in d.items():
            out[key] = out.get(key, 0.0) + value
    return out


def scheduling_attempts(deltas: Buckets) -> dict | None:
    """``{"p50", "p99" (ms), "attempts", "by_result": {result: {"attempts", "p50", "p99"}}}`` of one
    phase's bucket deltas, over all results together and per result (``scheduled``,
    ``unschedulable``, ``error``); None when the phase added no attempt."""
    results = sorted({result for result, _ in deltas})
    by_result = {}
    for result in results:
        buckets = [(le, count) for (r, le), count in deltas.items() if r == result]
        summary = _attempt_summary(buckets)
        if summary is not None:
            by_result[result] = summary
    if not by_result:
        return None
    summary = _attempt_summary([(le, count) for (_, le), count in deltas.items()])
    assert summary is not None  # some result counted attempts
    return {**summary, "by_result": by_result}


def _attempt_summary(buckets: Sequence[tuple[float, float]]) -> dict | None:
    p50 = histogram_quantile(0.5, buckets)
    if p50 is None:
        return None
    p99 = histogram_quantile(0.99, buckets)
    assert p99 is not None
    attempts = sum(count for le, count in buckets if math.isinf(le))
    return {"p50": round(p50 * 1000.0, 3), "p99": round(p99 * 1000.0, 3), "attempts": int(round(attempts))}


def attempt_verdict(plain: dict | None, extender: dict | None, nodes: int) -> Verdict:
    """The extender goal read from kube-scheduler's own metrics: the extender phase's p99
    scheduling attempt minus the plain kube-scheduler phase's (both :func:`scheduling_attempts`)."""
    goal = (f"extender adds <= {EXTENDER_ADDED_ATTEMPT_P99_MS_MAX:.0f} ms to kube-scheduler's p99 scheduling "
            f"attempt at {EXTENDER_GOAL_NODES:,} nodes")
    note = "" if nodes == EXTENDER_GOAL_NODES else \
        f"the goal is stated at {EXTENDER_GOAL_NODES:,} nodes; measured at {nodes:,}"
    if plain is None or extender is None:
        phases = (("kube-scheduler", plain), ("kube-scheduler + extender", extender))
        missing = " and ".join(name for name, got in phases if got is None)
        return Verdict(goal, "not measured", False, f"no scheduling attempts read for {missing}", note)
    added = extender["p99"] - plain["p99"]
    met = added <= EXTENDER_ADDED_ATTEMPT_P99_MS_MAX
    return Verdict(goal, f"{added:+.1f} ms ({extender['p99']:.1f} vs {plain['p99']:.1f} ms p99, "
                         f"{extender['attempts']} vs {plain['attempts']} attempts)", met,
                   "" if met else f"{added - EXTENDER_ADDED_ATTEMPT_P99_MS_MAX:.1f} ms over", note)


# -- goals ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    goal: str  # e.g. "throughput >= 1.0 x kube-scheduler"
    measured: str  # e.g. "0.42 x (41.8 vs 99.5 pods/s)"
    met: bool
    miss: str = ""  # by how much, when not met
    note: str = ""

    def to_json(self) -> dict:
        return asdict(self)


def ratios(results: Mapping[str, PhaseResult]) -> dict[str, float]:
    """NeuroKube over kube-scheduler (throughput, p50, p99), and the extender's added p99 (ms)."""
    ks, nk = results[KUBE_SCHEDULER], results[NEUROKUBE]
    out = {"throughput": _ratio(nk.pods_per_s, ks.pods_per_s), "p50": _ratio(nk.p50_ms, ks.p50_ms),
           "p99": _ratio(nk.p99_ms, ks.p99_ms)}
    if EXTENDER in results:
        out["extender_added_p99_ms"] = results[EXTENDER].p99_ms - ks.p99_ms
        out["extender_added_p50_ms"] = results[EXTENDER].p50_ms - ks.p50_ms
    return out


def verdicts(results: Mapping[str, PhaseResult], nodes: int,
             rounds: Sequence[Mapping[str, PhaseResult]] = ()) -> list[Verdict]:
    """The goals on ``results`` (the medians). With more than one of ``rounds``, the throughput and
    p99 goals hold only if they hold in the median *and* in every round, as issue 13 states them."""
    ks, nk = results[KUBE_SCHEDULER], results[NEUROKUBE]
    r = ratios(results)
    per_round = [ratios(found) for found in rounds] if len(rounds) > 1 else []
    out = []
    met = r["throughput"] >= THROUGHPUT_RATIO_MIN
    miss = "" if met else (f"{(1 - r['throughput'] / THROUGHPUT_RATIO_MIN) * 100:.0f} % short: "
                           f"{THROUGHPUT_RATIO_MIN * ks.pods_per_s - nk.pods_per_s:.1f} pods/s more needed")
    measured = f"{r['throughput']:.2f} x ({nk.pods_per_s:.1f} vs {ks.pods_per_s:.1f} pods/s)"
    if per_round:
        worst, at = min((x["throughput"], i + 1) for i, x in enumerate(per_round))
        measured += "; rounds " + ", ".join(f"{x['throughput']:.2f}" for x in per_round) + " x"
        if met and worst < THROUGHPUT_RATIO_MIN:
            met, miss = False, f"round {at} at {worst:.2f} x: {(1 - worst / THROUGHPUT_RATIO_MIN) * 100:.0f} % short"
    every = " in the median and every round" if per_round else ""
    out.append(Verdict(f"throughput >= {THROUGHPUT_RATIO_MIN:.1f} x kube-scheduler{every}", measured, met, miss))
    met = r["p99"] <= P99_RATIO_MAX
    miss = "" if met else (f"{nk.p99_ms - P99_RATIO_MAX * ks.p99_ms:.0f} ms over "
                           f"({r['p99'] / P99_RATIO_MAX:.1f} x the allowed {P99_RATIO_MAX * ks.p99_ms:.0f} ms)")
    measured = f"{r['p99']:.2f} x ({nk.p99_ms:.0f} vs {ks.p99_ms:.0f} ms)"
    if per_round:
        worst, at = max((x["p99"], i + 1) for i, x in enumerate(per_round))
        measured += "; rounds " + ", ".join(f"{x['p99']:.2f}" for x in per_round) + " x"
        if met and worst > P99_RATIO_MAX:
            met, miss = False, f"round {at} at {worst:.2f} x, over {P99_RATIO_MAX:.1f} x"
    out.append(Verdict(f"p99 create-to-bound <= {P99_RATIO_MAX:.1f} x kube-scheduler{every}", measured, met, miss))
    if EXTENDER in results:
        added = r["extender_added_p99_ms"]
        met = added <= EXTENDER_ADDED_P99_MS_MAX
        note = "" if nodes == EXTENDER_GOAL_NODES else \
            f"the goal is stated at {EXTENDER_GOAL_NODES:,} nodes; measured at {nodes:,}"
        out.append(Verdict(
            f"extender adds <= {EXTENDER_ADDED_P99_MS_MAX:.0f} ms p99 per pod at {EXTENDER_GOAL_NODES:,} nodes",
            f"{added:+.0f} ms ({results[EXTENDER].p99_ms:.0f} vs {ks.p99_ms:.0f} ms p99)", met,
            "" if met else f"{added - EXTENDER_ADDED_P99_MS_MAX:.0f} ms over", note))
    return out


def _ratio(a: float, b: float) -> float:
    if b == 0:
        return math.inf if a > 0 else 1.0
    return a / b


# -- reports ------------------------------------------------------------------------------------------


def to_json(results: Mapping[str, PhaseResult], nodes: int, extra: Mapping[str, object] | None = None) -> dict:
    """``{"kube_scheduler": {"pods_per_s", "p50_ms", "p99_ms", ...}, "neurokube": {...}, ...}``:
    the issue's shape, with more keys beside it (ratios, goals, the other columns, ``extra``)."""
    doc: dict = {name: result.to_json() for name, result in results.items()}
    doc["nodes"] = nodes
    doc["ratios"] = {k: round(v, 4) for k, v in ratios(results).items()}
    doc["goals"] = [v.to_json() for v in verdicts(results, nodes)]
    doc.update(extra or {})
    return doc


def table(results: Mapping[str, PhaseResult]) -> str:
    """The per-scheduler rows as a Markdown table (also readable as plain text)."""
    lines = ["| scheduler | pods bound | pods/s | p50 ms | p99 ms | max ms | creation s | phase s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        lines.append(f"| {LABELS.get(name, name)} | {r.bound}/{r.pods} | {r.pods_per_s:.1f} | {r.p50_ms:.0f} | "
                     f"{r.p99_ms:.0f} | {r.max_ms:.0f} | {r.create_span_s:.1f} | {r.span_s:.1f} |")
    return "\n".join(lines)


def goals_table(found: Sequence[Verdict]) -> str:
    lines = ["| goal | measured | verdict |", "|---|---|---|"]
    for v in found:
        verdict = "met" if v.met else f"**NOT met**: {v.miss}"
        if v.note:
            verdict += f" ({v.note})"
        lines.append(f"| {v.goal} | {v.measured} | {verdict} |")
    return "\n".join(lines)
