"""Simulator settings (all times in seconds)."""

from __future__ import annotations

from dataclasses import dataclass

from neurokube.errors import InputError


@dataclass(frozen=True)
class SimConfig:
    step_s: int = 60
    """Length of one simulation step; policies bind queued pods at the start of each step."""
    scrape_s: int = 60
    """Prometheus scrape interval: node usage is sampled at multiples of it."""
    window_s: int = 300
    """Metrics window: load-aware policies see mean/max/std/trend over the last ``window_s``."""
    lag_s: int = 60
    """A sample taken at ``tau`` (usage during ``[tau, tau + step)``) is readable from ``tau + lag_s``."""
    hot_threshold: float = 0.8
    """A node-step is hot when CPU usage exceeds this share of capacity."""
    drain_limit_s: int = 7 * 86400
    """Replay at most this long past the last pod's would-be end, then stop."""
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("step_s", "scrape_s", "window_s"):
            if getattr(self, name) <= 0:
                raise InputError(f"{name} must be positive", "simulator settings",
                                 f"got {getattr(self, name)}")
        if self.scrape_s % self.step_s:
            raise InputError("scrape_s must be a multiple of step_s", "simulator settings",
                             f"scrape {self.scrape_s} s, step {self.step_s} s")
        if self.window_s < self.scrape_s:
            raise InputError("window_s must be at least scrape_s", "simulator settings")
        if self.lag_s < self.step_s:
            raise InputError("lag_s must be at least one step", "simulator settings",
                             "a step's usage is only known once the step is over")
