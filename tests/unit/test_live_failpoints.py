"""The exit-before-bind failpoint (tests/chaos): off by default, fires once per arming, exits hard."""

import subprocess
import sys

from neurokube.live import failpoints

SCRIPT = """
import sys
from neurokube.live import failpoints
failpoints.configure(sys.argv[1])
failpoints.before_bind("default/p", "n1")
print("still alive")
"""


def run(trigger: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SCRIPT, trigger], capture_output=True, text=True, timeout=60)


def test_armed_failpoint_exits_137_and_disarms(tmp_path):
    trigger = tmp_path / "exit-before-bind"
    trigger.touch()
    first = run(str(trigger))
    assert first.returncode == 137 and "still alive" not in first.stdout
    assert "failpoint: exiting" in first.stderr
    assert not trigger.exists()  # used up: the restarted process carries on
    second = run(str(trigger))
    assert second.returncode == 0 and "still alive" in second.stdout


def test_unset_failpoint_is_a_no_op(tmp_path):
    failpoints.configure(None)
    failpoints.before_bind("default/p", "n1")  # returns
    failpoints.configure(str(tmp_path / "absent"))
    failpoints.before_bind("default/p", "n1")  # not armed: returns
    failpoints.configure(None)
