"""Pods and nodes as the scheduler needs them, parsed from the apiserver's JSON.

:func:`parse_pod` and :func:`parse_node` validate what they read and raise an
:class:`~neurokube.errors.InputError` saying which field is wrong, so a malformed object from an
event or an extender request becomes a 4xx at the function edge, never a crash.

Requests follow kube-scheduler (pkg/api/v1/resource, ``PodRequests``): the sum over containers
plus restartable (sidecar) init containers, or the largest regular init container if that is
more, plus ``spec.overhead``. The *non-zero* variant counts a container without a CPU or memory
request as 100m / 200 MiB, as kube-scheduler's scoring does (pkg/scheduler/util/non_zero.go).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from neurokube.errors import InputError
from neurokube.k8s.quantity import INT64_MAX, count, cpu_milli, memory_bytes
from neurokube.policies.base import BEST_EFFORT, BURSTABLE, GUARANTEED, NONZERO_CPU_MILLI, NONZERO_MEMORY_MIB

NONZERO_MEMORY_BYTES = NONZERO_MEMORY_MIB * 1024 * 1024
TERMINAL_PHASES = ("Succeeded", "Failed")
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")
# The apiserver's name rules (apimachinery validation): a namespace is a DNS-1123 label, a pod or
# node name a DNS-1123 subdomain. Checked so that a name from a request can never change the
# path of an API call built from it ("../..", "a/b", "%2F").
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


@dataclass(frozen=True, slots=True)
class Toleration:
    key: str = ""
    operator: str = "Equal"  # or "Exists"
    value: str = ""
    effect: str = ""  # "" matches every effect


@dataclass(frozen=True, slots=True)
class Taint:
    key: str
    value: str
    effect: str  # NoSchedule, PreferNoSchedule or NoExecute


@dataclass(frozen=True, slots=True)
class Requirement:
    """One ``matchExpressions`` (or ``matchFields``, with ``field=True``) entry of a node selector term."""

    key: str
    operator: str
    values: tuple[str, ...] = ()
    field: bool = False


@dataclass(frozen=True, slots=True)
class Term:
    """A node selector term: all requirements must hold."""

    requirements: tuple[Requirement, ...]


@dataclass(frozen=True, slots=True)
class Resources:
    """A pod's requests in the scheduler's units (millicores, bytes), actual and non-zero, and limits."""

    cpu: int = 0
    memory: int = 0
    nz_cpu: int = 0
    nz_memory: int = 0
    cpu_limit: int = 0  # 0: no limit (some container has none)
    memory_limit: int = 0


@dataclass(frozen=True, slots=True)
class Pod:
    namespace: str
    name: str
    uid: str
    scheduler_name: str
    node_name: str
    phase: str
    deleting: bool
    resources: Resources
    qos: int
    node_selector: tuple[tuple[str, str], ...] = ()
    required_terms: tuple[Term, ...] | None = None  # None: no required node affinity
    tolerations: tuple[Toleration, ...] = ()
    workload: str = ""
    created: str = ""  # metadata.creationTimestamp (RFC 3339), for oldest-first sweeps
    scheduling_gates: tuple[str, ...] = ()  # spec.schedulingGates' names: not schedulable until empty

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def bound(self) -> bool:
        return bool(self.node_name)

    @property
    def terminal(self) -> bool:
        return self.phase in TERMINAL_PHASES


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    labels: tuple[tuple[str, str], ...]
    alloc_cpu: int  # millicores
    alloc_memory: int  # bytes
    alloc_pods: int
    taints: tuple[Taint, ...] = ()
    unschedulable: bool = False
    addresses: tuple[str, ...] = ()

    def label(self, key: str) -> str | None:
        for k, v in self.labels:
            if k == key:
                return v
        return None


# -- pods --------------------------------------------------------------------------------------


def parse_pod(doc: object) -> Pod:
    """A :class:`Pod` from a v1 Pod object; :class:`InputError` names the first bad field."""
    doc = _mapping(doc, "pod")
    if doc.get("kind", "Pod") != "Pod":
        raise InputError(f"expected a Pod, got kind {doc.get('kind')!r}")
    meta = _mapping(doc.get("metadata"), "pod metadata")
    name = object_name(meta.get("name"), "metadata.name")
    namespace = namespace_name(meta.get("namespace", "default"), "metadata.namespace")
    where = f"pod {namespace}/{name}"
    if "spec" not in doc or doc.get("spec") is None:
        raise InputError("the pod has no spec", where=where)
    spec = _mapping(doc.get("spec"), f"{where}: spec")
    status = doc.get("status") or {}
    if not isinstance(status, dict):
        raise InputError("status must be an object", where=where)
    containers = _containers(spec, "containers", where, required=True)
    init_containers = _containers(spec, "initContainers", where, required=False)
    resources = _pod_resources(containers, init_containers, spec.get("overhead"), where)
    uid = meta.get("uid") or ""
    if not isinstance(uid, str):
        raise InputError("metadata.uid must be a string", where=where)
    return Pod(
        namespace=namespace, name=name, uid=uid,
        scheduler_name=str(spec.get("schedulerName") or "default-scheduler"),
        node_name=str(spec.get("nodeName") or ""), phase=str(status.get("phase") or ""),
        deleting=bool(meta.get("deletionTimestamp")), resources=resources,
        qos=_qos(containers + init_containers),
        node_selector=tuple(sorted(_string_map(spec.get("nodeSelector"), f"{where}: nodeSelector").items())),
        required_terms=_required_terms(spec.get("affinity"), where),
        tolerations=_tolerations(spec.get("tolerations"), where),
        workload=_workload(meta, namespace, name), created=str(meta.get("creationTimestamp") or ""),
        scheduling_gates=_scheduling_gates(spec.get("schedulingGates"), where),
    )


def _containers(spec: dict, key: str, where: str, required: bool) -> list[dict]:
    items = spec.get(key)
    if items is None:
        if required:
            raise InputError(f"spec.{key} is missing", where=where)
        return []
    if not isinstance(items, list) or (required and not items):
        raise InputError(f"spec.{key} must be a non-empty list" if required else f"spec.{key} must be a list",
                         where=where)
    for i, c in enumerate(items):
        if not isinstance(c, dict):
            raise InputError(f"spec.{key}[{i}] must be an object", where=where)
    return items


def _container_resources(c: dict, path: str, where: str) -> tuple[dict[str, int], dict[str, int]]:
    res = c.get("resources") or {}
    if not isinstance(res, dict):
        raise InputError(f"{path}.resources must be an object", where=where)
    out = []
    for section in ("requests", "limits"):
        values = res.get(section) or {}
        if not isinstance(values, dict):
            raise InputError(f"{path}.resources.{section} must be an object", where=where)
        parsed = {}
        for resource, parse in (("cpu", cpu_milli), ("memory", memory_bytes)):
            if resource in values:
                try:
                    parsed[resource] = parse(values[resource], f"{path}.resources.{section}.{resource}")
                except InputError as exc:
                    raise InputError(str(exc), where=where) from None
        out.append(parsed)
    requests, limits = out
    # The apiserver defaults a missing request to the limit; events carry defaulted objects, but
    # extender requests and tests may not.
    for resource, value in limits.items():
        requests.setdefault(resource, value)
    return requests, limits


def _pod_resources(containers: list[dict], inits: list[dict], overhead: object, where: str) -> Resources:
    cpu = mem = nz_cpu = nz_mem = 0
    lim_cpu = lim_mem = 0
    cpu_unlimited = mem_unlimited = False
    for i, c in enumerate(containers):
        req, lim = _container_resources(c, f"spec.containers[{i}]", where)
        cpu += req.get("cpu", 0)
        mem += req.get("memory", 0)
        nz_cpu += req.get("cpu") or NONZERO_CPU_MILLI
        nz_mem += req.get("memory") or NONZERO_MEMORY_BYTES
        cpu_unlimited |= "cpu" not in lim
        mem_unlimited |= "memory" not in lim
        lim_cpu += lim.get("cpu", 0)
        lim_mem += lim.get("memory", 0)
    # Sidecars (restartPolicy: Always) run beside the app containers; a regular init container
    # runs alone, after the sidecars declared before it have started.
    sidecar = [0, 0, 0, 0]
    peak = [0, 0, 0, 0]
    for i, c in enumerate(inits):
        req, lim = _container_resources(c, f"spec.initContainers[{i}]", where)
        this = (req.get("cpu", 0), req.get("memory", 0), req.get("cpu") or NONZERO_CPU_MILLI,
                req.get("memory") or NONZERO_MEMORY_BYTES)
        if c.get("restartPolicy") == "Always":
            sidecar = [s + t for s, t in zip(sidecar, this, strict=True)]
            peak = [max(p, s) for p, s in zip(peak, sidecar, strict=True)]
            cpu_unlimited |= "cpu" not in lim
            mem_unlimited |= "memory" not in lim
            lim_cpu += lim.get("cpu", 0)
            lim_mem += lim.get("memory", 0)
        else:
            peak = [max(p, s + t) for p, s, t in zip(peak, sidecar, this, strict=True)]
    totals = [cpu + sidecar[0], mem + sidecar[1], nz_cpu + sidecar[2], nz_mem + sidecar[3]]
    totals = [max(t, p) for t, p in zip(totals, peak, strict=True)]
    if overhead:
        extra = _string_map(overhead, f"{where}: spec.overhead")
        try:
            o_cpu = cpu_milli(extra["cpu"], "spec.overhead.cpu") if "cpu" in extra else 0
            o_mem = memory_bytes(extra["memory"], "spec.overhead.memory") if "memory" in extra else 0
        except InputError as exc:
            raise InputError(str(exc), where=where) from None
        totals = [totals[0] + o_cpu, totals[1] + o_mem, totals[2] + o_cpu, totals[3] + o_mem]
    # Each quantity fits an int64; their sum must too (kube-scheduler sums in int64, and so do the
    # numpy arrays of the filter: a larger Python int would overflow them).
    for label, value in (("cpu", totals[2]), ("memory", totals[3]), ("cpu limit", lim_cpu),
                         ("memory limit", lim_mem)):
        if value > INT64_MAX:
            raise InputError(f"the pod's total {label} is absurdly large", where=where,
                             why="more than an int64 of millicores or bytes")
    return Resources(cpu=totals[0], memory=totals[1], nz_cpu=totals[2], nz_memory=totals[3],
                     cpu_limit=0 if cpu_unlimited else lim_cpu, memory_limit=0 if mem_unlimited else lim_mem)


def _qos(containers: list[dict]) -> int:
    """Kubernetes QoS class (pkg/apis/core/helper/qos): Guaranteed, Burstable or BestEffort."""
    any_set = False
    guaranteed = True
    for c in containers:
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        if any(r in req or r in lim for r in ("cpu", "memory")):
            any_set = True
        for r in ("cpu", "memory"):
            if r not in lim or (r in req and cpu_or_memory(r, req[r]) != cpu_or_memory(r, lim[r])):
                guaranteed = False
    if not any_set:
        return BEST_EFFORT
    return GUARANTEED if guaranteed else BURSTABLE


def cpu_or_memory(resource: str, value: object) -> int:
    return cpu_milli(value) if resource == "cpu" else memory_bytes(value)


def _scheduling_gates(items: object, where: str) -> tuple[str, ...]:
    """The names of ``spec.schedulingGates`` (the apiserver refuses a Binding while any is left)."""
    if items is None:
        return ()
    if not isinstance(items, list):
        raise InputError("spec.schedulingGates must be a list", where=where)
    names = []
    for i, gate in enumerate(items):
        name = gate.get("name") if isinstance(gate, dict) else None
        if not isinstance(name, str) or not name:
            raise InputError(f"spec.schedulingGates[{i}] must be an object with a non-empty name", where=where)
        names.append(name)
    return tuple(names)


def _tolerations(items: object, where: str) -> tuple[Toleration, ...]:
    if items is None:
        return ()
    if not isinstance(items, list):
        raise InputError("spec.tolerations must be a list", where=where)
    out = []
    for i, t in enumerate(items):
        if not isinstance(t, dict):
            raise InputError(f"spec.tolerations[{i}] must be an object", where=where)
        operator = t.get("operator") or "Equal"
        if operator not in ("Equal", "Exists"):
            raise InputError(f"spec.tolerations[{i}].operator {operator!r} is not Equal or Exists", where=where)
        out.append(Toleration(str(t.get("key") or ""), operator, str(t.get("value") or ""),
                              str(t.get("effect") or "")))
    return tuple(out)


def _required_terms(affinity: object, where: str) -> tuple[Term, ...] | None:
    if not affinity:
        return None
    if not isinstance(affinity, dict):
        raise InputError("spec.affinity must be an object", where=where)
    node_affinity = affinity.get("nodeAffinity") or {}
    if not isinstance(node_affinity, dict):
        raise InputError("spec.affinity.nodeAffinity must be an object", where=where)
    required = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    if not required:
        return None
    if not isinstance(required, dict) or not isinstance(required.get("nodeSelectorTerms"), list):
        raise InputError("required node affinity needs a nodeSelectorTerms list", where=where)
    return tuple(parse_term(term, f"nodeSelectorTerms[{i}]", where)
                 for i, term in enumerate(required["nodeSelectorTerms"]))


def parse_term(term: object, path: str, where: str) -> Term:
    if not isinstance(term, dict):
        raise InputError(f"{path} must be an object", where=where)
    reqs = []
    for section, field in (("matchExpressions", False), ("matchFields", True)):
        items = term.get(section) or []
        if not isinstance(items, list):
            raise InputError(f"{path}.{section} must be a list", where=where)
        for j, e in enumerate(items):
            at = f"{path}.{section}[{j}]"
            if not isinstance(e, dict) or not isinstance(e.get("key"), str):
                raise InputError(f"{at} needs a key", where=where)
            operator = e.get("operator")
            if operator not in OPERATORS:
                raise InputError(f"{at}.operator {operator!r} is not one of {', '.join(OPERATORS)}", where=where)
            values = e.get("values") or []
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise InputError(f"{at}.values must be a list of strings", where=where)
            if operator in ("Gt", "Lt") and (len(values) != 1 or not _is_int(values[0])):
                raise InputError(f"{at}: {operator} needs exactly one integer value", where=where)
            reqs.append(Requirement(e["key"], operator, tuple(values), field))
    return Term(tuple(reqs))


def _workload(meta: dict, namespace: str, name: str) -> str:
    """``namespace/owner`` for a controlled pod (a ReplicaSet's hash suffix stripped), else the pod."""
    owners = meta.get("ownerReferences") or []
    if not isinstance(owners, list):
        raise InputError("metadata.ownerReferences must be a list", where=f"pod {namespace}/{name}")
    owner = next((o for o in owners if isinstance(o, dict) and o.get("controller")), None)
    if owner is None or not owner.get("name"):
        return f"{namespace}/{name}"
    owner_name = str(owner["name"])
    template_hash = ((meta.get("labels") or {}).get("pod-template-hash") or "") if isinstance(
        meta.get("labels"), dict) else ""
    if owner.get("kind") == "ReplicaSet" and template_hash and owner_name.endswith(f"-{template_hash}"):
        owner_name = owner_name[: -len(template_hash) - 1]
    return f"{namespace}/{owner_name}"


# -- nodes -------------------------------------------------------------------------------------


def parse_node(doc: object) -> Node:
    doc = _mapping(doc, "node")
    meta = _mapping(doc.get("metadata"), "node metadata")
    name = object_name(meta.get("name"), "node metadata.name")
    where = f"node {name}"
    spec = doc.get("spec") or {}
    status = doc.get("status") or {}
    if not isinstance(spec, dict) or not isinstance(status, dict):
        raise InputError("spec and status must be objects", where=where)
    alloc = status.get("allocatable") or status.get("capacity") or {}
    if not isinstance(alloc, dict):
        raise InputError("status.allocatable must be an object", where=where)
    try:
        cpu = cpu_milli(alloc.get("cpu", "0"), "allocatable cpu")
        memory = memory_bytes(alloc.get("memory", "0"), "allocatable memory")
        pods = count(alloc.get("pods", "0"), "allocatable pods")
    except InputError as exc:
        raise InputError(str(exc), where=where) from None
    taints = []
    raw_taints, raw_addresses = spec.get("taints") or [], status.get("addresses") or []
    if not isinstance(raw_taints, list) or not isinstance(raw_addresses, list):
        raise InputError("spec.taints and status.addresses must be lists", where=where)
    for i, t in enumerate(raw_taints):
        if not isinstance(t, dict) or not t.get("key") or not t.get("effect"):
            raise InputError(f"spec.taints[{i}] needs a key and an effect", where=where)
        taints.append(Taint(str(t["key"]), str(t.get("value") or ""), str(t["effect"])))
    addresses = tuple(str(a.get("address")) for a in raw_addresses if isinstance(a, dict) and a.get("address"))
    return Node(name=name, labels=tuple(sorted(_string_map(meta.get("labels"), f"{where}: labels").items())),
                alloc_cpu=cpu, alloc_memory=memory, alloc_pods=pods, taints=tuple(taints),
                unschedulable=bool(spec.get("unschedulable")), addresses=addresses)


# -- helpers -----------------------------------------------------------------------------------


def _mapping(value: object, what: str) -> dict:
    if not isinstance(value, dict):
        raise InputError(f"{what} must be a JSON object", why=f"got {type(value).__name__}")
    return value


def _string(value: object, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise InputError(f"{what} must be a non-empty string")
    return value


def object_name(value: object, what: str) -> str:
    """A pod or node name as the apiserver allows it (DNS-1123 subdomain); InputError otherwise."""
    text = _string(value, what)
    if len(text) > 253 or not _DNS_SUBDOMAIN.fullmatch(text):
        raise InputError(f"{what} {text[:80]!r} is not a valid name",
                         why="lower-case letters, digits, '-' and '.', at most 253 characters")
    return text


def namespace_name(value: object, what: str) -> str:
    """A namespace name as the apiserver allows it (DNS-1123 label); InputError otherwise."""
    text = _string(value, what)
    if not _DNS_LABEL.fullmatch(text):
        raise InputError(f"{what} {text[:80]!r} is not a valid namespace name",
                         why="lower-case letters, digits and '-', at most 63 characters")
    return text


def _string_map(value: object, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise InputError(f"{what} must map strings to strings")
    return value


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True
