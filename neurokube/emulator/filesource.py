"""A usage source read from a JSON snapshot file, re-read whenever the file changes.

Format (every field required; memory in MiB, CPU in millicores; ``node`` is "" for a pending pod)::

    {"nodes": [{"name": "node-1", "cpu_milli_alloc": 4000, "mem_mib_alloc": 16384,
                "cpu_milli_used": 1500, "mem_mib_used": 6000}],
     "pods":  [{"namespace": "default", "name": "web-1", "node": "node-1",
                "cpu_request_milli": 500, "mem_request_mib": 1024,
                "cpu_used_milli": 400, "mem_used_mib": 900}]}

Writers should replace the file atomically (:func:`write_snapshot` does); a half-written file is
reported once and the previous snapshot keeps being served.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TypeVar

from neurokube.adapters.usage import NodeUsage, PodUsage, Snapshot
from neurokube.errors import InputError
from neurokube.logs import event

log = logging.getLogger("neurokube.emulator")

Row = TypeVar("Row", NodeUsage, PodUsage)


class FileSource:
    """Serves the snapshot in ``path``; the time passed to :meth:`snapshot` is ignored."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int] | None = None
        self._snapshot = read_snapshot(self.path)  # a bad file at start-up is an input error
        self._stamp = _stamp(self.path)

    def snapshot(self, now_s: float) -> Snapshot:
        stamp = _stamp(self.path)
        if stamp is not None and stamp != self._stamp:
            self._stamp = stamp
            try:
                self._snapshot = read_snapshot(self.path)
            except InputError as exc:
                event(log, "snapshot unreadable, serving the previous one", logging.WARNING, error=str(exc))
        return self._snapshot


def read_snapshot(path: Path) -> Snapshot:
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError("cannot read the usage snapshot", where=str(path), why=str(exc)) from None
    if not isinstance(doc, dict):
        raise InputError("a usage snapshot is a JSON object with `nodes` and `pods`", where=str(path))
    nodes = [_row(NodeUsage, item, path, f"nodes[{i}]") for i, item in enumerate(doc.get("nodes", []))]
    pods = [_row(PodUsage, item, path, f"pods[{i}]") for i, item in enumerate(doc.get("pods", []))]
    names = {n.name for n in nodes}
    for pod in pods:
        if pod.node and pod.node not in names:
            raise InputError(f"pod {pod.namespace}/{pod.name} is on unknown node {pod.node!r}", where=str(path))
    return Snapshot(nodes, pods)


def write_snapshot(path: Path, snapshot: Snapshot) -> None:
    """Write ``snapshot`` atomically in the format :func:`read_snapshot` reads."""
    path = Path(path)
    doc = {"nodes": [n._asdict() for n in snapshot.nodes], "pods": [p._asdict() for p in snapshot.pods]}
    partial = path.with_name(f".{path.name}.partial")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial.write_text(json.dumps(doc, indent=1) + "\n")
    os.replace(partial, path)


def example_snapshot() -> Snapshot:
    """A small cluster (3 nodes, 5 pods) that the stack serves when given no snapshot."""
    nodes = [
        NodeUsage("node-1", 4000, 16384, 1800.0, 7000.0),
        NodeUsage("node-2", 4000, 16384, 600.0, 3000.0),
        NodeUsage("node-3", 8000, 32768, 0.0, 1024.0),
    ]
    pods = [
        PodUsage("default", "web-1", "node-1", 1000, 2048, 1200.0, 3000.0),
        PodUsage("default", "web-2", "node-1", 500, 2048, 400.0, 2500.0),
        PodUsage("default", "batch-1", "node-2", 500, 1024, 450.0, 1800.0),
        PodUsage("ml", "trainer-1", "node-2", 250, 512, 100.0, 700.0),
        PodUsage("ml", "pending-1", "", 2000, 4096, 0.0, 0.0),
    ]
    return Snapshot(nodes, pods)


_TEXT = frozenset({"name", "namespace", "node"})
_WHOLE = frozenset({"cpu_milli_alloc", "mem_mib_alloc", "cpu_request_milli", "mem_request_mib"})


def _row(kind: type[Row], item: object, path: Path, what: str) -> Row:
    if not isinstance(item, dict):
        raise InputError(f"{what} is not an object", where=str(path))
    missing = [f for f in kind._fields if f not in item]
    if missing:
        raise InputError(f"{what} lacks {', '.join(missing)}", where=str(path))
    values = []
    for name in kind._fields:
        value = item[name]
        if name in _TEXT:
            if not isinstance(value, str):
                raise InputError(f"{what}.{name} is {value!r}", where=str(path), why="expected a string")
        else:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise InputError(f"{what}.{name} is {value!r}", where=str(path), why="expected a number >= 0")
            value = int(value) if name in _WHOLE else float(value)
        values.append(value)
    return kind(*values)


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size
