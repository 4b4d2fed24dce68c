"""Pinned replay: a refactor must keep the simulator's behaviour identical.

The test synthesizes a small trace with a fixed seed (``neurokube trace synth``, into tmp_path),
replays it with every registered policy (``neurokube replay``; the learned ``neurokube`` policy needs
a model and is left out; ``random`` is seeded and ``oracle`` reads the trace, so both are
deterministic) and compares against tests/unit/data/replay_pinned.json:

* the SHA-256 of each trace file (``profiles.csv.gz`` decompressed: gzip stamps a time), so a
  change in the synthesizer is told apart from a change in the replay;
* per policy, the SHA-256 of its placement rows (``pod,node,bind_s``, sorted) and their count;
* per policy, every metric of the ``--json`` report except the decision-time percentiles
  (``decision_us_*``, wall-clock), and the replay's end time. Integers and strings must be equal,
  floats equal to a relative 1e-9 (summation order may move the last bits, nothing more).

Re-pin only when a behaviour change is intended, and say why in the commit:

    NEUROKUBE_REPIN=1 .venv/bin/pytest tests/unit/test_replay_pinned.py -rs

That rewrites the JSON file and reports the test as skipped; without the variable the file is never
written, and a missing or stale pin fails.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
from pathlib import Path

import pytest

from neurokube.cli.main import main
from neurokube.policies.registry import POLICY_NAMES

PINNED = Path(__file__).parent / "data" / "replay_pinned.json"
REPIN = os.environ.get("NEUROKUBE_REPIN") == "1"
# Small and busy: 10 nodes at 0.9 target load, so the policies differ in contention, overflow and
# pending time. About two seconds to synthesize and two to replay.
SYNTH_ARGS = ["--hours", "4", "--warmup-hours", "2", "--nodes", "10", "--workloads", "40",
              "--target-load", "0.9", "--seed", "7"]
REPLAY_ARGS = ["--seed", "0"]
POLICIES = POLICY_NAMES
UNPINNED_PREFIX = "decision_us_"
REL = 1e-9


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def placements_digest(path: Path) -> tuple[str, int]:
    header, *rows = path.read_text(encoding="utf-8").splitlines()
    assert header == "pod,node,bind_s", header
    return sha256("\n".join([header, *sorted(rows)]).encode()), len(rows)


def observe(tmp: Path) -> dict:
    """Synthesize, replay and reduce the run to what is pinned."""
    trace, report, placements = tmp / "trace", tmp / "replay.json", tmp / "placements"
    assert main(["trace", "synth", "--out", str(trace), *SYNTH_ARGS]) == 0
    policy_args = [arg for name in POLICIES for arg in ("--policy", name)]
    assert main(["replay", "--trace", str(trace), *policy_args, *REPLAY_ARGS,
                 "--json", str(report), "--placements-out", str(placements)]) == 0
    files = {p.name: sha256(gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes())
             for p in sorted(trace.iterdir())}
    data = json.loads(report.read_text(encoding="utf-8"))
    policies = {}
    for name, metrics in data["policies"].items():
        digest, rows = placements_digest(placements / f"{name}.csv")
        policies[name] = {
            "placements_sha256": digest,
            "placements": rows,
            "replay_end_s": data["replay_end_s"][name],
            "metrics": {k: v for k, v in sorted(metrics.items()) if not k.startswith(UNPINNED_PREFIX)},
        }
    return {"synth_args": SYNTH_ARGS, "replay_args": REPLAY_ARGS, "config": data["config"],
            "trace_sha256": files, "policies": policies}


def number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def differences(pinned, observed, path: str = "") -> list[str]:
    """Every leaf where the two differ, as ``path: pinned != observed``."""
    if isinstance(pinned, dict) and isinstance(observed, dict):
        out = [f"{path}/{k}: missing from the run" for k in pinned.keys() - observed.keys()]
        out += [f"{path}/{k}: not pinned" for k in observed.keys() - pinned.keys()]
        for k in sorted(pinned.keys() & observed.keys()):
            out += differences(pinned[k], observed[k], f"{path}/{k}")
        return out
    if number(pinned) and number(observed) and float in (type(pinned), type(observed)):
        same = math.isclose(pinned, observed, rel_tol=REL, abs_tol=REL)
    else:
        same = pinned == observed
    return [] if same else [f"{path}: pinned {pinned!r} != now {observed!r}"]


@pytest.fixture(scope="module")
def observed(tmp_path_factory):
    return observe(tmp_path_factory.mktemp("replay_pinned"))


def test_replay_matches_the_pin(observed):
    if REPIN:
        PINNED.parent.mkdir(parents=True, exist_ok=True)
        PINNED.write_text(json.dumps(observed, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        pytest.skip(f"NEUROKUBE_REPIN=1: re-pinned {PINNED}; review its diff before committing")
    assert PINNED.exists(), f"{PINNED} is missing: generate it with NEUROKUBE_REPIN=1 (see the module docstring)"
    pinned = json.loads(PINNED.read_text(encoding="utf-8"))
    diffs = differences(pinned, observed)
    assert not diffs, ("the replay no longer matches the pin (if the change is intended, re-pin with "
                       "NEUROKUBE_REPIN=1):\n" + "\n".join(diffs))


def test_the_pin_covers_every_registered_policy():
    if REPIN:
        pytest.skip("re-pinning")
    pinned = json.loads(PINNED.read_text(encoding="utf-8"))
    assert sorted(pinned["policies"]) == sorted(POLICIES)


def test_the_comparison_sees_a_change():
    pinned = {"a": {"x": 1.0, "n": 3, "h": "ab"}}
    assert differences(pinned, {"a": {"x": 1.0 + 1e-12, "n": 3, "h": "ab"}}) == []
    assert differences(pinned, {"a": {"x": 1.001, "n": 3, "h": "ab"}}) == ["/a/x: pinned 1.0 != now 1.001"]
    assert differences(pinned, {"a": {"x": 1.0, "n": 4, "h": "ab", "y": 0}}) == [
        "/a/y: not pinned", "/a/n: pinned 3 != now 4"]
