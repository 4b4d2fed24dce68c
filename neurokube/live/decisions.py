"""The live decision log: one record per binding, in the replay's schema, spooled to local disk
before the request is answered, shipped to an object store in idempotent Parquet parts.

Records are built with :class:`~neurokube.model.decision_log.DecisionRecorder` itself, so the
columns, their order and their meaning are those of the simulator's experience, and the learning
loop reads both alike (``decisions`` and ``candidates`` tables, schema checked before writing).
Live specifics: ``source`` is ``live``, ``decision_id`` is ``live:<replica>:<uuid>`` (unique across
replicas and restarts), ``pod_uid`` is filled, ``workload`` is ``namespace/owner``, ``ts_s`` is
epoch seconds, and the outcome columns stay empty until outcomes are joined.

Durability (:mod:`neurokube.live.spool`): a record is encoded (a few microseconds: a small JSON
head and the raw arrays) and appended to the open segment of a local spool with one ``write(2)``.
The page cache outlives the process, so SIGKILL or an OOM kill loses no record once the append
has returned; a sealed segment is fsync-ed.

Write-ahead: the binder spools its record *before* it posts the Binding
(:meth:`DecisionLog.intend`, called by the ledger once the node's room is reserved), and appends a
small outcome mark after the answer (:meth:`DecisionLog.settle`: bound, or void when the Binding
did not happen). A process killed between the Binding and its answer therefore leaves the intent
on disk, and the pod's decision is not lost. The shipper ships an intent only once its outcome is
known: settled in this process (kept in memory, so a mark in a later segment is never needed),
or marked in the spool by a killed predecessor (every resumed segment's marks are read at start),
or, for an intent nobody settled (the kill fell between the intent and the mark, or the Binding
call itself failed without an answer), *resolved*: ``resolve(decision)`` asks the apiserver
whether the pod carries the record's id (the Binding sets it on the pod, :mod:`neurokube.live.binding`).
A void or refuted intent is not shipped
(counted as ``voided``); an intent still in flight, or one the apiserver cannot settle yet, holds
its own segment back until it is settled. Later segments ship meanwhile: each segment's objects
are its own, and one record nobody can settle (a resolver refused with 403, say) must not keep
every later record from the store until the spool's bound drops them.
:meth:`DecisionLog.record` writes a record that is settled already (for callers that log after
the fact). A background shipper seals the open segment every ``decision_batch``
records or ``decision_flush_s`` seconds and turns each sealed segment, oldest first, into
``<prefix>/date=<YYYY-MM-DD>/live-<replica>-<spool id>-<segment>.{candidates,decisions}.parquet``
(one pair per UTC day in the segment; :func:`neurokube.adapters.decision_store.part_key`). The key
is a function of the segment alone, so a segment shipped twice (a crash between the put and the
delete) overwrites the same objects. A segment is deleted only after the store accepted both
tables; while the store is down the segments wait on disk and the shipper retries. A new process
resumes the slot the killed one held and ships what it left, its unsealed tail included. The
spool is bounded (``decision_spool_max_bytes``): when full, the oldest segments are dropped and
counted, so scheduling never waits for the log and the disk never fills.
"""

from __future__ import annotations

import io
import json
import logging
import struct
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from neurokube.adapters.decision_store import part_key, safe_writer
from neurokube.errors import NeuroKubeError
from neurokube.live.spool import Segment, Spool
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
SPOOL_NAME = "neurokube-decision-spool"
OUTCOMES_MAX = 100_000  # settled outcomes kept in memory until their segments ship


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




# -- the spool's record format ---------------------------------------------------------------------
_HEAD = struct.Struct("<BI")  # record kind, length of the JSON head
DECISION, INTENT, MARK = 1, 2, 3  # a settled record, a record written before its Binding, an outcome mark


