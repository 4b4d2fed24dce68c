"""``neurokube bench frontier``: every policy family across its settings, on contention and node-hours.

Each peer is replayed at its default and at other settings (``tlp:target_utilization=60``, ...),
NeuroKube at several ``node_hour_cost`` values of one model. Every replay is a *point*
(contention core-s, node-hours, pending pod-s). For each trace, and for the sum over the traces:

* the **Pareto front** of each family: its points that no other point of the family beats on
  both contention and node-hours;
* for each peer point, whether some NeuroKube point **dominates** it: no more contention and no
  more node-hours, each within ``slack`` (2 %; contention also within ``ABS_CONTENTION`` core-s,
  so that 0 against 0.4 core-s is not a loss), and which NeuroKube points do;
* the issue's goals: every peer point dominated; NeuroKube at its default with less contention
  and fewer node-hours than ``default`` and ``tlp`` at theirs, with at most 1.1 x their pending.

The computation (:func:`dominates`, :func:`pareto_front`, :func:`analyse`) is pure; :func:`run`
drives the replays through the callables it is given.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

LEARNED = "neurokube"
SLACK = 0.02
ABS_CONTENTION = 1.0
"""Core-seconds of contention below which two points count as equal."""
PENDING_GOAL = 1.10
PEER_SETTINGS: dict[str, tuple[str, ...]] = {
    "default": ("default", "default:balanced_weight=0", "default:cpu_weight=3"),
    "tlp": ("tlp", "tlp:target_utilization=25", "tlp:target_utilization=60"),
    "lvrb": ("lvrb", "lvrb:safe_variance_margin=0.5", "lvrb:safe_variance_margin=2"),
    "koordinator": ("koordinator", "koordinator:cpu_threshold=0.5", "koordinator:cpu_threshold=0.8"),
    "most-allocated": ("most-allocated", "most-allocated:balanced_weight=0", "most-allocated:cpu_weight=3"),
}
"""Each peer at its upstream default (first) and two other settings."""
NODE_HOUR_COSTS: tuple[float, ...] = (0.0, 30.0, 120.0, 1000.0, 3000.0)
"""NeuroKube's rates (core-seconds of contention per node-hour) besides its default."""
METRICS = ("contention_core_s", "node_hours", "pending_pod_s", "unscheduled_pods", "mem_overflow_mib_s",
           "hot_node_fraction")


@dataclass(frozen=True)
class Point:
    """One replay (or the sum of one setting's replays over the traces)."""

    spec: str
    family: str
    contention_core_s: float
    node_hours: float
    pending_pod_s: float
    unscheduled_pods: float = 0.0
    mem_overflow_mib_s: float = 0.0
    hot_node_fraction: float = 0.0
    default: bool = False
    """The family's default setting."""

    def to_dict(self) -> dict:
        return asdict(self)


def family_of(spec: str) -> str:
    return spec.partition(":")[0]


def dominates(a: Point, b: Point, slack: float = SLACK, abs_contention: float = ABS_CONTENTION) -> bool:
    """``a`` is no worse than ``b`` on contention and node-hours, each within ``slack`` (relative)."""
    return (a.contention_core_s <= b.contention_core_s * (1 + slack) + abs_contention
            and a.node_hours <= b.node_hours * (1 + slack))


def strictly_dominates(a: Point, b: Point) -> bool:
    """Pareto dominance without slack: no worse on both, better on one."""
    return (a.contention_core_s <= b.contention_core_s and a.node_hours <= b.node_hours
            and (a.contention_core_s < b.contention_core_s or a.node_hours < b.node_hours))


def pareto_front(points: Sequence[Point]) -> list[Point]:
    """The points no other point strictly dominates, by node-hours then contention."""
    front = [p for p in points if not any(strictly_dominates(q, p) for q in points if q is not p)]
    return sorted(front, key=lambda p: (p.node_hours, p.contention_core_s))


@dataclass
class Analysis:
    points: list[Point]
    fronts: dict[str, list[str]] = field(default_factory=dict)
    dominated: dict[str, dict] = field(default_factory=dict)
    goals: dict[str, dict] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"points": [p.to_dict() for p in self.points], "fronts": self.fronts, "dominated": self.dominated,
                "goals": self.goals}


