"""Least privilege per function, on the real apiserver of the session cluster.

deploy/knative/rbac.yaml (and namespace.yaml) are applied for real; then, for each ServiceAccount,
authenticated with its own token (TokenRequest API, a kubeconfig of its own):

* ``kubectl auth whoami`` is that ServiceAccount;
* ``kubectl auth can-i --list`` in the ledger namespace, ``default``, ``kube-system`` and
  ``kube-node-lease`` shows exactly the rules the function's code needs (neurokube/live/,
  functions/), nothing more: besides them only the self-reviews every authenticated user has and
  non-resource URLs (discovery, health, and the service-account issuer's
  ``/.well-known/openid-configuration`` and ``/openid/v1/jwks``, which the binder and sweeper read
  to verify OIDC tokens and which the default ``system:service-account-issuer-discovery`` binding
  grants every ServiceAccount);
* a yes/no matrix over 8 verbs x 22 namespaced resources x 5 namespaces (the ledger namespace,
  ``default``, ``kube-system``, ``kube-node-lease``, all namespaces), cluster-scoped resources and
  the escalation verbs answers yes exactly where the needed rules say so. The matrix asks the
  apiserver's SelfSubjectAccessReview API directly with the account's token (what ``kubectl auth
  can-i`` sends; about 950 questions per account, too many for a kubectl process each), and
  ``kubectl auth can-i`` itself answers every allowed cell and a sample of the denied ones, so
  the two agree;
* the trainer's launcher, with nothing but ``jobs create``, starts the night's Job (suspended, so
  no pod runs), and a second event the same night meets the apiserver's 409 for the same name and
  is answered ``exists``: one Job, the first event's; it cannot even read the Job back.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import yaml

from neurokube.adapters.kube import KubeClient, KubeError
from neurokube.cluster import certs, functions
from neurokube.cluster.build import Binaries
from neurokube.cluster.session import RunningCluster
from neurokube.live.binding import DECISION_ANNOTATION
from neurokube.live.decisions import LiveDecision
from neurokube.live.runtime import bound_as_recorded
from neurokube.policies.base import PodSpec

pytestmark = pytest.mark.e2e

NS = "neurokube"  # the namespace of the functions and of the ledger's Leases
LEASES = "leases.coordination.k8s.io"
PLACING = {"nodes": {"get", "list", "watch"}, "pods/binding": {"create"}}
#: account -> (cluster-wide rules, rules in the ledger namespace), as resource -> verbs, as the code
#: uses them (deploy/knative/rbac.yaml says which call needs which rule).
NEEDED: dict[str, tuple[dict[str, set[str]], dict[str, set[str]]]] = {
    "neurokube-binder": ({**PLACING, "pods": {"get", "list", "watch"}, "events": {"create"}},
                         {LEASES: {"get", "create", "update"}}),
    "neurokube-sweeper": ({**PLACING, "pods": {"get", "list", "watch"}, "events": {"create"}},
                          {LEASES: {"get", "list", "create", "update", "delete"}}),
    "neurokube-extender": ({**PLACING, "pods": {"get", "list", "watch"}},
                           {LEASES: {"get", "create", "update"}}),
    "neurokube-actuator": ({"pods": {"list"}, "nodes": {"list"}, "pods/resize": {"patch"}, "pods/eviction": {"create"}},
                           {}),
    "neurokube-trainer-launcher": ({}, {"jobs.batch": {"create"}}),
    "neurokube-trainer": ({}, {}),
    "neurokube-dead-letter": ({}, {}),
    "neurokube-snapshot": ({}, {}),  # reads Prometheus, writes MinIO; the token only verifies OIDC callers
    "neurokube-pod-events": ({"pods": {"get", "list", "watch"}, "events": {"create", "patch"}}, {}),
}
SELF_REVIEWS = {"selfsubjectaccessreviews.authorization.k8s.io", "selfsubjectrulesreviews.authorization.k8s.io",
                "selfsubjectreviews.authentication.k8s.io"}
VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")
NAMESPACED = ("pods", "pods/binding", "pods/status", "pods/eviction", "pods/resize", "pods/exec", "pods/log",
              "pods/attach", "poddisruptionbudgets.policy",
              "events", "events.events.k8s.io", LEASES, "secrets", "configmaps", "serviceaccounts",
              "serviceaccounts/token", "jobs.batch", "cronjobs.batch", "deployments.apps", "services",
              "networkpolicies.networking.k8s.io", "rolebindings.rbac.authorization.k8s.io")
CLUSTER_SCOPED = ("nodes", "nodes/status", "namespaces", "persistentvolumes",
                  "clusterroles.rbac.authorization.k8s.io", "clusterrolebindings.rbac.authorization.k8s.io",
                  "customresourcedefinitions.apiextensions.k8s.io")
NAMESPACES = (NS, "default", "kube-system", "kube-node-lease", "")  # "": all namespaces
SPECIAL = [("impersonate", "users", ""), ("impersonate", "groups", ""), ("impersonate", "serviceaccounts", NS),
           ("escalate", "clusterroles.rbac.authorization.k8s.io", ""),
           ("bind", "clusterroles.rbac.authorization.k8s.io", ""), ("escalate", "roles.rbac.authorization.k8s.io", NS),
           ("bind", "roles.rbac.authorization.k8s.io", NS), ("*", "*", ""), ("*", "pods", "default"),
           ("*", LEASES, NS), ("get", "*", NS), ("create", "*", "")]
CLUSTER_SCOPED_NAMES = {r.split(".")[0].split("/")[0] for r in CLUSTER_SCOPED}


def allowed(account: str, verb: str, resource: str, namespace: str) -> bool:
    """What the needed rules say: a cluster-wide rule anywhere, a ledger rule in the ledger namespace."""
    cluster, ledger = NEEDED[account]
    if verb in cluster.get(resource, set()):
        return True
    return namespace == NS and verb in ledger.get(resource, set())


def matrix() -> list[tuple[str, str, str]]:
    cells = [(v, r, ns) for r in NAMESPACED for v in VERBS for ns in NAMESPACES]
    cells += [(v, r, "") for r in CLUSTER_SCOPED for v in VERBS]
    return cells + SPECIAL


def attributes(verb: str, resource: str, namespace: str) -> dict[str, str]:
    """``leases.coordination.k8s.io`` / ``pods/binding`` as SelfSubjectAccessReview fields."""
    name, _, subresource = resource.partition("/")
    plural, _, group = name.partition(".")
    out = {"verb": verb, "resource": plural, "group": group, "namespace": namespace}
    if subresource:
        out["subresource"] = subresource
    return out


class Account:
    """One ServiceAccount, logged in with its own token."""

    def __init__(self, cluster: RunningCluster, name: str, directory: Path) -> None:
        self.name = name
        self.cluster = cluster
        reply = cluster.client.create(f"/api/v1/namespaces/{NS}/serviceaccounts/{name}/token",
                                      {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                                       "spec": {"expirationSeconds": 3600}})
        ca = str(certs.Pki(cluster.state_dir / "pki").ca_cert)
        doc = {"apiVersion": "v1", "kind": "Config", "current-context": name,
               "clusters": [{"name": "local", "cluster": {"server": cluster.record.apiserver,
                                                           "certificate-authority": ca}}],
               "users": [{"name": name, "user": {"token": reply["status"]["token"]}}],
               "contexts": [{"name": name, "context": {"cluster": "local", "user": name}}]}
        self.kubeconfig = directory / f"{name}.kubeconfig"
        fd = os.open(self.kubeconfig, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(yaml.safe_dump(doc))
        self._token = reply["status"]["token"]
        self._ssl = ssl.create_default_context(cafile=ca)

    def request(self, method: str, path: str, body: dict | None = None) -> dict:
        """One request with this account's token (a connection of its own, closed after);
        an error status raises :class:`KubeError`."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.cluster.record.apiserver + path, data=data, method=method,
                                         headers={"Authorization": f"Bearer {self._token}",
                                                  "Content-Type": "application/json", "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, context=self._ssl, timeout=30) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            with exc:
                status = json.loads(exc.read() or b"{}")
            raise KubeError(exc.code, status.get("reason", ""), status.get("message", ""), method, path) from None

    def kubectl(self, *args: str) -> subprocess.CompletedProcess:
        binary = Binaries(Path(self.cluster.record.bin_dir)).path("kubectl")
        return subprocess.run([str(binary), *args], env={**os.environ, "KUBECONFIG": str(self.kubeconfig)},
                              capture_output=True, text=True, timeout=60, check=False)

    def review(self, verb: str, resource: str, namespace: str) -> bool:
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": attributes(verb, resource, namespace)}}
        reply = self.request("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", body)
        return bool(reply["status"].get("allowed"))

    def can_i(self, verb: str, resource: str, namespace: str) -> str:
        name, _, subresource = resource.partition("/")  # kubectl reads "pods/x" as the pod named x
        args = ["auth", "can-i", verb, name, *([f"--subresource={subresource}"] if subresource else []),
                *(["-n", namespace] if namespace else ["--all-namespaces"])]
        result = self.kubectl(*args)
        answer = result.stdout.strip()
        assert answer in ("yes", "no"), (self.name, args, result.stdout, result.stderr)
        return answer

    def rules(self, namespace: str) -> dict[str, set[str]]:
        """``kubectl auth can-i --list -n namespace``: resource -> verbs (non-resource URLs left out)."""
        result = self.kubectl("auth", "can-i", "--list", "-n", namespace)
        assert result.returncode == 0, (self.name, result.stderr)
        lines = result.stdout.splitlines()
        assert lines and lines[0].split()[0] == "Resources", result.stdout
        rules: dict[str, set[str]] = {}
        for line in lines[1:]:
            parts = line.split()
            if not parts or parts[0].startswith("["):  # a non-resource URL row
                continue
            verbs = line[line.rindex("[") + 1: line.rindex("]")].split()
            rules.setdefault(parts[0], set()).update(verbs)
        return rules


@pytest.fixture(scope="module")
def accounts(cluster: RunningCluster, tmp_path_factory) -> dict[str, Account]:
    applied = functions.apply_manifests(cluster.client)  # namespace.yaml and rbac.yaml, for real
    assert {f"ServiceAccount/{name}" for name in NEEDED} <= set(applied), applied
    directory = tmp_path_factory.mktemp("rbac-kubeconfigs")
    return {name: Account(cluster, name, directory) for name in NEEDED}


@pytest.mark.parametrize("account", sorted(NEEDED))
def test_whoami(accounts, account):
    result = accounts[account].kubectl("auth", "whoami", "-o", "json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)["status"]["userInfo"]
    assert info["username"] == f"system:serviceaccount:{NS}:{account}"
    assert f"system:serviceaccounts:{NS}" in info["groups"]


@pytest.mark.parametrize("namespace", [NS, "default", "kube-system", "kube-node-lease"])
@pytest.mark.parametrize("account", sorted(NEEDED))
def test_can_i_list_is_exactly_what_the_code_needs(accounts, account, namespace):
    rules = accounts[account].rules(namespace)
    cluster, ledger = NEEDED[account]
    expected = {resource: set(verbs) for resource, verbs in cluster.items()}
    if namespace == NS:
        for resource, verbs in ledger.items():
            expected.setdefault(resource, set()).update(verbs)
    assert set(rules) >= SELF_REVIEWS  # sanity: the listing parsed
    assert {k: v for k, v in rules.items() if k not in SELF_REVIEWS} == expected


@pytest.mark.parametrize("account", sorted(NEEDED))
def test_access_review_matrix(accounts, account):
    """Every cell of the matrix answers as the needed rules say (SelfSubjectAccessReview)."""
    user = accounts[account]
    cells = matrix()
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda c: user.review(*c), cells))
    wrong = [f"{verb} {resource} in {ns or 'all namespaces'}: {'yes' if got else 'no'}"
             for (verb, resource, ns), got in zip(cells, answers, strict=True) if got != allowed(account, verb, resource, ns)]
    assert wrong == [], f"{account}: {len(wrong)} wrong answers"
    assert len(cells) > 850 and any(answers) == bool(NEEDED[account][0] or NEEDED[account][1])


