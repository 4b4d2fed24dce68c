"""The right-sizing frontier: our recommender at every margin against VPA at several target percentiles.

One calibrated margin and VPA's default percentile give one point each, and a point alone cannot
say whether one recommender is better or just set differently (more slack buys less throttled
time). Sweeping both knobs gives each a curve of (slack, time above request) points, and the
question becomes: for each VPA setting, is there a margin with **no more slack and no more time
above request**, both at once (it *dominates* the VPA point)? Comparisons are exact (``<=``), no
tolerance.

Every margin is scored on the same frame and with the same per-sample fallback as the reported
point (no history: the request as written, VPA too), so the margin the report uses is one of these
points. A margin moves our histogram's target percentile (``RightsizingSettings.percentile``), so
the caller computes one request per margin. Pure: the caller passes the per-sample requests; this
module only sweeps and compares.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from neurokube.forecast.rightsizing import Scored, outcome

VPA_PERCENTILES: tuple[float, ...] = (0.8, 0.9, 0.95)
"""VPA target percentiles the frontier compares against (0.9 is VPA's default)."""


@dataclass(frozen=True)
class Point:
    """One recommender setting's outcome on one resource."""

    setting: float
    """The margin (ours) or the target percentile (VPA)."""
    slack: float
    """Reserved and idle: core-h (CPU) or GiB-h (memory)."""
    over_s: float
    """Pod-seconds above the request: throttled time (CPU) or over-request time (memory)."""


def dominates(a: Point, b: Point) -> bool:
    """``a`` has no more slack and no more time above request than ``b`` (both, ``<=``)."""
    return a.slack <= b.slack and a.over_s <= b.over_s


def dominated_by(margins: Sequence[Point], vpa: Point) -> list[float]:
    """The margins whose points dominate ``vpa``, in the order given."""
    return [m.setting for m in margins if dominates(m, vpa)]


def ratio(ours: float, theirs: float) -> float:
    """``ours / theirs``; 0 against 0 is 1 (equal), more than 0 against 0 is infinite."""
    if theirs > 0:
        return ours / theirs
    return 1.0 if ours <= 0 else math.inf


def closest(margins: Sequence[Point], vpa: Point) -> tuple[Point, float]:
    """The margin point with the smallest ``max(slack ratio, time ratio)`` to ``vpa``, and that value.

    The value is at most 1 exactly when the point dominates ``vpa``; ties go to the first margin.
    """
    if not margins:
        raise ValueError("no margin points")
    scores = [max(ratio(m.slack, vpa.slack), ratio(m.over_s, vpa.over_s)) for m in margins]
    i = int(np.argmin(scores))
    return margins[i], scores[i]


@dataclass(frozen=True)
class Requests:
    """Per scored sample, for one resource: our request at each margin and VPA's at each target
    percentile (fallbacks already applied)."""

    ours: Mapping[float, np.ndarray]
    vpa: Mapping[float, np.ndarray]


_KEYS = {"cpu": ("slack_core_h", "throttled_s"), "mem": ("mem_slack_gib_h", "mem_over_request_s")}


def sweep(scored: Scored, cpu: Requests, mem: Requests, margins: Sequence[float]
          ) -> dict[str, tuple[list[Point], list[Point]]]:
    """Per resource (``cpu``, ``mem``): (one point per margin, one point per VPA percentile).

    Scored with :func:`rightsizing.outcome`, the reported point's own arithmetic.
    """
    ours: dict[str, list[Point]] = {"cpu": [], "mem": []}
    for m in margins:
        o = outcome(scored, cpu.ours[m], mem.ours[m])
        for res in ("cpu", "mem"):
            ours[res].append(Point(float(m), o[_KEYS[res][0]], o[_KEYS[res][1]]))
    theirs: dict[str, list[Point]] = {"cpu": [], "mem": []}
    for p in cpu.vpa:
        o = outcome(scored, cpu.vpa[p], mem.vpa[p])
        for res in ("cpu", "mem"):
            theirs[res].append(Point(float(p), o[_KEYS[res][0]], o[_KEYS[res][1]]))
    return {res: (ours[res], theirs[res]) for res in ("cpu", "mem")}


def report(points: dict[str, tuple[list[Point], list[Point]]]) -> dict:
    """The ``rightsizing_frontier`` section: CPU at the top level, memory under ``memory``."""
    def section(res: str) -> dict:
        ours, theirs = points[res]
        slack, over = _KEYS[res]
        return {"margins": [{"margin": m.setting, slack: m.slack, over: m.over_s} for m in ours],
                "vpa": [{"percentile": v.setting, slack: v.slack, over: v.over_s,
                         "dominated_by": dominated_by(ours, v)} for v in theirs]}

    return {**section("cpu"), "memory": section("mem")}


def points_of(section: dict, resource: str = "cpu") -> tuple[list[Point], list[Point]]:
    """Back from a ``report`` section (CPU: the top level; memory: its ``memory`` entry) to points."""
    slack, over = _KEYS[resource]
    return ([Point(m["margin"], m[slack], m[over]) for m in section["margins"]],
            [Point(v["percentile"], v[slack], v[over]) for v in section["vpa"]])
