"""mlflow/deploy against the real local apiserver: ``kubectl kustomize`` renders the tracking server
(PersistentVolumeClaim, Deployment, Service, NetworkPolicy) in the namespace ``neurokube``, and an
overlay moves it to another namespace and pins another image by digest. Both renderings pass
server-side validation (``kubectl apply --dry-run=server --validate=strict``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from test_knative_manifests import dry_run, kubectl  # the e2e directory is on sys.path (no __init__.py)

pytestmark = pytest.mark.e2e

DEPLOY = Path(__file__).resolve().parents[2] / "mlflow" / "deploy"
PINNED = "registry.example.com/mirror/mlflow@sha256:" + "1" * 64
EXPECTED = ["deployment.apps/mlflow", "networkpolicy.networking.k8s.io/mlflow", "persistentvolumeclaim/mlflow",
            "service/mlflow"]


def test_the_mlflow_kustomize_output_validates_server_side(cluster, tmp_path):
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "namespace": "neurokube-mlflow-e2e", "resources": [os.path.relpath(DEPLOY, overlay)],
        "images": [{"name": "ghcr.io/mlflow/mlflow", "newName": PINNED.split("@")[0],
                    "digest": PINNED.split("@")[1]}]}))
    for directory, namespace, image in ((DEPLOY, "neurokube", "ghcr.io/mlflow/mlflow:v3.17.2"),
                                        (overlay, "neurokube-mlflow-e2e", PINNED)):
        built = kubectl(cluster, "kustomize", str(directory))
        assert built.returncode == 0, built.stderr
        docs = [d for d in yaml.safe_load_all(built.stdout) if d]
        assert {d["metadata"]["namespace"] for d in docs} == {namespace}
        [deployment] = [d for d in docs if d["kind"] == "Deployment"]
        assert [c["image"] for c in deployment["spec"]["template"]["spec"]["containers"]] == [image]
        created = kubectl(cluster, "create", "namespace", namespace)
        assert created.returncode == 0 or "AlreadyExists" in created.stderr, created.stderr
        lines = dry_run(cluster, "-f", "-", stdin=built.stdout)
        assert sorted(line.split(" ")[0] for line in lines) == EXPECTED, lines


def test_a_misspelt_field_is_refused(cluster, tmp_path):
    text = (DEPLOY / "deployment.yaml").read_text()
    assert "runAsNonRoot: true" in text
    (tmp_path / "broken.yaml").write_text(text.replace("runAsNonRoot: true", "runAsNonroot: true", 1))
    created = kubectl(cluster, "create", "namespace", "neurokube-mlflow-broken")
    assert created.returncode == 0 or "AlreadyExists" in created.stderr, created.stderr
    result = kubectl(cluster, "apply", "--dry-run=server", "--validate=strict", "-n", "neurokube-mlflow-broken",
                     "-f", str(tmp_path / "broken.yaml"))
    assert result.returncode != 0 and "runAsNonroot" in result.stderr, result.stderr
