"""deploy/knative against the real local apiserver: every manifest listed in its kustomization
passes server-side validation (``kubectl apply --dry-run=server``, Knative CRDs installed, strict
field validation, so every securityContext, resource, volume, delivery and NetworkPolicy field is
one the CRD schemas or the built-in APIs know), and so do the ``kubectl kustomize`` output of
deploy/knative and of the production overlay (images pinned by digest, also in the trainer's
NEUROKUBE_TRAINER_IMAGE), and the Job the trainer creates. A misspelt field is refused.
deploy/observability's kustomize output (the alerts and dashboard ConfigMaps) validates too, in its
namespace and in one an overlay sets.
tests/e2e/test_rbac.py checks the roles of rbac.yaml with ``kubectl auth can-i``."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
import yaml

from neurokube.cluster import control, functions
from neurokube.cluster.build import Binaries
from neurokube.cluster.session import RunningCluster

pytestmark = pytest.mark.e2e

KNATIVE = Path(__file__).resolve().parents[2] / "deploy" / "knative"
OVERLAY = KNATIVE.parent / "overlays" / "production"
EXPECTED = (
    "namespace/neurokube",
    "serviceaccount/neurokube-binder", "serviceaccount/neurokube-sweeper", "serviceaccount/neurokube-extender",
    "serviceaccount/neurokube-trainer-launcher", "serviceaccount/neurokube-trainer",
    "serviceaccount/neurokube-dead-letter", "serviceaccount/neurokube-pod-events", "serviceaccount/neurokube-snapshot",
    "serviceaccount/neurokube-actuator", "clusterrole.rbac.authorization.k8s.io/neurokube-actuator",
    "networkpolicy.networking.k8s.io/neurokube-actuator", "service.serving.knative.dev/neurokube-actuator",
    "pingsource.sources.knative.dev/neurokube-act",
    "clusterrole.rbac.authorization.k8s.io/neurokube-binder", "clusterrole.rbac.authorization.k8s.io/neurokube-sweeper",
    "clusterrole.rbac.authorization.k8s.io/neurokube-extender", "role.rbac.authorization.k8s.io/neurokube-binder-ledger",
    "role.rbac.authorization.k8s.io/neurokube-sweeper-ledger", "role.rbac.authorization.k8s.io/neurokube-trainer-launcher",
    "networkpolicy.networking.k8s.io/neurokube-default-deny-ingress",
    "networkpolicy.networking.k8s.io/neurokube-binder", "networkpolicy.networking.k8s.io/neurokube-extender",
    "networkpolicy.networking.k8s.io/neurokube-sweeper", "networkpolicy.networking.k8s.io/neurokube-snapshot",
    "service.serving.knative.dev/neurokube-binder", "service.serving.knative.dev/neurokube-extender",
    "service.serving.knative.dev/neurokube-sweeper", "service.serving.knative.dev/trainer",
    "service.serving.knative.dev/neurokube-dead-letter", "service.serving.knative.dev/neurokube-snapshot",
    "apiserversource.sources.knative.dev/neurokube-pods", "broker.eventing.knative.dev/neurokube",
    "trigger.eventing.knative.dev/neurokube-binder-add",
    "pingsource.sources.knative.dev/neurokube-sweep", "pingsource.sources.knative.dev/neurokube-nightly-training",
    "pingsource.sources.knative.dev/neurokube-snapshot",
    "configmap/neurokube-functions",
)


def kubectl(cluster: RunningCluster, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    binary = Binaries(Path(cluster.record.bin_dir)).path("kubectl")
    return subprocess.run([str(binary), *args], env={**os.environ, "KUBECONFIG": cluster.kubeconfig},
                          capture_output=True, text=True, timeout=120, check=False, input=stdin)


def manifests() -> list[Path]:
    return [KNATIVE / name for name in yaml.safe_load((KNATIVE / "kustomization.yaml").read_text())["resources"]]


def object_count(text: str) -> int:
    return sum(1 for doc in yaml.safe_load_all(text) if doc)


def dry_run(cluster: RunningCluster, *sources: str, stdin: str | None = None) -> list[str]:
    """``kubectl apply --dry-run=server --validate=strict``; the lines it printed (asserting success)."""
    result = kubectl(cluster, "apply", "--dry-run=server", "--validate=strict", *sources, stdin=stdin)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines and all("(server dry run)" in line for line in lines), lines
    # Strict validation warns of nothing either (kubectl's own note on objects that the fixture
    # created by server-side apply, without its last-applied annotation, is not about the manifests).
    warnings = [line for line in result.stderr.splitlines()
                if line.strip() and "kubectl.kubernetes.io/last-applied-configuration" not in line]
    assert warnings == [], result.stderr
    return lines


@pytest.fixture(scope="module")
def installed(cluster: RunningCluster) -> RunningCluster:
    control.install_crds(cluster.state_dir)
    functions.apply_manifests(cluster.client)  # namespace.yaml and rbac.yaml, for real
    return cluster


def test_every_manifest_validates_server_side(installed):
    files = manifests()
    assert sorted(p.name for p in files) == sorted(p.name for p in KNATIVE.glob("*.yaml")
                                                   if p.name != "kustomization.yaml")
    lines = dry_run(installed, *(arg for path in files for arg in ("-f", str(path))))
    for expected in EXPECTED:
        assert any(line.startswith(expected + " ") for line in lines), (expected, lines)
    assert len(lines) == sum(object_count(path.read_text()) for path in files)


@pytest.mark.parametrize("directory", [KNATIVE, OVERLAY], ids=["base", "production-overlay"])
def test_the_kustomize_output_validates_server_side(installed, directory):
    built = kubectl(installed, "kustomize", str(directory))
    assert built.returncode == 0, built.stderr
    lines = dry_run(installed, "-f", "-", stdin=built.stdout)
    assert len(lines) == object_count(built.stdout) == sum(object_count(p.read_text()) for p in manifests())
    docs = [d for d in yaml.safe_load_all(built.stdout) if d]
    images = {c["image"] for d in docs if d["kind"] == "Service" and d["apiVersion"].startswith("serving.")
              for c in d["spec"]["template"]["spec"]["containers"]}
    [trainer] = [d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "trainer"]
    job_image = {e["name"]: e.get("value") for e in trainer["spec"]["template"]["spec"]["containers"][0]["env"]}[
        "NEUROKUBE_TRAINER_IMAGE"]
    if directory == OVERLAY:
        assert len(images) == 1 and all("@sha256:" in image for image in images), images
        assert job_image in images  # the nightly Job runs the same pinned image
    else:
        assert images == {"registry.example.com/neurokube/functions:0.1.0"} and job_image in images


def test_the_trainers_job_validates_server_side(installed):
    spec = importlib.util.spec_from_file_location("trainer_main_e2e", KNATIVE.parents[1] / "functions" / "trainer"
                                                  / "main.py")
    trainer = importlib.util.module_from_spec(spec)
    sys.modules["trainer_main_e2e"] = trainer
    with mock.patch.dict(os.environ, {"NEUROKUBE_INSECURE": "1"}):  # its auth is read at import
        spec.loader.exec_module(trainer)
    service = next(d for d in yaml.safe_load_all((KNATIVE / "trainer.yaml").read_text())
                   if d and d["kind"] == "Service")
    env = {e["name"]: e["value"] for e in service["spec"]["template"]["spec"]["containers"][0]["env"] if "value" in e}
    settings = trainer.settings_from_env({"KUBERNETES_SERVICE_HOST": "10.0.0.1", **env})
    job = trainer.job_manifest(settings, "2024-03-08", "ev-1")
    [line] = dry_run(installed, "-f", "-", stdin=json.dumps(job))
    assert line.startswith("job.batch/neurokube-nightly-2024-03-08 ")


def test_a_broken_manifest_is_refused(installed, tmp_path):
    text = (KNATIVE / "services.yaml").read_text()
    for right, wrong in (("containerConcurrency: 8", "containerConcurency: 8"),
                         ("readOnlyRootFilesystem: true", "readOnlyRootFileSystem: true")):
        assert right in text
        (tmp_path / "broken.yaml").write_text(text.replace(right, wrong, 1))
        result = kubectl(installed, "apply", "--dry-run=server", "--validate=strict", "-f",
                         str(tmp_path / "broken.yaml"))
        assert result.returncode != 0 and wrong.split(":")[0] in result.stderr, result.stderr


def test_the_observability_kustomize_output_validates_server_side(cluster, tmp_path):
    """deploy/observability renders two ConfigMaps (alerts, dashboard; no promtool tests) in its
    namespace, or in the one an overlay sets, and both pass server-side validation there."""
    observability = KNATIVE.parent / "observability"
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "namespace": "neurokube-observability-e2e", "resources": [os.path.relpath(observability, overlay)]}))
    for directory, namespace in ((observability, "monitoring"), (overlay, "neurokube-observability-e2e")):
        built = kubectl(cluster, "kustomize", str(directory))
        assert built.returncode == 0, built.stderr
        docs = [d for d in yaml.safe_load_all(built.stdout) if d]
        assert sorted((d["kind"], d["metadata"]["name"], d["metadata"]["namespace"]) for d in docs) == [
            ("ConfigMap", "neurokube-alerts", namespace), ("ConfigMap", "neurokube-dashboard", namespace)]
        data = {d["metadata"]["name"]: d["data"] for d in docs}
        assert data["neurokube-dashboard"] == {"neurokube-dashboard.json":
                                               (observability / "neurokube-dashboard.json").read_text()}
        assert data["neurokube-alerts"] == {"neurokube-alerts.yaml":
                                            (observability / "neurokube-alerts.yaml").read_text()}
        created = kubectl(cluster, "create", "namespace", namespace)
        assert created.returncode == 0 or "AlreadyExists" in created.stderr, created.stderr
        lines = dry_run(cluster, "-f", "-", stdin=built.stdout)
        assert sorted(lines) == ["configmap/neurokube-alerts created (server dry run)",
                                 "configmap/neurokube-dashboard created (server dry run)"]
