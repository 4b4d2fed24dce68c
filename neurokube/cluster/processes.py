"""Start detached server processes, recognise them later by pid, and stop them.

A pid alone is not an identity: after a reboot or a long time it may name another program. Each
started process is therefore recorded with its executable path and its kernel start time
(``/proc/<pid>/stat`` field 22), and is only signalled while both still match.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

STOP_GRACE_S = 10.0

#: Popen objects of the processes this interpreter started, kept so that they are not garbage
#: collected while running (which warns) and so that their exit status can be collected.
_children: dict[int, subprocess.Popen] = {}


@dataclass(frozen=True)
class Process:
    name: str
    pid: int
    start_ticks: int  # /proc/<pid>/stat starttime, to tell a reused pid apart
    executable: str
    log: str

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict) -> Process:
        return cls(**{key: doc[key] for key in ("name", "pid", "start_ticks", "executable", "log")})


def start(name: str, argv: list[str], log_path: Path, cwd: Path, env: dict[str, str] | None = None) -> Process:
    """Start ``argv`` in its own session, stdout and stderr appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting: {' '.join(argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # survives the CLI; Ctrl-C in the terminal does not reach it
        )
    _children[proc.pid] = proc
    return Process(name, proc.pid, _start_ticks(proc.pid) or 0, argv[0], str(log_path))


def is_running(process: Process) -> bool:
    ticks = _start_ticks(process.pid)
    if ticks is None or ticks != process.start_ticks or not _runs(process.pid, process.executable):
        return False
    return _state(process.pid) not in ("Z", "X")  # a zombie has exited


def stop(process: Process, grace_s: float = STOP_GRACE_S) -> str:
    """SIGTERM, then SIGKILL after ``grace_s``. Returns what happened, for the user."""
    if not is_running(process):
        _reap(process.pid)  # killed by someone else (a test's SIGKILL): collect its status
        return "not running"
    _signal(process.pid, signal.SIGTERM)
    if _wait_gone(process, grace_s):
        return "stopped"
    _signal(process.pid, signal.SIGKILL)
    return "killed" if _wait_gone(process, 5.0) else "still running after SIGKILL"


def _wait_gone(process: Process, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        _reap(process.pid)
        if not is_running(process):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def exited_with(process: Process) -> int | None:
    """Exit status of a process this interpreter started and that has exited, else None."""
    child = _children.get(process.pid)
    return child.poll() if child is not None else None


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _reap(pid: int) -> None:
    """Collect the exit status if ``pid`` is our own child, so it does not linger as a zombie."""
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        del _children[pid]


def _runs(pid: int, executable: str) -> bool:
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:  # exited meanwhile, or not ours to inspect
        return False
    # A binary replaced by a rebuild while running shows as "<path> (deleted)".
    return exe.removesuffix(" (deleted)") == os.path.realpath(executable)


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may contain spaces.
    return raw[raw.rindex(")") + 2:].split()


def _start_ticks(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None  # field 22 overall


def _state(pid: int) -> str | None:
    fields = _stat_fields(pid)
    return fields[0] if fields else None


def print_log_tail(log_path: Path, out: IO[str], lines: int = 20) -> None:
    """Show the end of a component's log, where the reason for a failure usually is."""
    try:
        tail = log_path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return
    print(f"--- last {len(tail)} lines of {log_path} ---", file=out)
    for line in tail:
        print(f"    {line}", file=out)
