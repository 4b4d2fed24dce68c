"""What spooling one decision record costs in the request path (``DecisionLog.intend`` before the
Binding plus ``DecisionLog.settle`` after its answer: the record, then its outcome mark).

A record as the binder makes it (``--candidates`` feasible nodes with the placement features), spooled
to a temporary directory on local disk, with the shipper running against a local-directory store
(``batch`` 200, a seal at least every second), as in production. Prints the median and p99 of the
per-call time, and the encoding's share of it, and writes the "decision-spool" section of
docs/BENCHMARKS.md (both candidate counts unless ``--candidates`` is given; ``--no-docs``: print only)::

    .venv/bin/python -m benchmarks.decision_spool [--records 20000] [--candidates 16] [--no-docs]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from neurokube.adapters.objectstore import LocalDirStore
from neurokube.features.placement import N_FEATURES
from neurokube.live.decisions import DecisionLog, LiveDecision, encode, new_decision_id
from neurokube.live.telemetry import Telemetry
from neurokube.policies.base import PodSpec


def records(n: int, candidates: int) -> list[LiveDecision]:
    rng = np.random.default_rng(0)
    names = tuple(f"node-{i:04d}" for i in range(candidates))
    return [LiveDecision(new_decision_id("bench"), time.time(), f"default/pod-{i}", f"uid-{i:08d}",
                         "default/web", PodSpec(250, 256, 500, 512, 1), "neurokube", "v7", "", names,
                         i % candidates, np.full(candidates, 1.0 / candidates),
                         rng.random((candidates, N_FEATURES)).astype(np.float32)) for i in range(n)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--candidates", type=int, default=None, help="one size (default: 16 and 100)")
    parser.add_argument("--no-docs", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    args = parser.parse_args(argv)
    rows = [measure(args.records, c) for c in ((args.candidates,) if args.candidates else (16, 100))]
    if not args.no_docs:
        from benchmarks._report import write_section

        lines = ["Each record is spooled (one checksummed write to a local segment file) before the Binding is "
                 "posted, and its outcome mark (a second, small write) after the answer; the shipper thread turns "
                 "sealed segments into Parquet parts in a local-directory store meanwhile. Times per record "
                 "(`DecisionLog.intend` plus `DecisionLog.settle`), on the same 2 shared cores as the shipper. The records are "
                 "appended as fast as one thread can (tens of thousands per second, far above a binder's rate), so "
                 "the shipper falls behind: what it had shipped when the log was closed, and what the 256 MiB bound "
                 "dropped (oldest first, counted), are shown too.", "",
                 "| candidates | bytes per record | records | median us | p99 us | encoding alone, median us | "
                 "shipped when closed | dropped by the bound |",
                 "|---:|---:|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| {r['candidates']} | {r['bytes']:,} | {r['records']:,} | {r['median_us']:.1f} | "
                  f"{r['p99_us']:.1f} | {r['encode_us']:.1f} | {r['shipped']:,} | {r['dropped']:,} |" for r in rows]
        write_section("decision-spool", "Decision spool: cost per record in the request path",
                      "python -m benchmarks.decision_spool", "\n".join(lines))


def measure(count: int, candidates: int) -> dict:
    batch = records(count, candidates)
    with tempfile.TemporaryDirectory(prefix="nk-spool-bench-") as tmp:
        telemetry = Telemetry()
        log = DecisionLog(LocalDirStore(Path(tmp) / "store"), "decisions", "bench", telemetry,
                          spool_dir=Path(tmp) / "spool", batch=200, flush_s=1.0)
        log.start()
        took = np.empty(len(batch))
        for i, d in enumerate(batch):
            started = time.perf_counter()
            log.intend(d)
            log.settle(d.decision_id, True)
            took[i] = time.perf_counter() - started
        encode_took = np.empty(len(batch))
        for i, d in enumerate(batch):
            started = time.perf_counter()
            encode(d)
            encode_took[i] = time.perf_counter() - started
        log.close()
        shipped = telemetry.decision_log.labels(result="written")._value.get()
        dropped = telemetry.decision_log.labels(result="dropped")._value.get()
    size = len(encode(batch[0]))
    print(f"{count} records of {candidates} candidates x {N_FEATURES} features ({size} bytes each)")
    print(f"intend() + settle(): median {np.median(took) * 1e6:.1f} us, p99 {np.percentile(took, 99) * 1e6:.1f} us "
          f"(encode alone: median {np.median(encode_took) * 1e6:.1f} us); {shipped:.0f} shipped in all")
    return {"candidates": candidates, "bytes": size, "records": count, "median_us": float(np.median(took) * 1e6),
            "p99_us": float(np.percentile(took, 99) * 1e6), "encode_us": float(np.median(encode_took) * 1e6),
            "shipped": int(shipped), "dropped": int(dropped)}


if __name__ == "__main__":
    main()
