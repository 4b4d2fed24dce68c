"""Stop a recorded process together with the children it forked.

The MLflow CLI runs its server as a child process (uvicorn) and does not pass SIGTERM on, so
stopping the recorded pid alone would leave the server holding its port. Every stack process is
started in its own session (:func:`neurokube.cluster.processes.start`), so its process group id is
its pid, and the group is what we signal. The group is signalled only while the recorded leader
still matches its recorded start time; if the leader is gone, the group id cannot have been reused
while members remain, so the leftover members are ours and are stopped too.

Processes are listed and inspected through psutil. It has no notion of a process group, so
membership is ``os.getpgid`` of each pid, and the group is signalled with ``os.killpg`` (one
system call, which also reaches a member forked while the others are being signalled).
"""

from __future__ import annotations

import os
import signal
import time

import psutil

from neurokube.cluster.processes import STOP_GRACE_S, Process, collect_exited, exited_with, is_running, reap


def members(pgid: int) -> list[int]:
    """Pids in process group ``pgid`` (zombies excluded)."""
    found = []
    for proc in psutil.process_iter(["status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
                found.append(proc.pid)
        except OSError:  # exited meanwhile
            continue
    return found


def stop_group(process: Process, grace_s: float = STOP_GRACE_S) -> str:
    """SIGTERM the group, SIGKILL after ``grace_s``. Returns what happened, for the user."""
    collect_exited()
    leader_ours = is_running(process)
    if not leader_ours and (_alive(process.pid) or not members(process.pid)):
        reap(process)  # if this interpreter started it, collect its exit status
        return "not running"  # the pid now names another program, or nothing of ours is left
    _killpg(process.pid, signal.SIGTERM)
    if _wait_group_gone(process, grace_s):
        return "stopped"
    _killpg(process.pid, signal.SIGKILL)
    if not _wait_group_gone(process, 5.0):
        return "still running after SIGKILL"
    return "killed"


def _wait_group_gone(process: Process, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        exited_with(process)  # reaps the leader if this interpreter started it
        if not members(process.pid):
            reap(process)  # a leader that is a zombie still finishing its threads: wait for it
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    return psutil.pid_exists(pid)


def _killpg(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass
