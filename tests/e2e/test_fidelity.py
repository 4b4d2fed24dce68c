"""Fidelity of the replay's ``default`` policy against the real kube-scheduler (v1.35.4).

Nodes of varied allocatable carry varied existing allocations (pods bound by nodeName). Then 200
pods, some BestEffort (no requests: the non-zero defaults apply), some CPU-only, arrive one at a
time. For each, the real default scheduler (no extender) picks a node. The simulator's
``default`` scores are computed on the same state, and the real choice must be among the
simulator's best. Ties count as agreement: both break them at random. The goal is >= 95 %.
"""

from __future__ import annotations

import numpy as np
import pytest

from neurokube.cluster import workload
from neurokube.cluster.build import find_go
from neurokube.cluster.session import running_cluster
from neurokube.policies.base import ClusterView, NodeMetrics, PodSpec
from neurokube.policies.common import fits
from neurokube.policies.default import DefaultPolicy

pytestmark = pytest.mark.e2e

SHAPES = [(4000, 8192), (8000, 16384), (8000, 65536), (16000, 32768), (32000, 131072), (16000, 131072)]


def manifest(name: str, cpu: int, mem: int, node: str | None = None) -> dict:
    requests = {}
    if cpu:
        requests["cpu"] = f"{cpu}m"
    if mem:
        requests["memory"] = f"{mem}Mi"
    container = {"name": "main", "image": "registry.k8s.io/pause:3.10"}
    if requests:
        container["resources"] = {"requests": requests}
    spec = {"containers": [container], "terminationGracePeriodSeconds": 0, "automountServiceAccountToken": False}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"}, "spec": spec}


def test_simulator_default_matches_kube_scheduler(tmp_path):
    if find_go() is None:
        pytest.skip("no Go toolchain: the local control plane cannot be built")
    rng = np.random.default_rng(42)
    nodes = [workload.NodeSpec(f"fid-{i:02d}", *SHAPES[i % len(SHAPES)]) for i in range(18)]
    names = [n.name for n in nodes]
    alloc_cpu = np.array([n.cpu_milli for n in nodes], dtype=np.int64)
    alloc_mem = np.array([n.memory_mib for n in nodes], dtype=np.int64)
    req = np.zeros((2, len(nodes)), dtype=np.int64)
    nz = np.zeros((2, len(nodes)), dtype=np.int64)

    def account(node: int, cpu: int, mem: int) -> None:
        req[:, node] += (cpu, mem)
        nz[:, node] += (cpu or 100, mem or 200)

    with running_cluster(tmp_path / "fidelity", nodes, start_adapter=False) as cluster:
        # Existing allocations: 0 to 60 % of each node, bound directly.
        for i, node in enumerate(nodes):
            share = rng.uniform(0, 0.6)
            cpu, mem = int(node.cpu_milli * share) // 100 * 100, int(node.memory_mib * rng.uniform(0, 0.6))
            if cpu or mem:
                cluster.client.create("/api/v1/namespaces/default/pods", manifest(f"seed-{i}", cpu, mem, node.name))
                account(i, cpu, mem)
        agree, decided, ties = 0, 0, 0
        for k in range(200):
            kind = rng.uniform()
            cpu = 0 if kind < 0.1 else int(rng.choice([100, 250, 500, 1000, 1500, 2000]))
            mem = 0 if kind < 0.15 else int(rng.choice([64, 128, 256, 512, 1024, 3000]))
            pod = PodSpec(cpu, mem, qos=2 if cpu == mem == 0 else 1)
            view = ClusterView(now_s=0.0, alloc_cpu=alloc_cpu, alloc_mem=alloc_mem, req_cpu=req[0], req_mem=req[1],
                               nz_req_cpu=nz[0], nz_req_mem=nz[1], pod_count=np.zeros(len(nodes), np.int64),
                               metrics=NodeMetrics.empty(len(nodes)))
            feasible = fits(pod, view)
            name = f"fid-pod-{k:03d}"
            cluster.client.create("/api/v1/namespaces/default/pods", manifest(name, cpu, mem))
            if not feasible.any():
                continue
            placed = workload.wait_pods(cluster.client, [name], timeout_s=30)[name]["spec"]["nodeName"]
            chosen = names.index(placed)
            scores = np.where(feasible, DefaultPolicy(rng).scores(pod, view), -1)
            best = np.flatnonzero(scores == scores.max())
            decided += 1
            agree += chosen in best
            ties += best.size > 1
            account(chosen, cpu, mem)
    assert decided >= 150
    rate = agree / decided
    print(f"fidelity: {agree}/{decided} = {rate:.1%} agreement ({ties} decisions had tied best nodes)")
    assert rate >= 0.95
