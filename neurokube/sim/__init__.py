"""Replay simulator: pods arrive, a policy binds them, usage follows their profiles."""

from neurokube.sim.config import SimConfig
from neurokube.sim.engine import ReplayResult, replay

__all__ = ["ReplayResult", "SimConfig", "replay"]
