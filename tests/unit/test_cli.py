"""The command line: outputs of replay (table, JSON, placements, plot), the audit round trip,
and bad arguments or bad traces giving one clear line and exit code 2, never a traceback."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from neurokube.cli.main import main


def run(*argv):
    return subprocess.run([sys.executable, "-m", "neurokube.cli.main", *argv], capture_output=True, text=True)


def test_replay_writes_json_placements_and_plot_that_the_audit_accepts(small_trace_dir, tmp_path, capsys):
    out = tmp_path / "r.json"
    code = main(["replay", "--trace", str(small_trace_dir), "--policy", "default", "--policy", "tlp",
                 "--json", str(out), "--placements-out", str(tmp_path / "pl"), "--plot", str(tmp_path / "p.png")])
    assert code == 0
    printed = capsys.readouterr().out
    assert "contention core-s" in printed and "tlp" in printed
    doc = json.loads(out.read_text())
    assert set(doc["policies"]) == {"default", "tlp"}
    assert doc["trace"] == str(small_trace_dir)
    assert set(doc["policies"]["tlp"]) >= {"contention_core_s", "hot_node_fraction", "node_hours", "pending_pod_s",
                                           "unscheduled_pods", "mem_overflow_mib_s", "util_mean", "util_std",
                                           "decision_us_p50", "decision_us_p99"}
    placements = pd.read_csv(tmp_path / "pl" / "default.csv")
    assert list(placements.columns) == ["pod", "node", "bind_s"]
    assert (tmp_path / "p.png").stat().st_size > 10_000
    assert main(["audit", "--trace", str(small_trace_dir), "--placements", str(tmp_path / "pl"),
                 "--report", str(out)]) == 0


def test_audit_detects_a_tampered_placement(small_trace_dir, tmp_path):
    out = tmp_path / "r.json"
    main(["replay", "--trace", str(small_trace_dir), "--policy", "most-allocated", "--json", str(out),
          "--placements-out", str(tmp_path / "pl")])
    path = tmp_path / "pl" / "most-allocated.csv"
    frame = pd.read_csv(path, keep_default_na=False)
    frame["node"] = frame["node"].iloc[0]  # everything on one node
    frame.to_csv(path, index=False)
    assert main(["audit", "--trace", str(small_trace_dir), "--placements", str(tmp_path / "pl"),
                 "--report", str(out)]) == 1


@pytest.mark.parametrize("argv, needle", [
    (["replay", "--trace", "/nonexistent"], "not a directory"),
    (["replay", "--trace", "{trace}", "--policy", "magic"], "unknown policy 'magic'"),
    (["replay", "--trace", "{trace}", "--policy", "neurokube"], "needs a model"),
    (["replay", "--trace", "{trace}", "--step-s", "0"], "must be positive"),
    (["replay", "--trace", "{trace}", "--step-s", "60", "--scrape-s", "90"], "multiple of step_s"),
    (["trace", "synth"], "required: --out"),
    (["trace", "build", "--openb-pods", "/x.csv", "--openb-nodes", "/y.csv", "--bitbrains", "/z", "--out", "{tmp}"],
     "file not found"),
])
def test_bad_input_is_one_line_and_exit_2(small_trace_dir, tmp_path, argv, needle):
    argv = [a.format(trace=small_trace_dir, tmp=tmp_path / "o") for a in argv]
    result = run(*argv)
    assert result.returncode == 2
    assert needle in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2  # usage line + error line at most


def test_bad_trace_is_reported_with_file_and_line(tmp_path, small_trace_dir):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(small_trace_dir, bad)
    lines = (bad / "pods.csv").read_text().splitlines()
    lines[3] = lines[3].replace(",Burstable,", ",Platinum,").replace(",Guaranteed,", ",Platinum,").replace(
        ",BestEffort,", ",Platinum,")
    (bad / "pods.csv").write_text("\n".join(lines) + "\n")
    result = run("replay", "--trace", str(bad))
    assert result.returncode == 2
    assert f"{bad / 'pods.csv'}:4: column 'qos': unknown class 'Platinum'" in result.stderr


def test_trace_synth_and_info(tmp_path):
    assert main(["trace", "synth", "--out", str(tmp_path / "s"), "--hours", "2", "--nodes", "5"]) == 0
    result = run("trace", "info", str(tmp_path / "s"), "--json")
    assert result.returncode == 0
    info = json.loads(result.stdout)
    assert info["nodes"] == 5 and info["pods"] > 0
