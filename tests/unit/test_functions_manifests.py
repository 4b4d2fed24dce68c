"""deploy/knative read statically (tests/e2e/test_knative_manifests.py validates the same files
against a real apiserver, tests/e2e/test_rbac.py the roles with `kubectl auth can-i`):

* least privilege: every function has its own ServiceAccount, and the rules each one is granted
  (following its bindings) are exactly the API calls its code makes; nobody else uses them;
* every container (the Knative Services', the dead-letter sink's, and the trainer's Job template)
  runs non-root with a read-only root file system, no privilege escalation, no capabilities and
  RuntimeDefault seccomp, with CPU and memory requests and limits (the queue-proxy's through
  Knative's annotations) and a writable emptyDir at /tmp;
* no secret in argv or in a plain env value: credentials come by secretKeyRef only; MinIO and
  MLflow are reached over verified TLS;
* every Trigger (and the Broker) retries with backoff and then hands over to a dead-letter sink
  that exists; the sources and triggers carry the event types the functions accept;
* NetworkPolicies: ingress is denied by default, and each Service's pods admit only Knative's
  data plane (and Prometheus for metrics);
* the Services are cluster-local, warm, with containerConcurrency equal to their worker threads
  and a TCP readiness probe; each function's environment passes the functions' own settings
  validation, authentication included;
* kustomization.yaml lists every manifest, and the production overlay pins the image by digest.
"""

from __future__ import annotations

import atexit
import copy
import functools
import importlib.util
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from unittest import mock

import pytest
import yaml

from neurokube.live import handlers
from neurokube.live.settings import from_env

ROOT = Path(__file__).resolve().parents[2]
KNATIVE = ROOT / "deploy" / "knative"
OVERLAY = ROOT / "deploy" / "overlays" / "production" / "kustomization.yaml"
NS = "neurokube"
SA = "system:serviceaccount:neurokube:"


def manifest_files() -> list[Path]:
    return sorted(p for p in KNATIVE.glob("*.yaml") if p.name != "kustomization.yaml")


@functools.cache
def _parsed(directory: Path) -> tuple[dict, ...]:
    return tuple(doc for path in manifest_files() for doc in yaml.safe_load_all(path.read_text()) if doc)


def objects():
    return iter(copy.deepcopy(_parsed(KNATIVE)))


def by_kind(kind):
    return {d["metadata"]["name"]: d for d in objects() if d["kind"] == kind}


def knative_services() -> dict[str, dict]:
    return {n: s for n, s in by_kind("Service").items() if s["apiVersion"].startswith("serving.knative.dev")}


