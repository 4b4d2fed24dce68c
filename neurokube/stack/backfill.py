"""Backfill a past window of emulated series into the stack's Prometheus.

Steps: sample the usage source over the window into OpenMetrics text
(:mod:`neurokube.emulator.openmetrics`); ``promtool tsdb create-blocks-from openmetrics`` turns it
into TSDB blocks (2-hour aligned) in a staging directory; the blocks are moved into the data
directory; Prometheus is restarted so that it opens them at once.

Why the restart: Prometheus 2.42 rescans its data directory for new blocks about once a minute
(blocks moved in by hand became queryable 45 s later here), and opens every block at start-up;
restarting it makes the window queryable at once, at the price of a gap of 5-10 s in the live
scrapes (a starting Prometheus applies its scrape targets on a 5 s tick); ``restart=False`` avoids
the gap and waits for the rescan instead. Overlapping blocks need no flag since 2.39 (vertical
compaction is always on). Samples older than the retention are deleted at the next compaction,
so windows reaching back further are refused.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from neurokube.adapters.usage import UsageSource
from neurokube.cluster.processes import print_log_tail
from neurokube.emulator.openmetrics import check_labels, write_window
from neurokube.errors import InputError, TemporaryError
from neurokube.logs import event
from neurokube.stack import control, install, promconfig, state
from neurokube.stack.state import Layout

log = logging.getLogger("neurokube.stack")

_ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
_DURATION_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}


@dataclass(frozen=True)
class BackfillResult:
    start_s: float
    end_s: float
    samples: int
    blocks: list[str]


def backfill(state_dir: Path, source: UsageSource, start_s: float, end_s: float, step_s: float = 60.0,
             out: IO[str] | None = None, now_s: float | None = None, restart: bool = True,
             labels: Mapping[str, str] | None = None) -> BackfillResult:
    """Write the window ``[start_s, end_s]`` sampled every ``step_s`` into the running stack's Prometheus.

    With ``restart`` (the default) the window is queryable when this returns; without, Prometheus
    picks the blocks up at its next rescan, within about a minute. ``labels`` go on every series
    besides ``job``: a cluster's own label (``{"cluster": "prod-eu-1"}``), so that snapshots of that
    cluster select exactly these series (``PrometheusQueries.selector``).
    """
    out = out or sys.stderr
    extra = {**(labels or {}), "job": promconfig.EMULATOR_JOB}
    check_labels(extra)
    layout = Layout(state_dir)
    now_s = time.time() if now_s is None else now_s
    with state.locked(layout):
        record = control.running_record(layout)
        oldest = now_s - retention_seconds(record.retention)
        if start_s < oldest:
            raise InputError(f"the window starts {(now_s - start_s) / 86400:.1f} days ago, beyond the Prometheus "
                             f"retention of {record.retention}", why="its samples would be deleted at the next "
                             "compaction; start the stack with a longer retention")
        if end_s > now_s:
            raise InputError("the backfill window ends in the future", why=f"end {end_s:.0f} > now {now_s:.0f}")
        tools = install.ensure_tools(out, install=False)
        work = layout.backfill / time.strftime("%Y%m%dT%H%M%S", time.gmtime(now_s))
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        openmetrics = work / "window.om"
        with open(openmetrics, "w") as handle:
            samples = write_window(source, start_s, end_s, step_s, handle, extra)
        if samples == 0:
            raise InputError("the usage source has no nodes or pods in the window", why="nothing to backfill")
        print(f"  wrote {samples} samples to {openmetrics}", file=out, flush=True)
        blocks = _create_blocks(tools.promtool, openmetrics, work / "blocks", layout.log("backfill"), out)
        for block in blocks:
            os.replace(work / "blocks" / block, layout.prometheus_data / block)
        print(f"  moved {len(blocks)} blocks into {layout.prometheus_data}", file=out, flush=True)
        if restart:
            print("  restarting Prometheus to load them", file=out, flush=True)
            control.restart_prometheus(layout, record, out)
            state.save(layout, record)
        else:
            print("  Prometheus loads them at its next rescan, within about a minute", file=out, flush=True)
        shutil.rmtree(work)
    event(log, "backfilled", start_s=start_s, end_s=end_s, step_s=step_s, samples=samples, blocks=blocks)
    return BackfillResult(start_s, end_s, samples, blocks)


def retention_seconds(retention: str) -> float:
    match = re.fullmatch(r"(\d+)(ms|s|m|h|d|w|y)", retention)
    if not match:
        raise InputError(f"invalid retention {retention!r}")
    return int(match.group(1)) * _DURATION_S[match.group(2)]


def _create_blocks(promtool: Path, openmetrics: Path, target: Path, log_path: Path, out: IO[str]) -> list[str]:
    argv = [str(promtool), "tsdb", "create-blocks-from", "openmetrics", str(openmetrics), str(target)]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as log_handle:
        log_handle.write(f"\n$ {' '.join(argv)}\n")
        log_handle.flush()
        try:
            proc = subprocess.run(argv, stdout=log_handle, stderr=subprocess.STDOUT, check=False)
        except OSError as exc:
            raise TemporaryError(f"cannot run {promtool}: {exc}") from None
    if proc.returncode != 0:
        print_log_tail(log_path, out)
        raise TemporaryError(f"promtool could not create blocks from {openmetrics} (status {proc.returncode}); "
                             f"log: {log_path}")
    blocks = sorted(p.name for p in target.iterdir() if _ULID.match(p.name) and (p / "meta.json").is_file())
    if not blocks:
        raise TemporaryError(f"promtool created no blocks from {openmetrics}; log: {log_path}")
    return blocks
