"""benchmarks/extender_latency.py's paced measurement (issue 13).

* In-process at 100 nodes: the paced columns exist for NodeNames (the deployed mode) and only
  there, one sample per measured pod, each call at least as long as its own CPU time, and none
  with ``pause_ms=0``.
* The report shows the paced columns and judges the paced p99 against the goal, and leaves them
  out when nothing was paced.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from benchmarks import extender_latency

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def nkload_on_path():
    sys.path.insert(0, str(ROOT / "load"))
    yield
    sys.path.remove(str(ROOT / "load"))


def test_paced_prioritize_is_measured_in_the_deployed_mode_only(nkload_on_path) -> None:
    out = extender_latency.measure_in_process(100, calls=4, pause_ms=2.0)
    names, nodes = out["NodeNames"], out["Nodes"]
    assert names["paced"]["n"] == names["paced_cpu"]["n"] == 4
    assert names["paced"]["p50"] >= names["paced_cpu"]["p50"] * 0.99  # wall includes the CPU
    assert "paced" not in nodes and "paced_cpu" not in nodes
    assert "paced" not in extender_latency.measure_in_process(100, calls=2, pause_ms=0.0)["NodeNames"]


def _stats(p50: float, p99: float) -> dict:
    return {"p50": p50, "p99": p99, "max": p99, "n": 10}


def _row(paced_p99: float | None) -> dict:
    row = {key: _stats(1.0, 1.5) for key in ("filter", "prioritize", "pod", "prioritize_cpu")}
    if paced_p99 is not None:
        row |= {"paced": _stats(3.0, paced_p99), "paced_cpu": _stats(2.0, 2.5)}
    return row | {"digest": "x", "gc2": 0, "gc2_max_ms": 0.0}


def test_the_report_judges_the_paced_p99() -> None:
    new = {"in-process:1000": {"NodeNames": _row(5.7), "Nodes": _row(None)}}
    text = extender_latency.report(new, None, None, 10, [0.4], pause_ms=50.0)
    header = next(line for line in text.splitlines() if line.startswith("| nodes"))
    assert "paced prioritize p50 / p99" in header and "paced CPU p50 / p99" in header
    names = next(line for line in text.splitlines() if "| NodeNames |" in line)
    assert "3.00 / 5.70" in names and "(paced: NOT met)" in names
    assert "(paced:" not in next(line for line in text.splitlines() if "| Nodes |" in line)
    assert "each after a 50 ms pause" in text

    met = extender_latency.report({"in-process:1000": {"NodeNames": _row(4.9)}}, None, None, 10, [0.4],
                                  pause_ms=50.0)
    assert "(paced: met)" in met
    plain = extender_latency.report({"in-process:1000": {"NodeNames": _row(None)}}, None, None, 10, [0.4])
    assert "paced" not in plain
