"""Every setting of the learning loop, in one place (typed, documented, validated on creation).

The Kubernetes Job (``python -m pipelines.nightly``) reads them from flags; ``neurokube nightly``
builds them from its flags. Nothing else reads the environment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from neurokube.errors import InputError
from neurokube.learning.fit import FitSettings
from neurokube.model.reward import RewardWeights

DAY_S = 86400
HOUR_S = 3600


@dataclass(frozen=True)
class PrometheusQueries:
    """PromQL giving one value per node (grouped by ``node_label``) for the snapshot columns."""

    cpu_used_milli: str = "sum by (node) (rate(container_cpu_usage_seconds_total[{rate_window}])) * 1000"
    """CPU in use per node, millicores. cAdvisor's per-container counters, so usage above capacity
    (contention) shows; node-exporter's idle time saturates at 100 %."""
    cpu_alloc_milli: str = 'sum by (node) (kube_node_status_allocatable{{resource="cpu"}}) * 1000'
    """Allocatable CPU per node, millicores (kube-state-metrics)."""
    mem_used_mib: str = "sum by (node) (container_memory_working_set_bytes) / 1048576"
    """Working set per node, MiB."""
    rate_window: str = "3m"
    """Range of ``rate()``: at least two samples of the scrape (or backfill) step."""
    node_labels: tuple[str, ...] = ("node", "instance")
    """Label naming the node in a result series; the first one present wins."""

    def rendered(self) -> dict[str, str]:
        return {column: getattr(self, column).format(rate_window=self.rate_window)
                for column in ("cpu_used_milli", "cpu_alloc_milli", "mem_used_mib")}


@dataclass(frozen=True)
class SnapshotSettings:
    step_s: int = 60
    """Resolution of the snapshot (Prometheus ``query_range`` step), seconds."""
    queries: PrometheusQueries = field(default_factory=PrometheusQueries)
    spool_dir: Path | None = None
    """Where partitions wait while the object store is down; delivered by the next run."""
    timeout_s: float = 30.0
    """Timeout of one Prometheus query, seconds."""

    def __post_init__(self) -> None:
        if self.step_s <= 0 or HOUR_S % self.step_s:
            raise InputError("the snapshot step must divide an hour", "snapshot settings", f"got {self.step_s} s")


@dataclass(frozen=True)
class WorldSettings:
    """The simulated cluster of ``neurokube nightly`` when no trace is given (a synthetic one)."""

    nodes: int = 10
    workloads: int = 60
    target_load: float = 0.5
    seed: int = 0
    epsilon: float = 0.1
    """Exploration around the serving policy while logging decisions (gives OPE its propensities)."""
    eval_hours: float = 6.0
    """Length of the held-out trace every night's candidate is replayed on."""


@dataclass(frozen=True)
class PromotionRule:
    """A candidate becomes ``champion`` only if, replayed on the held-out trace, its cost
    (``weights.cost(contention_core_s, node_hours)``) is below the incumbent's by at least
    ``min_relative_gain`` and its pending pod-seconds are at most ``max_pending_ratio`` times the
    incumbent's. The incumbent is the current champion, or the default policy when there is none
    (that is what serves then)."""

    min_relative_gain: float = 0.01
    max_pending_ratio: float = 1.10

    def __post_init__(self) -> None:
        if not 0 <= self.min_relative_gain < 1 or self.max_pending_ratio < 1:
            raise InputError("bad promotion rule", "promotion settings", str(self))


@dataclass(frozen=True)
class NightlySettings:
    model_name: str = "neurokube-placement"
    alias: str = "champion"
    experiment: str = "neurokube-nightly"
    lookback_days: int = 7
    """Train on the decision logs of this many days up to the night."""
    fit: FitSettings = field(default_factory=lambda: FitSettings(rounds=40, min_data_in_leaf=20))
    weights: RewardWeights = field(default_factory=RewardWeights)
    promotion: PromotionRule = field(default_factory=PromotionRule)
    world: WorldSettings = field(default_factory=WorldSettings)
    ope_sample: int = 5000
    """Logged decisions drawn for the off-policy estimate."""

    def __post_init__(self) -> None:
        if self.lookback_days <= 0:
            raise InputError("lookback_days must be positive", "nightly settings", str(self.lookback_days))
