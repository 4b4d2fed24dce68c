"""Plots (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from neurokube.sim.engine import ReplayResult  # noqa: E402


def _hourly(t_s: np.ndarray, values: np.ndarray, how: str) -> tuple[np.ndarray, np.ndarray]:
    hour = (t_s // 3600).astype(int)
    sums = np.bincount(hour, weights=values)
    if how == "mean":
        sums = sums / np.maximum(np.bincount(hour), 1)
    return np.arange(sums.size), sums


def plot_replay(path: Path, results: list[ReplayResult], title: str) -> Path:
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    for r in results:
        h, cont = _hourly(r.series["t_s"], r.series["contention_core_s"], "sum")
        ax1.plot(h, cont, label=r.policy, linewidth=1.4)
        h, act = _hourly(r.series["t_s"], r.series["active_nodes"], "mean")
        ax2.plot(h, act, label=r.policy, linewidth=1.4)
    ax1.set_ylabel("CPU contention\n(core-seconds per hour)")
    ax1.set_yscale("symlog", linthresh=10)
    ax2.set_ylabel("active nodes (hourly mean)")
    ax2.set_xlabel("hours since trace start")
    ax1.set_title(title)
    ax1.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