def weigh(payload: bytes) -> int:
    """Records per payload, for the spool's counts: a mark is bookkeeping, not a record."""
    return 0 if payload[:1] == bytes((MARK,)) else 1


def encode(d: LiveDecision, kind: int = DECISION) -> bytes:
    """One record: a JSON head (ids, names, the pod's requests) and the two arrays' raw bytes."""
    s = d.spec
    propensity, features = np.asarray(d.propensity), np.asarray(d.features)
    head = json.dumps([d.decision_id, d.ts_s, d.pod, d.pod_uid, d.workload,
                       [int(s.cpu_request_milli), int(s.memory_request_mib), int(s.cpu_limit_milli),
                        int(s.memory_limit_mib), int(s.qos)], d.policy, d.model_version, d.fallback,
                       list(d.node_names), int(d.chosen), propensity.dtype.str, features.dtype.str,
                       list(features.shape)], separators=(",", ":")).encode()
    return b"".join((_HEAD.pack(kind, len(head)), head, propensity.tobytes(), features.tobytes()))


def encode_mark(decision_id: str, bound: bool) -> bytes:
    head = json.dumps([decision_id, bool(bound)], separators=(",", ":")).encode()
    return _HEAD.pack(MARK, len(head)) + head


def decode_mark(payload: bytes) -> tuple[str, bool]:
    kind, length = _HEAD.unpack_from(payload, 0)
    if kind != MARK:
        raise ValueError(f"not an outcome mark (kind {kind})")
    decision_id, bound = json.loads(payload[_HEAD.size:_HEAD.size + length])
    return str(decision_id), bool(bound)


def decision_id_of(payload: bytes) -> str:
    """A record's decision id, from its JSON head alone (the arrays are not decoded)."""
    _, length = _HEAD.unpack_from(payload, 0)
    return str(json.loads(payload[_HEAD.size:_HEAD.size + length])[0])


def kind_of(payload: bytes) -> int:
    return payload[0]


def decode(payload: bytes) -> LiveDecision:
    """The inverse of :func:`encode`; ValueError for a record it cannot read."""
    kind, length = _HEAD.unpack_from(payload, 0)
    if kind not in (DECISION, INTENT):
        raise ValueError(f"unknown decision record kind {kind}")
    at = _HEAD.size + length
    (decision_id, ts_s, pod, pod_uid, workload, spec, policy, model_version, fallback, names, chosen,
     propensity_dtype, features_dtype, shape) = json.loads(payload[_HEAD.size:at])
    propensity = np.frombuffer(payload, dtype=np.dtype(propensity_dtype), count=len(names), offset=at).copy()
    at += propensity.nbytes
    features = np.frombuffer(payload, dtype=np.dtype(features_dtype), count=int(np.prod(shape)), offset=at)
    if at + features.nbytes != len(payload):
        raise ValueError("decision record has trailing bytes")
    return LiveDecision(decision_id, float(ts_s), pod, pod_uid, workload, PodSpec(*spec), policy, model_version,
                        fallback, tuple(names), int(chosen), propensity, features.reshape(shape).copy())


def day_of(ts_s: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts_s))


class _Undecodable(Exception):
    """A sealed segment whose records cannot be turned into tables (never a store problem)."""


class _NotReady(Exception):
    """A sealed segment holding an intent whose outcome is not known yet (shipped later)."""


Resolver = Callable[[LiveDecision], "bool | None"]


