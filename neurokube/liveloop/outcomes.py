"""A live run's outcomes, read back from Prometheus, in the replay's units (docs/METRICS.md).

The series the emulator served for the run are read per scrape step (``irate`` of cAdvisor's CPU
counters: the emulator integrates usage piecewise-constantly between scrapes, so the last two
samples give the usage of that step), and the run's wall seconds count ``speed`` trace seconds:

* ``contention_core_s``: sum over steps and nodes of max(0, CPU usage - allocatable) x step / 1000;
* ``node_hours``: node-steps with a running pod (a working set on the node) x step / 3600;
* ``pending_pod_s``: creation-to-binding waits as the apiserver's watch saw them (a pod never bound
  waits until the run's end), from :class:`~neurokube.liveloop.driver.RunResult`;
* how those waits are spread (:func:`waits`): their median, 90th percentile and longest, and the pods
  that waited a trace minute or more with their share of ``pending_pod_s``. The median is the time a
  pod takes to be bound; the long waits are pods that waited for room, or for a backlog to drain.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from pipelines.settings import PrometheusQueries

#: Per-step CPU usage (the last two samples: one scrape step of the emulator's counters).
STEP_CPU = "sum by ({by}) (irate(container_cpu_usage_seconds_total{{{selector}}}[{rate_window}])) * 1000"


def queries(selector: str = "", scrape_s: float = 1.0) -> PrometheusQueries:
    """The snapshot queries with per-step CPU: ``irate`` over a window holding a few scrapes."""
    return dataclasses.replace(PrometheusQueries(), cpu_used_milli=STEP_CPU, selector=selector,
                               rate_window=f"{max(3, int(np.ceil(3 * scrape_s)))}s")


def from_usage(frame: pd.DataFrame, step_s: float, speed: float) -> dict[str, float]:
    """Contention and node-hours of a usage frame (pipelines.usage.COLUMNS, one row per step and node)."""
    if frame.empty:
        return {"contention_core_s": 0.0, "node_hours": 0.0}
    over = np.maximum(frame["cpu_used_milli"].to_numpy(float) - frame["cpu_alloc_milli"].to_numpy(float), 0.0)
    active = frame["mem_used_mib"].to_numpy(float) > 0
    trace_step = step_s * speed
    return {"contention_core_s": float(over.sum() * trace_step / 1000.0),
            "node_hours": float(active.sum() * trace_step / 3600.0)}


#: A long wait, in trace seconds (a wall second at the loop's default 60x): far beyond the time to bind one pod.
LONG_WAIT_S = 60.0


def _waits(created: dict[str, float], bound: dict[str, float], end_s: float, speed: float) -> np.ndarray:
    return np.array([max(0.0, bound.get(name, end_s) - t) for name, t in created.items()], float) * speed


def pending(created: dict[str, float], bound: dict[str, float], end_s: float, speed: float) -> float:
    """Trace seconds pods waited between creation and binding; unbound pods wait until ``end_s``."""
    return float(_waits(created, bound, end_s, speed).sum())


def waits(created: dict[str, float], bound: dict[str, float], end_s: float, speed: float) -> dict[str, float]:
    """How the waits of :func:`pending` are spread, in trace seconds (all zero when no pod was created)."""
    w = _waits(created, bound, end_s, speed)
    if w.size == 0:
        return {"wait_p50_s": 0.0, "wait_p90_s": 0.0, "wait_max_s": 0.0, "long_waits": 0, "long_wait_share": 0.0}
    long = w >= LONG_WAIT_S
    total = float(w.sum())
    return {"wait_p50_s": float(np.percentile(w, 50)), "wait_p90_s": float(np.percentile(w, 90)),
            "wait_max_s": float(w.max()), "long_waits": int(long.sum()),
            "long_wait_share": float(w[long].sum() / total) if total > 0 else 0.0}


def bound_by(before: dict[str, float], after: dict[str, float]) -> dict[str, int]:
    """Pods bound during a run by each placer, from counter readings before and after it (keys
    ``binder``: every Binding of the binder, ``release_retry``: those of its retry when room was
    freed, ``sweeper``); ``binder_event`` is the binder's on the pods' own events."""
    got = {k: int(round(after.get(k, 0.0) - before.get(k, 0.0))) for k in ("binder", "release_retry", "sweeper")}
    got["binder_event"] = got["binder"] - got["release_retry"]
    return got
