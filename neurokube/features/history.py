"""Per-workload usage history from per-pod summaries: what the live binder reads from Prometheus.

The replay (``sim/workloads.py``) adds one sample per running pod at every scrape and keeps
running sums per workload. Prometheus cannot hand out those samples one by one cheaply, but it
can summarise each pod's series over the history window: how many samples (one per history step
while the pod ran), their mean, the mean of their squares and their maximum. Weighted by the
sample counts, those summaries add up to exactly the replay's sums, so both sides end in the
same :class:`~neurokube.policies.base.WorkloadUsage` (``tests/unit/test_workload_history.py``
proves it on the same samples).

Pure arithmetic on arrays: one entry per pod, the pod's dense workload id beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurokube.policies.base import WorkloadUsage


@dataclass(frozen=True)
class PodSummaries:
    """One entry per pod: its workload id and its usage over the history window.

    CPU in millicores, memory in MiB; ``cpu_sq_mean`` is the mean of the squared samples
    (millicores squared); ``cpu_request`` is the pod's CPU request (0: none).
    """

    workload: np.ndarray  # int64 dense ids, >= 0
    samples: np.ndarray  # int64 or float: samples per pod
    cpu_mean: np.ndarray
    cpu_sq_mean: np.ndarray
    cpu_max: np.ndarray
    mem_mean: np.ndarray
    mem_max: np.ndarray
    cpu_request: np.ndarray


def workload_usage(pods: PodSummaries, n_workloads: int) -> WorkloadUsage:
    """The :class:`WorkloadUsage` of ``n_workloads`` workloads from their pods' summaries, with the
    replay's arithmetic (``sim/workloads.py``: sums per sample, population standard deviation,
    usage / request averaged over the samples of pods that have a request)."""
    w = np.asarray(pods.workload, dtype=np.int64)
    keep = (w >= 0) & (w < n_workloads) & (np.asarray(pods.samples) > 0)
    w = w[keep]
    n = np.asarray(pods.samples, dtype=np.float64)[keep]
    cpu_mean = np.asarray(pods.cpu_mean, dtype=np.float64)[keep]
    request = np.asarray(pods.cpu_request, dtype=np.float64)[keep]
    count = np.bincount(w, weights=n, minlength=n_workloads)
    cpu_sum = np.bincount(w, weights=n * cpu_mean, minlength=n_workloads)
    cpu_sq = np.bincount(w, weights=n * np.asarray(pods.cpu_sq_mean, dtype=np.float64)[keep], minlength=n_workloads)
    mem_sum = np.bincount(w, weights=n * np.asarray(pods.mem_mean, dtype=np.float64)[keep], minlength=n_workloads)
    cpu_max = np.zeros(n_workloads)
    mem_max = np.zeros(n_workloads)
    np.maximum.at(cpu_max, w, np.asarray(pods.cpu_max, dtype=np.float64)[keep])
    np.maximum.at(mem_max, w, np.asarray(pods.mem_max, dtype=np.float64)[keep])
    has = request > 0
    ratio_sum = np.bincount(w[has], weights=n[has] * cpu_mean[has] / request[has], minlength=n_workloads)
    ratio_count = np.bincount(w[has], weights=n[has], minlength=n_workloads)
    c = np.maximum(count, 1.0)
    mean = cpu_sum / c
    return WorkloadUsage(
        samples=np.rint(count).astype(np.int64), cpu_mean=mean,
        cpu_std=np.sqrt(np.maximum(cpu_sq / c - mean * mean, 0.0)),
        cpu_max=cpu_max, mem_mean=mem_sum / c, mem_max=mem_max,
        cpu_ratio_mean=ratio_sum / np.maximum(ratio_count, 1.0),
    )


__all__ = ["PodSummaries", "workload_usage"]
