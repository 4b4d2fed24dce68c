"""Process supervision of the local platform (cluster/processes.py, stack/procgroup.py), on real
processes: a started process is recognised by pid, start time and executable; a record whose pid
now names another start time or program is "not running" and is never signalled; stop is SIGTERM
then SIGKILL for a process that ignores SIGTERM; a process group's members include forked
children, and stopping the group stops them too, also when the leader is already gone."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from neurokube.cluster import processes
from neurokube.stack import procgroup

SH = shutil.which("sh")
SLEEP = shutil.which("sleep")


@pytest.fixture()
def started(tmp_path):
    records = []

    def start(argv: list[str]) -> processes.Process:
        record = processes.start("t", argv, tmp_path / "t.log", tmp_path)
        records.append(record)
        return record

    yield start
    for record in records:  # never leave a process behind, whatever the test did
        procgroup.stop_group(record, grace_s=0.5)


def wait_for(condition, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_started_process_is_recognised_and_stopped(started):
    record = started([SLEEP, "30"])
    assert processes.is_running(record)
    raw = Path(f"/proc/{record.pid}/stat").read_text()
    assert record.start_ticks == int(raw[raw.rindex(")") + 2:].split()[19])  # the unit of older state files
    assert processes.stop(record) == "stopped" and not processes.is_running(record)
    assert processes.stop(record) == "not running"


@pytest.mark.parametrize("change", [{"start_ticks": -1}, {"executable": "/bin/true"}])
def test_a_reused_pid_is_not_ours_and_is_not_signalled(started, change):
    record = started([SLEEP, "30"])
    other = replace(record, **{k: (record.start_ticks - 1 if v == -1 else v) for k, v in change.items()})
    assert not processes.is_running(other)
    assert processes.stop(other) == "not running"
    assert processes.is_running(record)  # the real owner of the pid was left alone


def test_sigterm_ignored_means_sigkill(started):
    record = started([SH, "-c", "trap '' TERM; echo ready; while :; do sleep 0.1; done"])
    wait_for(lambda: "ready" in Path(record.log).read_text().splitlines())  # the trap is set
    assert processes.stop(record, grace_s=0.3) == "killed"
    assert not processes.is_running(record)


def test_a_group_is_its_leader_and_forked_children(started):
    record = started([SH, "-c", f"{SLEEP} 30 & {SLEEP} 30 & wait"])
    wait_for(lambda: len(procgroup.members(record.pid)) == 3)
    children = [p.pid for p in psutil.Process(record.pid).children()]
    assert sorted(procgroup.members(record.pid)) == sorted([record.pid, *children])
    assert procgroup.stop_group(record, grace_s=2) == "stopped"
    assert procgroup.members(record.pid) == []


def test_leftover_members_are_stopped_when_the_leader_is_gone(started):
    record = started([SH, "-c", f"{SLEEP} 30 & wait"])
    wait_for(lambda: len(procgroup.members(record.pid)) == 2)
    os.kill(record.pid, signal.SIGKILL)  # the leader dies, its child stays in the group
    wait_for(lambda: processes.exited_with(record) is not None)  # reaped: the pid is free
    assert len(procgroup.members(record.pid)) == 1
    assert procgroup.stop_group(record, grace_s=2) == "stopped"
    assert procgroup.members(record.pid) == []


def test_a_group_of_nothing_is_not_running(started):
    record = started([SLEEP, "30"])
    assert processes.stop(record) == "stopped"
    assert procgroup.stop_group(record) == "not running"


#: The main thread leaves (pthread_exit) while another thread runs for a second: the kernel shows
#: the process as a zombie at once but lets its parent collect it only when that thread is done.
LEADER_FIRST = ("import ctypes, threading, time; threading.Thread(target=time.sleep, args=(1.0,)).start(); "
                "ctypes.CDLL(None).pthread_exit(None)")


@pytest.mark.parametrize("stop", [processes.stop, procgroup.stop_group])
def test_a_child_whose_main_thread_exits_first_is_reaped_once_gone(started, stop):
    record = started([sys.executable, "-c", LEADER_FIRST])
    wait_for(lambda: psutil.Process(record.pid).status() == psutil.STATUS_ZOMBIE)
    assert not processes.is_running(record)
    assert stop(record) == "not running"
    assert not psutil.pid_exists(record.pid)  # collected, not left a zombie until this interpreter exits


def test_a_child_reap_gave_up_on_is_collected_by_the_next_start(started, monkeypatch, tmp_path):
    monkeypatch.setattr(processes.reap, "__defaults__", (0.1,))  # gives up while the child's thread still runs
    record = started([sys.executable, "-c", LEADER_FIRST])
    wait_for(lambda: psutil.Process(record.pid).status() == psutil.STATUS_ZOMBIE)
    assert processes.stop(record) == "not running"
    assert psutil.pid_exists(record.pid)  # still a zombie: its thread sleeps on
    time.sleep(1.5)  # the thread is done; nothing has collected the child yet
    assert psutil.pid_exists(record.pid)
    started([SLEEP, "30"])  # any later start collects it
    assert not psutil.pid_exists(record.pid)
