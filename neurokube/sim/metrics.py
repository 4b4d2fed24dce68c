"""The replay metrics, accumulated step by step (definitions in docs/METRICS.md)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

METRIC_NAMES = (
    "contention_core_s", "hot_node_fraction", "node_hours", "pending_pod_s", "unscheduled_pods",
    "mem_overflow_mib_s", "util_mean", "util_std", "decision_us_p50", "decision_us_p99",
)


@dataclass
class MetricAccumulator:
    step_s: float
    hot_threshold: float
    contention_milli_steps: float = 0.0
    mem_overflow_mib_steps: float = 0.0
    active_node_steps: int = 0
    hot_node_steps: int = 0
    util_sum: float = 0.0
    util_sq_sum: float = 0.0
    decision_ns: list[int] = field(default_factory=list)

    def add_step(self, cpu: np.ndarray, mem: np.ndarray, cap_cpu: np.ndarray, cap_mem: np.ndarray,
                 active: np.ndarray) -> float:
        """Account one step of node usage; returns that step's contention in core-seconds."""
        over = np.maximum(cpu - cap_cpu, 0.0).sum()
        self.contention_milli_steps += over
        self.mem_overflow_mib_steps += np.maximum(mem - cap_mem, 0.0).sum()
        util = cpu[active] / cap_cpu[active]
        self.active_node_steps += int(active.sum())
        self.hot_node_steps += int((util > self.hot_threshold).sum())
        self.util_sum += float(util.sum())
        self.util_sq_sum += float((util * util).sum())
        return float(over) * self.step_s / 1000.0

    def finish(self, pending_pod_s: float, unscheduled: int) -> dict[str, float]:
        n = self.active_node_steps
        mean = self.util_sum / n if n else 0.0
        var = max(self.util_sq_sum / n - mean * mean, 0.0) if n else 0.0
        lat = np.asarray(self.decision_ns, dtype=np.float64) / 1000.0
        return {
            "contention_core_s": self.contention_milli_steps * self.step_s / 1000.0,
            "hot_node_fraction": self.hot_node_steps / n if n else 0.0,
            "node_hours": n * self.step_s / 3600.0,
            "pending_pod_s": float(pending_pod_s),
            "unscheduled_pods": int(unscheduled),
            "mem_overflow_mib_s": self.mem_overflow_mib_steps * self.step_s,
            "util_mean": mean,
            "util_std": float(np.sqrt(var)),
            "decision_us_p50": float(np.percentile(lat, 50)) if lat.size else float("nan"),
            "decision_us_p99": float(np.percentile(lat, 99)) if lat.size else float("nan"),
        }