def analyse(points: Sequence[Point], slack: float = SLACK) -> Analysis:
    """Fronts per family, domination of every peer point by NeuroKube points, and the goals."""
    points = list(points)
    families: dict[str, list[Point]] = {}
    for p in points:
        families.setdefault(p.family, []).append(p)
    out = Analysis(points=points)
    out.fronts = {f: [p.spec for p in pareto_front(ps)] for f, ps in families.items()}
    learned = families.get(LEARNED, [])
    for p in points:
        if p.family == LEARNED:
            continue
        by = [q.spec for q in learned if dominates(q, p, slack)]
        out.dominated[p.spec] = {"dominated": bool(by), "by": by}
        if not by and learned:
            # how far the nearest NeuroKube point misses: the smallest worst-axis ratio
            worst = min(max(_ratio(q.contention_core_s, p.contention_core_s), _ratio(q.node_hours, p.node_hours))
                        for q in learned)
            out.dominated[p.spec]["closest_ratio"] = worst
    peer_points = [p for p in points if p.family != LEARNED]
    out.goals["every peer point dominated"] = {
        "met": bool(peer_points) and all(out.dominated[p.spec]["dominated"] for p in peer_points),
        "dominated": sum(out.dominated[p.spec]["dominated"] for p in peer_points), "of": len(peer_points)}
    nk = next((p for p in learned if p.default), None)
    for peer in ("default", "tlp"):
        ref = next((p for p in families.get(peer, []) if p.default), None)
        if nk is None or ref is None:
            continue
        out.goals[f"default beats {peer} at its default"] = {
            "met": (nk.contention_core_s < ref.contention_core_s or nk.contention_core_s == ref.contention_core_s == 0)
            and nk.node_hours < ref.node_hours and nk.pending_pod_s <= PENDING_GOAL * ref.pending_pod_s + 1e-9,
            "contention_ratio": _ratio(nk.contention_core_s, ref.contention_core_s),
            "node_hours_ratio": _ratio(nk.node_hours, ref.node_hours),
            "pending_ratio": _ratio(nk.pending_pod_s, ref.pending_pod_s)}
    return out


def _ratio(a: float, b: float) -> float:
    if b > 0:
        return a / b
    return 1.0 if a <= ABS_CONTENTION else float("inf")


def total(points_per_trace: Sequence[Sequence[Point]]) -> list[Point]:
    """One point per spec: the sum over traces (hot-node fraction: the mean)."""
    by_spec: dict[str, list[Point]] = {}
    for points in points_per_trace:
        for p in points:
            by_spec.setdefault(p.spec, []).append(p)
    out = []
    for spec, ps in by_spec.items():
        sums = {m: sum(getattr(p, m) for p in ps) for m in METRICS}
        sums["hot_node_fraction"] /= len(ps)
        out.append(Point(spec=spec, family=ps[0].family, default=ps[0].default, **sums))
    return out


def learned_specs(model: str | None, costs: Sequence[float]) -> list[str]:
    """NeuroKube's specs: its default (plain) and one per rate."""
    base = f"{LEARNED}:model={model}," if model is not None else f"{LEARNED}:"
    return [LEARNED, *(f"{base}node_hour_cost={c:g}" for c in costs)]


Replayer = Callable[[str, object], dict]
"""``replay(spec, trace) -> metrics``."""


def run(traces: Sequence[tuple[str, object]], specs: Sequence[str], replay: Replayer,
        tick: Callable[[str], None] = lambda _s: None, slack: float = SLACK) -> dict:
    """Replay every spec on every (name, trace) and analyse; returns the JSON document."""
    defaults = {s for s in specs if ":" not in s}
    per_trace: dict[str, dict] = {}
    all_points = []
    for name, trace in traces:
        points = []
        for spec in specs:
            tick(f"{name}: {spec}")
            m = replay(spec, trace)
            points.append(Point(spec=spec, family=family_of(spec), default=spec in defaults,
                                **{k: float(m.get(k) or 0.0) for k in METRICS}))
        all_points.append(points)
        per_trace[name] = analyse(points, slack).to_dict()
    return {"slack": slack, "abs_contention_core_s": ABS_CONTENTION, "specs": list(specs),
            "traces": per_trace, "total": analyse(total(all_points), slack).to_dict()}


def markdown(doc: dict) -> str:
    """Per trace and in total: every point, whether it is dominated, and the goals."""
    lines = []
    for title, part in [*((f"trace {n}", a) for n, a in doc["traces"].items()), ("all traces (sum)", doc["total"])]:
        lines += [f"### {title}", "", "| policy | contention core-s | node-hours | pending pod-s | unsched | "
                  "on its family's front | dominated by NeuroKube |", "|---|---:|---:|---:|---:|---|---|"]
        fronts = {s for specs in part["fronts"].values() for s in specs}
        for p in part["points"]:
            d = part["dominated"].get(p["spec"])
            dom = "-" if d is None else ("yes" if d["dominated"] else
                                         f"**no** (closest x{d.get('closest_ratio', float('nan')):.2f})")
            lines.append(f"| `{p['spec']}` | {p['contention_core_s']:,.0f} | {p['node_hours']:,.1f} | "
                         f"{p['pending_pod_s']:,.0f} | {p['unscheduled_pods']:,.0f} | "
                         f"{'yes' if p['spec'] in fronts else ''} | {dom} |")
        lines.append("")
        for goal, g in part["goals"].items():
            extra = ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in g.items() if k != "met")
            lines.append(f"- {goal}: {'met' if g['met'] else '**NOT met**'} ({extra})")
        lines.append("")
    return "\n".join(lines)