def load_trainer():
    spec = importlib.util.spec_from_file_location("trainer_main_manifests", ROOT / "functions" / "trainer" / "main.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["trainer_main_manifests"] = module
    with mock.patch.dict(os.environ, {"NEUROKUBE_INSECURE": "1"}):  # its auth is read at import
        spec.loader.exec_module(module)
    return module


TRAINER = load_trainer()


def literal_env(container: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def trainer_job() -> dict:
    """The Job the deployed trainer Service would create (its own env, read as it reads it)."""
    [container] = knative_services()["trainer"]["spec"]["template"]["spec"]["containers"]
    settings = TRAINER.settings_from_env({"KUBERNETES_SERVICE_HOST": "10.0.0.1", **literal_env(container)})
    return TRAINER.job_manifest(settings, "2024-03-08", "ev-1")


def pod_specs() -> dict[str, dict]:
    """Every pod template: the Knative Services' and the trainer's Job."""
    specs = {name: svc["spec"]["template"]["spec"] for name, svc in knative_services().items()}
    specs["trainer-job"] = trainer_job()["spec"]["template"]["spec"]
    return specs


# -- least privilege -----------------------------------------------------------------------------

FUNCTION_ACCOUNTS = {"neurokube-binder": "neurokube-binder", "neurokube-sweeper": "neurokube-sweeper",
                     "neurokube-extender": "neurokube-extender", "trainer": "neurokube-trainer-launcher",
                     "neurokube-dead-letter": "neurokube-dead-letter", "neurokube-snapshot": "neurokube-snapshot",
                     "neurokube-actuator": "neurokube-actuator"}
PLACING = {("", "nodes", "get"), ("", "nodes", "list"), ("", "nodes", "watch"), ("", "pods/binding", "create")}
#: (cluster-wide rules, rules in the ledger namespace) per ServiceAccount, as (apiGroup, resource, verb).
NEEDED = {
    "neurokube-binder": (PLACING | {("", "pods", "get"), ("", "pods", "list"), ("", "pods", "watch"),
                          ("", "events", "create")},
                         {("coordination.k8s.io", "leases", v) for v in ("get", "create", "update")}),
    "neurokube-sweeper": (PLACING | {("", "pods", "get"), ("", "pods", "list"), ("", "pods", "watch"),
                          ("", "events", "create")},
                          {("coordination.k8s.io", "leases", v) for v in ("get", "list", "create", "update", "delete")}),
    "neurokube-extender": (PLACING | {("", "pods", "get"), ("", "pods", "list"), ("", "pods", "watch")},
                           {("coordination.k8s.io", "leases", v) for v in ("get", "create", "update")}),
    # fresh lists of pods and nodes each tick (no watch cache), resizes and evictions (live/acting.py)
    "neurokube-actuator": ({("", "pods", "list"), ("", "nodes", "list"), ("", "pods/resize", "patch"),
                            ("", "pods/eviction", "create")}, set()),
    "neurokube-trainer-launcher": (set(), {("batch", "jobs", "create")}),
    "neurokube-trainer": (set(), set()),
    "neurokube-dead-letter": (set(), set()),
    "neurokube-snapshot": (set(), set()),  # reads Prometheus and writes MinIO; its token only checks OIDC callers
    "neurokube-pod-events": ({("", "pods", v) for v in ("get", "list", "watch")}
                             | {("", "events", "create"), ("", "events", "patch")}, set()),
}


def granted(account: str) -> tuple[set, dict[str, set]]:
    """What ``account`` may do: cluster-wide rules, and rules per namespace."""
    roles = {("ClusterRole", n): d for n, d in by_kind("ClusterRole").items()}
    roles.update({("Role", n): d for n, d in by_kind("Role").items()})
    cluster: set = set()
    namespaced: dict[str, set] = {}
    for kind in ("ClusterRoleBinding", "RoleBinding"):
        for binding in by_kind(kind).values():
            if not any(s["kind"] == "ServiceAccount" and s["name"] == account and s["namespace"] == NS
                       for s in binding["subjects"]):
                continue
            role = roles[(binding["roleRef"]["kind"], binding["roleRef"]["name"])]
            rules = {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
                     for v in rule["verbs"]}
            assert not any(rule.get("resourceNames") for rule in role["rules"]), role["metadata"]["name"]
            if kind == "ClusterRoleBinding":
                cluster |= rules
            else:
                namespaced.setdefault(binding["metadata"]["namespace"], set()).update(rules)
    return cluster, namespaced


@pytest.mark.parametrize("account", sorted(NEEDED))
def test_each_account_has_exactly_what_its_code_uses(account):
    cluster, namespaced = granted(account)
    need_cluster, need_ledger = NEEDED[account]
    assert cluster == need_cluster, f"{account}: extra {cluster - need_cluster}, missing {need_cluster - cluster}"
    assert namespaced == ({NS: need_ledger} if need_ledger else {}), account
    assert not any("*" in rule for rule in cluster | set().union(*namespaced.values())), account


def test_every_function_has_its_own_service_account():
    accounts = by_kind("ServiceAccount")
    assert set(accounts) == set(NEEDED)
    used = {name: svc["spec"]["template"]["spec"]["serviceAccountName"] for name, svc in knative_services().items()}
    assert used == FUNCTION_ACCOUNTS
    job = trainer_job()["spec"]["template"]["spec"]
    assert job["serviceAccountName"] == "neurokube-trainer" and job["automountServiceAccountToken"] is False
    everyone = [*used.values(), job["serviceAccountName"], by_kind("ApiServerSource")["neurokube-pods"]["spec"][
        "serviceAccountName"]]
    assert len(everyone) == len(set(everyone)), everyone  # no two workloads share an identity
    for name in ("neurokube-trainer", "neurokube-dead-letter"):  # no API use: no token in the pod
        assert accounts[name]["automountServiceAccountToken"] is False


# -- containers ----------------------------------------------------------------------------------

LOCKED = {"runAsNonRoot": True, "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
          "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}
QUEUE = ("cpu-resource-request", "cpu-resource-limit", "memory-resource-request", "memory-resource-limit")


@pytest.mark.parametrize("workload", sorted(FUNCTION_ACCOUNTS) + ["trainer-job"])
def test_every_container_is_locked_down(workload):
    spec = pod_specs()[workload]
    assert spec["containers"] and "initContainers" not in spec
    for container in spec["containers"]:
        where = f"{workload}/{container['name']}"
        sc = container.get("securityContext") or {}
        assert {k: sc.get(k) for k in LOCKED} == LOCKED, where
        assert not sc.get("privileged") and sc.get("runAsUser", 10001) != 0, where
        resources = container.get("resources") or {}
        for kind in ("requests", "limits"):
            assert set(resources.get(kind, {})) >= {"cpu", "memory"}, f"{where}: {kind} {resources.get(kind)}"
        tmp = [m for m in container.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
        assert len(tmp) == 1 and not tmp[0].get("readOnly"), f"{where}: no writable /tmp"
        [volume] = [v for v in spec["volumes"] if v["name"] == tmp[0]["name"]]
        assert "sizeLimit" in volume["emptyDir"], where
        for mount in container.get("volumeMounts", []):
            if mount["mountPath"] != "/tmp":
                assert mount.get("readOnly") is True, f"{where}: {mount['mountPath']} is writable"
    assert "hostNetwork" not in spec and "hostPID" not in spec, workload


@pytest.mark.parametrize("name", sorted(FUNCTION_ACCOUNTS))
def test_the_queue_proxy_has_requests_and_limits(name):
    annotations = knative_services()[name]["spec"]["template"]["metadata"]["annotations"]
    for key in QUEUE:
        assert f"queue.sidecar.serving.knative.dev/{key}" in annotations, (name, key)


def test_the_image_runs_as_a_numeric_non_root_user():
    dockerfile = (KNATIVE / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)\s*$", dockerfile, re.MULTILINE)
    assert users, "the Dockerfile sets no USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) > 0 and (not gid or (gid.isdigit() and int(gid) > 0)), users[-1]
    assert "COPY pipelines" in dockerfile  # the trainer's Job runs python -m pipelines.nightly from it


# -- secrets and TLS -------------------------------------------------------------------------------

SECRETISH = re.compile(r"(SECRET|PASSWORD|TOKEN|ACCESS_KEY|CREDENTIAL)", re.IGNORECASE)
URL_WITH_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@", re.IGNORECASE)


@pytest.mark.parametrize("workload", sorted(FUNCTION_ACCOUNTS) + ["trainer-job"])
def test_no_secret_in_argv_or_plain_env(workload):
    for container in pod_specs()[workload]["containers"]:
        where = f"{workload}/{container['name']}"
        argv = [*container.get("command", []), *container.get("args", [])]
        assert not any(URL_WITH_PASSWORD.search(a) for a in argv), f"{where}: credentials in argv {argv}"
        assert not any(SECRETISH.search(a) for a in argv), f"{where}: {argv}"
        for env in container.get("env", []):
            if "value" in env:
                assert not URL_WITH_PASSWORD.search(env["value"]), f"{where}: {env['name']} embeds credentials"
            if SECRETISH.search(env["name"]) and env["name"] not in ("NEUROKUBE_TRAINER_SECRET",):
                assert set(env.get("valueFrom", {})) == {"secretKeyRef"}, f"{where}: {env['name']} not from a Secret"
        assert not any("secretRef" in source for source in container.get("envFrom", [])), \
            f"{where}: envFrom a whole Secret"
    assert not any(URL_WITH_PASSWORD.search(v) for v in by_kind("ConfigMap")["neurokube-functions"]["data"].values())


def test_the_trainer_job_gets_its_keys_by_secret_key_ref():
    [container] = trainer_job()["spec"]["template"]["spec"]["containers"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
    for key in ("NEUROKUBE_STORE_ACCESS_KEY", "NEUROKUBE_STORE_SECRET_KEY"):
        assert refs[key] == {"name": "neurokube-trainer-env", "key": key, "optional": False}
    assert container["command"][:3] == ["python", "-m", "pipelines.nightly"]


def test_minio_and_mlflow_over_verified_tls():
    env = literal_env(knative_services()["trainer"]["spec"]["template"]["spec"]["containers"][0])
    assert env["NEUROKUBE_STORE"].startswith("minios://") and env["MLFLOW_TRACKING_URI"].startswith("https://")
    assert env.get("MLFLOW_TRACKING_INSECURE_TLS", "false") == "false"
    job_env = {e["name"]: e.get("value") for e in trainer_job()["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert job_env["MLFLOW_TRACKING_SERVER_CERT_PATH"] == job_env["NEUROKUBE_STORE_CA_BUNDLE"]
    assert "MLFLOW_TRACKING_INSECURE_TLS" not in job_env


# -- events ----------------------------------------------------------------------------------------


def test_sources_and_triggers():
    source = by_kind("ApiServerSource")["neurokube-pods"]["spec"]
    assert source["mode"] == "Resource" and source["resources"] == [{"apiVersion": "v1", "kind": "Pod"}]
    assert "namespaceSelector" in source
    triggers = by_kind("Trigger")
    # creates only: an update Trigger would call the binder for every pod update in the cluster
    assert [t["spec"]["filter"]["attributes"]["type"] for t in triggers.values()] == [handlers.RESOURCE_EVENT + "add"]
    assert {t["spec"]["subscriber"]["ref"]["name"] for t in triggers.values()} == {"neurokube-binder"}
    pings = by_kind("PingSource")
    assert pings["neurokube-sweep"]["spec"]["schedule"] == "* * * * *"
    assert pings["neurokube-sweep"]["spec"]["sink"]["ref"]["name"] == "neurokube-sweeper"
    assert pings["neurokube-nightly-training"]["spec"]["schedule"] == "0 2 * * *"
    assert pings["neurokube-nightly-training"]["spec"]["sink"]["ref"]["name"] == "trainer"
    assert pings["neurokube-snapshot"]["spec"]["schedule"] == "*/15 * * * *"
    assert pings["neurokube-snapshot"]["spec"]["sink"]["ref"]["name"] == "neurokube-snapshot"
    assert pings["neurokube-act"]["spec"]["schedule"] == "* * * * *"
    assert pings["neurokube-act"]["spec"]["sink"]["ref"]["name"] == "neurokube-actuator"


def test_every_trigger_retries_then_dead_letters():
    services = knative_services()
    delivering = {**{f"Trigger/{n}": t for n, t in by_kind("Trigger").items()},
                  **{f"Broker/{n}": b for n, b in by_kind("Broker").items()}}
    assert len(delivering) == 2
    for name, obj in delivering.items():
        delivery = obj["spec"].get("delivery") or {}
        assert delivery.get("retry", 0) >= 3 and delivery.get("backoffPolicy") == "exponential", name
        assert re.fullmatch(r"PT\d+(\.\d+)?S", delivery.get("backoffDelay", "")), name
        sink = (delivery.get("deadLetterSink") or {}).get("ref") or {}
        assert sink.get("kind") == "Service" and sink.get("apiVersion") == "serving.knative.dev/v1", name
        assert sink.get("name") in services and sink["name"] not in ("neurokube-binder", "neurokube-sweeper"), name


# -- network ---------------------------------------------------------------------------------------

DATA_PLANE = {("knative-serving", "app", "activator"), ("kourier-system", "app", "3scale-kourier-gateway")}
AUTOSCALER = {("knative-serving", "app", "autoscaler")}
PROMETHEUS = {("monitoring", "app.kubernetes.io/name", "prometheus")}


def peers(rule: dict) -> set[tuple[str, str, str]]:
    out = set()
    for peer in rule.get("from", []):
        assert set(peer) == {"namespaceSelector", "podSelector"}, f"a peer without both selectors: {peer}"
        [(ns_key, namespace)] = peer["namespaceSelector"]["matchLabels"].items()
        [(key, value)] = peer["podSelector"]["matchLabels"].items()
        assert ns_key == "kubernetes.io/metadata.name"
        out.add((namespace, key, value))
    return out


def selected(policy: dict, service: str) -> bool:
    selector = policy["spec"]["podSelector"]
    if selector.get("matchLabels") == {"serving.knative.dev/service": service}:
        return True
    return any(e["key"] == "serving.knative.dev/service" and e["operator"] == "In" and service in e["values"]
               for e in selector.get("matchExpressions", []))


def test_ingress_is_denied_by_default():
    deny = by_kind("NetworkPolicy")["neurokube-default-deny-ingress"]["spec"]
    assert deny["podSelector"] == {} and deny["policyTypes"] == ["Ingress"] and not deny.get("ingress")


@pytest.mark.parametrize("service", sorted(FUNCTION_ACCOUNTS))
def test_each_service_admits_only_the_knative_data_plane(service):
    policies = [p for p in by_kind("NetworkPolicy").values() if selected(p, service)]
    assert len(policies) == 1, (service, [p["metadata"]["name"] for p in policies])
    admitted: dict[tuple, set[int]] = {}
    for rule in policies[0]["spec"]["ingress"]:
        assert rule.get("from") and rule.get("ports"), f"{service}: a rule admitting any source or any port"
        for peer in peers(rule):
            admitted.setdefault(peer, set()).update(p["port"] for p in rule["ports"])
    expected = {**{peer: {8012, 8013, 8112} for peer in DATA_PLANE}, **{peer: {9090} for peer in AUTOSCALER}}
    if service in ("neurokube-binder", "neurokube-sweeper", "neurokube-extender", "neurokube-snapshot",
                   "neurokube-actuator"):
        expected.update({peer: {8080, 9091} for peer in PROMETHEUS})  # the functions' /metrics
    assert admitted == expected, service


def test_the_policy_file_says_why():
    text = (KNATIVE / "networkpolicy.yaml").read_text()
    for fact in ("activator", "queue-proxy", "knative-eventing", "kube-system", "host network", "OIDC"):
        assert fact in text, fact


# -- services and settings -------------------------------------------------------------------------

SCHEDULING = {"neurokube-binder", "neurokube-extender", "neurokube-sweeper"}


def test_services():
    services = knative_services()
    assert set(services) == SCHEDULING | {"trainer", "neurokube-dead-letter", "neurokube-snapshot", "neurokube-actuator"}
    for name, svc in services.items():
        assert svc["metadata"]["labels"]["networking.knative.dev/visibility"] == "cluster-local", name
        spec = svc["spec"]["template"]["spec"]
        [container] = spec["containers"]
        assert "tcpSocket" in container["readinessProbe"], name
        assert all(p["containerPort"] == 8080 for p in container["ports"])  # Knative's port inside the pod
        if name not in SCHEDULING | {"neurokube-actuator"}:
            continue
        assert int(svc["spec"]["template"]["metadata"]["annotations"]["autoscaling.knative.dev/min-scale"]) >= 1
        env = literal_env(container)
        assert spec["containerConcurrency"] == int(env["THREADS"]) * int(env["WORKERS"]), name
        assert env["FUNCTION_SIGNATURE_TYPE"] == "http" and env["FUNCTION_SOURCE"].endswith("/main.py")


def test_trainer_only_launches_jobs():
    svc = knative_services()["trainer"]
    spec = svc["spec"]["template"]["spec"]
    env = literal_env(spec["containers"][0])
    assert env["FUNCTION_TARGET"] == "on_ping" and env["NEUROKUBE_TRAINER_MODE"] == "cluster"
    assert spec["serviceAccountName"] == "neurokube-trainer-launcher" and spec["containerConcurrency"] == 1
    assert not any("valueFrom" in e for e in spec["containers"][0]["env"])  # the launcher holds no secret
    assert by_kind("PingSource")["neurokube-nightly-training"]["spec"]["sink"]["ref"]["name"] == "trainer"


def oidc_identity(obj: dict) -> str:
    """The service account Knative Eventing creates for a Trigger's or a source's OIDC tokens
    (knative.dev/eventing/pkg/auth.GetOIDCServiceAccountNameForResource)."""
    group = obj["apiVersion"].split("/")[0]
    return SA + f"{obj['metadata']['name']}-oidc-{group}-{obj['kind']}".lower()


def mounted_file(name: str, path: str) -> str:
    """The content of ``path`` in function ``name``'s container, from the ConfigMap volume mounted there."""
    spec = knative_services()[name]["spec"]["template"]["spec"]
    [container] = spec["containers"]
    [mount] = [m for m in container.get("volumeMounts", []) if path.startswith(m["mountPath"].rstrip("/") + "/")]
    [volume] = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    return by_kind("ConfigMap")[volume["configMap"]["name"]]["data"][path.removeprefix(mount["mountPath"]).strip("/")]


@functools.cache
def _local_copy(name: str, path: str) -> str:
    directory = Path(tempfile.mkdtemp(prefix="neurokube-manifests-"))
    atexit.register(shutil.rmtree, directory, True)
    local = directory / Path(path).name
    local.write_text(mounted_file(name, path))
    return str(local)


def function_env(name: str) -> dict[str, str]:
    """The function's environment; a mounted profile file is read from its ConfigMap (a local copy)."""
    [container] = knative_services()[name]["spec"]["template"]["spec"]["containers"]
    env = {**by_kind("ConfigMap")["neurokube-functions"]["data"], **literal_env(container)}
    if "NEUROKUBE_PROFILE" in env:
        env["NEUROKUBE_PROFILE"] = _local_copy(name, env["NEUROKUBE_PROFILE"])
    return env


@pytest.mark.parametrize("name, function", [("neurokube-binder", "binder"), ("neurokube-sweeper", "sweeper"),
                                            ("neurokube-extender", "extender"), ("neurokube-actuator", "actuator")])
def test_each_function_starts_with_its_settings(name, function):
    settings = from_env(function_env(name))  # raises InputError naming the variable otherwise
    assert settings.scheduler_name == "neurokube" and settings.ledger_namespace == "neurokube"
    assert settings.auth_problem(function) is None


@pytest.mark.parametrize("name", ["neurokube-binder", "neurokube-sweeper", "neurokube-extender"])
def test_each_function_reads_the_deployed_profile(name):
    """NEUROKUBE_PROFILE points into a mounted ConfigMap, whose file has a valid profile for the
    function's scheduler name (the learned policy, as without a profile)."""
    from neurokube.live.profile import profile_for

    settings = from_env(function_env(name))
    assert settings.profile is not None
    profile = profile_for(settings.profile, settings.scheduler_name)
    assert profile.policy.text == "neurokube"


def test_binder_and_sweeper_accept_exactly_their_senders():
    """The senders' OIDC identities are the accepted subjects, and they request tokens for the
    audience the function accepts (Knative Serving publishes none: without ``audience`` on the
    subscriber / sink, Eventing would send no token at all)."""
    binder, sweeper = from_env(function_env("neurokube-binder")), from_env(function_env("neurokube-sweeper"))
    triggers, ping = by_kind("Trigger").values(), by_kind("PingSource")["neurokube-sweep"]
    assert binder.oidc_audience == "serving.knative.dev/service/neurokube/neurokube-binder" and not binder.insecure
    assert set(binder.oidc_subject_list) == {oidc_identity(t) for t in triggers}
    assert {t["spec"]["subscriber"].get("audience") for t in triggers} == {binder.oidc_audience}
    assert sweeper.oidc_audience == "serving.knative.dev/service/neurokube/neurokube-sweeper" and not sweeper.insecure
    assert sweeper.oidc_subject_list == (oidc_identity(ping),)
    assert ping["spec"]["sink"].get("audience") == sweeper.oidc_audience


def test_the_actuator_is_a_dry_run_that_accepts_exactly_its_ping():
    """As deployed the actuator only asks (dry run), leaves the system and its own namespaces alone,
    and accepts the OIDC tokens of its PingSource only."""
    settings = from_env(function_env("neurokube-actuator"))
    ping = by_kind("PingSource")["neurokube-act"]
    assert settings.actuator_dry_run is True and settings.prometheus_url
    assert {"kube-system", "neurokube"} <= set(settings.actuator_skip_namespaces.split(","))
    assert settings.oidc_audience == "serving.knative.dev/service/neurokube/neurokube-actuator" and not settings.insecure
    assert settings.oidc_subject_list == (oidc_identity(ping),)
    assert ping["spec"]["sink"].get("audience") == settings.oidc_audience


def test_the_trainer_accepts_exactly_the_nightly_ping():
    [container] = knative_services()["trainer"]["spec"]["template"]["spec"]["containers"]
    trainer = from_env(literal_env(container))
    ping = by_kind("PingSource")["neurokube-nightly-training"]
    assert trainer.auth_problem("trainer") is None and not trainer.insecure
    assert trainer.oidc_audience == "serving.knative.dev/service/neurokube/trainer"
    assert ping["spec"]["sink"].get("audience") == trainer.oidc_audience
    assert trainer.oidc_subject_list == (oidc_identity(ping),)


def test_the_snapshot_function_starts_and_accepts_exactly_its_ping():
    """Its environment (the Secret's keys stand in) passes both settings validations, one replica
    writes at a time, and the PingSource's OIDC identity is the one subject it accepts."""
    from pipelines.settings import snapshot_function_settings

    svc = knative_services()["neurokube-snapshot"]
    spec = svc["spec"]["template"]["spec"]
    [container] = spec["containers"]
    env = {**literal_env(container), "NEUROKUBE_STORE_ACCESS_KEY": "k", "NEUROKUBE_STORE_SECRET_KEY": "s"}
    settings, snapshot = from_env(env), snapshot_function_settings(env)
    assert settings.prometheus_url and snapshot.store.startswith("minios://") and snapshot.hours >= 1
    assert str(snapshot.snapshot.spool_dir).startswith("/tmp/")  # the writable emptyDir
    assert env["FUNCTION_TARGET"] == "snapshot" and env["FUNCTION_SIGNATURE_TYPE"] == "http"
    assert spec["containerConcurrency"] == int(env["THREADS"]) * int(env["WORKERS"]) == 1
    annotations = svc["spec"]["template"]["metadata"]["annotations"]
    assert annotations["autoscaling.knative.dev/min-scale"] == annotations["autoscaling.knative.dev/max-scale"] == "1"
    ping = by_kind("PingSource")["neurokube-snapshot"]
    assert settings.auth_problem("snapshot") is None and not settings.insecure
    assert settings.oidc_audience == "serving.knative.dev/service/neurokube/neurokube-snapshot"
    assert ping["spec"]["sink"].get("audience") == settings.oidc_audience
    assert settings.oidc_subject_list == (oidc_identity(ping),)


def test_config_map_holds_no_credentials():
    data = by_kind("ConfigMap")["neurokube-functions"]["data"]
    assert not any("SECRET" in v or "minio://" in v or "minios://" in v for v in data.values())


def test_every_namespaced_object_is_in_the_neurokube_namespace():
    cluster_scoped = {"Namespace", "ClusterRole", "ClusterRoleBinding"}
    for doc in objects():
        if doc["kind"] not in cluster_scoped:
            assert doc["metadata"].get("namespace") == "neurokube", doc["metadata"]["name"]


# -- kustomize -------------------------------------------------------------------------------------


def test_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((KNATIVE / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == [p.name for p in manifest_files()]


def test_the_production_overlay_pins_the_image_by_digest():
    overlay = yaml.safe_load(OVERLAY.read_text())
    assert overlay["resources"] == ["../../knative"]
    images = {c["image"].split("@")[0].rsplit(":", 1)[0] for spec in pod_specs().values() for c in spec["containers"]}
    assert images == {"registry.example.com/neurokube/functions"}
    [pin] = overlay["images"]
    assert pin["name"] in images and re.fullmatch(r"sha256:[0-9a-f]{64}", pin["digest"]) and "newTag" not in pin
    [replacement] = overlay["replacements"]  # the trainer's Job image follows the pinned one
    [target] = replacement["targets"]
    assert target["fieldPaths"] == ["spec.template.spec.containers.[name=trainer].env.[name=NEUROKUBE_TRAINER_IMAGE].value"]


def test_the_local_adapter_requests_tokens_for_the_binders_audience():
    """cluster/adapter.py repeats the binder's audience (the cluster layer does not import the
    functions' wiring); the copy must stay equal to the one the local binder accepts and to the
    deployed one."""
    from neurokube.cluster import adapter
    from neurokube.cluster import functions as local_functions

    deployed = from_env(function_env("neurokube-binder")).oidc_audience
    assert adapter.BINDER_AUDIENCE == local_functions.AUDIENCES["binder"] == deployed


@pytest.mark.parametrize("name", ["neurokube-binder", "neurokube-sweeper", "neurokube-extender"])
def test_the_compiled_models_are_written_to_a_writable_volume(name):
    """The root filesystem is read-only: the compiled-model cache must sit on a mounted volume."""
    settings = from_env(function_env(name))
    assert settings.compiled_model_dir is not None
    [container] = knative_services()[name]["spec"]["template"]["spec"]["containers"]
    writable = [m["mountPath"].rstrip("/") + "/" for m in container.get("volumeMounts", []) if not m.get("readOnly")]
    assert any(str(settings.compiled_model_dir).startswith(path) for path in writable), writable


def test_the_local_functions_compile_their_model_as_deployed(tmp_path, monkeypatch):
    from neurokube.cluster import functions as local_functions

    monkeypatch.setenv("NEUROKUBE_CACHE_DIR", str(tmp_path / "cache"))
    options = local_functions.FunctionsOptions(model_dir=tmp_path)
    env = local_functions.function_env(tmp_path / "kubeconfig", options, "r")
    assert from_env(env).compiled_model_dir == tmp_path / "cache" / "compiled-models"
    mine = local_functions.FunctionsOptions(model_dir=tmp_path, env={"NEUROKUBE_COMPILED_MODEL_DIR": "/elsewhere"})
    assert local_functions.function_env(tmp_path, mine, "r")["NEUROKUBE_COMPILED_MODEL_DIR"] == "/elsewhere"
    assert "NEUROKUBE_COMPILED_MODEL_DIR" not in local_functions.function_env(
        tmp_path, local_functions.FunctionsOptions(), "r")  # no model, nothing to compile
