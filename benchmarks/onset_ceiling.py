"""How much onset recall a hot-node warning can reach from the pods already on the node (issue 18).

For each validation trace (synth-3, real-3, real-4: the traces the bottleneck settings were chosen
on, never the evaluation traces synth-2 and real-2), replayed under ``default``, prints the onset
recall with at least 10 minutes of lead and the overall recall of
:func:`neurokube.forecast.bottleneck.known_pod_warnings`: clairvoyant about the future use of the
pods bound to the node at the decision ("bound"), or also of the pods created but still pending
("+ pending"), and blind to pods created later. With every pod known it reproduces the labels
(checked here: mismatches must be 0). Its precision is 1, so its onset recall is what a warning
built from the node's pods reaches without a false warning (docs/FORECASTS.md, Limitations).

Usage: .venv/bin/python benchmarks/onset_ceiling.py   (about 2 minutes; needs ../shared/data for
the real traces, which are skipped with a note without it)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.forecast_quality import BITBRAINS, real, synth  # noqa: E402
from neurokube.forecast import bottleneck  # noqa: E402
from neurokube.forecast.evaluation import prepare  # noqa: E402
from neurokube.policies import make_policy  # noqa: E402
from neurokube.sim import SimConfig, replay  # noqa: E402


def rows(name: str, trace) -> str:
    r = replay(trace, make_policy("default", trace=trace), SimConfig())
    nodes = prepare(trace, r.node_of, r.bind_s).nodes
    settings = bottleneck.BottleneckSettings(use_forecasts=False)  # the labels and look-ahead only
    _, y, _ = bottleneck.node_features(nodes, settings)
    hot = y.astype(bool)
    out = {}
    for label, known in (("all", np.full(len(r.bind_s), -np.inf)), ("bound", None),
                         ("pending", trace.pods.creation_s)):
        warned = bottleneck.known_pod_warnings(trace, r.node_of, r.bind_s, settings, known_s=known)
        report = bottleneck.lead_report(bottleneck.onset_leads(nodes.util, warned, settings))
        out[label] = (report, float(warned[hot].mean()) if hot.any() else float("nan"), int((warned != hot).sum()))
    if out["all"][2]:
        raise SystemExit(f"{name}: with every pod known the warnings differ from the labels in {out['all'][2]} rows")
    (b, b_recall, _), (p, p_recall, _) = out["bound"], out["pending"]
    return (f"| {name} ({b['onset_events_lead']} onsets) | {b['onset_recall_10m']:.2f} | {p['onset_recall_10m']:.2f} "
            f"| {b_recall:.2f} / {p_recall:.2f} |")


def main() -> None:
    traces = [("synth-3", lambda: synth(3))]
    if BITBRAINS.exists():
        traces += [("real-3", lambda: real(3)), ("real-4", lambda: real(4))]
    else:
        print(f"(real traces skipped: {BITBRAINS} not found)")
    print("| trace | onset recall >= 10 min, pods bound by the decision | also pods pending "
          "| overall recall, bound / pending |")
    print("|---|---|---|---|")
    for name, build in traces:
        print(rows(name, build()), flush=True)


if __name__ == "__main__":
    main()
