"""An in-memory Kubernetes API for tests of the live code, and pod and node documents to fill it.

:class:`FakeKube` implements the few REST calls the live package makes, with the apiserver's
semantics where they matter: resourceVersion-conditional Lease updates (409), Bindings that
refuse a bound pod (409 "already assigned"), a deleted pod (404) or a UID mismatch (409),
in-place resizes (``pods/resize``: containers merged by name, a QoS change refused with 422) and
evictions (``pods/eviction``: 429 for the pods of :attr:`FakeKube.budget_exhausted`), both
honouring dry runs, a deleted namespace (404 on a create in it, :meth:`FakeKube.delete_namespace`), 404s whose Status
details name the missing object, and field selectors on ``spec.nodeName`` /
``spec.schedulerName``. ``before`` hooks let a test change the world between two requests (a
node vanishing mid-placement). It stands in for
:class:`neurokube.adapters.kube.KubeClient` in tests/unit and the load scenarios, which run
without a cluster; the e2e tests use the real local control plane instead.
:func:`fake_runtime` wires a live runtime over it with its cache already synced.
"""

from __future__ import annotations

import copy
import re
import threading
import urllib.parse
import uuid
from collections.abc import Callable

from neurokube.adapters.kube import KubeError
from neurokube.errors import StatusDetails
from neurokube.k8s.objects import parse_pod

# -- objects ------------------------------------------------------------------------------------


def node_doc(name: str, cpu: str = "4", memory: str = "8Gi", pods: str = "110", labels: dict | None = None,
             taints: list[dict] | None = None, unschedulable: bool = False, address: str | None = None) -> dict:
    spec: dict = {}
    if taints:
        spec["taints"] = taints
    if unschedulable:
        spec["unschedulable"] = True
    resources = {"cpu": cpu, "memory": memory, "pods": pods}
    status: dict = {"capacity": dict(resources), "allocatable": resources}
    if address:
        status["addresses"] = [{"type": "InternalIP", "address": address}]
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
            "spec": spec, "status": status}


def pod_doc(name: str, cpu: str | None = "100m", memory: str | None = "128Mi", *, scheduler: str = "neurokube",
            node: str | None = None, namespace: str = "default", uid: str | None = None,
            tolerations: list[dict] | None = None, node_selector: dict | None = None, affinity: dict | None = None,
            limits: dict | None = None, phase: str = "Pending", created: str = "2026-01-01T00:00:00Z") -> dict:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    resources: dict = {"requests": requests}
    if limits:
        resources["limits"] = limits
    spec: dict = {"schedulerName": scheduler,
                  "containers": [{"name": "main", "image": "pause", "resources": resources}]}
    if node:
        spec["nodeName"] = node
    if tolerations:
        spec["tolerations"] = tolerations
    if node_selector:
        spec["nodeSelector"] = node_selector
    if affinity:
        spec["affinity"] = affinity
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "uid": uid or str(uuid.uuid4()),
                         "creationTimestamp": created},
            "spec": spec, "status": {"phase": phase}}


# -- an in-memory apiserver -------------------------------------------------------------------------

_ROUTES = [
    ("nodes", re.compile(r"^/api/v1/nodes$")),
    ("node", re.compile(r"^/api/v1/nodes/([^/]+)$")),
    ("pods", re.compile(r"^/api/v1/pods$")),
    ("ns_pods", re.compile(r"^/api/v1/namespaces/([^/]+)/pods$")),
    ("pod", re.compile(r"^/api/v1/namespaces/([^/]+)/pods/([^/]+)$")),
    ("binding", re.compile(r"^/api/v1/namespaces/([^/]+)/pods/([^/]+)/binding$")),
    ("resize", re.compile(r"^/api/v1/namespaces/([^/]+)/pods/([^/]+)/resize$")),
    ("eviction", re.compile(r"^/api/v1/namespaces/([^/]+)/pods/([^/]+)/eviction$")),
    ("events", re.compile(r"^/api/v1/namespaces/([^/]+)/events$")),
    ("leases", re.compile(r"^/apis/coordination\.k8s\.io/v1/namespaces/([^/]+)/leases$")),
    ("lease", re.compile(r"^/apis/coordination\.k8s\.io/v1/namespaces/([^/]+)/leases/([^/]+)$")),
]


