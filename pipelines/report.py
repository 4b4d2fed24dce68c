"""The figures a night logs to MLflow and the loop writes: learning curve, feature importance."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from neurokube.features import FEATURE_NAMES  # noqa: E402
from neurokube.model.value_model import ValueModel  # noqa: E402


def plot_days(path: Path, rows: list[dict], title: str) -> Path:
    """Contention and node-hours per day; each point labelled with the model that served the day."""
    x = list(range(1, len(rows) + 1))
    fig, ax1 = plt.subplots(figsize=(8, 4.2))
    ax1.plot(x, [r["contention_core_s"] for r in rows], "o-", color="tab:red", label="contention (core-s)")
    ax1.set_ylabel("CPU contention (core-s per day)", color="tab:red")
    ax1.set_xlabel("day")
    ax1.set_xticks(x, [f"{r['date']}\n{r['served']}" for r in rows], fontsize=8)
    twin = ax1.twinx()
    twin.plot(x, [r["node_hours"] for r in rows], "s--", color="tab:blue", label="node-hours")
    twin.set_ylabel("node-hours per day", color="tab:blue")
    ax1.set_title(title)
    ax1.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_importance(path: Path, model: ValueModel) -> Path:
    """Total split gain per feature, for each of the model's two regressors."""
    fig, axes = plt.subplots(1, len(model.boosters), figsize=(11, 4.5), sharey=True)
    for ax, (name, booster) in zip(axes, model.boosters.items(), strict=True):
        gain = booster.feature_importance(importance_type="gain")
        ax.barh(FEATURE_NAMES, gain, color="tab:green")
        ax.set_title(f"{name}: gain per feature")
        ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
