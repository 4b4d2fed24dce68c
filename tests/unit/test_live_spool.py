"""The decision spool on local disk (neurokube/live/spool.py):

* frames round-trip; a reader stops at a torn or corrupt tail;
* the bound: the spool never holds more than ``max_bytes``; the oldest segments go first and every
  dropped record is reported; the newest survive;
* resume: a left-over open segment is cut to its last whole frame and sealed; part numbers go on;
* SIGKILL: a child process spools decisions (its shipper running against a local store) and
  reports each one after ``record`` returned; killed mid-stream, a new process resumes the spool
  and ships every reported decision: none lost, none duplicated.
"""

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from neurokube.adapters.objectstore import LocalDirStore
from neurokube.live.spool import FRAME, Spool, frame, parse_frames

ROOT = Path(__file__).resolve().parents[2]


def spool(tmp_path, **kw):
    drops = []
    kw = {"max_bytes": 1 << 20, "segment_records": 100, "segment_bytes": 1 << 20, **kw}
    s = Spool(tmp_path / "spool", "r", on_drop=lambda records, size: drops.append(records), **kw)
    return s, drops


def test_frames_round_trip_and_a_torn_tail_is_ignored():
    data = frame(b"one") + frame(b"") + frame(b"three")
    assert parse_frames(data) == ([b"one", b"", b"three"], len(data))
    assert parse_frames(data + frame(b"four")[:-1])[0] == [b"one", b"", b"three"]  # cut mid-payload
    assert parse_frames(data + b"\x01\x02")[0] == [b"one", b"", b"three"]  # cut mid-header
    bad = bytearray(frame(b"four"))
    bad[-1] ^= 0xFF
    assert parse_frames(data + bytes(bad) + frame(b"five"))[0] == [b"one", b"", b"three"]  # crc mismatch


def test_append_seal_read_remove(tmp_path):
    s, _ = spool(tmp_path, segment_records=2)
    assert s.append(b"a") is False and s.append(b"b") is True  # full at 2 records: due for sealing
    segment = s.seal()
    assert segment.records == 2 and segment.path.suffix == ".seg" and s.read(segment) == [b"a", b"b"]
    s.append(b"c")
    assert s.unshipped() == [b"a", b"b", b"c"] and s.pending_records == 3 and s.segments == 2
    s.remove(segment)
    assert not segment.path.exists() and s.unshipped() == [b"c"] and s.used_bytes == FRAME.size + 1
    s.close()


def test_the_bound_drops_the_oldest_segments_and_counts_them(tmp_path):
    record = b"x" * 992  # 1000 bytes per frame
    s, drops = spool(tmp_path, max_bytes=10_000, segment_records=3, segment_bytes=1 << 20)
    for i in range(40):
        s.append(record[:-3] + b"%03d" % i)
        if s.due(max_age_s=60):
            s.seal()
        assert s.used_bytes <= 10_000
    kept = s.unshipped()
    assert sum(drops) + len(kept) == 40 and sum(drops) > 0
    assert [int(r[-3:]) for r in kept] == list(range(40 - len(kept), 40))  # the newest survive, in order
    assert sum(p.stat().st_size for p in s.dir.glob("*.*") if p.suffix in (".seg", ".open")) == s.used_bytes
    s.close()


def test_a_record_larger_than_the_bound_is_dropped_not_written(tmp_path):
    s, drops = spool(tmp_path, max_bytes=100)
    s.append(b"y" * 200)
    assert drops == [1] and s.unshipped() == []
    s.close()


def test_resume_cuts_a_torn_tail_and_continues_the_numbering(tmp_path):
    s, _ = spool(tmp_path)
    s.append(b"a")
    s.seal()
    s.append(b"b")
    s.append(b"c")
    open_path = next(s.dir.glob("*.open"))
    with open(open_path, "ab") as f:  # what a process killed in the middle of a write leaves
        f.write(frame(b"never acknowledged")[:7])
    os.close(s._lock_fd)  # the process dies: no seal, the slot's lock goes with it
    s._lock_fd = None
    again, _ = spool(tmp_path)
    assert again.dir == s.dir and again.id == s.id and again.resumed == 3
    assert again.unshipped() == [b"a", b"b", b"c"] and not list(again.dir.glob("*.open"))
    assert again.used_bytes == 3 * FRAME.size + 3
    again.append(b"d")
    assert again.seal().seq > max(seg.seq for seg in again.sealed()[:-1])
    again.close()


CHILD = """
import sys, time
import numpy as np
from pathlib import Path
from neurokube.adapters.objectstore import LocalDirStore
from neurokube.features.placement import N_FEATURES
from neurokube.live.decisions import DecisionLog, LiveDecision, new_decision_id
from neurokube.live.telemetry import Telemetry
from neurokube.policies.base import PodSpec

spool, store = Path(sys.argv[1]), LocalDirStore(sys.argv[2])
log = DecisionLog(store, "decisions", "child", Telemetry(), spool_dir=spool, batch=7, flush_s=0.05)
log.start()
features = np.random.default_rng(0).random((3, N_FEATURES)).astype(np.float32)
i = 0
while True:
    d = LiveDecision(new_decision_id("child"), time.time(), f"ns/p{i}", f"uid-{i}", "ns/w", PodSpec(100, 64),
                     "neurokube", "v1", "", ("a", "b", "c"), i % 3, np.full(3, 1 / 3), features)
    log.record(d)
    sys.stdout.write(d.decision_id + "\\n")  # acknowledged: record() has returned
    sys.stdout.flush()
    i += 1
    time.sleep(0.0005)
"""


def test_sigkill_mid_stream_loses_no_acknowledged_record(tmp_path):
    store = LocalDirStore(tmp_path / "store")
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path / "spool"), str(tmp_path / "store")],
                             cwd=ROOT, stdout=subprocess.PIPE, text=True)
    acknowledged = []
    deadline = time.monotonic() + 60
    while (len(acknowledged) < 400 or not store.list("decisions/")) and time.monotonic() < deadline:
        line = child.stdout.readline()
        if not line:
            break
        acknowledged.append(line.strip())
    shipped_before_kill = len(store.list("decisions/"))
    child.send_signal(signal.SIGKILL)
    acknowledged += [line.strip() for line in child.stdout.read().splitlines() if line.strip()]
    child.stdout.close()
    child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL and len(acknowledged) >= 400
    assert shipped_before_kill > 0  # the shipper was running: some segments were in the store already

    from neurokube.live.decisions import DecisionLog
    from neurokube.live.telemetry import Telemetry

    resumed = DecisionLog(store, "decisions", "child", Telemetry(), spool_dir=tmp_path / "spool")
    assert resumed.spool.resumed > 0  # the killed child left records behind
    resumed.flush()
    ids = []
    for key in store.list("decisions/"):
        if key.endswith(".decisions.parquet"):
            ids += pd.read_parquet(io.BytesIO(store.get_bytes(key)), columns=["decision_id"])["decision_id"].tolist()
    missing = set(acknowledged) - set(ids)
    assert not missing, f"{len(missing)} acknowledged records lost"
    assert len(ids) == len(set(ids))  # re-shipped segments overwrote their own parts
    resumed.close()
    print(f"\n{len(acknowledged)} acknowledged, {len(ids)} shipped (the rest were spooled but not acknowledged)")
