"""Trust the apiserver, not the request: the pod a function acts on is the apiserver's.

An event (or an extender ``/bind`` call) only *names* a pod. Whoever sent it may have forged the
rest: another scheduler's pod, a pod of another namespace, a UID of a pod since deleted, requests
of 10m for a pod that asks for 100 CPUs, or made-up tolerations. So before anything is written
(a Lease, a Binding, an Event) the pod is looked up, by UID in the watch cache or else by name
with a GET, and:

* a pod the apiserver does not have is **gone** (410: the event is late or forged);
* a UID that is not the named pod's is **uid_mismatch** (410) or, when the UID belongs to another
  pod, **other_pod** (403);
* an event that claims this scheduler for a pod of another scheduler is **other_scheduler** (403);
* an event whose scheduling-relevant spec (requests, limits, QoS, node selector, required
  affinity, tolerations) differs from the apiserver's is **spec_mismatch** (403), after one fresh
  GET, since the watch cache may lag behind the event;
* an event without ``metadata.uid`` is **no_uid** (400): the ApiServerSource always sends it.

An event about a new pod often arrives before the function's own watch has reported the pod; the
lookup then waits up to ``NEUROKUBE_POD_WATCH_WAIT_S`` for the watch before it GETs (the bench
measured about one GET per seven pods without the wait, each an apiserver read of a whole pod).

What is then placed is the apiserver's pod, and its Binding always carries its UID as a
precondition. Each refusal is a :class:`~neurokube.errors.RefusedError` with its reason (the
label of ``neurokube_refused_total``). :func:`contradiction` is pure; :func:`actual_pod` does the
lookups.
"""

from __future__ import annotations

from neurokube.adapters.kube import KubeClient, KubeError
from neurokube.errors import NotFoundError, RefusedError
from neurokube.k8s.objects import Pod, parse_pod
from neurokube.live import binding
from neurokube.live.cache import ClusterCache

NO_UID, UID_MISMATCH, OTHER_POD, OTHER_SCHEDULER, SPEC_MISMATCH, POD_GONE, NOT_PENDING, UNKNOWN_NODE = (
    "no_uid", "uid_mismatch", "other_pod", "other_scheduler", "spec_mismatch", "pod_gone", "not_pending",
    "unknown_node")

_SPEC_FIELDS = ("resources", "qos", "node_selector", "required_terms", "tolerations")


def contradiction(claimed: Pod, actual: Pod) -> tuple[str, str] | None:
    """``(reason, what differs)`` when the claimed pod is not the apiserver's one, else None.

    Only what a placement reads is compared; status, labels and the node name are not (an event
    about a pod that has been bound since is a late duplicate, not a forgery)."""
    if claimed.uid != actual.uid:
        return UID_MISMATCH, f"UID {claimed.uid!r} is not the pod's ({actual.uid!r})"
    if claimed.scheduler_name != actual.scheduler_name:
        return OTHER_SCHEDULER, f"schedulerName is {actual.scheduler_name!r}, not {claimed.scheduler_name!r}"
    differing = [f for f in _SPEC_FIELDS if getattr(claimed, f) != getattr(actual, f)]
    if differing:
        return SPEC_MISMATCH, f"the event's {', '.join(differing)} differ from the apiserver's"
    return None


def fetch_pod(kube: KubeClient, namespace: str, name: str) -> Pod | None:
    """The pod as the apiserver has it now, or None if it (or its namespace) does not exist."""
    try:
        return parse_pod(kube.get(binding.pod_path(namespace, name)))
    except KubeError as exc:
        if exc.not_found:
            return None
        raise


def actual_pod(claimed: Pod, cache: ClusterCache, kube: KubeClient, wait_s: float = 0.0) -> tuple[Pod, str]:
    """The apiserver's version of the pod an event claims and where it was read (``cache``;
    ``watch_wait``: the watch cache had not seen the pod yet and reported it within ``wait_s``;
    ``apiserver``: a GET, when the watch cache has not caught up with the event), or a
    :class:`RefusedError` saying why the claim is refused (see the module docstring)."""
    where = f"pod {claimed.key}"
    if not claimed.uid:
        raise RefusedError("the event's pod has no metadata.uid", reason=NO_UID, status=400, where=where,
                           why="an ApiServerSource event carries the whole object")
    actual = cache.pod(claimed.uid)
    source = "cache"
    if actual is None and wait_s > 0:
        actual = cache.wait_pod(claimed.uid, wait_s)
        source = "watch_wait"
    if actual is not None and actual.key != claimed.key:
        raise RefusedError(f"UID {claimed.uid} belongs to pod {actual.key}", reason=OTHER_POD, where=where)
    if actual is None or contradiction(claimed, actual) is not None:
        actual = fetch_pod(kube, claimed.namespace, claimed.name)  # the cache may lag behind the event
        source = "apiserver"
    if actual is None:
        raise RefusedError("the apiserver has no such pod", reason=POD_GONE, status=410, where=where,
                           why="deleted since the event, or never created")
    found = contradiction(claimed, actual)
    if found is not None:
        reason, what = found
        status = 410 if reason == UID_MISMATCH else 403
        raise RefusedError("the event does not match the apiserver's pod", reason=reason, status=status,
                           where=where, why=what)
    return actual, source


def bindable_pod(kube: KubeClient, cache: ClusterCache, namespace: str, name: str, uid: str, node: str,
                 schedulers: frozenset[str]) -> Pod:
    """The pod an extender ``/bind`` names, checked before any write: the node must be one the
    watch cache knows, the pod must exist with that UID, belong to one of ``schedulers`` and not
    be bound, deleted or finished."""
    where = f"pod {namespace}/{name}"
    if cache.node(node) is None:
        raise RefusedError(f"unknown node {node[:253]!r}", reason=UNKNOWN_NODE, where=where,
                           why="the watch cache has no node of that name")
    if not uid:
        raise RefusedError("the binding names no PodUID", reason=NO_UID, status=400, where=where,
                           why="kube-scheduler always sends it")
    actual = fetch_pod(kube, namespace, name)
    if actual is None:
        raise NotFoundError(f"pod {namespace}/{name} does not exist")
    if actual.uid != uid:
        raise RefusedError(f"PodUID {uid!r} is not the pod's", reason=UID_MISMATCH, status=410, where=where)
    if actual.scheduler_name not in schedulers:
        raise RefusedError(f"schedulerName is {actual.scheduler_name!r}", reason=OTHER_SCHEDULER, where=where,
                           why=f"the extender binds pods of {', '.join(sorted(schedulers))} only")
    if actual.deleting or actual.terminal:
        raise RefusedError("the pod is being deleted or has finished", reason=NOT_PENDING, status=410,
                           where=where)
    return actual
