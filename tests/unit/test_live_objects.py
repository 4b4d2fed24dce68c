"""Pods and nodes from the apiserver's JSON: effective requests as kube-scheduler computes them
(containers, init containers, sidecars, overhead, non-zero defaults), QoS, workload keys, and
InputErrors that name the bad field."""

import pytest

from neurokube.errors import InputError
from neurokube.k8s.objects import parse_node, parse_pod
from neurokube.policies.base import BEST_EFFORT, BURSTABLE, GUARANTEED
from neurokube.testing import node_doc, pod_doc

MI = 2**20


def container(name, cpu=None, memory=None, limits=None, restart=None):
    c = {"name": name, "resources": {"requests": {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v}}}
    if limits:
        c["resources"]["limits"] = limits
    if restart:
        c["restartPolicy"] = restart
    return c


def with_containers(containers, inits=(), overhead=None):
    doc = pod_doc("p")
    doc["spec"]["containers"] = list(containers)
    if inits:
        doc["spec"]["initContainers"] = list(inits)
    if overhead:
        doc["spec"]["overhead"] = overhead
    return doc


def test_requests_sum_containers_and_non_zero_defaults():
    pod = parse_pod(with_containers([container("a", "250m", "64Mi"), container("b")]))
    r = pod.resources
    assert (r.cpu, r.memory) == (250, 64 * MI)
    assert (r.nz_cpu, r.nz_memory) == (350, 264 * MI)  # b counts 100m / 200Mi for scoring


def test_init_containers_take_the_max_and_sidecars_add():
    big_init = container("init", "2", "1Gi")
    pod = parse_pod(with_containers([container("a", "500m", "128Mi")], [big_init]))
    assert (pod.resources.cpu, pod.resources.memory) == (2000, 1024 * MI)
    sidecar = container("proxy", "100m", "32Mi", restart="Always")
    pod = parse_pod(with_containers([container("a", "500m", "128Mi")], [sidecar, container("init", "550m", "1Mi")]))
    # the app runs with the sidecar (600m), the later init ran with it too (650m)
    assert pod.resources.cpu == 650 and pod.resources.memory == 160 * MI


def test_overhead_adds_to_requests():
    pod = parse_pod(with_containers([container("a", "100m", "1Mi")], overhead={"cpu": "50m", "memory": "1Mi"}))
    assert (pod.resources.cpu, pod.resources.memory) == (150, 2 * MI)


@pytest.mark.parametrize("containers, qos", [
    ([container("a", "1", "1Gi", limits={"cpu": "1", "memory": "1Gi"})], GUARANTEED),
    ([{"name": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}], GUARANTEED),  # requests default
    ([container("a", "500m", "1Gi", limits={"cpu": "1", "memory": "1Gi"})], BURSTABLE),
    ([container("a", "100m")], BURSTABLE),
    ([{"name": "a"}], BEST_EFFORT),
])
def test_qos(containers, qos):
    assert parse_pod(with_containers(containers)).qos == qos


def test_limits_only_when_every_container_has_one():
    pod = parse_pod(with_containers([container("a", "1", limits={"cpu": "2"}), container("b", "1")]))
    assert pod.resources.cpu_limit == 0
    pod = parse_pod(with_containers([container("a", "1", limits={"cpu": "2"})]))
    assert pod.resources.cpu_limit == 2000


def test_workload_key_strips_the_replicaset_hash():
    doc = pod_doc("web-7d4b9c-x2x", namespace="shop")
    doc["metadata"]["labels"] = {"pod-template-hash": "7d4b9c"}
    doc["metadata"]["ownerReferences"] = [{"kind": "ReplicaSet", "name": "web-7d4b9c", "controller": True}]
    assert parse_pod(doc).workload == "shop/web"
    assert parse_pod(pod_doc("lonely")).workload == "default/lonely"


def test_scheduling_fields():
    doc = pod_doc("p", tolerations=[{"key": "k", "operator": "Exists", "effect": "NoSchedule"}],
                  node_selector={"disk": "ssd"}, node="n1")
    doc["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    pod = parse_pod(doc)
    assert pod.bound and pod.deleting and pod.node_selector == (("disk", "ssd"),)
    assert pod.tolerations[0].operator == "Exists" and pod.scheduler_name == "neurokube"
    assert pod.scheduling_gates == ()
    doc["spec"]["schedulingGates"] = [{"name": "example.com/a"}, {"name": "example.com/b"}]
    assert parse_pod(doc).scheduling_gates == ("example.com/a", "example.com/b")


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.pop("spec"), "the pod has no spec"),
    (lambda d: d.update(spec=None), "the pod has no spec"),
    (lambda d: d.update(spec="x"), "spec must be a JSON object"),
    (lambda d: d["spec"].pop("containers"), "spec.containers is missing"),
    (lambda d: d["spec"].update(containers=[]), "must be a non-empty list"),
    (lambda d: d["spec"].update(containers=["x"]), r"spec.containers\[0\] must be an object"),
    (lambda d: d["spec"]["containers"][0]["resources"]["requests"].update(cpu="-1"), "negative"),
    (lambda d: d["spec"]["containers"][0]["resources"]["requests"].update(memory="1e30"), "absurdly large"),
    (lambda d: d["spec"]["containers"][0]["resources"]["requests"].update(cpu="abc"), "not a Kubernetes quantity"),
    (lambda d: d["spec"].update(tolerations=[{"operator": "Maybe"}]), "not Equal or Exists"),
    (lambda d: d["spec"].update(nodeSelector={"a": 1}), "must map strings to strings"),
    (lambda d: d["metadata"].pop("name"), "metadata.name"),
    (lambda d: d["spec"].update(schedulingGates={"name": "g"}), "spec.schedulingGates must be a list"),
    (lambda d: d["spec"].update(schedulingGates=[{"name": ""}]), r"schedulingGates\[0\] must be an object with a"),
    (lambda d: d["spec"].update(schedulingGates=["g"]), r"schedulingGates\[0\] must be an object with a"),
    (lambda d: d.update(kind="Node"), "expected a Pod"),
    (lambda d: d["spec"].update(affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["x"]}]}]}}}),
     "Gt needs exactly one integer"),
])
def test_malformed_pods_are_input_errors(mutate, message):
    doc = pod_doc("bad")
    mutate(doc)
    with pytest.raises(InputError, match=message):
        parse_pod(doc)


def test_not_a_mapping():
    with pytest.raises(InputError, match="pod must be a JSON object"):
        parse_pod(["not", "a", "pod"])


def test_nodes():
    node = parse_node(node_doc("n1", cpu="3500m", memory="8Gi", pods="50", labels={"zone": "a"},
                               taints=[{"key": "k", "value": "v", "effect": "NoSchedule"}], unschedulable=True,
                               address="10.0.0.7"))
    assert (node.alloc_cpu, node.alloc_memory, node.alloc_pods) == (3500, 8 * 2**30, 50)
    assert node.label("zone") == "a" and node.taints[0].effect == "NoSchedule" and node.unschedulable
    assert node.addresses == ("10.0.0.7",)
    with pytest.raises(InputError, match="allocatable memory"):
        parse_node(node_doc("n2", memory="lots"))
