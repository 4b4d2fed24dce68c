"""A slice of a trace as the pods to create in a live cluster, time-compressed.

A slice is ``hours`` of trace arrivals; ``speed`` trace seconds pass per wall second, so a pod
created ``c`` trace seconds into the slice is created ``c / speed`` wall seconds into the run and
runs ``duration / speed`` wall seconds (KWOK completes it then: the ``run-for`` annotation). Both
schedulers get the same slice: the same pods, requests, limits, order and times; only the names'
prefix and ``schedulerName`` differ.

Workload identity: the live code names a pod's workload ``namespace/<controller owner>``
(:func:`neurokube.k8s.objects`), so every pod gets a controller owner reference to a ConfigMap
named for its trace workload (:func:`owner_name`). A ConfigMap has no controller that would act
on its dependents, and it exists, so the garbage collector leaves the pods alone.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import numpy as np

from neurokube.cluster.workload import RUN_FOR_ANNOTATION
from neurokube.errors import InputError
from neurokube.trace.model import Trace

HOUR_S = 3600.0
TRACE_INDEX_ANNOTATION = "neurokube.io/trace-pod"  # the pod's row in the trace (for the usage source)
OWNER_KIND = "ConfigMap"
_NOT_DNS = re.compile(r"[^a-z0-9-]+")


@dataclass(frozen=True)
class LivePod:
    index: int  # row in the trace's PodTable
    name: str
    workload: str  # owner_name(...)
    create_at_s: float  # wall seconds after the run's start
    run_for_s: float  # wall seconds
    cpu_request_milli: int
    memory_request_mib: int
    cpu_limit_milli: int  # 0: none
    memory_limit_mib: int  # 0: none


def owner_name(namespace: str, workload: str) -> str:
    """A DNS-1123 name for a trace workload, unique per (namespace, workload) (hash-suffixed)."""
    text = f"{namespace}/{workload}"
    base = _NOT_DNS.sub("-", text.lower()).strip("-")[:40].strip("-") or "workload"
    return f"wl-{base}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"


def slice_bounds(index: int, hours: float) -> tuple[float, float]:
    """Trace seconds ``[start, end)`` of slice ``index`` (0-based)."""
    return index * hours * HOUR_S, (index + 1) * hours * HOUR_S


def slice_pods(trace: Trace, index: int, hours: float, speed: float, prefix: str) -> list[LivePod]:
    """The pods of slice ``index`` in creation order, named ``<prefix>-<n>``."""
    if hours <= 0 or speed <= 0:
        raise InputError("the slice length and the speed must be positive", "loop live",
                         f"hours {hours}, speed {speed}")
    start, end = slice_bounds(index, hours)
    p = trace.pods
    rows = np.flatnonzero((p.creation_s >= start) & (p.creation_s < end))
    rows = rows[np.argsort(p.creation_s[rows], kind="stable")]
    if rows.size == 0:
        raise InputError(f"slice {index + 1} of the trace has no pods", trace.name,
                         f"no pod is created in trace seconds [{start:.0f}, {end:.0f})")
    return [LivePod(index=int(r), name=f"{prefix}-{n:05d}",
                    workload=owner_name(str(p.namespace[r]), str(p.workload[r])),
                    create_at_s=float(p.creation_s[r] - start) / speed,
                    run_for_s=max(1.0, float(p.duration_s[r]) / speed),
                    cpu_request_milli=int(p.cpu_request_milli[r]), memory_request_mib=int(p.memory_request_mib[r]),
                    cpu_limit_milli=int(p.cpu_limit_milli[r]), memory_limit_mib=int(p.memory_limit_mib[r]))
            for n, r in enumerate(rows)]


def slices_in(trace: Trace, hours: float) -> int:
    """How many whole slices of ``hours`` the trace's arrivals span."""
    last = float(trace.pods.creation_s.max(initial=0.0))
    return int(last // (hours * HOUR_S)) + 1


def go_duration(seconds: float) -> str:
    """A Go duration (KWOK's annotation), in milliseconds."""
    return f"{max(1, round(seconds * 1000))}ms"


def owner_manifest(name: str, namespace: str, run_label: str, label_value: str) -> dict:
    return {"apiVersion": "v1", "kind": OWNER_KIND,
            "metadata": {"name": name, "namespace": namespace, "labels": {run_label: label_value}},
            "data": {"role": "the workload identity of the live loop's pods"}}


def pod_manifest(pod: LivePod, namespace: str, scheduler_name: str, owner_uid: str,
                 labels: dict[str, str]) -> dict:
    """The pod as created: requests and limits of the trace, KWOK's run-for, the owner reference."""
    requests = {"cpu": f"{pod.cpu_request_milli}m", "memory": f"{pod.memory_request_mib}Mi"}
    limits = {}
    if pod.cpu_limit_milli:
        limits["cpu"] = f"{pod.cpu_limit_milli}m"
    if pod.memory_limit_mib:
        limits["memory"] = f"{pod.memory_limit_mib}Mi"
    resources: dict = {"requests": requests}
    if limits:
        resources["limits"] = limits
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": pod.name, "namespace": namespace, "labels": dict(labels),
            "annotations": {RUN_FOR_ANNOTATION: go_duration(pod.run_for_s), TRACE_INDEX_ANNOTATION: str(pod.index)},
            "ownerReferences": [{"apiVersion": "v1", "kind": OWNER_KIND, "name": pod.workload, "uid": owner_uid,
                                 "controller": True, "blockOwnerDeletion": False}],
        },
        "spec": {"schedulerName": scheduler_name, "terminationGracePeriodSeconds": 0,
                 "automountServiceAccountToken": False,
                 "containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10", "resources": resources}]},
    }
