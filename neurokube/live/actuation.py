"""Act on running pods through the apiserver: resize them in place, evict them under their budgets.

Two writes carry out what a planner decides (the planning itself is elsewhere, pure):

* :func:`resize`: ``PATCH /api/v1/namespaces/{ns}/pods/{name}/resize``, a strategic-merge patch
  that names containers by ``name``, so that only the requests and limits given change (a plain
  pod update cannot change resources). The apiserver refuses a change it does not allow with 422
  (a change of the QoS class, removing a request or limit, a resource other than cpu/memory, a node
  that reports no ``resources`` in its container statuses). Accepted means *asked for*: the
  kubelet applies the new size later, and :func:`resize_done` tells when it is in force.
* :func:`evict`: ``POST .../pods/{name}/eviction`` with a policy/v1 Eviction, so that the
  apiserver enforces the PodDisruptionBudgets (429 when a budget allows no disruption or its
  status is stale, 500 when more than one budget selects the pod), never a plain DELETE. A 429 is
  the answer here, not a throttle: the request is sent once (``retry_429=False``), the caller
  decides whether to try again later.

Both take ``dry_run``: the apiserver runs admission and validation (and, for an eviction, the
budget check) and persists nothing (``dryRun=All``).

An API answer is always an :class:`Outcome`, never an exception: a planner acting on many pods
records each refusal and goes on. An unreachable apiserver is no answer: it raises
:class:`~neurokube.errors.TemporaryError` (the function's edge answers 503 and the event is
delivered again). Malformed arguments raise :class:`~neurokube.errors.InputError`.

RBAC for an actuator's ServiceAccount: ``patch`` on ``pods/resize`` and ``create`` on
``pods/eviction`` (deploy/knative/rbac.yaml); it reads no PodDisruptionBudget, the apiserver
enforces them.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from neurokube.adapters.kube import KubeClient, KubeError
from neurokube.errors import InputError
from neurokube.k8s.quantity import parse_quantity
from neurokube.live.binding import pod_path
from neurokube.logs import event

log = logging.getLogger("neurokube.live.actuation")

STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
RESOURCE_KINDS = ("requests", "limits")
RESIZABLE = ("cpu", "memory")
RESIZE_CONDITION_PREFIX = "PodResize"  # PodResizePending, PodResizeInProgress


class Result(enum.Enum):
    APPLIED = "applied"
    DRY_RUN = "dry_run"  # the apiserver would have accepted it; nothing changed
    REFUSED_BUDGET = "refused_budget"  # eviction 429: a PodDisruptionBudget allows no disruption now
    REFUSED_INVALID = "refused_invalid"  # 422: e.g. a resize that changes the QoS class
    MULTIPLE_BUDGETS = "multiple_budgets"  # eviction 500: more than one PodDisruptionBudget selects the pod
    NOT_FOUND = "not_found"  # 404: the pod (or its namespace) is gone
    CONFLICT = "conflict"  # 409
    ERROR = "error"  # any other answer (403 forbidden, 400, 5xx, ...)


@dataclass(frozen=True)
class Outcome:
    """What the apiserver answered: ``result``, its Status ``message`` and HTTP ``status`` (0 when
    accepted)."""

    result: Result
    message: str = ""
    status: int = 0

    @property
    def accepted(self) -> bool:
        return self.result in (Result.APPLIED, Result.DRY_RUN)


# -- writes ---------------------------------------------------------------------------------------


def resize(kube: KubeClient, namespace: str, pod: str, container_resources: Mapping[str, Mapping], *,
           dry_run: bool) -> Outcome:
    """Ask for new requests/limits of some containers, ``{name: {"requests": {...}, "limits": {...}}}``;
    resources not named keep their value."""
    body = resize_body(container_resources)
    query = {"dryRun": "All"} if dry_run else None
    try:
        kube.request("PATCH", _pod_path(namespace, pod) + "/resize", body, query=query,
                     content_type=STRATEGIC_MERGE_PATCH)
    except KubeError as exc:
        outcome = _refused(exc, eviction=False)
    else:
        outcome = Outcome(Result.DRY_RUN if dry_run else Result.APPLIED)
    event(log, "pod resize", pod=f"{namespace}/{pod}", result=outcome.result.value, status=outcome.status,
          why=outcome.message, containers=sorted(container_resources))
    return outcome


def evict(kube: KubeClient, namespace: str, pod: str, *, dry_run: bool) -> Outcome:
    """Evict the pod through the Eviction API (its PodDisruptionBudget decides)."""
    try:
        kube.request("POST", _pod_path(namespace, pod) + "/eviction", eviction_body(namespace, pod, dry_run),
                     retry_429=False)
    except KubeError as exc:
        outcome = _refused(exc, eviction=True)
    else:
        outcome = Outcome(Result.DRY_RUN if dry_run else Result.APPLIED)
    event(log, "pod eviction", pod=f"{namespace}/{pod}", result=outcome.result.value, status=outcome.status,
          why=outcome.message)
    return outcome


def resize_body(container_resources: Mapping[str, Mapping]) -> dict:
    """The strategic-merge patch of the ``resize`` subresource; checks the names and quantities."""
    if not container_resources:
        raise InputError("a resize names no container")
    containers = []
    for name, resources in container_resources.items():
        where = f"container {name!r}"
        if not isinstance(name, str) or not name:
            raise InputError("a container name must be a non-empty string", why=repr(name))
        if not isinstance(resources, Mapping) or not resources or set(resources) - set(RESOURCE_KINDS):
            raise InputError("resources must be a mapping of requests and/or limits", where=where,
                             why=repr(resources))
        patch: dict[str, dict[str, str]] = {}
        for kind, values in resources.items():
            if not isinstance(values, Mapping) or not values:
                raise InputError(f"{kind} must be a non-empty mapping", where=where, why=repr(values))
            for resource, quantity in values.items():
                if resource not in RESIZABLE:
                    raise InputError("only cpu and memory can be resized in place", where=where, why=resource)
                if not isinstance(quantity, str):
                    raise InputError("a quantity must be a string such as '250m' or '1Gi'", where=where,
                                     why=f"{kind}.{resource}={quantity!r}")
                parse_quantity(quantity, f"{where} {kind}.{resource}")
            patch[kind] = dict(values)
        containers.append({"name": name, "resources": patch})
    return {"spec": {"containers": containers}}


def eviction_body(namespace: str, pod: str, dry_run: bool) -> dict:
    return {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod, "namespace": namespace},
            "deleteOptions": {"dryRun": ["All"]} if dry_run else {}}


def _pod_path(namespace: str, name: str) -> str:
    if not namespace or not name:
        raise InputError("a pod needs a namespace and a name", why=f"namespace={namespace!r} name={name!r}")
    return pod_path(namespace, name)


def _refused(exc: KubeError, *, eviction: bool) -> Outcome:
    status = exc.status
    if status == 404:
        result = Result.NOT_FOUND
    elif status == 409:
        result = Result.CONFLICT
    elif status == 422:
        result = Result.REFUSED_INVALID
    elif status == 429 and eviction:
        result = Result.REFUSED_BUDGET
    elif status == 500 and eviction and exc.reason != "InternalError":
        # The eviction subresource answers a pod selected by several budgets with a bare Status of
        # code 500 and no reason; a genuine server failure carries reason InternalError.
        result = Result.MULTIPLE_BUDGETS
    else:
        result = Result.ERROR
    return Outcome(result, exc.message or exc.reason, status)


# -- reading a pod --------------------------------------------------------------------------------


def pod_resources_in_force(pod: Mapping) -> dict[str, dict]:
    """Container name -> the requests and limits its node reports in force
    (``status.containerStatuses[].resources``); containers whose status has none are left out."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return {s["name"]: _requests_limits(s["resources"]) for s in statuses
            if isinstance(s, Mapping) and s.get("name") and isinstance(s.get("resources"), Mapping)}


