"""Objects that could not reach the store wait on local disk and are delivered by the next run.

A spooled object keeps its key. Delivery happens before a run writes anything, so a fresher
object written later for the same key always wins. A spooled object is removed from disk only once
the store has accepted it: an outage during delivery loses nothing either.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from neurokube.adapters.objectstore import LocalDirStore, ObjectStore
from neurokube.errors import TemporaryError
from neurokube.logs import event

log = logging.getLogger("neurokube.pipelines.spool")


@dataclass
class Spool:
    root: Path

    def __post_init__(self) -> None:
        self._disk = LocalDirStore(self.root)

    def pending(self) -> list[str]:
        return self._disk.list("") if self.root.is_dir() else []

    def put(self, store: ObjectStore, key: str, data: bytes) -> bool:
        """Write to ``store``; when it is down, keep the object here. True if it reached the store."""
        try:
            store.put_bytes(key, data)
            return True
        except TemporaryError as exc:
            self._disk.put_bytes(key, data)
            event(log, "object store unavailable, spooled", level=logging.WARNING, key=key, bytes=len(data),
                  error=str(exc))
            return False

    def deliver(self, store: ObjectStore) -> int:
        """Send every spooled object; stop at the first failure (the store is down again)."""
        sent = 0
        for key in self.pending():
            try:
                store.put_bytes(key, self._disk.get_bytes(key))
            except TemporaryError as exc:
                event(log, "spool delivery interrupted", level=logging.WARNING, key=key, error=str(exc))
                break
            self._disk.delete(key)
            sent += 1
        if sent:
            event(log, "spool delivered", objects=sent, left=len(self.pending()))
        return sent
