"""Plots (matplotlib, headless)."""

from __future__ import annotations

import textwrap
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


FAMILY_MARKERS = {"neurokube": "*", "default": "o", "most-allocated": "s", "tlp": "^", "lvrb": "v",
                  "koordinator": "D", "random": "x", "oracle": "P"}


def plot_frontier(path: Path, doc: dict, title: str = "contention against node-hours") -> Path:
    """One panel per trace (and the sum): contention (symlog) against node-hours, pending pod-s as
    colour, one marker per policy family, NeuroKube's Pareto front as a line, each peer's default
    labelled by name and each NeuroKube setting by a number, with the key to the numbers below the
    panels (a dozen settings' full names on top of each other could not be read)."""
    from matplotlib.colors import LogNorm, Normalize

    parts = [*doc["traces"].items()]
    if len(parts) > 1:
        parts.append(("all traces (sum)", doc["total"]))
    numbers = {spec: i for i, spec in enumerate(dict.fromkeys(
        p["spec"] for _, part in parts for p in part["points"] if p["family"] == "neurokube"), start=1)}
    fig, axes = plt.subplots(1, len(parts), figsize=(6.2 * len(parts), 5.4), squeeze=False)
    for ax, (name, part) in zip(axes[0], parts):
        points = part["points"]
        pending = np.array([p["pending_pod_s"] for p in points], dtype=float)
        low, high = float(pending.min()), float(max(pending.max(), pending.min() + 1))
        # one outlier (a filter that leaves pods pending for days) would wash out a linear scale
        norm = LogNorm(vmin=max(low, 1.0), vmax=high) if low > 0 and high / low > 20 else Normalize(vmin=low, vmax=high)
        families = list(dict.fromkeys(p["family"] for p in points))
        for fam in families:
            ps = [p for p in points if p["family"] == fam]
            big = fam == "neurokube"
            sc = ax.scatter([p["node_hours"] for p in ps], [p["contention_core_s"] for p in ps],
                            c=[p["pending_pod_s"] for p in ps], cmap="viridis", norm=norm,
                            marker=FAMILY_MARKERS.get(fam, "o"), s=220 if big else 70,
                            edgecolors="black", linewidths=0.6, label=fam, zorder=3)
            for p in ps:
                if p["default"] or big:
                    text = str(numbers[p["spec"]]) if big else p["spec"]
                    ax.annotate(text, (p["node_hours"], p["contention_core_s"]), fontsize=7,
                                xytext=(4, 4), textcoords="offset points")
        front = {s: i for i, s in enumerate(part["fronts"].get("neurokube", []))}
        fp = sorted((p for p in points if p["spec"] in front), key=lambda p: p["node_hours"])
        if fp:
            ax.plot([p["node_hours"] for p in fp], [p["contention_core_s"] for p in fp], "-", color="tab:red",
                    linewidth=1.6, zorder=2, label="NeuroKube front")
        ax.set_yscale("symlog", linthresh=max(1.0, min((p["contention_core_s"] for p in points
                                                        if p["contention_core_s"] > 0), default=1.0)))
        ax.set_xlabel("node-hours (lower is cheaper)")
        ax.set_ylabel("CPU contention, core-s (lower is better)")
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3)
        fig.colorbar(sc, ax=ax, label="pending pod-s")
    axes[0][0].legend(fontsize=7, loc="best")
    fig.suptitle(textwrap.fill(title, 70 * len(parts)))  # one panel is narrow: wrap, never cut
    key = [f"{n} {_short_label(spec)}" for spec, n in numbers.items()]
    per_line = 2 * len(parts)
    lines = ["NeuroKube settings (C = node_hour_cost):",
             *("  " + "      ".join(key[i:i + per_line]) for i in range(0, len(key), per_line))]
    fig.text(0.01, 0.01, "\n".join(lines), fontsize=8, va="bottom", ha="left", family="monospace")
    fig.tight_layout(rect=(0, 0.025 * (len(lines) + 1), 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _short_label(spec: str) -> str:
    """A NeuroKube point's label on the frontier plot: ``C=120`` for ``neurokube:...node_hour_cost=120``,
    the other arguments as written (``tie_core_s=10``), the plain default as its name."""
    if ":" not in spec:
        return spec
    args = [a for a in spec.split(":", 1)[1].split(",") if not a.startswith("model=")]
    return ",".join(f"C={a.split('=', 1)[1]}" if a.startswith("node_hour_cost=") else a for a in args) or spec
