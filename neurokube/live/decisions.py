"""The live decision log: one record per binding, in the replay's schema, batched to an object store.

Records are built with :class:`~neurokube.model.decision_log.DecisionRecorder` itself, so the
columns, their order and their meaning are those of the simulator's experience, and the learning
loop reads both alike (``decisions`` and ``candidates`` tables, schema checked before writing).
Live specifics: ``source`` is ``live``, ``decision_id`` is ``live:<replica>:<uuid>`` (unique across
replicas and restarts), ``pod_uid`` is filled, ``workload`` is ``namespace/owner``, ``ts_s`` is
epoch seconds, and the outcome columns stay empty until outcomes are joined.

Recording is O(1) in the request path (the features are already computed); a background thread
writes a batch every ``decision_batch`` records or ``decision_flush_s`` seconds as
``<prefix>/<YYYY-MM-DD>/<replica>-<epoch ms>-<n>.{decisions,candidates}.parquet``. A failing store
keeps the batch for the next attempt; beyond ``decision_max_buffered`` the oldest records are
dropped and counted: the log may lose records, scheduling never waits for it.
"""

from __future__ import annotations

import io
import itertools
import logging
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass

import numpy as np
import pandas as pd

from neurokube.errors import NeuroKubeError
from neurokube.live.telemetry import Telemetry
from neurokube.logs import event
from neurokube.model.decision_log import (
    CANDIDATE_COLUMNS,
    DECISION_COLUMNS,
    DecisionRecorder,
    check_schema,
)
from neurokube.policies.base import PodSpec

log = logging.getLogger("neurokube.live.decisions")
SOURCE = "live"


@dataclass(frozen=True)
class LiveDecision:
    decision_id: str
    ts_s: float
    pod: str  # namespace/name
    pod_uid: str
    workload: str
    spec: PodSpec
    policy: str
    model_version: str
    fallback: str
    node_names: tuple[str, ...]  # the candidates' names, in candidate order
    chosen: int  # position in node_names
    propensity: np.ndarray
    features: np.ndarray


class _At:
    """The one attribute of a ClusterView that DecisionRecorder.record reads."""

    def __init__(self, now_s: float) -> None:
        self.now_s = now_s


def new_decision_id(replica: str) -> str:
    return f"{SOURCE}:{replica}:{uuid.uuid4().hex}"


def frames(batch: list[LiveDecision]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``decisions`` and ``candidates`` tables of a batch, via DecisionRecorder."""
    decision_parts, candidate_parts = [], []
    groups: dict[tuple[str, str], list[LiveDecision]] = {}
    for d in batch:
        groups.setdefault((d.policy, d.model_version), []).append(d)
    for (policy, version), group in groups.items():
        names = sorted({n for d in group for n in d.node_names})
        position = {n: i for i, n in enumerate(names)}
        recorder = DecisionRecorder(
            source=SOURCE, policy=policy, node_names=np.asarray(names, dtype=object),
            pod_names=np.asarray([d.pod for d in group], dtype=object),
            workload_names=np.asarray([d.workload for d in group], dtype=object), model_version=version)
        for i, d in enumerate(group):
            spec = PodSpec(d.spec.cpu_request_milli, d.spec.memory_request_mib, d.spec.cpu_limit_milli,
                           d.spec.memory_limit_mib, d.spec.qos, workload=i, index=i)
            candidates = np.array([position[n] for n in d.node_names], dtype=np.int64)
            recorder.record(spec, _At(d.ts_s), candidates, int(candidates[d.chosen]), d.propensity, d.features,
                            d.fallback)  # type: ignore[arg-type]  # only now_s is read
        ids = {f"{SOURCE}:{policy}:{i}": d.decision_id for i, d in enumerate(group)}
        decisions = recorder.decisions()
        decisions["decision_id"] = decisions["decision_id"].map(ids)
        decisions["pod_uid"] = [d.pod_uid for d in group]
        candidates_frame = recorder.candidates()
        candidates_frame["decision_id"] = candidates_frame["decision_id"].map(ids)
        decision_parts.append(decisions)
        candidate_parts.append(candidates_frame)
    decisions = pd.concat(decision_parts, ignore_index=True)[list(DECISION_COLUMNS)]
    candidates = pd.concat(candidate_parts, ignore_index=True)[list(CANDIDATE_COLUMNS)]
    check_schema(decisions, DECISION_COLUMNS, "decisions")
    check_schema(candidates, CANDIDATE_COLUMNS, "candidates")
    return decisions, candidates


def to_parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


class DecisionLog:
    def __init__(self, store, prefix: str, replica: str, telemetry: Telemetry, *, batch: int = 200,
                 flush_s: float = 30.0, max_buffered: int = 20000) -> None:
        """``store`` is an ObjectStore (put_bytes) or None to keep nothing."""
        self.store = store
        self.prefix = prefix.strip("/")
        self.replica = "".join(c if c.isalnum() or c in "-_." else "-" for c in replica) or "replica"
        self.telemetry = telemetry
        self.batch = batch
        self.flush_s = flush_s
        self.max_buffered = max_buffered
        self._pending: deque[LiveDecision] = deque()
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._written = 0
        self._thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        return self.store is not None

    def start(self) -> None:
        if self.enabled and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="decision-log", daemon=True)
            self._thread.start()

    def record(self, decision: LiveDecision) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._pending.append(decision)
            dropped = 0
            while len(self._pending) > self.max_buffered:
                self._pending.popleft()
                dropped += 1
            full = len(self._pending) >= self.batch
        if dropped:
            self.telemetry.decision_log.labels(result="dropped").inc(dropped)
        if full:
            self._wake.set()

    def flush(self) -> int:
        """Write everything pending now (the thread does this on its own); returns records written."""
        if not self.enabled:
            return 0
        total = 0
        with self._write_lock:
            while True:
                with self._lock:
                    batch = list(itertools.islice(self._pending, self.batch))
                if not batch:
                    return total
                try:
                    self._write(batch)
                except (NeuroKubeError, OSError) as exc:
                    self.telemetry.decision_log.labels(result="failed_write").inc(len(batch))
                    event(log, "decision log write failed; keeping the batch", logging.WARNING, error=str(exc),
                          pending=len(self._pending))
                    return total
                written = {id(d) for d in batch}
                with self._lock:  # the batch is still at the head, unless overflow dropped some of it
                    while self._pending and id(self._pending[0]) in written:
                        self._pending.popleft()
                total += len(batch)
                self.telemetry.decision_log.labels(result="written").inc(len(batch))

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self.flush()

    def _write(self, batch: list[LiveDecision]) -> None:
        decisions, candidates = frames(batch)
        stamp = time.gmtime(batch[0].ts_s)
        self._written += 1
        stem = (f"{self.prefix}/{time.strftime('%Y-%m-%d', stamp)}/"
                f"{self.replica}-{int(time.time() * 1000)}-{self._written}")
        self.store.put_bytes(f"{stem}.candidates.parquet", to_parquet(candidates))
        self.store.put_bytes(f"{stem}.decisions.parquet", to_parquet(decisions))
        event(log, "decision log batch written", logging.DEBUG, key=f"{stem}.decisions.parquet", records=len(batch))

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_s)
            self._wake.clear()
            try:
                self.flush()
            except Exception as exc:  # noqa: BLE001 - the writer thread must survive
                event(log, "decision log writer error", logging.ERROR, error=f"{type(exc).__name__}: {exc}")