def kubectl_cells(account: str) -> list[tuple[str, str, str, bool]]:
    """Every allowed cell (in the namespaces where it applies and one where it must not), and a
    fixed sample of denied ones, for ``kubectl auth can-i``."""
    cluster, ledger = NEEDED[account]
    cells = []
    for resource, verbs in cluster.items():
        for verb in sorted(verbs):
            scopes = [""] if resource.split("/")[0] in CLUSTER_SCOPED_NAMES else ["", "default", "kube-system"]
            cells += [(verb, resource, ns, True) for ns in scopes]
    for resource, verbs in ledger.items():
        for verb in sorted(verbs):
            cells += [(verb, resource, NS, True), (verb, resource, "default", False),
                      (verb, resource, "kube-node-lease", False), (verb, resource, "", False)]
    cells += [(verb, resource, ns, allowed(account, verb, resource, ns)) for verb, resource, ns in DENIED_SAMPLE]
    return cells


#: cells denied to most accounts, asked of every one (the actuator may create pods/eviction)
DENIED_SAMPLE = [("create", "pods", "default"), ("delete", "pods", "default"), ("patch", "pods/status", "default"),
                 ("create", "pods/eviction", "default"), ("create", "pods/exec", "default"), ("get", "secrets", NS),
                 ("list", "secrets", ""), ("get", "configmaps", NS), ("patch", "nodes", ""), ("delete", "nodes", ""),
                 ("update", LEASES, "kube-node-lease"), ("watch", LEASES, NS), ("create", "jobs.batch", "default"),
                 ("create", "serviceaccounts/token", NS), ("create", "rolebindings.rbac.authorization.k8s.io", NS),
                 ("impersonate", "serviceaccounts", NS), ("escalate", "clusterroles.rbac.authorization.k8s.io", ""),
              ("*", "*", "")]


