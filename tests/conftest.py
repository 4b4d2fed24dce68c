"""Shared fixtures: small traces built in memory and written to tmp dirs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from neurokube.adapters.trace_files import write_trace
from neurokube.policies.base import ClusterView, NodeMetrics
from neurokube.trace.assemble import ArrivalSettings
from neurokube.trace.synth import SynthSettings, synth_trace

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def small_trace():
    """A 6-hour, 12-node synthetic trace: big enough to show the policies apart, fast to replay."""
    return synth_trace("small", SynthSettings(
        arrivals=ArrivalSettings(hours=6, target_load=0.7, warmup_hours=3, seed=3), nodes=12, workloads=60))


@pytest.fixture(scope="session")
def small_trace_dir(small_trace, tmp_path_factory):
    return write_trace(small_trace, tmp_path_factory.mktemp("trace") / "small")


def make_view(alloc_cpu, alloc_mem, req_cpu=None, req_mem=None, *, nz_cpu=None, nz_mem=None,
              cpu_mean=None, cpu_std=None, mem_mean=None, mem_std=None, samples=1, age_s=60.0,
              now_s=0.0) -> ClusterView:
    """A hand-written cluster for worked examples."""
    n = len(alloc_cpu)
    arr = lambda v, d=0: np.asarray(v if v is not None else [d] * n)  # noqa: E731
    req_cpu, req_mem = arr(req_cpu).astype(np.int64), arr(req_mem).astype(np.int64)
    metrics = NodeMetrics.empty(n)
    metrics.cpu_mean = arr(cpu_mean).astype(float)
    metrics.cpu_std = arr(cpu_std).astype(float)
    metrics.mem_mean = arr(mem_mean).astype(float)
    metrics.mem_std = arr(mem_std).astype(float)
    metrics.samples = np.full(n, samples, dtype=np.int64)
    metrics.age_s = np.full(n, age_s)
    return ClusterView(
        now_s=now_s, alloc_cpu=arr(alloc_cpu).astype(np.int64), alloc_mem=arr(alloc_mem).astype(np.int64),
        req_cpu=req_cpu, req_mem=req_mem,
        nz_req_cpu=arr(nz_cpu).astype(np.int64) if nz_cpu is not None else req_cpu.copy(),
        nz_req_mem=arr(nz_mem).astype(np.int64) if nz_mem is not None else req_mem.copy(),
        pod_count=(req_cpu > 0).astype(np.int64), metrics=metrics,
    )
