"""``neurokube bench scheduling`` for real, at a tiny size: its own 20-node cluster, the binder,
sweeper, receive adapter and Broker stand-in as processes, 60 pods for kube-scheduler and then
the same 60 for NeuroKube. The JSON has the issue's shape, every pod was bound in both phases
(the bench itself also checks that no node is over allocatable and that NeuroKube placed each pod
exactly once, and fails otherwise), and the cluster is gone afterwards."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from neurokube.cluster.build import find_go

pytestmark = pytest.mark.e2e

NODES, PODS = 20, 60


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> tuple[subprocess.CompletedProcess, dict]:
    if find_go() is None:
        pytest.skip("no Go toolchain: the local control plane cannot be built")
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    result = subprocess.run([sys.executable, "-m", "neurokube.cli.main", "bench", "scheduling", "--nodes", str(NODES),
                             "--pods", str(PODS), "--no-docs", "--json", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result, json.loads(out.read_text())


def test_the_json_has_the_issue_shape(bench):
    _, doc = bench
    for name in ("kube_scheduler", "neurokube"):
        assert {"pods_per_s", "p50_ms", "p99_ms"} <= set(doc[name])
        assert doc[name]["pods_per_s"] > 0 and 0 <= doc[name]["p50_ms"] <= doc[name]["p99_ms"]
    assert doc["nodes"] == NODES and doc["pods"] == PODS
    assert {"throughput", "p50", "p99"} <= set(doc["ratios"])
    assert [g["goal"].split()[0] for g in doc["goals"]] == ["throughput", "p99"]


def test_every_pod_was_bound_in_both_phases(bench):
    _, doc = bench
    assert doc["kube_scheduler"]["bound"] == doc["kube_scheduler"]["pods"] == PODS
    assert doc["neurokube"]["bound"] == doc["neurokube"]["pods"] == PODS
    delivered = doc["profile"]["neurokube"]["events_delivered"]
    assert delivered.get("add:handled", 0) >= PODS - doc["profile"]["neurokube"]["sweeper_bound"]


def test_the_apiserver_counts_requests_per_bound_pod(bench):
    """From the apiserver's own apiserver_request_total: each scheduler issued at least one Binding per pod, and
    the bench created each pod once (POST pods), in both phases and in the round's record."""
    _, doc = bench
    for name in ("kube_scheduler", "neurokube"):
        requests = doc[name]["api_requests_per_pod"]
        assert requests["by_verb"]["POST"] >= 2.0  # the create and the Binding, at least
        assert requests["writes"] >= requests["by_verb"]["POST"]
        last = doc["rounds"][-1][name]["api_requests_per_pod"]
        assert last["by_request"]["POST pods/binding"] >= 1.0 and last["by_request"]["POST pods"] >= 1.0


def test_the_table_and_the_model_are_reported(bench):
    result, doc = bench
    assert "| kube-scheduler (default profile) |" in result.stdout and "| NeuroKube binder |" in result.stdout
    assert "generated" in doc["model"] and "double" in doc["node_metrics"].lower()
    assert re.search(r"etcd \(pid \d+\): (stopped|killed)", result.stderr)  # its cluster was taken down
