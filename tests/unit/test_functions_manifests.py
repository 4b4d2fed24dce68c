"""deploy/knative read statically: the ClusterRole is exactly the four rules placing pods needs;
the Services are cluster-local, warm, with containerConcurrency equal to their worker threads and
a TCP readiness probe; the sources and triggers carry the event types the functions accept; the
ConfigMap passes the functions' own settings validation. (tests/e2e/test_knative_manifests.py
validates them against a real apiserver.)"""

from pathlib import Path

import yaml

from neurokube.live import handlers
from neurokube.live.settings import from_env

KNATIVE = Path(__file__).resolve().parents[2] / "deploy" / "knative"


def objects():
    for path in sorted(KNATIVE.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                yield doc


def by_kind(kind):
    return {d["metadata"]["name"]: d for d in objects() if d["kind"] == kind}


def test_cluster_role_is_exactly_what_placing_pods_needs():
    rules = by_kind("ClusterRole")["neurokube-scheduler"]["rules"]
    granted = {(r, v) for rule in rules for r in rule["resources"] for v in rule["verbs"]}
    assert all(rule["apiGroups"] == [""] for rule in rules)
    assert granted == {("pods", "get"), ("pods", "list"), ("pods", "watch"), ("pods/binding", "create"),
                       ("nodes", "get"), ("nodes", "list"), ("nodes", "watch"), ("events", "create")}
    ledger = by_kind("Role")["neurokube-ledger"]
    assert ledger["metadata"]["namespace"] == "neurokube"
    assert ledger["rules"] == [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                                "verbs": ["get", "list", "create", "update", "delete"]}]


SCHEDULING = {"neurokube-binder", "neurokube-extender", "neurokube-sweeper"}


def test_services():
    services = {n: s for n, s in by_kind("Service").items() if s["apiVersion"].startswith("serving.knative.dev")}
    assert set(services) == SCHEDULING | {"trainer"}
    for name, svc in services.items():
        if name not in SCHEDULING:
            continue
        assert svc["metadata"]["labels"]["networking.knative.dev/visibility"] == "cluster-local"
        template = svc["spec"]["template"]
        assert int(template["metadata"]["annotations"]["autoscaling.knative.dev/min-scale"]) >= 1
        spec = template["spec"]
        [container] = spec["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert spec["containerConcurrency"] == int(env["THREADS"]) * int(env["WORKERS"]), name
        assert env["FUNCTION_SIGNATURE_TYPE"] == "http" and env["FUNCTION_SOURCE"].endswith("/main.py")
        assert "tcpSocket" in container["readinessProbe"] and spec["serviceAccountName"] == "neurokube-scheduler"
        assert all(p["containerPort"] == 8080 for p in container["ports"])  # Knative's port inside the pod


def test_trainer_only_launches_jobs():
    svc = by_kind("Service")["trainer"]
    spec = svc["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
    assert svc["metadata"]["labels"]["networking.knative.dev/visibility"] == "cluster-local"
    assert env["FUNCTION_TARGET"] == "on_ping" and env["NEUROKUBE_TRAINER_MODE"] == "cluster"
    assert spec["serviceAccountName"] == "neurokube-trainer-launcher" and spec["containerConcurrency"] == 1
    role = by_kind("Role")["neurokube-trainer-launcher"]
    assert role["rules"] == [{"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create"]}]
    assert by_kind("ServiceAccount")["neurokube-trainer"]["automountServiceAccountToken"] is False
    assert by_kind("PingSource")["neurokube-nightly-training"]["spec"]["sink"]["ref"]["name"] == "trainer"


def test_sources_and_triggers():
    source = by_kind("ApiServerSource")["neurokube-pods"]["spec"]
    assert source["mode"] == "Resource" and source["resources"] == [{"apiVersion": "v1", "kind": "Pod"}]
    assert "namespaceSelector" in source
    triggers = by_kind("Trigger")
    assert {t["spec"]["filter"]["attributes"]["type"] for t in triggers.values()} == set(handlers.PLACED_EVENTS)
    assert {t["spec"]["subscriber"]["ref"]["name"] for t in triggers.values()} == {"neurokube-binder"}
    pings = by_kind("PingSource")
    assert pings["neurokube-sweep"]["spec"]["schedule"] == "* * * * *"
    assert pings["neurokube-sweep"]["spec"]["sink"]["ref"]["name"] == "neurokube-sweeper"
    assert pings["neurokube-nightly-training"]["spec"]["schedule"] == "0 2 * * *"
    assert pings["neurokube-nightly-training"]["spec"]["sink"]["ref"]["name"] == "trainer"


def test_config_map_passes_the_settings_validation():
    data = by_kind("ConfigMap")["neurokube-functions"]["data"]
    settings = from_env(data)
    assert settings.scheduler_name == "neurokube" and settings.ledger_namespace == "neurokube"
    assert not any("SECRET" in v or "minio://" in v for v in data.values())  # credentials live in Secrets


def test_every_namespaced_object_is_in_the_neurokube_namespace():
    cluster_scoped = {"Namespace", "ClusterRole", "ClusterRoleBinding"}
    for doc in objects():
        if doc["kind"] not in cluster_scoped:
            assert doc["metadata"].get("namespace") == "neurokube", doc["metadata"]["name"]
