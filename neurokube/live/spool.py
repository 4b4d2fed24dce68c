"""A bounded spool of records on local disk: appended before the caller answers, shipped later.

Why it survives a crash: :meth:`Spool.append` hands each record to the kernel with one
``write(2)`` on an unbuffered file before it returns. Once ``write`` has returned the bytes are in
the page cache, which belongs to the kernel, not to the process: SIGKILL, an OOM kill or a
crash of the Python process loses nothing already appended, so no per-record ``fsync`` is needed
(it would cost milliseconds per record). Only a crash of the machine itself can lose the page
cache; a sealed segment is ``fsync``-ed when it is sealed, so at most the open segment (one
batch, ``flush_s`` seconds) is exposed to that.

Layout, one directory per writer process (a *slot*) under ``<root>/<name>/``::

    <k>/lock          flock-ed by the process that owns slot k (the lowest free k is taken)
    <k>/id            the slot's random id, made once: keys derived from it never collide with
                      another slot's, another pod's, or a slot that was wiped and made again
    <k>/next          the next segment number (a slot never reuses one)
    <k>/<seq>.open    the segment being appended to (at most one)
    <k>/<seq>.seg     sealed segments, oldest = lowest number
    <k>/rejected/     sealed segments the shipper could not decode (kept for a human)

A segment is a sequence of frames ``<u32 length><u32 crc32><payload>`` (little endian). A
reader stops at the first frame that is short or whose checksum does not match: the tail a
process killed in the middle of a ``write`` left behind. That record was never acknowledged.

On start, a slot is *resumed*: a left-over ``.open`` segment (the killed process's unsealed
tail) is cut to its last whole frame and sealed, so it is shipped like any other.

Bound: the slot's segments never exceed ``max_bytes``; to make room for a record the oldest
sealed segments are deleted first (then the open one), and ``on_drop(records, bytes)`` is told.
A segment deleted while its shipment is in flight may still arrive; it is counted as dropped.

Records and frames: every payload is a frame, but not every frame is a record. ``weigh(payload)``
(given by the owner; 1 by default) says how many records a payload is, so that the owner's
bookkeeping frames (the decision log's outcome marks weigh 0) neither fill a segment's record
quota nor count as dropped records; a segment with frames but no records is still kept.

The spool knows nothing of decisions or object stores: :mod:`neurokube.live.decisions` encodes
the records and ships the segments.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import struct
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from neurokube.logs import event

log = logging.getLogger("neurokube.live.spool")
FRAME = struct.Struct("<II")
MAX_SLOTS = 64
_OPEN, _SEALED = ".open", ".seg"


@dataclass(frozen=True)
class Segment:
    seq: int
    path: Path
    size: int
    records: int  # the sum of the payloads' weights
    frames: int = 0


def frame(payload: bytes) -> bytes:
    return FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def parse_frames(data: bytes) -> tuple[list[bytes], int]:
    """The payloads of the whole frames at the start of ``data``, and the length they cover."""
    out, at = [], 0
    while at + FRAME.size <= len(data):
        length, crc = FRAME.unpack_from(data, at)
        end = at + FRAME.size + length
        if end > len(data):
            break
        payload = data[at + FRAME.size:end]
        if zlib.crc32(payload) != crc:
            break
        out.append(payload)
        at = end
    return out, at


class Spool:
    def __init__(self, root: Path, name: str, *, max_bytes: int, segment_records: int, segment_bytes: int,
                 on_drop: Callable[[int, int], None] = lambda records, size: None,
                 weigh: Callable[[bytes], int] = lambda payload: 1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``name`` is a file-name-safe writer name (the replica); one slot of ``<root>/<name>`` is taken."""
        if max_bytes <= 0 or segment_records <= 0 or segment_bytes <= 0:
            raise ValueError("spool limits must be positive")
        self.max_bytes = max_bytes
        self.segment_records = segment_records
        self.segment_bytes = min(segment_bytes, max(max_bytes // 4, 1))
        self.on_drop = on_drop
        self.weigh = weigh
        self.clock = clock
        self._lock = threading.Lock()
        self._sealed: list[Segment] = []
        self._fd: int | None = None
        self._open_seq = -1
        self._open_bytes = 0
        self._open_records = 0
        self._open_frames = 0
        self._opened_at = 0.0
        self._used = 0
        self.dir, self._lock_fd, self.slot = _take_slot(Path(root) / name)
        self.id = _slot_id(self.dir)
        self.resumed = self._resume()

    # -- the request path -------------------------------------------------------------------------
    def append(self, payload: bytes) -> bool:
        """Write one record to the open segment (one ``write``). True when the segment is due for sealing.

        Raises OSError when the disk refuses the write (the record is not spooled)."""
        data = frame(payload)
        with self._lock:
            if self._used + len(data) > self.max_bytes:
                self._make_room(len(data))
                if self._used + len(data) > self.max_bytes:  # larger than the whole bound
                    self.on_drop(self.weigh(payload), len(data))
                    return False
            if self._fd is None:
                self._new_segment()
            try:
                _write_all(self._fd, data)
            except OSError:
                self._seal_locked()  # a torn frame ends this segment; the next record starts a new one
                raise
            self._open_bytes += len(data)
            self._open_records += self.weigh(payload)
            self._open_frames += 1
            self._used += len(data)
            return self._open_records >= self.segment_records or self._open_bytes >= self.segment_bytes

    # -- the shipper's side ------------------------------------------------------------------------
    def seal(self, min_age_s: float = 0.0) -> Segment | None:
        """Seal the open segment if it has records (and is at least ``min_age_s`` old); fsync it."""
        with self._lock:
            if self._fd is None or self._open_frames == 0 or self.clock() - self._opened_at < min_age_s:
                return None
            fd, segment = self._fd, self._seal_locked(close=False)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return segment

    def due(self, max_age_s: float) -> bool:
        """The open segment is full, or holds records older than ``max_age_s``."""
        with self._lock:
            return self._open_frames > 0 and (
                self._open_records >= self.segment_records or self._open_bytes >= self.segment_bytes
                or self.clock() - self._opened_at >= max_age_s)

    def sealed(self) -> list[Segment]:
        with self._lock:
            return list(self._sealed)

    def read(self, segment: Segment) -> list[bytes]:
        """The records of a sealed segment (FileNotFoundError if it was dropped meanwhile)."""
        return parse_frames(segment.path.read_bytes())[0]

    def remove(self, segment: Segment) -> None:
        """Forget a shipped segment (already dropped: nothing to do)."""
        with self._lock:
            if segment not in self._sealed:
                return
            self._sealed.remove(segment)
            self._used -= segment.size
        segment.path.unlink(missing_ok=True)

    def reject(self, segment: Segment) -> None:
        """Move a segment that cannot be shipped aside (``rejected/``, outside the bound)."""
        with self._lock:
            if segment not in self._sealed:
                return
            self._sealed.remove(segment)
            self._used -= segment.size
        (self.dir / "rejected").mkdir(exist_ok=True)
        try:
            segment.path.rename(self.dir / "rejected" / segment.path.name)
        except FileNotFoundError:
            pass

    def unshipped(self) -> list[bytes]:
        """Every record on disk, oldest first: sealed segments, then the open one (for tests and tools)."""
        with self._lock:
            paths = [s.path for s in self._sealed]
            if self._fd is not None:
                paths.append(self.dir / f"{self._open_seq:012d}{_OPEN}")
        out: list[bytes] = []
        for path in paths:
            try:
                out += parse_frames(path.read_bytes())[0]
            except FileNotFoundError:
                continue
        return out

    @property
    def used_bytes(self) -> int:
        return self._used

    @property
    def segments(self) -> int:
        with self._lock:
            return len(self._sealed) + (1 if self._open_frames else 0)

    @property
    def pending_records(self) -> int:
        with self._lock:
            return sum(s.records for s in self._sealed) + self._open_records

    def close(self) -> None:
        """Seal the open segment and release the slot (the files stay for the next process)."""
        self.seal()
        with self._lock:
            if self._fd is not None:  # an open segment without frames
                os.close(self._fd)
                self._fd = None
                (self.dir / f"{self._open_seq:012d}{_OPEN}").unlink(missing_ok=True)
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    # -- internals (called with self._lock held) ---------------------------------------------------
    def _new_segment(self) -> None:
        seq = _read_int(self.dir / "next")
        _write_atomic(self.dir / "next", str(seq + 1))
        self._open_seq = seq
        self._fd = os.open(self.dir / f"{seq:012d}{_OPEN}", os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                           0o600)
        self._open_bytes = self._open_records = self._open_frames = 0
        self._opened_at = self.clock()

    def _seal_locked(self, close: bool = True) -> Segment | None:
        if self._fd is None:
            return None
        path = self.dir / f"{self._open_seq:012d}{_OPEN}"
        sealed = path.with_suffix(_SEALED)
        segment = Segment(self._open_seq, sealed, self._open_bytes, self._open_records, self._open_frames)
        path.rename(sealed)
        if close:
            os.close(self._fd)
        self._fd = None
        self._open_bytes = self._open_records = self._open_frames = 0
        if segment.frames:
            self._sealed.append(segment)
        else:
            self._used -= segment.size
            sealed.unlink(missing_ok=True)
        return segment

    def _make_room(self, need: int) -> None:
        while self._used + need > self.max_bytes:
            if self._sealed:
                victim = self._sealed.pop(0)
                victim.path.unlink(missing_ok=True)
            elif self._fd is not None and self._open_frames:
                victim = self._seal_locked()
                self._sealed.remove(victim)
                victim.path.unlink(missing_ok=True)
            else:
                return
            self._used -= victim.size
            self.on_drop(victim.records, victim.size)
            event(log, "spool full: oldest segment dropped", logging.WARNING, segment=victim.path.name,
                  records=victim.records, bytes=victim.size, bound=self.max_bytes)

    def _resume(self) -> int:
        """Seal what a previous owner of the slot left; the number of records found."""
        found = 0
        for path in sorted(self.dir.glob(f"*{_OPEN}")) + sorted(self.dir.glob(f"*{_SEALED}")):
            try:
                seq = int(path.name.split(".", 1)[0])
            except ValueError:
                continue
            data = path.read_bytes()
            payloads, good = parse_frames(data)
            if path.suffix == _OPEN:
                if good < len(data):
                    os.truncate(path, good)
                    event(log, "spool: torn tail of a killed writer cut", logging.WARNING, segment=path.name,
                          bytes=len(data) - good)
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
                sealed = path.with_suffix(_SEALED)
                path.rename(sealed)
                path = sealed
            if not payloads:
                path.unlink(missing_ok=True)
                continue
            records = sum(map(self.weigh, payloads))
            self._sealed.append(Segment(seq, path, good, records, len(payloads)))
            self._used += good
            found += records
        self._sealed.sort(key=lambda s: s.seq)
        if self._sealed:
            # a lost or stale ``next`` file must never make a segment number come back
            _write_atomic(self.dir / "next", str(max(_read_int(self.dir / "next"), self._sealed[-1].seq + 1)))
            event(log, "spool resumed", slot=str(self.dir), segments=len(self._sealed), records=found,
                  bytes=self._used)
        return found


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _read_int(path: Path) -> int:
    try:
        return int(path.read_text().strip() or 0)
    except FileNotFoundError:
        return 0


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _take_slot(base: Path) -> tuple[Path, int, int]:
    base.mkdir(parents=True, exist_ok=True)
    for k in range(MAX_SLOTS):
        slot = base / str(k)
        slot.mkdir(exist_ok=True)
        fd = os.open(slot / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return slot, fd, k
    raise OSError(f"all {MAX_SLOTS} spool slots under {base} are held by live processes")


def _slot_id(slot: Path) -> str:
    path = slot / "id"
    try:
        text = path.read_text().strip()
        if text.isalnum():
            return text
    except FileNotFoundError:
        pass
    text = secrets.token_hex(4)
    _write_atomic(path, text)
    return text
