"""Fake nodes and pods for the local cluster: specs, manifests and the calls that create them.

Nodes are plain Node objects whose status already carries capacity and allocatable (the
apiserver accepts status on Node create); KWOK then plays their kubelet. Pods are given resource
requests and, optionally, a node (``spec.nodeName``, bypassing any scheduler).
"""

from __future__ import annotations

import csv
import re
import time
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from neurokube.adapters.kube import KubeClient, KubeError
from neurokube.errors import InputError, TemporaryError

DEFAULT_MAX_PODS = 110  # the kubelet's default --max-pods
NODE_LABEL = "neurokube.io/fake-node"
RUN_FOR_ANNOTATION = "neurokube.io/run-for"  # KWOK completes the pod after this Go duration
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


@dataclass(frozen=True)
class NodeSpec:
    name: str
    cpu_milli: int
    memory_mib: int
    max_pods: int = DEFAULT_MAX_PODS
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PodSpec:
    name: str
    cpu_milli: int
    memory_mib: int
    node: str | None = None  # set spec.nodeName: no scheduler involved
    namespace: str = "default"
    scheduler_name: str = "default-scheduler"
    run_for: str | None = None  # e.g. "90s": KWOK marks the pod Succeeded after that long
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    image: str = "registry.k8s.io/pause:3.10"


# -- specs -------------------------------------------------------------------------------------


def uniform_nodes(count: int, cpu_milli: int = 32_000, memory_mib: int = 128 * 1024,
                  max_pods: int = DEFAULT_MAX_PODS) -> list[NodeSpec]:
    return [NodeSpec(f"kwok-node-{i:04d}", cpu_milli, memory_mib, max_pods) for i in range(count)]


def read_nodes_csv(path: Path, max_pods: int = DEFAULT_MAX_PODS) -> list[NodeSpec]:
    """``name,cpu_milli,memory_mib`` rows (allocatable); a header row is allowed."""
    try:
        with open(path, newline="") as handle:
            rows = list(csv.reader(handle))
    except OSError as exc:
        raise InputError("cannot read the node list", where=str(path), why=exc.strerror) from None
    specs, seen = [], set()
    for number, row in enumerate(rows, start=1):
        where = f"{path}:{number}"
        if not row or (number == 1 and row[0].strip().lower() == "name"):
            continue
        if len(row) < 3:
            raise InputError("expected name,cpu_milli,memory_mib", where=where, why=f"got {len(row)} columns")
        name = row[0].strip()
        if not _DNS_SUBDOMAIN.match(name):
            raise InputError(f"invalid node name {name!r}", where=where, why="must be a DNS-1123 subdomain")
        if name in seen:
            raise InputError(f"duplicate node name {name!r}", where=where)
        seen.add(name)
        try:
            cpu, memory = int(row[1]), int(row[2])
        except ValueError:
            raise InputError("cpu_milli and memory_mib must be integers", where=where) from None
        if cpu <= 0 or memory <= 0:
            raise InputError("cpu_milli and memory_mib must be positive", where=where)
        specs.append(NodeSpec(name, cpu, memory, max_pods))
    if not specs:
        raise InputError("no nodes in the file", where=str(path))
    return specs


# -- manifests ---------------------------------------------------------------------------------


def pod_cidr(index: int) -> str:
    """The /24 pod CIDR of the ``index``-th fake node: 10.128.0.0/24, 10.128.1.0/24, ... (32768 nodes)."""
    if not 0 <= index < 128 * 256:
        raise InputError(f"too many nodes: no pod CIDR for node #{index}", why="at most 32768 fake nodes")
    return f"10.{128 + index // 256}.{index % 256}.0/24"


def _cidr_index(cidr: str) -> int:
    match = re.fullmatch(r"10\.(\d+)\.(\d+)\.0/24", cidr)
    return (int(match[1]) - 128) * 256 + int(match[2]) if match and int(match[1]) >= 128 else -1


def node_manifest(spec: NodeSpec, index: int) -> dict:
    """A Node with allocatable = capacity = the spec, and its own /24 pod CIDR (for pod IPs)."""
    resources = {"cpu": f"{spec.cpu_milli}m", "memory": f"{spec.memory_mib}Mi", "pods": str(spec.max_pods),
                 "ephemeral-storage": "1Ti"}
    cidr = pod_cidr(index)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": spec.name,
            "labels": {
                "kubernetes.io/hostname": spec.name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
                NODE_LABEL: "true",
                **spec.labels,
            },
            "annotations": {"kwok.x-k8s.io/node": "fake"},
        },
        "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
        "status": {"capacity": resources, "allocatable": dict(resources)},
    }


def pod_manifest(spec: PodSpec) -> dict:
    resources = {"cpu": f"{spec.cpu_milli}m", "memory": f"{spec.memory_mib}Mi"}
    annotations = dict(spec.annotations)
    if spec.run_for:
        annotations[RUN_FOR_ANNOTATION] = spec.run_for
    pod_spec: dict = {
        "schedulerName": spec.scheduler_name,
        "containers": [{"name": "main", "image": spec.image, "resources": {"requests": resources}}],
        "terminationGracePeriodSeconds": 0,
        "automountServiceAccountToken": False,
    }
    if spec.node:
        pod_spec["nodeName"] = spec.node
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": spec.name, "namespace": spec.namespace, "labels": dict(spec.labels),
                     "annotations": annotations},
        "spec": pod_spec,
    }


