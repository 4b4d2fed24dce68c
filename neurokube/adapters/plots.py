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


def plot_learning_curve(path: Path, curve: list[dict], ope: list[dict]) -> Path:
    """Per iteration: contention and node-hours of the greedy model, and reward per decision
    measured in replay beside its off-policy estimates."""
    it = [r["iteration"] for r in curve]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
    ax1.plot(it, [r["contention_core_s"] for r in curve], "o-", color="tab:red", label="contention (core-s)")
    ax1.set_xlabel("iteration")
    ax1.set_ylabel("mean contention per training trace (core-s)", color="tab:red")
    twin = ax1.twinx()
    twin.plot(it, [r["node_hours"] for r in curve], "s--", color="tab:blue", label="node-hours")
    twin.set_ylabel("mean node-hours per training trace", color="tab:blue")
    ax1.set_title("greedy model on the training traces")
    ax2.plot(it, [r["actual"] for r in ope], "o-", color="black", label="actual (replay)")
    for key, style in (("ips", "v:"), ("snips", "^:"), ("dr", "s--")):
        ax2.plot(it, [r[key] for r in ope], style, label=f"OPE {key.upper()}")
    ax2.set_xlabel("iteration")
    ax2.set_ylabel("reward per decision (minus cost)")
    ax2.set_title("off-policy estimates vs. replay")
    ax2.legend(fontsize=8)
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
