"""Writers for replay outputs: the JSON report and the per-policy placements CSVs."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd

from neurokube.sim.engine import ReplayResult
from neurokube.trace.model import Trace

PLACEMENT_COLUMNS = ("pod", "node", "bind_s")


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.generic):
        return _clean(value.item())
    return value


def pod_keys(trace: Trace) -> np.ndarray:
    """The ``pod`` column: the pod name, or ``namespace/name`` when names repeat across namespaces."""
    names = trace.pods.name.astype(str)
    if len(set(names)) == len(names):
        return names
    return np.char.add(np.char.add(trace.pods.namespace.astype(str), "/"), names)


def write_json(path: Path, trace_ref: str, results: list[ReplayResult], config: dict[str, Any]) -> None:
    doc = {
        "trace": trace_ref,
        "config": config,
        "policies": {r.policy: {k: _clean(v) for k, v in r.metrics.items()} for r in results},
        "replay_end_s": {r.policy: r.end_s for r in results},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")


def placements_file(policy: str) -> str:
    """The placements file name of a policy key: ``<spec>.csv`` with ``/``, ``%`` and other characters
    that are unsafe in a file name percent-encoded (``neurokube:model=out/m`` -> ``neurokube:model=out%2Fm.csv``)."""
    name = quote(policy, safe=":=,.+-_@ ")
    if name in ("", ".", ".."):
        name = quote(name, safe="") or "_"
    return f"{name}.csv"


def write_placements(directory: Path, trace: Trace, result: ReplayResult) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    bound = result.node_of >= 0
    frame = pd.DataFrame({
        "pod": pod_keys(trace),
        "node": np.where(bound, trace.nodes.name[np.maximum(result.node_of, 0)], ""),
        "bind_s": np.where(bound, result.bind_s, np.nan),
    })
    path = directory / placements_file(result.policy)
    frame.to_csv(path, index=False)
    return path