# -- calls -------------------------------------------------------------------------------------


def create_nodes(client: KubeClient, specs: Iterable[NodeSpec]) -> int:
    """Create the nodes (existing ones are left as they are). Returns how many were created.

    New nodes get pod CIDRs after those of the fake nodes already in the cluster.
    """
    existing = client.get("/api/v1/nodes", labelSelector=NODE_LABEL)["items"]
    start_index = 1 + max((_cidr_index((n.get("spec") or {}).get("podCIDR", "")) for n in existing), default=-1)
    created = 0
    for index, spec in enumerate(specs, start=start_index):
        try:
            client.create("/api/v1/nodes", node_manifest(spec, index))
            created += 1
        except KubeError as exc:
            if not exc.conflict:
                raise TemporaryError(f"creating node {spec.name} failed: {exc}") from None
    return created


def create_pods(client: KubeClient, specs: Iterable[PodSpec]) -> list[str]:
    """Create the pods; returns their names. An existing pod of the same name is an error."""
    names = []
    for spec in specs:
        path = f"/api/v1/namespaces/{spec.namespace}/pods"
        try:
            client.create(path, pod_manifest(spec))
        except KubeError as exc:
            raise TemporaryError(f"creating pod {spec.namespace}/{spec.name} failed: {exc}") from None
        names.append(spec.name)
    return names


def schedulable_nodes(client: KubeClient, label_selector: str = NODE_LABEL) -> list[str]:
    nodes = client.get("/api/v1/nodes", labelSelector=label_selector)["items"]
    return sorted(node["metadata"]["name"] for node in nodes if is_schedulable(node))


def wait_nodes_schedulable(client: KubeClient, count: int, timeout_s: float = 120.0) -> list[str]:
    """Wait until ``count`` fake nodes are Ready *and* free of the lifecycle taints.

    A new Node is created with the ``node.kubernetes.io/not-ready:NoSchedule`` taint (admission
    plugin TaintNodesByCondition); the node lifecycle controller removes it a few seconds after
    the node turns Ready. Pods created in between avoid those nodes, which skews placements.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        ready = schedulable_nodes(client)
        if len(ready) >= count:
            return ready
        if time.monotonic() > deadline:
            raise TemporaryError(f"only {len(ready)} of {count} nodes became Ready and schedulable "
                                 f"within {timeout_s:.0f}s")
        time.sleep(0.5)


def pod_placements(client: KubeClient, namespace: str = "default",
                   label_selector: str | None = None) -> dict[str, str | None]:
    """Pod name -> node name (None while unscheduled)."""
    query = {"labelSelector": label_selector} if label_selector else {}
    pods = client.get(f"/api/v1/namespaces/{namespace}/pods", **query)["items"]
    return {pod["metadata"]["name"]: pod["spec"].get("nodeName") for pod in pods}


def wait_pods(client: KubeClient, names: Iterable[str], namespace: str = "default", phase: str | None = None,
              scheduled: bool = True, timeout_s: float = 60.0) -> dict[str, dict]:
    """Wait until every named pod is bound to a node (and, if given, in ``phase``); returns the pods."""
    wanted = set(names)
    deadline = time.monotonic() + timeout_s
    while True:
        pods = {pod["metadata"]["name"]: pod
                for pod in client.get(f"/api/v1/namespaces/{namespace}/pods")["items"]
                if pod["metadata"]["name"] in wanted}
        pending = [name for name in wanted if not _pod_done(pods.get(name), phase, scheduled)]
        if not pending:
            return pods
        if time.monotonic() > deadline:
            sample = ", ".join(sorted(pending)[:5])
            raise TemporaryError(f"{len(pending)} pods not {phase or 'scheduled'} after {timeout_s:.0f}s: {sample}")
        time.sleep(0.25)


def delete_pods(client: KubeClient, names: Iterable[str], namespace: str = "default") -> None:
    for name in names:
        try:
            client.delete(f"/api/v1/namespaces/{namespace}/pods/{urllib.parse.quote(name)}",
                          {"gracePeriodSeconds": 0})
        except KubeError as exc:
            if not exc.not_found:
                raise


def is_ready(node: dict) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def is_schedulable(node: dict) -> bool:
    """Ready, not cordoned, and without the node.kubernetes.io/* taints of an unhealthy node."""
    spec = node.get("spec") or {}
    lifecycle_taints = [t for t in spec.get("taints") or [] if t.get("key", "").startswith("node.kubernetes.io/")]
    return is_ready(node) and not spec.get("unschedulable") and not lifecycle_taints


def _pod_done(pod: dict | None, phase: str | None, scheduled: bool) -> bool:
    if pod is None:
        return False
    if scheduled and not pod["spec"].get("nodeName"):
        return False
    return phase is None or (pod.get("status") or {}).get("phase") == phase