@pytest.mark.parametrize("account", sorted(NEEDED))
def test_kubectl_can_i_agrees(accounts, account):
    user = accounts[account]
    cells = kubectl_cells(account)
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda c: user.can_i(*c[:3]), cells))
    wrong = [f"{verb} {resource} in {ns or 'all namespaces'}: {answer}"
             for (verb, resource, ns, expected), answer in zip(cells, answers, strict=True)
             if answer != ("yes" if expected else "no")]
    assert wrong == [], account
    asked = cells[:len(cells) - len(DENIED_SAMPLE)]  # the needed rules' cells (the sample comes last)
    assert sum(expected for *_, expected in asked) == sum(
        len(v) * (1 if r.split("/")[0] in CLUSTER_SCOPED_NAMES else 3) for r, v in NEEDED[account][0].items()
    ) + sum(len(v) for v in NEEDED[account][1].values())  # every needed rule was asked


def test_the_expected_rules_are_the_manifest_rules():
    """The matrix's expectations are rbac.yaml's rules (read statically), so the two cannot drift
    apart unnoticed: a rule added to rbac.yaml must be added here, with the code that needs it."""
    docs = [d for d in yaml.safe_load_all((functions.knative_dir() / "rbac.yaml").read_text()) if d]
    roles = {(d["kind"], d["metadata"]["name"]): d for d in docs if d["kind"] in ("ClusterRole", "Role")}
    for account, (cluster, ledger) in NEEDED.items():
        found: tuple[dict, dict] = ({}, {})
        for binding in (d for d in docs if d["kind"] in ("ClusterRoleBinding", "RoleBinding")):
            if not any(s["name"] == account for s in binding["subjects"]):
                continue
            target = found[0] if binding["kind"] == "ClusterRoleBinding" else found[1]
            assert binding["kind"] == "ClusterRoleBinding" or binding["metadata"]["namespace"] == NS
            for rule in roles[(binding["roleRef"]["kind"], binding["roleRef"]["name"])]["rules"]:
                for group in rule["apiGroups"]:
                    for resource in rule["resources"]:
                        name = resource if not group else f"{resource}.{group}"
                        target.setdefault(name, set()).update(rule["verbs"])
        assert found == (cluster, ledger), account


