"""deploy/knative against the real local apiserver: every manifest passes server-side validation
(``kubectl apply --dry-run=server``, Knative CRDs installed, strict field validation), and the
functions' ServiceAccount can do what placing pods needs and nothing more (``kubectl auth can-i``)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from neurokube.cluster import control, functions
from neurokube.cluster.build import Binaries
from neurokube.cluster.testing import RunningCluster

pytestmark = pytest.mark.e2e

KNATIVE = Path(__file__).resolve().parents[2] / "deploy" / "knative"
SA = f"system:serviceaccount:{functions.NAMESPACE}:{functions.SERVICE_ACCOUNT}"


def kubectl(cluster: RunningCluster, *args: str) -> subprocess.CompletedProcess:
    binary = Binaries(Path(cluster.record.bin_dir)).path("kubectl")
    return subprocess.run([str(binary), *args], env={**os.environ, "KUBECONFIG": cluster.kubeconfig},
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def installed(cluster: RunningCluster) -> RunningCluster:
    control.install_crds(cluster.state_dir)
    functions.apply_manifests(cluster.client)  # namespace.yaml and rbac.yaml, for real
    return cluster


def test_every_manifest_validates_server_side(installed):
    result = kubectl(installed, "apply", "--dry-run=server", "--validate=strict", "-f", str(KNATIVE))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for expected in ("service.serving.knative.dev/neurokube-binder",
                     "service.serving.knative.dev/neurokube-extender",
                     "service.serving.knative.dev/neurokube-sweeper",
                     "apiserversource.sources.knative.dev/neurokube-pods",
                     "broker.eventing.knative.dev/neurokube", "trigger.eventing.knative.dev/neurokube-binder-add",
                     "trigger.eventing.knative.dev/neurokube-binder-update",
                     "pingsource.sources.knative.dev/neurokube-sweep",
                     "pingsource.sources.knative.dev/neurokube-nightly-training",
                     "configmap/neurokube-functions", "clusterrole.rbac.authorization.k8s.io/neurokube-scheduler",
                     "service.serving.knative.dev/trainer", "role.rbac.authorization.k8s.io/neurokube-trainer-launcher"):
        assert any(line.startswith(expected) for line in lines), (expected, lines)
    assert all("(server dry run)" in line for line in lines)


def test_a_broken_manifest_is_refused(installed, tmp_path):
    broken = (KNATIVE / "services.yaml").read_text().replace("containerConcurrency: 8", "containerConcurency: 8", 1)
    (tmp_path / "broken.yaml").write_text(broken)
    result = kubectl(installed, "apply", "--dry-run=server", "--validate=strict", "-f", str(tmp_path / "broken.yaml"))
    assert result.returncode != 0 and "containerConcurency" in result.stderr


@pytest.mark.parametrize("verb, resource, namespace, allowed", [
    ("create", "pods/binding", "default", True),
    ("create", "pods/binding", "kube-system", True),
    ("get", "pods", "default", True),
    ("list", "pods", "", True),
    ("watch", "pods", "", True),
    ("list", "nodes", "", True),
    ("watch", "nodes", "", True),
    ("create", "events", "default", True),
    ("update", "leases.coordination.k8s.io", "neurokube", True),
    ("create", "leases.coordination.k8s.io", "neurokube", True),
    ("delete", "pods", "default", False),
    ("create", "pods", "default", False),
    ("update", "pods", "default", False),
    ("patch", "pods/status", "default", False),
    ("get", "secrets", "default", False),
    ("list", "secrets", "neurokube", False),
    ("get", "configmaps", "neurokube", False),
    ("patch", "nodes", "", False),
    ("delete", "nodes", "", False),
    ("update", "leases.coordination.k8s.io", "kube-node-lease", False),
    ("update", "leases.coordination.k8s.io", "kube-system", False),
    ("create", "clusterrolebindings", "", False),
])
def test_service_account_has_least_privilege(installed, verb, resource, namespace, allowed):
    scope = ["-n", namespace] if namespace else ["--all-namespaces"]
    resource, _, subresource = resource.partition("/")  # kubectl reads "pods/x" as the pod named x
    sub = [f"--subresource={subresource}"] if subresource else []
    result = kubectl(installed, "auth", "can-i", verb, resource, *sub, f"--as={SA}", *scope)
    assert result.stdout.strip() == ("yes" if allowed else "no"), (result.stdout, result.stderr)
