"""Fault injection for the chaos suite: make a function process die at a chosen instant.

A real crash rarely lands exactly between two steps of a placement, but that is where the
guarantees are tested hardest: the ledger holds a reservation for the pod, the Binding was never
sent, and the delivery that caused it gets no answer. ``NEUROKUBE_FAILPOINT_EXIT_BEFORE_BIND``
names a trigger file. While the file exists, the next placement that has reserved its node
removes the file (only one thread or process wins the unlink) and the process exits at once with
status 137, as if SIGKILLed: no cleanup, no answer, no flushed buffers. The test re-arms the
failpoint by creating the file again. Unset (the default), the check is one ``is None``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from neurokube.logs import event

log = logging.getLogger("neurokube.live.failpoints")

_exit_before_bind: Path | None = None


def configure(exit_before_bind: str | None) -> None:
    global _exit_before_bind
    _exit_before_bind = Path(exit_before_bind) if exit_before_bind else None


def before_bind(pod: str, node: str) -> None:
    """Called after the node's reservation is written and before the Binding is posted."""
    if _exit_before_bind is None:
        return
    try:
        _exit_before_bind.unlink()
    except FileNotFoundError:
        return
    event(log, "failpoint: exiting between the reservation and the Binding", logging.WARNING, pod=pod, node=node)
    os._exit(137)
