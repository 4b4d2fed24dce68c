"""What a night logs to MLflow and the loop writes: learning curve, feature importance, and the
table of the candidate's estimated and measured cost (``evaluation.md``)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from neurokube.features import FEATURE_NAMES  # noqa: E402
from neurokube.model.value_model import ValueModel  # noqa: E402


def plot_days(path: Path, rows: list[dict], title: str, baseline: str | None = None) -> Path:
    """Contention and node-hours per day; each point labelled with the model that served the day.

    With ``baseline`` (rows carrying ``<baseline>_<metric>`` and ``<metric>_ratio``), the same pods'
    numbers under that policy are drawn dashed, and a second panel shows the served policy's ratio
    to it per day: the like-for-like reading, where 1.0 is "as good as the baseline".
    """
    x = list(range(1, len(rows) + 1))
    labels = [f"{r['date']}\n{r['served']}" for r in rows]
    paired = baseline is not None and all("contention_core_s_ratio" in r for r in rows)
    fig, axes = plt.subplots(1, 2 if paired else 1, figsize=(13 if paired else 8, 4.2), squeeze=False)
    ax1 = axes[0][0]
    ax1.plot(x, [r["contention_core_s"] for r in rows], "o-", color="tab:red", label="contention, served")
    ax1.set_ylabel("CPU contention (core-s per day)", color="tab:red")
    ax1.set_xlabel("day")
    ax1.set_xticks(x, labels, fontsize=8)
    twin = ax1.twinx()
    twin.plot(x, [r["node_hours"] for r in rows], "s-", color="tab:blue", label="node-hours, served")
    twin.set_ylabel("node-hours per day", color="tab:blue")
    if paired:
        ax1.plot(x, [r[f"{baseline}_contention_core_s"] for r in rows], "o:", color="tab:red", alpha=0.6,
                 label=f"contention, {baseline}")
        twin.plot(x, [r[f"{baseline}_node_hours"] for r in rows], "s:", color="tab:blue", alpha=0.6,
                  label=f"node-hours, {baseline}")
        handles = ax1.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
        ax1.legend(handles=handles, fontsize=7, loc="upper left")
        ax2 = axes[0][1]
        for key, style, name in (("contention_core_s_ratio", "o-", "contention"),
                                 ("node_hours_ratio", "s-", "node-hours"),
                                 ("pending_pod_s_ratio", "^-", "pending time")):
            values = [r.get(key) for r in rows]
            ax2.plot(x, [float("nan") if v is None else v for v in values], style, label=name)
        ax2.axhline(1.0, color="grey", lw=1, ls="--")
        ax2.set_xticks(x, labels, fontsize=8)
        ax2.set_xlabel("day")
        ax2.set_ylabel(f"served / {baseline} on the same pods")
        ax2.set_title(f"like for like: ratio to {baseline} (below 1 is better)")
        ax2.legend(fontsize=8)
        ax2.grid(alpha=0.3)
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


def _gain(metrics: dict[str, dict[str, float]], policy: str, incumbent: str) -> str:
    if policy not in metrics or incumbent not in metrics:
        return "-"
    c, i = metrics[policy]["cost"], metrics[incumbent]["cost"]
    if i <= 0:
        return "-"
    return f"{(i - c) / i:+.1%}"


def estimate_table(replay: dict[str, dict[str, float]], rollout: dict | None, incumbent: str,
                   ope: dict[str, float] | None = None, note: str = "") -> str:
    """Markdown: each policy's cost as the rollout estimate puts it on the logged days, beside what
    the replay measures on the held-out trace, each with its gain over ``incumbent``; then the
    rollout's own check and the one-step DR estimate.

    ``rollout`` is :meth:`neurokube.learning.rollout.RolloutEstimate.to_dict`, or None (``note`` says
    why). The two columns are different pods: their costs do not compare, their gains do."""
    est = rollout["metrics"] if rollout else {}
    lines = ["# The candidate, estimated and measured", "",
             "| policy | estimated cost, logged days (rollout) | gain | pending pod-s beyond logged "
             "| measured cost, held-out replay | gain | pending pod-s |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name in ("candidate", "champion", "default"):
        if name not in replay and name not in est:
            continue
        e, m = est.get(name), replay.get(name)
        lines.append(f"| {name}{' (incumbent)' if name == incumbent else ''} | "
                     + (f"{e['cost']:,.1f} | {_gain(est, name, incumbent)} | {e['pending_pod_s']:,.0f}" if e
                        else "- | - | -")
                     + " | " + (f"{m['cost']:,.1f} | {_gain(replay, name, incumbent)} | {m['pending_pod_s']:,.0f}"
                                if m else "- | - | -") + " |")
    lines.append("")
    if rollout:
        lg, rec = rollout["logged"], rollout["reconstruction"]
        ratio = lg["replayed_cost"] / lg["observed_cost"] if lg["observed_cost"] > 0 else float("nan")
        gaps = ", ".join(f"{k} {v:,.0f}" for k, v in rec.items()
                         if k not in ("pods", "nodes", "hours", "step_s") and v)
        lines += [f"Rollout: the logged days rebuilt from the logs ({rec['pods']:,.0f} pods, {rec['nodes']:,.0f} "
                  f"nodes, {rec['hours']:,.1f} h at {rec['step_s']:,.0f} s); every policy replayed on them. Check: "
                  f"the logged placements replayed there cost {lg['replayed_cost']:,.1f}, the samples show "
                  f"{lg['observed_cost']:,.1f} ({ratio:.3f}x). Filled in: {gaps or 'nothing'}.", ""]
    else:
        lines += [f"No rollout estimate: {note or 'none given'}.", ""]
    if ope and ope.get("dr") == ope.get("dr") and "dr" in ope:
        lines.append(f"One-step DR estimate of the candidate's reward per decision: {ope['dr']:,.2f} "
                     f"(logged policy {ope.get('behaviour', float('nan')):,.2f}); it cannot see the state shift.")
        lines.append("")
    lines.append("The estimate is on the logged days' pods, the replay on the held-out trace's: costs do not "
                 "compare across the two, gains do.")
    return "\n".join(lines)
