"""Shared pieces of the NeuroKube locustfiles: object builders, the staged shape and the guard.

Locust puts a locustfile's directory on ``sys.path``, so the locustfiles import this module as
``nkload``. Nothing here imports Locust (importing it
monkey-patches the process with gevent): the launcher and the tests use these builders too. The
Locust wiring (shape class, guard greenlet, options) is in ``nklocust``.

Names are shared with ``load/local_functions.py`` (the loopback launcher): it pre-creates
``node_name(i)`` nodes and ``pod_name(i)`` pending pods, so requests from the scenarios refer to
objects the function knows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

SCHEDULER_NAME = "neurokube"
POD_NAMESPACE = "load"
POD_LABELS = "app=neurokube-load"  # label selector of every load pod
RUN_LABEL = "neurokube.io/load-run"  # which load run created a pod (real-cluster runs)


# -- objects ----------------------------------------------------------------------------------------


def node_name(i: int) -> str:
    return f"load-node-{i:05d}"


def pod_name(i: int) -> str:
    return f"load-pod-{i:06d}"


def node_doc(i: int, cpu: str = "16", memory: str = "64Gi") -> dict:
    """A Ready v1 Node with an InternalIP, as the apiserver would send it to an extender."""
    name = node_name(i)
    resources = {"cpu": cpu, "memory": memory, "pods": "110", "ephemeral-storage": "100Gi"}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "uid": f"00000000-0000-4000-8000-{i:012d}",
                         "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                    "topology.kubernetes.io/zone": f"zone-{i % 3}"}},
            "spec": {},
            "status": {"capacity": dict(resources), "allocatable": resources,
                       "addresses": [{"type": "InternalIP", "address": f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"},
                                     {"type": "Hostname", "address": name}],
                       "conditions": [{"type": "Ready", "status": "True"}]}}


def pod_doc(i: int, cpu: str = "250m", memory: str = "256Mi", *, uid: str | None = None,
            namespace: str = POD_NAMESPACE) -> dict:
    """A pending pod of ``schedulerName: neurokube`` with one container and requests."""
    meta: dict = {"name": pod_name(i), "namespace": namespace, "labels": {"app": "neurokube-load"},
                  "creationTimestamp": "2026-01-01T00:00:00Z"}
    if uid is not None:
        meta["uid"] = uid
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"schedulerName": SCHEDULER_NAME, "terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10",
                                     "resources": {"requests": {"cpu": cpu, "memory": memory}}}]},
            "status": {"phase": "Pending"}}


def pod_manifest(name: str, namespace: str = POD_NAMESPACE, run: str = "") -> dict:
    """:func:`pod_doc` as a client creates it through the apiserver: its own name, no status or
    timestamps, and the ``RUN_LABEL`` of the load run that made it."""
    doc = pod_doc(0, namespace=namespace)
    doc["metadata"]["name"] = name
    doc["metadata"].pop("creationTimestamp")
    if run:
        doc["metadata"]["labels"][RUN_LABEL] = run
    doc.pop("status")
    return doc


def node_list_json(count: int) -> str:
    """``ExtenderArgs.Nodes`` (a v1 NodeList) serialised once; 5,000 nodes are about 3 MB."""
    return json.dumps({"apiVersion": "v1", "kind": "NodeList", "metadata": {},
                       "items": [node_doc(i) for i in range(count)]}, separators=(",", ":"))


def node_names_json(count: int) -> str:
    return json.dumps([node_name(i) for i in range(count)], separators=(",", ":"))


def extender_args(pod: dict, nodes_json: str, cache_capable: bool) -> bytes:
    """ExtenderArgs with Go field names: ``Nodes`` (nodeCacheCapable false) or ``NodeNames`` (true).

    The node part is spliced in pre-serialised so the load generator does not spend its CPU
    re-encoding megabytes per request."""
    pod_json = json.dumps(pod, separators=(",", ":"))
    if cache_capable:
        return f'{{"Pod":{pod_json},"Nodes":null,"NodeNames":{nodes_json}}}'.encode()
    return f'{{"Pod":{pod_json},"Nodes":{nodes_json},"NodeNames":null}}'.encode()


def cloudevent_headers(event_id: str, kind: str, namespace: str, name: str) -> dict[str, str]:
    """Binary-mode CloudEvent headers as the ApiServerSource receive adapter sends them."""
    return {"ce-specversion": "1.0", "ce-id": event_id, "ce-type": kind,
            "ce-source": "https://127.0.0.1:6443", "ce-subject": f"/apis/v1/namespaces/{namespace}/pods/{name}",
            "ce-kind": "Pod", "ce-name": name, "ce-namespace": namespace,
            "Content-Type": "application/json"}


def require_loopback(host: str | None) -> None:
    """The scenarios only ever target 127.0.0.1: refuse anything else before sending a request."""
    from urllib.parse import urlsplit

    netloc = urlsplit(host or "").hostname or ""
    if netloc not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"refusing to send load to {host!r}: these scenarios target 127.0.0.1 only")


# -- staged load ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    users: int
    spawn_rate: float


def stage_at(stages: Sequence[Stage], stage_seconds: float, run_time_s: float) -> tuple[int, float] | None:
    """The (users, spawn rate) for ``run_time_s`` when each stage lasts ``stage_seconds``; None ends the run."""
    if stage_seconds <= 0:
        raise ValueError("stage length must be positive")
    index = int(run_time_s // stage_seconds)
    if index >= len(stages):
        return None
    return stages[index].users, stages[index].spawn_rate


# -- stop on threshold ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    max_fail_ratio: float = 0.01
    """stop when more than this share of requests failed"""
    max_p99_ms: float = 1000.0
    """stop when the p99 of the last 10 s is above this"""
    min_requests: int = 50
    """judge only once this many requests were made (a p99 of 3 samples means nothing)"""


def breach(limits: Limits, requests: int, failures: int, p99_ms: float | None) -> str | None:
    """Why the run must stop, or None. Pure: the guard greenlet feeds it Locust's totals."""
    if requests < limits.min_requests:
        return None
    ratio = failures / requests
    if ratio > limits.max_fail_ratio:
        return f"failure ratio {ratio:.2%} > {limits.max_fail_ratio:.2%} ({failures}/{requests})"
    if p99_ms is not None and p99_ms > limits.max_p99_ms:
        return f"p99 {p99_ms:.0f} ms > {limits.max_p99_ms:.0f} ms"
    return None
