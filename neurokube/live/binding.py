"""POST the Binding subresource, and read the apiserver's answer as an outcome.

``POST /api/v1/namespaces/{ns}/pods/{name}/binding`` is the one write that places a pod. It is a
compare-and-swap on the pod: the apiserver refuses it with 409 when the pod already has a node
("already assigned to node"), so a second delivery of the same event cannot move a pod, and the
binder treats that 409 as success (delivery is at-least-once). The Binding carries the pod's
UID, always, as a precondition: an event about a deleted pod cannot bind a new pod of the same name.

A 404's Status ``details`` say what is gone: the pod (POD_GONE, the detail is the apiserver's
message), or its whole namespace (NAMESPACE_GONE, kind ``namespaces``, answered by the
apiserver's namespace admission before the pod is looked at; the detail is the namespace's name),
so that the binder can answer "namespace does not exist" without matching the message.

The apiserver merges the Binding's annotations into the pod's. The binder's Binding carries
``neurokube.io/decision-id``, the id of the decision record that placed the pod, so the pod says
which decision placed it (:func:`placing_decision`): the decision log asks that of a record a killed
process left unsettled, and anyone can join a pod to its decision.
"""

from __future__ import annotations

import re
import urllib.parse

from neurokube.adapters.kube import KubeClient, KubeError
from neurokube.errors import InputError
from neurokube.k8s.objects import Pod

BOUND = "bound"
ALREADY_BOUND = "already_bound"
POD_GONE = "gone"
NAMESPACE_GONE = "namespace_gone"
NODE_REJECTED = "node_rejected"
DECISION_ANNOTATION = "neurokube.io/decision-id"

_ASSIGNED = re.compile(r'already assigned to node "([^"]*)"')


def binding_body(pod: Pod, node: str, decision_id: str = "") -> dict:
    """The Binding, always with the pod's UID as its precondition (every pod placed comes from the
    apiserver, which always has one; a pod without it is refused, never bound by name alone)."""
    if not pod.uid:
        raise InputError("a pod without metadata.uid cannot be bound", where=f"pod {pod.key}",
                         why="the Binding's UID precondition is what keeps a late event from binding a new pod")
    meta: dict = {"name": pod.name, "namespace": pod.namespace, "uid": pod.uid}
    if decision_id:
        meta["annotations"] = {DECISION_ANNOTATION: decision_id}
    return {"apiVersion": "v1", "kind": "Binding", "metadata": meta,
            "target": {"apiVersion": "v1", "kind": "Node", "name": node}}


def pod_path(namespace: str, name: str) -> str:
    return (f"/api/v1/namespaces/{urllib.parse.quote(namespace, safe='')}/pods/"
            f"{urllib.parse.quote(name, safe='')}")


def bind(kube: KubeClient, pod: Pod, node: str, decision_id: str = "") -> tuple[str, str]:
    """``(outcome, detail)``: BOUND, ALREADY_BOUND (detail: the node it is on), POD_GONE,
    NAMESPACE_GONE (detail: the namespace) or NODE_REJECTED.

    Any other failure raises (a :class:`~neurokube.errors.TemporaryError`: try again later).
    """
    try:
        kube.request("POST", pod_path(pod.namespace, pod.name) + "/binding", binding_body(pod, node, decision_id))
    except KubeError as exc:
        return classify(exc)
    return BOUND, node


def placing_decision(kube: KubeClient, namespace: str, name: str, uid: str) -> str:
    """The decision id the pod's Binding carried; "" if the pod (with this UID) is gone, unbound,
    or was bound by someone else. Raises what the GET raises otherwise (the apiserver cannot say)."""
    try:
        doc = kube.get(pod_path(namespace, name))
    except KubeError as exc:
        if exc.not_found:
            return ""
        raise
    meta = doc.get("metadata") or {}
    if meta.get("uid") != uid or not (doc.get("spec") or {}).get("nodeName"):
        return ""
    return str((meta.get("annotations") or {}).get(DECISION_ANNOTATION) or "")


def classify(exc: KubeError) -> tuple[str, str]:
    message = exc.message or str(exc)
    if exc.status == 409:
        found = _ASSIGNED.search(message)
        if found:
            return ALREADY_BOUND, found.group(1)
        if "being deleted" in message or "recondition" in message or "UID" in message:
            return POD_GONE, message
        raise exc
    if exc.status == 404:
        details = exc.details
        if details.kind == "namespaces" and not details.group and details.name:
            return NAMESPACE_GONE, details.name
        return POD_GONE, message
    if exc.status in (400, 422):
        return NODE_REJECTED, message
    raise exc
