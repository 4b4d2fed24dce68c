"""Per-workload usage history, accumulated from scrape samples as a live system would query it."""

from __future__ import annotations

import numpy as np

from neurokube.policies.base import WorkloadUsage


class WorkloadHistory:
    def __init__(self, n_workloads: int) -> None:
        self.n = n_workloads
        self.count = np.zeros(n_workloads, dtype=np.int64)
        self.cpu_sum = np.zeros(n_workloads)
        self.cpu_sq = np.zeros(n_workloads)
        self.cpu_max = np.zeros(n_workloads)
        self.mem_sum = np.zeros(n_workloads)
        self.mem_max = np.zeros(n_workloads)
        self.ratio_sum = np.zeros(n_workloads)
        self.ratio_count = np.zeros(n_workloads, dtype=np.int64)

    def add(self, workload: np.ndarray, cpu: np.ndarray, mem: np.ndarray, cpu_request: np.ndarray) -> None:
        """One scrape: a sample per running pod."""
        if workload.size == 0:
            return
        n = self.n
        self.count += np.bincount(workload, minlength=n)
        self.cpu_sum += np.bincount(workload, weights=cpu, minlength=n)
        self.cpu_sq += np.bincount(workload, weights=cpu * cpu, minlength=n)
        self.mem_sum += np.bincount(workload, weights=mem, minlength=n)
        np.maximum.at(self.cpu_max, workload, cpu)
        np.maximum.at(self.mem_max, workload, mem)
        has = cpu_request > 0
        self.ratio_sum += np.bincount(workload[has], weights=cpu[has] / cpu_request[has], minlength=n)
        self.ratio_count += np.bincount(workload[has], minlength=n)

    def view(self) -> WorkloadUsage:
        c = np.maximum(self.count, 1)
        mean = self.cpu_sum / c
        return WorkloadUsage(
            samples=self.count.copy(), cpu_mean=mean,
            cpu_std=np.sqrt(np.maximum(self.cpu_sq / c - mean * mean, 0.0)),
            cpu_max=self.cpu_max.copy(), mem_mean=self.mem_sum / c, mem_max=self.mem_max.copy(),
            cpu_ratio_mean=self.ratio_sum / np.maximum(self.ratio_count, 1),
        )
