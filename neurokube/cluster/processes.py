"""Start detached server processes, recognise them later by pid, and stop them.

A pid alone is not an identity: after a reboot or a long time it may name another program. Each
started process is therefore recorded with its executable path and its kernel start time (clock
ticks since boot, ``/proc/<pid>/stat`` field 22, as psutil reads it), and is only signalled while
both still match. Process inspection and signalling go through psutil, whose ``Process`` also
refuses to signal a pid that was reused after it was looked up.

Waiting for a stopped process polls :func:`is_running` rather than using ``psutil.wait_procs``:
a zombie counts as gone here (a process started by an earlier CLI run is reparented, and in a
container without a reaping init it stays a zombie), where ``wait_procs`` would wait for it.

A process this interpreter started is then reaped (its exit status collected), waiting up to
``REAP_WAIT_S`` for it: the main thread of a multi-threaded program (the Go servers, Python with
threads) shows as a zombie as soon as it exits, but the kernel lets the parent collect it only
once its other threads are gone. Without the wait such a child stayed a zombie until this
interpreter exited, which then warned "subprocess ... is still running" for each. A child whose
threads take longer than that is collected later: every :func:`start`, :func:`stop` and
``procgroup.stop_group`` first collects, without waiting, each child that has exited since.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

import psutil

STOP_GRACE_S = 10.0
REAP_WAIT_S = 2.0  # how long a gone child's other threads may take to exit before it can be reaped
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

#: Popen objects of the processes this interpreter started, kept so that they are not garbage
#: collected while running (which warns) and so that their exit status can be collected.
_children: dict[int, subprocess.Popen] = {}


@dataclass(frozen=True)
class Process:
    name: str
    pid: int
    start_ticks: int  # kernel start time, clock ticks since boot, to tell a reused pid apart
    executable: str
    log: str

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict) -> Process:
        return cls(**{key: doc[key] for key in ("name", "pid", "start_ticks", "executable", "log")})


def start(name: str, argv: list[str], log_path: Path, cwd: Path, env: dict[str, str] | None = None) -> Process:
    """Start ``argv`` in its own session, stdout and stderr appended to ``log_path``."""
    collect_exited()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting: {' '.join(argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # survives the CLI; Ctrl-C in the terminal does not reach it
        )
    _children[proc.pid] = proc
    try:
        ticks = _start_ticks(psutil.Process(proc.pid))
    except psutil.NoSuchProcess:  # exited at once; recorded so that its log is shown
        ticks = 0
    return Process(name, proc.pid, ticks, argv[0], str(log_path))


def is_running(process: Process) -> bool:
    return _handle(process) is not None


def stop(process: Process, grace_s: float = STOP_GRACE_S) -> str:
    """SIGTERM, then SIGKILL after ``grace_s``. Returns what happened, for the user."""
    collect_exited()
    handle = _handle(process)
    if handle is None:
        reap(process)  # killed by someone else (a test's SIGKILL): collect its status
        return "not running"
    with contextlib.suppress(psutil.NoSuchProcess):  # gone (or its pid reused) since the check
        handle.terminate()
    if _wait_gone(process, grace_s):
        return "stopped"
    with contextlib.suppress(psutil.NoSuchProcess):
        handle.kill()
    return "killed" if _wait_gone(process, 5.0) else "still running after SIGKILL"


def _wait_gone(process: Process, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        _reap(process.pid)
        if not is_running(process):
            reap(process)  # it may have become a zombie since the first look
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def exited_with(process: Process) -> int | None:
    """Exit status of a process this interpreter started and that has exited, else None."""
    child = _children.get(process.pid)
    return child.poll() if child is not None else None


def _handle(process: Process) -> psutil.Process | None:
    """The running process ``process`` records: None if it exited, is a zombie, or its pid now
    names another program (another start time or executable)."""
    try:
        handle = psutil.Process(process.pid)
        if _start_ticks(handle) != process.start_ticks or not _runs(handle, process.executable):
            return None
        if handle.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):  # a zombie has exited
            return None
    except (psutil.NoSuchProcess, psutil.AccessDenied):  # exited meanwhile, or not ours to inspect
        return None
    return handle


def reap(process: Process, wait_s: float = REAP_WAIT_S) -> None:
    """Collect the exit status of ``process`` if this interpreter started it and it has exited. A
    zombie that cannot be collected yet is waited for up to ``wait_s`` (its other threads are still
    exiting, see the module docstring); a child that is still running is left alone."""
    child = _children.get(process.pid)
    if child is None:
        return
    if child.poll() is None and _is_zombie(process.pid):
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=wait_s)
    _reap(process.pid)


def collect_exited() -> None:
    """Collect, without waiting, every child of this interpreter that has exited (those
    :func:`reap` gave up waiting for included)."""
    for pid in list(_children):
        _reap(pid)


def _is_zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _reap(pid: int) -> None:
    """Collect the exit status if ``pid`` is our own child and has exited, without waiting."""
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        del _children[pid]


def _runs(handle: psutil.Process, executable: str) -> bool:
    # psutil drops the " (deleted)" of a binary replaced by a rebuild while running.
    return handle.exe() == os.path.realpath(executable)


def _start_ticks(handle: psutil.Process) -> int:
    """The kernel start time in clock ticks since boot, the unit of recorded processes (state files
    written before psutil keep working). psutil gives it as boot time + ticks / CLK_TCK; both boot
    times are read from /proc/stat moments apart, so the rounding recovers the exact tick count."""
    return round((handle.create_time() - psutil.boot_time()) * CLOCK_TICKS)


def print_log_tail(log_path: Path, out: IO[str], lines: int = 20) -> None:
    """Show the end of a component's log, where the reason for a failure usually is."""
    try:
        tail = log_path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return
    print(f"--- last {len(tail)} lines of {log_path} ---", file=out)
    for line in tail:
        print(f"    {line}", file=out)
