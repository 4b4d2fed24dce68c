"""Polling for a condition in tests that drive real processes (tests/e2e, tests/chaos): a cluster
or a function answers asynchronously, so a test waits for the state it expects and fails with the
name of what never happened."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(what: str, probe: Callable[[], object], timeout_s: float = 20.0, interval_s: float = 0.2) -> object:
    """``probe()``'s first truthy value, polled every ``interval_s``; an AssertionError naming ``what``
    after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s:.0f}s"
        time.sleep(interval_s)