class DecisionLog:
    def __init__(self, store, prefix: str, replica: str, telemetry: Telemetry, *, spool_dir: Path | None = None,
                 max_bytes: int = 256 * 1024 * 1024, batch: int = 200, flush_s: float = 30.0,
                 segment_bytes: int = 8 * 1024 * 1024, resolve: Resolver | None = None) -> None:
        """``store`` is an ObjectStore (put_bytes) or None to keep nothing.

        ``resolve(decision)`` settles an intent nobody marked: True if the pod is bound as the
        record chose, False if not, None if that cannot be known now (asked again later). Without
        it such intents are shipped (at least once rather than lost).

        ``spool_dir`` (default ``$TMPDIR/neurokube-decision-spool``) holds ``<replica>/<slot>/``;
        ``max_bytes`` bounds it; a segment is sealed and shipped at ``batch`` records,
        ``segment_bytes`` bytes or ``flush_s`` seconds, whichever comes first."""
        self.store = store
        self.prefix = prefix.strip("/")
        self.replica = safe_writer(replica or "replica")
        self.telemetry = telemetry
        self.flush_s = flush_s
        self.spool_dir = Path(spool_dir) if spool_dir is not None else Path(tempfile.gettempdir()) / SPOOL_NAME
        counter = telemetry.decision_log
        self._spooled, self._written = counter.labels(result="spooled"), counter.labels(result="written")
        self._dropped, self._rejected = counter.labels(result="dropped"), counter.labels(result="rejected")
        self._voided = counter.labels(result="voided")
        self.resolve = resolve
        self._state_lock = threading.Lock()
        self._inflight: set[str] = set()  # intents spooled, Binding not answered yet
        self._outcomes: dict[str, bool | None] = {}  # settled here or marked by a predecessor; None: in doubt
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._ship_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.spool: Spool | None = None
        self.writer = ""
        if store is None:
            return
        try:
            self.spool = Spool(self.spool_dir, self.replica, max_bytes=max_bytes, segment_records=batch,
                               segment_bytes=segment_bytes, on_drop=lambda records, _size: self._dropped.inc(records),
                               weigh=weigh)
        except OSError as exc:  # no writable spool: scheduling goes on, every record is counted as dropped
            event(log, "decision spool unavailable; decision records are dropped (counted)", logging.ERROR,
                  directory=str(self.spool_dir), error=str(exc))
            return
        self.writer = f"{SOURCE}-{self.replica}-{self.spool.id}"
        self._read_marks()
        telemetry.watch_spool(lambda: self.spool.used_bytes, lambda: self.spool.segments)

    @property
    def enabled(self) -> bool:
        return self.store is not None

    def start(self) -> None:
        if self.spool is not None and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="decision-log", daemon=True)
            self._thread.start()

    def record(self, decision: LiveDecision) -> None:
        """Spool one settled record (on disk when this returns); never raises, never waits for the store."""
        self._append(decision, DECISION)

    def intend(self, decision: LiveDecision) -> None:
        """Spool a record before its Binding is posted; :meth:`settle` must follow. Never raises."""
        if self.spool is None:
            self._append(decision, INTENT)  # counted as dropped (or nothing kept at all)
            return
        with self._state_lock:
            self._inflight.add(decision.decision_id)  # before the write: the shipper must not ship it unsettled
        if not self._append(decision, INTENT):
            with self._state_lock:  # nothing on disk: nothing to settle
                self._inflight.discard(decision.decision_id)

    def settle(self, decision_id: str, bound: bool | None) -> None:
        """The Binding's outcome for an intent: bound, not bound, or None when the call failed
        without an answer (resolved by the shipper). Nothing for an id that was never intended."""
        with self._state_lock:
            if decision_id not in self._inflight:
                return
            self._inflight.discard(decision_id)
            if len(self._outcomes) >= OUTCOMES_MAX:  # e.g. intents whose segments the bound dropped
                self._outcomes.clear()  # safe: a forgotten outcome is read from its mark or resolved again
            self._outcomes[decision_id] = bound
        if bound is None or self.spool is None:
            return
        try:  # for a successor, should this process die before the shipment; memory has it meanwhile
            self.spool.append(encode_mark(decision_id, bound))
        except OSError as exc:
            event(log, "decision outcome mark not spooled", logging.WARNING, decision_id=decision_id,
                  error=str(exc))

    def placed_by(self, decision: LiveDecision) -> bool | None:
        """Whether ``decision``'s own Binding placed its pod, asked now (the resolver); None when
        there is no resolver or the apiserver cannot say."""
        if self.resolve is None:
            return None
        try:
            return self.resolve(decision)
        except Exception as exc:  # noqa: BLE001 - unknown is an answer here: the shipper asks again
            event(log, "asking whose Binding placed a pod failed", logging.WARNING, decision_id=decision.decision_id,
                  pod=decision.pod, error=f"{type(exc).__name__}: {exc}")
            return None

    def _append(self, decision: LiveDecision, kind: int) -> bool:
        if self.spool is None:
            if self.store is not None:
                self._dropped.inc()
            return False
        try:
            full = self.spool.append(encode(decision, kind))
        except (OSError, ValueError, TypeError) as exc:
            self._dropped.inc()
            event(log, "decision record not spooled", logging.WARNING, decision_id=decision.decision_id,
                  error=f"{type(exc).__name__}: {exc}")
            return False
        self._spooled.inc()
        if full:
            self._wake.set()
        return True

    def pending(self) -> list[LiveDecision]:
        """The records spooled and not shipped yet, oldest first (outcome marks left out)."""
        if self.spool is None:
            return []
        return [decode(p) for p in self.spool.unshipped() if kind_of(p) != MARK]

    def _read_marks(self) -> None:
        """The outcome marks a killed predecessor left in the resumed segments, for their intents."""
        marks: dict[str, bool] = {}
        intents: set[str] = set()
        for segment in self.spool.sealed():
            try:
                payloads = self.spool.read(segment)
            except FileNotFoundError:
                continue
            for payload in payloads:
                try:
                    if kind_of(payload) == MARK:
                        decision_id, bound = decode_mark(payload)
                        marks[decision_id] = bound
                    elif kind_of(payload) == INTENT:
                        intents.add(decision_id_of(payload))
                except (ValueError, IndexError, struct.error):
                    continue  # the shipper rejects the segment, and says so
        self._outcomes.update({i: marks[i] for i in intents & marks.keys()})

    def flush(self) -> int:
        """Seal the open segment and ship every sealed one now; returns the records written."""
        if self.spool is None:
            return 0
        self.spool.seal()
        return self.ship()

    def ship(self) -> int:
        """Ship the sealed segments, oldest first, skipping those still waiting for an outcome; stop
        at the first store failure (retried later)."""
        total = 0
        with self._ship_lock:
            for segment in self.spool.sealed():
                try:
                    parts, kept, voided = self._tables(segment)
                except FileNotFoundError:  # dropped by the bound meanwhile (counted there)
                    continue
                except _NotReady as exc:  # the next round tries again; later segments go on
                    event(log, "decision segment waits for an outcome", logging.DEBUG, segment=segment.seq,
                          reason=str(exc))
                    continue
                except _Undecodable as exc:
                    self.spool.reject(segment)
                    self._rejected.inc(segment.records)
                    event(log, "decision segment cannot be read; moved to rejected/", logging.ERROR,
                          segment=segment.path.name, records=segment.records, error=str(exc))
                    continue
                try:
                    for key, data in parts:
                        self.store.put_bytes(key, data)
                except (NeuroKubeError, OSError) as exc:
                    self.telemetry.decision_ship_failures.inc()
                    event(log, "decision log ship failed; the segments wait on disk", logging.WARNING,
                          error=str(exc), segments=self.spool.segments, bytes=self.spool.used_bytes)
                    return total
                self.spool.remove(segment)
                self._forget(kept + voided)
                total += len(kept)
                self._written.inc(len(kept))
                self._voided.inc(len(voided))
                event(log, "decision segment shipped", logging.DEBUG, segment=segment.seq, records=len(kept),
                      voided=len(voided), keys=len(parts))
        return total

    def close(self, ship_s: float = 5.0) -> None:
        """Stop the shipper, seal, try one last shipment; what fails waits on disk for the next process."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=ship_s)
        if self.spool is None:
            return
        try:
            self.flush()
        finally:
            self.spool.close()

    def _tables(self, segment: Segment) -> tuple[list[tuple[str, bytes]], list[str], list[str]]:
        """(key, Parquet bytes) per table and UTC day of a segment's bound decisions, candidates
        before decisions; and the ids shipped and voided."""
        payloads = self.spool.read(segment)
        try:
            records, marks = [], {}
            for payload in payloads:
                if kind_of(payload) == MARK:
                    decision_id, bound = decode_mark(payload)
                    marks[decision_id] = bound
                else:
                    records.append((kind_of(payload), decode(payload)))
        except Exception as exc:  # noqa: BLE001 - any failure to decode is the segment's
            raise _Undecodable(f"{type(exc).__name__}: {exc}") from None
        kept, voided = [], []
        for kind, d in records:
            bound = True if kind == DECISION else self._outcome(d, marks)
            (kept if bound else voided).append(d)
        try:
            days: dict[str, list[LiveDecision]] = {}
            for d in kept:
                days.setdefault(day_of(d.ts_s), []).append(d)
            out = []
            for day, batch in sorted(days.items()):
                decisions, candidates = frames(batch)
                out.append((part_key(self.prefix, day, self.writer, segment.seq, "candidates"),
                            to_parquet(candidates)))
                out.append((part_key(self.prefix, day, self.writer, segment.seq, "decisions"),
                            to_parquet(decisions)))
            return out, [d.decision_id for d in kept], [d.decision_id for d in voided]
        except Exception as exc:  # noqa: BLE001 - any failure to tabulate is the segment's
            raise _Undecodable(f"{type(exc).__name__}: {exc}") from None

    def _outcome(self, d: LiveDecision, marks: dict[str, bool]) -> bool:
        """Whether an intent's Binding happened (see the module docstring); _NotReady if unknown yet."""
        with self._state_lock:
            if d.decision_id in self._inflight:
                raise _NotReady(f"{d.decision_id}: its Binding has not been answered yet")
            bound = self._outcomes.get(d.decision_id, marks.get(d.decision_id))
        if bound is not None:
            return bound
        if self.resolve is None:
            return True
        try:
            bound = self.resolve(d)
        except Exception as exc:  # noqa: BLE001 - a resolver failure only delays the shipment
            raise _NotReady(f"{d.decision_id}: resolving failed: {type(exc).__name__}: {exc}") from None
        if bound is None:
            raise _NotReady(f"{d.decision_id}: cannot tell yet whether {d.pod} was bound")
        event(log, "unsettled decision resolved", logging.INFO, decision_id=d.decision_id, pod=d.pod,
              node=d.node_names[d.chosen], bound=bound)
        with self._state_lock:
            self._outcomes[d.decision_id] = bound  # no second question if the store then refuses the segment
        return bound

    def _forget(self, decision_ids: list[str]) -> None:
        with self._state_lock:
            for decision_id in decision_ids:
                self._outcomes.pop(decision_id, None)

    def _run(self) -> None:
        tick = min(self.flush_s, 1.0)
        backoff, next_try = 0.0, 0.0
        while not self._stop.is_set():
            self._wake.wait(tick)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                if self.spool.due(self.flush_s):
                    self.spool.seal()
                if not self.spool.sealed() or time.monotonic() < next_try:
                    continue
                self.ship()
                if self.spool.sealed():  # the store refused: retry later, backing off up to flush_s
                    backoff = min(max(backoff * 2, tick), max(self.flush_s, 1.0))
                    next_try = time.monotonic() + backoff
                else:
                    backoff, next_try = 0.0, 0.0
            except Exception as exc:  # noqa: BLE001 - the shipper thread must survive
                event(log, "decision log shipper error", logging.ERROR, error=f"{type(exc).__name__}: {exc}")
