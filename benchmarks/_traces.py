"""The real-data traces the benchmarks share: where the workload data is, how a trace is built from
it, and which seeds train the models and which are kept unseen for evaluation.

Every benchmark that trains on some traces and reports on others uses these, so that "trained on
real-0 and real-2, evaluated on real-101 and real-202-40n" means the same traces everywhere.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
NK = str(ROOT / ".venv" / "bin" / "neurokube")

#: name -> `neurokube trace build` arguments beyond the data: the training traces ...
TRAIN = {"real-0": ["--seed", "0"], "real-2": ["--seed", "2"]}
#: ... and the evaluation traces no model trains on or is tuned with.
EVAL = {"real-101": ["--seed", "101"], "real-202-40n": ["--seed", "202", "--nodes", "40", "--target-load", "0.75"]}

#: Traces for choosing settings: neither trained on nor reported as the result (docs/LEARNING.md).
VALIDATION = {"real-3": ["--seed", "3"], "real-4-40n": ["--seed", "4", "--nodes", "40", "--target-load", "0.75"]}

#: The workload data `neurokube trace build` reads (docs/TRACES.md), by option.
RAW = {"--openb-pods": DATA / "alibaba-openb" / "openb_pod_list_default.csv",
       "--openb-nodes": DATA / "alibaba-openb" / "openb_node_list_all_node.csv",
       "--bitbrains": DATA / "bitbrains-rnd-2013-7"}


def raw_args() -> list[str]:
    """The data options of `neurokube trace build`."""
    return [str(x) for option, path in RAW.items() for x in (option, path)]


def missing_data() -> list[str]:
    """The data paths that do not exist (empty: the real-data benchmarks can run)."""
    return [str(path) for path in RAW.values() if not path.exists()]


def ensure_trace(path: Path, seed_args: list[str]) -> Path:
    """``path``, built from the data with ``seed_args`` unless a trace is there already."""
    if not (path / "pods.csv").is_file():
        subprocess.run([NK, "trace", "build", *raw_args(), "--out", str(path), *seed_args], check=True,
                       stdout=subprocess.DEVNULL)
    return path
