"""The handle on a running local data stack (MinIO, Prometheus, MLflow), as the tests use it: a
context manager that starts the stack and always takes it down afterwards."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from neurokube.stack import control
from neurokube.stack.settings import StackSettings
from neurokube.stack.state import Layout, StackRecord


@dataclass(frozen=True)
class RunningStack:
    record: StackRecord
    endpoints: dict  # what `neurokube stack status --json` prints, without "running"

    @property
    def state_dir(self) -> Path:
        return Path(self.record.state_dir)

    @property
    def layout(self) -> Layout:
        return Layout(self.state_dir)


@contextmanager
def running_stack(settings: StackSettings) -> Iterator[RunningStack]:
    """Start the stack for the duration of the block; stop it even when start-up or the block fails."""
    try:
        result = control.up(settings, out=sys.stderr)
        layout = Layout(settings.state_dir)
        yield RunningStack(result.record, control.endpoints(layout, result.record))
    finally:
        control.down(settings.state_dir, out=sys.stderr)
