"""A short description of a trace: sizes, load, QoS mix, lifetimes."""

from __future__ import annotations

import numpy as np

from neurokube.trace.model import QOS_CLASSES, Trace


def summarise(trace: Trace) -> dict[str, object]:
    p, n = trace.pods, trace.nodes
    horizon = float(p.creation_s.max()) if len(p) else 0.0
    end = np.minimum(p.creation_s + p.duration_s, horizon) if horizon > 0 else p.creation_s
    requested = float((p.cpu_request_milli * np.maximum(end - p.creation_s, 0)).sum() / max(horizon, 1))
    return {
        "nodes": len(n),
        "pods": len(p),
        "profiles": len(trace.profiles),
        "workloads": int(p.workload_ids().max() + 1) if len(p) else 0,
        "hours": round(horizon / 3600.0, 2),
        "cpu_allocatable_cores": round(float(n.cpu_milli.sum()) / 1000, 1),
        "mean_requested_cpu_share": round(requested / float(n.cpu_milli.sum()), 3),
        "qos_mix": {q: int((p.qos == i).sum()) for i, q in enumerate(QOS_CLASSES)},
        "lifetime_s_p50_p90_p99": [round(float(x), 1) for x in np.percentile(p.duration_s, [50, 90, 99])],
        "cpu_request_milli_p50_p90": [round(float(x), 1) for x in np.percentile(p.cpu_request_milli, [50, 90])],
    }
