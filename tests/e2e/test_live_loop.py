"""``neurokube loop live``, short: two days of a small synthetic trace through the real apiserver, once with
kube-scheduler and once with the NeuroKube binder, with the real stack (Prometheus scraping the emulator every
second, MinIO, MLflow) and a night in between that trains on the live records only.

What must hold: every pod of both runs is bound, the outcomes come back from Prometheus (node-hours > 0, in trace
units), the night finds the binder's decision records and the snapshot in MinIO, and day 2 is served by the
champion when the night promoted one. The 3-day curve at full size is a benchmark (docs/BENCHMARKS.md), not this.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from neurokube.adapters.trace_files import write_trace
from neurokube.cluster.build import find_go
from neurokube.trace.assemble import ArrivalSettings
from neurokube.trace.synth import SynthSettings, synth_trace

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    if find_go() is None:
        pytest.skip("no Go toolchain: the local control plane cannot be built")
    root = tmp_path_factory.mktemp("live-loop")
    # pods that often use more CPU than they request, so that nodes do overflow (contention to learn from)
    trace = synth_trace("live", SynthSettings(arrivals=ArrivalSettings(hours=1, target_load=0.7, warmup_hours=0,
                                                                       seed=11), nodes=6, workloads=10,
                                              qos_shares=(0.1, 0.5, 0.4), cpu_level_median=(0.9, 1.4, 1.0),
                                              cpu_level_sigma=0.8))
    write_trace(trace, root / "trace")
    out = root / "loop.json"
    argv = [sys.executable, "-m", "neurokube.cli.main", "loop", "live", "--trace", str(root / "trace"), "--days", "2",
            "--nodes", "6", "--slice-hours", "0.5", "--speed", "120", "--rounds", "10", "--state-dir",
            str(root / "state"), "--json", str(out)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    print(result.stdout)  # the loop's table, in the test's report when an assertion below fails
    return result, json.loads(out.read_text()), trace


def test_every_pod_of_both_runs_is_bound_and_measured(ran):
    _, doc, trace = ran
    assert [d["day"] for d in doc["days"]] == [1, 2]
    for d, day in enumerate(doc["days"]):
        expected = int(((trace.pods.creation_s >= d * 1800) & (trace.pods.creation_s < (d + 1) * 1800)).sum())
        for key in ("kube_scheduler", "neurokube"):
            got = day[key]
            assert got["pods"] == expected > 0 and got["unbound"] == 0
            assert got["node_hours"] > 0 and got["contention_core_s"] >= 0 and got["pending_pod_s"] >= 0
        # each of NeuroKube's pods was bound once, by the binder (on its event or by its retry) or the sweeper,
        # as the functions' own counters tell it
        by = day["neurokube"]["bound_by"]
        assert by["binder"] + by["sweeper"] == expected and 0 <= by["release_retry"] <= by["binder"]
        assert by["binder_event"] == by["binder"] - by["release_retry"]


def test_the_night_trains_on_live_records_and_day_two_uses_its_champion(ran):
    result, doc, _ = ran
    first, second = doc["days"]
    assert first["model_version"] is None and first["trained_on"] == "live"
    assert first["decisions"] >= first["neurokube"]["pods"]  # the binder's records reached MinIO
    # ... and before the night asked: no function's spool held a record back (a sweeper without
    # pods get once kept a raced pod's record, and every later one, on its spool)
    assert "decision records not all shipped" not in result.stderr
    assert first["snapshot_rows"] > 0
    assert second["model_version"] == (first["champion"] if first["promoted"] else None)
    assert "ratio" in result.stdout