def resize_done(pod: Mapping) -> bool:
    """The resources in force equal the spec's for every container, no PodResize* condition remains
    and the status has caught up with the pod's generation (when the node reports it)."""
    status = pod.get("status") or {}
    if any(str(c.get("type", "")).startswith(RESIZE_CONDITION_PREFIX) for c in status.get("conditions") or []):
        return False
    if status.get("resize"):  # the field before v1.33 (Proposed, InProgress, Deferred, Infeasible)
        return False
    observed, generation = status.get("observedGeneration"), (pod.get("metadata") or {}).get("generation")
    if isinstance(observed, int) and isinstance(generation, int) and observed < generation:
        return False
    in_force = pod_resources_in_force(pod)
    for container in (pod.get("spec") or {}).get("containers") or []:
        reported = in_force.get(container.get("name"))
        if reported is None or not _same(reported, _requests_limits(container.get("resources") or {})):
            return False
    return True


def _requests_limits(resources: Mapping) -> dict[str, dict]:
    return {kind: dict(resources.get(kind) or {}) for kind in RESOURCE_KINDS}


def _same(a: Mapping[str, Mapping], b: Mapping[str, Mapping]) -> bool:
    """Equal requests and limits, quantities compared by value ("0.5" == "500m")."""
    for kind in RESOURCE_KINDS:
        left, right = a.get(kind) or {}, b.get(kind) or {}
        if set(left) != set(right):
            return False
        for name, quantity in left.items():
            try:
                if parse_quantity(quantity) != parse_quantity(right[name]):
                    return False
            except InputError:
                if quantity != right[name]:
                    return False
    return True