def load_trainer():
    source = functions.repo_root() / "functions" / "trainer" / "main.py"
    spec = importlib.util.spec_from_file_location("trainer_main_rbac", source)
    module = importlib.util.module_from_spec(spec)
    sys.modules["trainer_main_rbac"] = module
    with mock.patch.dict(os.environ, {"NEUROKUBE_INSECURE": "1"}):  # its auth is read at import
        spec.loader.exec_module(module)
    return module


class AsAccount:
    """The trainer's JobApi (``create``) over an account's own token."""

    def __init__(self, account: Account) -> None:
        self.account = account

    def create(self, path: str, body: dict):
        return self.account.request("POST", path, body)


def test_the_launcher_creates_one_job_per_night(accounts, cluster):
    trainer = load_trainer()
    service = next(d for d in yaml.safe_load_all((functions.knative_dir() / "trainer.yaml").read_text())
                   if d and d["kind"] == "Service")
    [container] = service["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    settings = trainer.settings_from_env({"KUBERNETES_SERVICE_HOST": "10.0.0.1", **env})  # as deployed
    day = "1999-12-31"
    first, second = (trainer.job_manifest(settings, day, event_id) for event_id in ("ev-1", "ev-2"))
    for manifest in (first, second):
        manifest["spec"]["suspend"] = True  # no pod: this is about the Job object and who may create it
    launcher = AsAccount(accounts["neurokube-trainer-launcher"])
    name = trainer.job_name(day)
    path = f"/apis/batch/v1/namespaces/{NS}/jobs"
    try:
        assert trainer.create_job(launcher, first) == "created"
        assert trainer.create_job(launcher, second) == "exists"
        jobs = cluster.client.get(path, labelSelector=f"neurokube.io/day={day}")["items"]
        assert [j["metadata"]["name"] for j in jobs] == [name]
        assert jobs[0]["metadata"]["annotations"]["neurokube.io/ping-event-id"] == "ev-1"
        with pytest.raises(KubeError) as refused:
            launcher.account.request("GET", f"{path}/{name}")
        assert refused.value.status == 403
    finally:
        try:
            cluster.client.delete(f"{path}/{name}", {"propagationPolicy": "Background"})
        except KubeError:
            pass


@pytest.mark.parametrize("account", ["neurokube-binder", "neurokube-sweeper"])
def test_each_placing_account_can_ask_a_pod_which_decision_placed_it(accounts, cluster, account):
    """The decision log's resolver (live/runtime.py ``bound_as_recorded``) reads the pod with the
    function's own identity. When the sweep and the binder both bound a pod to the same node, the
    loser's record is settled only by that read; a 403 there held the sweeper's record, and every
    later one, on its spool (the live loop's night found 222 of 224 records)."""
    name = f"resolve-{account.removeprefix('neurokube-')}"
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
           "spec": {"schedulerName": "nobody-schedules-this", "containers": [{"name": "c", "image": "x"}]}}
    created = cluster.client.create("/api/v1/namespaces/default/pods", pod)
    uid = created["metadata"]["uid"]
    try:
        cluster.client.create(f"/api/v1/namespaces/default/pods/{name}/binding", {
            "apiVersion": "v1", "kind": "Binding",
            "metadata": {"name": name, "namespace": "default", "uid": uid,
                         "annotations": {DECISION_ANNOTATION: "live:binder:the-winner"}},
            "target": {"apiVersion": "v1", "kind": "Node", "name": "node-resolve"}})
        kube = KubeClient.from_kubeconfig(accounts[account].kubeconfig)
        refused: list[int] = []
        record = LiveDecision("live:binder:the-winner", 0.0, f"default/{name}", uid, "default/w",
                              PodSpec(100, 128), "default", "none", "no_model", ("node-resolve",), 0,
                              np.ones(1), np.zeros((1, 1)))
        assert bound_as_recorded(kube, record, refused=lambda exc: refused.append(exc.status)) is True
        loser = dataclasses.replace(record, decision_id="live:sweeper:the-loser")
        assert bound_as_recorded(kube, loser, refused=lambda exc: refused.append(exc.status)) is False
        assert refused == []
    finally:
        cluster.client.delete(f"/api/v1/namespaces/default/pods/{name}", {"gracePeriodSeconds": 0})
