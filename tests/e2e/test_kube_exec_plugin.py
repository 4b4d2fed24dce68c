"""A managed-cluster kubeconfig against the real local apiserver: the user is an exec credential
plugin (as gke-gcloud-auth-plugin, ``aws eks get-token`` and kubelogin are), which prints an
``ExecCredential`` with a bearer token that the apiserver accepts (``--token-auth-file``).

The same kubeconfig works for ``neurokube cluster status``, for the binder, which lists and
watches through it and binds a pod, and for ``neurokube bench scheduling --kubeconfig`` on a small
cluster of its own (every pod bound in both phases); a plugin that fails is one clear line and
exit 2."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
import yaml

from neurokube.cluster import certs, functions, workload
from neurokube.cluster.livekit import Function, neurokube_pod, wait_bound
from neurokube.cluster.session import RunningCluster, running_cluster

pytestmark = pytest.mark.e2e

NEUROKUBE = str(Path(sys.executable).with_name("neurokube"))


def exec_kubeconfig(cluster: RunningCluster, work: Path, fail: bool = False) -> Path:
    """A kubeconfig whose user runs a plugin that prints the cluster's static admin token; the
    plugin also counts its runs (``runs``), to show the client really called it."""
    pki = certs.Pki(cluster.state_dir / "pki")
    runs = work / "runs"
    plugin = work / "plugin.py"
    plugin.write_text(textwrap.dedent(f"""
        import json, pathlib, sys
        with open({str(runs)!r}, "a") as handle:
            handle.write("run\\n")
        if {fail}:
            print("plugin: the identity provider refused", file=sys.stderr)
            sys.exit(1)
        token = pathlib.Path({str(pki.admin_token)!r}).read_text().strip()
        print(json.dumps({{"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
                          "status": {{"token": token}}}}))
    """))
    doc = {
        "apiVersion": "v1", "kind": "Config", "current-context": "managed",
        "clusters": [{"name": "managed", "cluster": {
            "server": cluster.record.apiserver,
            "certificate-authority-data": base64.b64encode(pki.ca_cert.read_bytes()).decode()}}],
        "users": [{"name": "plugin-user", "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1", "command": sys.executable, "args": [str(plugin)],
            "interactiveMode": "Never"}}}],
        "contexts": [{"name": "managed", "context": {"cluster": "managed", "user": "plugin-user"}}],
    }
    path = work / "kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    path.chmod(0o600)
    return path


def test_cluster_status_through_an_exec_plugin(cluster, tmp_path):
    config = exec_kubeconfig(cluster, tmp_path)
    proc = subprocess.run([NEUROKUBE, "cluster", "status", "--state-dir", str(cluster.state_dir), "--json",
                           "--kubeconfig", str(config)], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert "apiserver_error" not in doc
    assert doc["nodes"]["total"] == len(cluster.client.get("/api/v1/nodes")["items"]) > 0
    assert (tmp_path / "runs").read_text().count("run") >= 1


def test_a_failing_exec_plugin_is_one_clear_line(cluster, tmp_path):
    config = exec_kubeconfig(cluster, tmp_path, fail=True)
    proc = subprocess.run([NEUROKUBE, "cluster", "status", "--state-dir", str(cluster.state_dir), "--json",
                           "--kubeconfig", str(config)], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert "exec credential plugin" in proc.stderr and str(config) in proc.stderr


def test_the_binder_runs_on_an_exec_plugin_kubeconfig(cluster, tmp_path):
    config = exec_kubeconfig(cluster, tmp_path)
    functions.apply_manifests(cluster.client)  # the ledger namespace (idempotent)
    logs = tmp_path / "logs"
    logs.mkdir()
    env = functions.function_env(config, functions.FunctionsOptions(env={"NEUROKUBE_SEED": "7"}), "exec-binder")
    binder = Function("binder", env, logs, label="binder-exec").start()
    try:
        run = f"exec-{uuid.uuid4().hex[:6]}"
        pod = cluster.client.create("/api/v1/namespaces/default/pods", neurokube_pod(f"{run}-0", 250, 256, run))
        deadline = time.monotonic() + 30
        answer: dict = {}
        while time.monotonic() < deadline:  # the binder answers 503 until its watch cache has listed
            answer = binder.post_event(pod)
            if answer.get("status") != 503:
                break
            time.sleep(0.5)
        bound = wait_bound(cluster.client, run, 1, timeout_s=30)
        assert bound[f"{run}-0"]["spec"]["nodeName"], answer
        assert binder.counter("neurokube_decisions_total", outcome="bound") == 1
        log = (logs / "binder-exec.log").read_text(errors="replace")
        assert "Traceback" not in log
        workload.delete_pods(cluster.client, list(bound))
    finally:
        binder.stop()
    assert os.path.getsize(tmp_path / "runs") > 0


def test_the_bench_runs_on_an_exec_plugin_kubeconfig(tmp_path):
    state = tmp_path / "cluster"
    with running_cluster(state, workload.uniform_nodes(5), start_adapter=False) as small:
        config = exec_kubeconfig(small, tmp_path)
        out = tmp_path / "bench.json"
        proc = subprocess.run([NEUROKUBE, "bench", "scheduling", "--state-dir", str(state), "--nodes", "5",
                               "--pods", "10", "--kubeconfig", str(config), "--no-docs", "--json", str(out)],
                              capture_output=True, text=True, timeout=300, check=False)
        assert proc.returncode == 0, proc.stderr[-3000:]
        doc = json.loads(out.read_text())
        assert doc["kube_scheduler"]["bound"] == doc["neurokube"]["bound"] == 10
        assert (tmp_path / "runs").read_text().count("run") >= 1  # the bench's client ran the plugin