class FakeKube:
    server = "https://fake-apiserver"

    def __init__(self, nodes: list[dict] = (), pods: list[dict] = (), namespaces: tuple[str, ...] = ("neurokube",)
                 ) -> None:
        self._lock = threading.RLock()
        self._rv = 1
        self.nodes: dict[str, dict] = {}
        self.pods: dict[tuple[str, str], dict] = {}
        self.leases: dict[tuple[str, str], dict] = {}
        self.events: list[dict] = []
        self.bindings: list[tuple[str, str]] = []  # (namespace/name, node) of every successful Binding
        self.binding_bodies: list[dict] = []  # the body of every Binding request, successful or not
        self.requests: list[tuple[str, str]] = []
        self.resizes: list[tuple[str, dict]] = []  # (namespace/name, patch) of every resize applied (not dry runs)
        self.evictions: list[str] = []  # namespace/name of every pod evicted (not dry runs)
        self.budget_exhausted: set[str] = set()  # namespace/name whose eviction a disruption budget refuses (429)
        self.namespaces = set(namespaces)  # where Leases can be created
        self.deleted_namespaces: set[str] = set()  # where nothing can be created (delete_namespace)
        self.before: list[Callable[[str, str, object], None]] = []
        for n in nodes:
            self.add_node(n)
        for p in pods:
            self.add_pod(p)

    # -- test helpers ---------------------------------------------------------------------------

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def add_node(self, doc: dict) -> None:
        with self._lock:
            doc = copy.deepcopy(doc)
            doc["metadata"]["resourceVersion"] = self._next_rv()
            self.nodes[doc["metadata"]["name"]] = doc

    def delete_node(self, name: str) -> None:
        with self._lock:
            self.nodes.pop(name, None)

    def add_pod(self, doc: dict) -> None:
        with self._lock:
            doc = copy.deepcopy(doc)
            doc["metadata"]["resourceVersion"] = self._next_rv()
            self.pods[(doc["metadata"]["namespace"], doc["metadata"]["name"])] = doc

    def delete_namespace(self, name: str) -> None:
        """The namespace and everything in it are gone: a create in it is refused with the namespace
        admission's 404 (details: kind ``namespaces``)."""
        with self._lock:
            self.namespaces.discard(name)
            self.deleted_namespaces.add(name)
            self.pods = {key: p for key, p in self.pods.items() if key[0] != name}
            self.leases = {key: lease for key, lease in self.leases.items() if key[0] != name}

    def writes(self) -> list[tuple[str, str]]:
        """Every request that could change the apiserver (not a GET)."""
        with self._lock:
            return [(m, p) for m, p in self.requests if m != "GET"]

    def placements(self) -> dict[str, str | None]:
        with self._lock:
            return {f"{ns}/{name}": p["spec"].get("nodeName") for (ns, name), p in self.pods.items()}

    # -- the client interface ---------------------------------------------------------------------

    def get(self, path: str, **query: str) -> object:
        return self.request("GET", path, query=query)

    def watch(self, path: str, query: dict, read_timeout_s: float):
        raise NotImplementedError("FakeKube has no watch; feed ClusterCache.replace/apply directly")

    def request(self, method: str, path: str, body: object = None, query: dict | None = None,
                content_type: str = "application/json", retry_429: bool = True) -> object:
        if "?" in path:
            path, _, raw = path.partition("?")
            query = {**dict(urllib.parse.parse_qsl(raw)), **(query or {})}
        query = query or {}
        for hook in list(self.before):
            hook(method, path, body)
        with self._lock:
            self.requests.append((method, path))
            for name, pattern in _ROUTES:
                match = pattern.match(path)
                if match:
                    groups = tuple(urllib.parse.unquote(g) for g in match.groups())
                    return copy.deepcopy(getattr(self, f"_{name}")(method, path, groups, body, query))
        raise KubeError(404, "NotFound", f"no route {path}", method, path)

    # -- routes ------------------------------------------------------------------------------

    def _nodes(self, method, path, groups, body, query):
        return {"kind": "NodeList", "metadata": {"resourceVersion": str(self._rv)}, "items": list(self.nodes.values())}

    def _node(self, method, path, groups, body, query):
        node = self.nodes.get(groups[0])
        if node is None:
            raise _not_found("nodes", groups[0], method, path)
        return node

    def _pods(self, method, path, groups, body, query):
        items = list(self.pods.values())
        for clause in filter(None, (query.get("fieldSelector") or "").split(",")):
            key, _, value = clause.partition("=")
            if key == "spec.nodeName":
                items = [p for p in items if (p["spec"].get("nodeName") or "") == value]
            elif key == "spec.schedulerName":
                items = [p for p in items if p["spec"].get("schedulerName", "default-scheduler") == value]
            else:
                raise KubeError(400, "BadRequest", f"field label not supported: {key}", method, path)
        return {"kind": "PodList", "metadata": {"resourceVersion": str(self._rv)}, "items": items}

    def _ns_pods(self, method, path, groups, body, query):
        if method == "POST":
            self._admit_namespace(groups[0], method, path)
            body = copy.deepcopy(body)
            body["metadata"].setdefault("uid", str(uuid.uuid4()))
            body["metadata"]["namespace"] = groups[0]
            self.add_pod(body)
            return body
        return {"items": [p for (ns, _), p in self.pods.items() if ns == groups[0]]}

    def _pod(self, method, path, groups, body, query):
        pod = self.pods.get(groups)
        if pod is None:
            raise _not_found("pods", groups[1], method, path)
        return pod

    def _binding(self, method, path, groups, body, query):
        self.binding_bodies.append(copy.deepcopy(body))
        self._admit_namespace(groups[0], method, path)
        pod = self.pods.get(groups)
        name = groups[1]
        if pod is None:
            raise _not_found("pods", name, method, path)
        uid = (body.get("metadata") or {}).get("uid")
        if uid and uid != pod["metadata"]["uid"]:
            raise KubeError(409, "Conflict", f"Operation cannot be fulfilled on pods/binding \"{name}\": "
                            f"Precondition failed: UID in precondition: {uid}, UID in object meta: "
                            f"{pod['metadata']['uid']}", method, path)
        if pod["metadata"].get("deletionTimestamp"):
            raise KubeError(409, "Conflict", f"pod {name} is being deleted, cannot be assigned to a host",
                            method, path)
        if pod["spec"].get("nodeName"):
            raise KubeError(409, "Conflict", f'Operation cannot be fulfilled on pods/binding "{name}": pod {name} '
                            f'is already assigned to node "{pod["spec"]["nodeName"]}"', method, path)
        if pod["spec"].get("schedulingGates"):  # kube-apiserver's answer (tests/e2e/test_functions.py)
            raise KubeError(409, "Conflict", f'Operation cannot be fulfilled on pods/binding "{name}": pod {name} '
                            "has non-empty .spec.schedulingGates", method, path)
        pod["spec"]["nodeName"] = body["target"]["name"]
        annotations = (body.get("metadata") or {}).get("annotations") or {}
        if annotations:  # merged into the pod's, as the apiserver does
            pod["metadata"]["annotations"] = {**(pod["metadata"].get("annotations") or {}), **annotations}
        pod["metadata"]["resourceVersion"] = self._next_rv()
        self.bindings.append((f"{groups[0]}/{name}", body["target"]["name"]))
        return {"kind": "Status", "status": "Success"}

    def _resize(self, method, path, groups, body, query):
        """``PATCH pods/{name}/resize``: a strategic merge of containers by name (requests and limits
        only); a change of the QoS class is the apiserver's 422; ``dryRun=All`` persists nothing."""
        pod = self.pods.get(groups)
        if pod is None:
            raise _not_found("pods", groups[1], method, path)
        resized = copy.deepcopy(pod)
        by_name = {c["name"]: c for c in resized["spec"]["containers"]}
        for patch in body["spec"]["containers"]:
            container = by_name.get(patch["name"])
            if container is None:
                raise KubeError(422, "Invalid", f"Pod \"{groups[1]}\" is invalid: spec.containers: no container "
                                f"{patch['name']!r}", method, path)
            resources = container.setdefault("resources", {})
            for kind, values in patch["resources"].items():
                resources.setdefault(kind, {}).update(values)
        if parse_pod(resized).qos != parse_pod(pod).qos:
            raise KubeError(422, "Invalid", f"Pod \"{groups[1]}\" is invalid: metadata: Invalid value: "
                            "\"Guaranteed\": Pod QOS Class may not change as a result of resizing", method, path)
        if query.get("dryRun") == "All":
            return resized
        resized["metadata"]["resourceVersion"] = self._next_rv()
        resized["metadata"]["generation"] = int(pod["metadata"].get("generation") or 1) + 1
        self.pods[groups] = resized
        self.resizes.append((f"{groups[0]}/{groups[1]}", copy.deepcopy(body)))
        return resized

    def _eviction(self, method, path, groups, body, query):
        """``POST pods/{name}/eviction``: 429 for a pod in :attr:`budget_exhausted`, else the pod is
        deleted (a dry run deletes nothing)."""
        pod = self.pods.get(groups)
        key = f"{groups[0]}/{groups[1]}"
        if pod is None:
            raise _not_found("pods", groups[1], method, path)
        if key in self.budget_exhausted:
            raise KubeError(429, "TooManyRequests", "Cannot evict pod as it would violate the pod's disruption "
                            "budget.", method, path)
        if ((body or {}).get("deleteOptions") or {}).get("dryRun") == ["All"]:
            return {"kind": "Status", "status": "Success"}
        del self.pods[groups]
        self.evictions.append(key)
        return {"kind": "Status", "status": "Success"}

    def _events(self, method, path, groups, body, query):
        self._admit_namespace(groups[0], method, path)
        self.events.append(body)
        return body

    def _leases(self, method, path, groups, body, query):
        ns = groups[0]
        if method == "GET":
            return {"items": [v for (n, _), v in self.leases.items() if n == ns]}
        if ns not in self.namespaces:
            raise _not_found("namespaces", ns, method, path)
        name = body["metadata"]["name"]
        if (ns, name) in self.leases:
            raise KubeError(409, "AlreadyExists", f'leases "{name}" already exists', method, path)
        lease = copy.deepcopy(body)
        lease["metadata"]["resourceVersion"] = self._next_rv()
        self.leases[(ns, name)] = lease
        return lease

    def _lease(self, method, path, groups, body, query):
        lease = self.leases.get(groups)
        if lease is None:
            raise _not_found("leases", groups[1], method, path, group="coordination.k8s.io")
        if method == "GET":
            return lease
        if method == "DELETE":
            del self.leases[groups]
            return {"status": "Success"}
        if body["metadata"].get("resourceVersion") != lease["metadata"]["resourceVersion"]:
            raise KubeError(409, "Conflict", "the object has been modified; please apply your changes to the "
                            "latest version and try again", method, path)
        updated = copy.deepcopy(body)
        updated["metadata"]["resourceVersion"] = self._next_rv()
        self.leases[groups] = updated
        return updated


    def _admit_namespace(self, ns: str, method: str, path: str) -> None:
        """The apiserver's NamespaceLifecycle admission: no create in a namespace that is gone."""
        if ns in self.deleted_namespaces:
            raise _not_found("namespaces", ns, method, path)


def _not_found(resource: str, name: str, method: str, path: str, group: str = "") -> KubeError:
    """The apiserver's 404: a message naming the object and details saying which it is."""
    return KubeError(404, "NotFound", f'{resource} "{name}" not found', method, path,
                     StatusDetails(resource, name, group))


# -- a runtime over the fakes -------------------------------------------------------------------


def sync(cache, kube: FakeKube) -> None:
    """Load ``kube``'s nodes and pods into a ClusterCache, as its first list would."""
    with kube._lock:
        nodes, pods = copy.deepcopy(list(kube.nodes.values())), copy.deepcopy(list(kube.pods.values()))
    cache.replace("nodes", nodes)
    cache.replace("pods", pods)


def fake_runtime(kube: FakeKube, settings=None, telemetry=None):
    """A :class:`~neurokube.live.runtime.Runtime` over ``kube`` with a synced cache (not started)."""
    from neurokube.live.runtime import Runtime
    from neurokube.live.settings import Settings
    from neurokube.live.telemetry import Telemetry

    runtime = Runtime(settings or Settings(replica="test"), kube, telemetry or Telemetry())
    sync(runtime.cache, kube)
    return runtime
