"""What Prometheus would report about nodes: scraped samples, averaged over a window, delayed."""

from __future__ import annotations

import numpy as np

from neurokube.policies.base import NodeMetrics
from neurokube.sim.config import SimConfig


class MetricsWindow:
    """Ring buffer of node usage samples taken at scrape times."""

    def __init__(self, n_nodes: int, config: SimConfig) -> None:
        self.config = config
        depth = config.window_s // config.scrape_s + config.lag_s // config.scrape_s + 2
        self.times = np.full(depth, -np.inf)
        self.cpu = np.zeros((depth, n_nodes))
        self.mem = np.zeros((depth, n_nodes))
        self._next = 0
        self.n_nodes = n_nodes

    def record(self, t_s: float, cpu: np.ndarray, mem: np.ndarray) -> None:
        if t_s % self.config.scrape_s:
            return
        i = self._next % len(self.times)
        self.times[i] = t_s
        self.cpu[i] = cpu
        self.mem[i] = mem
        self._next += 1

    def latest_sample_s(self, now_s: float) -> float:
        """Start time of the newest readable sample, or -inf."""
        readable = self.times[self.times <= now_s - self.config.lag_s]
        return float(readable.max()) if readable.size else -np.inf

    def view(self, now_s: float) -> tuple[NodeMetrics, float]:
        """Window statistics readable at ``now_s`` and the newest sample's time."""
        newest = self.latest_sample_s(now_s)
        if not np.isfinite(newest):
            return NodeMetrics.empty(self.n_nodes), newest
        sel = (self.times <= newest) & (self.times > newest - self.config.window_s)
        t = self.times[sel]
        order = np.argsort(t)
        t = t[order]
        cpu = self.cpu[sel][order]
        mem = self.mem[sel][order]
        n = len(t)
        if n > 1:
            dt = t - t.mean()
            denom = float((dt * dt).sum())
            cpu_trend = dt @ (cpu - cpu.mean(axis=0)) / denom
            mem_trend = dt @ (mem - mem.mean(axis=0)) / denom
        else:
            cpu_trend = mem_trend = np.zeros(self.n_nodes)
        metrics = NodeMetrics(
            cpu_mean=cpu.mean(axis=0), cpu_max=cpu.max(axis=0), cpu_std=cpu.std(axis=0),
            cpu_trend=cpu_trend,
            mem_mean=mem.mean(axis=0), mem_max=mem.max(axis=0), mem_std=mem.std(axis=0),
            mem_trend=mem_trend,
            samples=np.full(self.n_nodes, n, dtype=np.int64),
            age_s=np.full(self.n_nodes, now_s - newest),
        )
        return metrics, newest
