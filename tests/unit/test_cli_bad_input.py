"""Every bad trace, argument or output path named in the issue ("every bad trace or argument to the
CLI is a one-line error"): a corrupt or truncated ``profiles.csv.gz``, profile steps with float
jitter, an unreadable or missing trace directory or file, an unwritable ``--out`` / ``--json`` /
``--plot`` / ``--placements-out``, ``--hours inf|nan|-1|1e30``, ``cpu_milli=1e30``, a negative
duration, a fraction in a whole-number column. Each gives exit code 2 and one line on stderr
naming the file (with its line and column where there is one) or the argument, and leaves no
output behind, also when a writer fails half-way.

Tests run as root, so ``chmod`` does not block reads: unreadable paths are a file where a
directory is expected, a directory where a file is expected, or an injected ``PermissionError``.
"""

from __future__ import annotations

import errno
import gzip
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from neurokube.adapters import trace_files
from neurokube.cli import main as cli

NODES = "name,cpu_milli,memory_mib\nn1,4000,8192\nn2,8000,16384\n"
PODS_HEADER = ("name,namespace,workload,qos,cpu_request_milli,memory_request_mib,cpu_limit_milli,"
               "memory_limit_mib,creation_s,duration_s,profile,profile_offset_s,cpu_scale_milli,memory_scale_mib\n")
POD1 = "p1,default,web,Burstable,500,512,1000,0,0,600,flat,0,400,300\n"
POD2 = "p2,default,web,Burstable,500,512,1000,0,60,1200,flat,300,400,300\n"
PROFILES = "profile,t_s,cpu,memory\nflat,0,1.0,1.0\nflat,300,2.0,1.0\nflat,600,4.0,0.5\nflat,900,1.0,0.5\n"


def write_trace(root: Path, nodes: str = NODES, pods: str = PODS_HEADER + POD1 + POD2,
                profiles: str | bytes = PROFILES, *, gz: bool = False) -> Path:
    d = root / "trace"
    d.mkdir(parents=True, exist_ok=True)
    (d / "nodes.csv").write_text(nodes)
    (d / "pods.csv").write_text(pods)
    if gz:
        raw = profiles if isinstance(profiles, bytes) else gzip.compress(profiles.encode(), mtime=0)
        (d / "profiles.csv.gz").write_bytes(raw)
    else:
        (d / "profiles.csv").write_text(profiles)
    return d


def run(capsys, *argv: str) -> tuple[int, str]:
    """``neurokube argv`` in-process: (exit code, stderr). argparse's SystemExit is its code."""
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def refused(code: int, err: str, *needles: str) -> str:
    """Exit code 2 and one line on stderr holding every needle; returns the line."""
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_the_fixture_trace_is_valid(tmp_path, capsys):
    code, err = run(capsys, "trace", "info", write_trace(tmp_path))
    assert code == 0 and err == ""


# --- bad traces: one line naming file, line and column; no --json left behind -----------------

def bad_trace_cases():
    gz = gzip.compress(PROFILES.encode(), mtime=0)
    corrupt = gz[:12] + bytes(b ^ 0x5A for b in gz[12:-8]) + gz[-8:]
    return [
        ("corrupt gzip", {"profiles": corrupt, "gz": True},
         ["profiles.csv.gz: not a readable gzip file"]),
        ("truncated gzip", {"profiles": gz[: len(gz) // 2], "gz": True},
         ["profiles.csv.gz: not a readable gzip file"]),
        ("not gzip at all", {"profiles": PROFILES.encode(), "gz": True},
         ["profiles.csv.gz: not a readable gzip file", "Not a gzipped file"]),
        ("float jitter in t_s", {"profiles": PROFILES.replace("flat,600,", "flat,600.001,")},
         ["profiles.csv:4: profile 'flat': t_s steps are not uniform", "expected every step to be 300 s"]),
        ("jitter the old check missed (IndexError)", {"profiles": PROFILES.replace("flat,300,", "flat,300.001,")},
         ["profiles.csv:4: profile 'flat': t_s steps are not uniform"]),
        ("two samples at one t_s", {"profiles": PROFILES.replace("flat,300,", "flat,0,")},
         ["profiles.csv:3: profile 'flat': t_s steps are not uniform", "two samples share t_s 0"]),
        ("a step below a millisecond", {"profiles": "profile,t_s,cpu,memory\nflat,0,1,1\nflat,1e-9,1,1\n"},
         ["profiles.csv:3:", "below the minimum 0.001 s"]),
        ("cpu_milli 1e30", {"nodes": NODES.replace("n2,8000,", "n2,1e30,")},
         ["nodes.csv:3: column 'cpu_milli': '1e30' is too large", "at most 1,000,000,000"]),
        ("memory_mib above 10^12", {"nodes": NODES.replace("n1,4000,8192", "n1,4000,1000000000001")},
         ["nodes.csv:2: column 'memory_mib': '1000000000001' is too large"]),
        ("negative duration", {"pods": PODS_HEADER + POD1 + POD2.replace(",60,1200,", ",60,-1200,")},
         ["pods.csv:3: column 'duration_s': -1200 is negative"]),
        ("inf creation", {"pods": PODS_HEADER + POD1.replace(",0,600,", ",inf,600,") + POD2},
         ["pods.csv:2: column 'creation_s': 'inf' is not a finite number"]),
        ("nan scale", {"pods": PODS_HEADER + POD1 + POD2.replace(",400,300\n", ",nan,300\n")},
         ["pods.csv:3: column 'cpu_scale_milli': 'nan' is not a finite number"]),
        ("duration beyond 10^8 s", {"pods": PODS_HEADER + POD1.replace(",0,600,", ",0,1e9,") + POD2},
         ["pods.csv:2: column 'duration_s': '1e9' is too large"]),
        ("a fraction of a millicore", {"pods": PODS_HEADER + POD1.replace(",500,512,", ",1.5,512,") + POD2},
         ["pods.csv:2: column 'cpu_request_milli': '1.5' is not a whole number"]),
        ("huge integer", {"pods": PODS_HEADER + POD1.replace(",1000,0,", ",99999999999999999999999,0,") + POD2},
         ["pods.csv:2: column 'cpu_limit_milli': '99999999999999999999999' is too large"]),
        ("profile value 1e30", {"profiles": PROFILES.replace("flat,600,4.0,", "flat,600,1e30,")},
         ["profiles.csv:4: column 'cpu': '1e30' is too large"]),
        ("line numbers count blank lines", {"nodes": NODES + "\n\n   \nn3,-5,10\n"},
         ["nodes.csv:7: column 'cpu_milli': -5 is negative"]),
        ("line numbers count a quoted field over two lines",
         {"nodes": 'name,cpu_milli,memory_mib\n"n\n1",4000,8192\nn2,4x,8192\n'},
         ["nodes.csv:4: column 'cpu_milli': '4x' is not a number"]),
        ("a row with an extra field", {"nodes": NODES + "n3,1,1,surplus\n"},
         ["nodes.csv:4: cannot be read as CSV", "Expected 3 fields in line 4, saw 4"]),
        ("a row with a missing field", {"nodes": NODES + "n3,1\n"},
         ["nodes.csv:4: column 'memory_mib': '' is not a number"]),
        ("an unterminated quote", {"pods": PODS_HEADER + POD1 + '"p2,default' + POD2[10:]},
         ["pods.csv:3: cannot be read as CSV", "EOF inside string"]),
        ("a duplicate column", {"nodes": "name,cpu_milli,memory_mib,cpu_milli\nn1,1,1,2\n"},
         ["nodes.csv:1: duplicate column 'cpu_milli'"]),
        ("not UTF-8", {"nodes": b"name,cpu_milli,memory_mib\nn\xe9,1,1\n"},
         ["nodes.csv: cannot be read as CSV", "not UTF-8"]),
    ]


@pytest.mark.parametrize("command", ["info", "replay"])
@pytest.mark.parametrize("case, files, needles", bad_trace_cases(), ids=[c[0] for c in bad_trace_cases()])
def test_a_bad_trace_is_one_line_naming_file_and_line(tmp_path, capsys, command, case, files, needles):
    files = dict(files)
    nodes = files.pop("nodes", NODES)
    d = write_trace(tmp_path, **files)
    (d / "nodes.csv").write_bytes(nodes if isinstance(nodes, bytes) else nodes.encode())
    out = tmp_path / "out" / "replay.json"
    if command == "info":
        code, err = run(capsys, "trace", "info", d)
    else:
        code, err = run(capsys, "replay", "--trace", d, "--policy", "default", "--json", out,
                        "--placements-out", tmp_path / "placements")
    line = refused(code, err, *needles)
    assert line.startswith(f"neurokube: error: {d}/"), line
    assert not out.exists() and not (tmp_path / "out").exists() and not (tmp_path / "placements").exists()


def test_a_bom_and_blank_lines_are_accepted(tmp_path, capsys):
    d = write_trace(tmp_path, nodes="\ufeff" + NODES + "\n\n", pods=PODS_HEADER + POD1 + "\n" + POD2)
    code, err = run(capsys, "trace", "info", d)
    assert code == 0, err
    assert len(trace_files.read_trace(d).pods) == 2


def test_rows_out_of_order_within_a_profile_are_sorted(tmp_path):
    lines = PROFILES.splitlines()
    shuffled = "\n".join([lines[0], lines[3], lines[1], lines[4], lines[2]]) + "\n"
    d = write_trace(tmp_path, profiles=shuffled)
    profiles = trace_files.read_trace(d).profiles
    assert profiles.step_s.tolist() == [300.0] and profiles.cpu.tolist() == [1.0, 2.0, 4.0, 1.0]


# --- unreadable or missing trace directories and files ----------------------------------------

def test_a_trace_path_that_is_a_file(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    refused(*run(capsys, "trace", "info", f), f"{f}: not a directory", "it is a file")


def test_a_missing_trace_directory(tmp_path, capsys):
    refused(*run(capsys, "replay", "--trace", tmp_path / "nope"), f"{tmp_path / 'nope'}: not a directory",
            "does not exist")


def test_a_trace_path_under_a_file(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    refused(*run(capsys, "trace", "info", f / "trace"), f"{f / 'trace'}: not a directory")


def test_a_directory_where_a_trace_file_is_expected(tmp_path, capsys):
    d = write_trace(tmp_path)
    (d / "nodes.csv").unlink()
    (d / "nodes.csv").mkdir()
    refused(*run(capsys, "trace", "info", d), f"{d / 'nodes.csv'}: not a regular file")


def test_a_missing_trace_file(tmp_path, capsys):
    d = write_trace(tmp_path)
    (d / "pods.csv").unlink()
    refused(*run(capsys, "trace", "info", d), f"{d}: pods.csv (or pods.csv.gz) not found")


def test_a_trace_file_that_cannot_be_opened(tmp_path, capsys, monkeypatch):
    d = write_trace(tmp_path)
    read_csv = pd.read_csv

    def denied(path, *args, **kwargs):
        if Path(path).name == "pods.csv":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return read_csv(path, *args, **kwargs)

    monkeypatch.setattr(pd, "read_csv", denied)
    refused(*run(capsys, "trace", "info", d), f"{d / 'pods.csv'}: cannot be read (Permission denied)")


def test_a_trace_directory_that_cannot_be_searched(tmp_path, capsys, monkeypatch):
    d = write_trace(tmp_path)
    is_dir = Path.is_dir

    def denied(self):
        if self == d:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return is_dir(self)

    monkeypatch.setattr(Path, "is_dir", denied)
    refused(*run(capsys, "trace", "info", d), f"{d}: cannot be read (Permission denied)")


# --- numeric arguments -------------------------------------------------------------------------

@pytest.mark.parametrize("argv, needle", [
    (["--hours", "inf"], "argument --hours: 'inf' is not a finite number"),
    (["--hours", "nan"], "argument --hours: 'nan' is not a finite number"),
    (["--hours", "-1"], "argument --hours: '-1' must be positive"),
    (["--hours", "0"], "argument --hours: '0' must be positive"),
    (["--hours", "1e30"], "argument --hours: '1e30' is too large"),
    (["--hours", "soon"], "argument --hours: 'soon' is not a number"),
    (["--warmup-hours", "inf"], "argument --warmup-hours: 'inf' is not a finite number"),
    (["--warmup-hours", "-2"], "argument --warmup-hours: '-2' must not be negative"),
    (["--target-load", "nan"], "argument --target-load: 'nan' is not a finite number"),
    (["--seed", "-1"], "argument --seed: '-1' must not be negative"),
    (["--seed", "1" + "0" * 30], "argument --seed: '1000000000000000000000000000000' is too large"),
    (["--nodes", "1e30"], "argument --nodes: '1e30' is not a whole number"),
    (["--nodes", "1" + "0" * 30], "is too large"),
])
def test_numeric_arguments_out_of_range_are_refused(tmp_path, capsys, argv, needle):
    out = tmp_path / "t"
    refused(*run(capsys, "trace", "synth", "--out", out, *argv), "neurokube trace synth: error: ", needle)
    assert not out.exists()


@pytest.mark.parametrize("argv, needle", [
    (["--step-s", "1e30"], "argument --step-s: '1e30' is not a whole number"),
    (["--step-s", "999999999999999999999"], "argument --step-s: '999999999999999999999' is too large"),
    (["--window-s", "-300"], "argument --window-s: '-300' must be positive"),
    (["--seed", "nan"], "argument --seed: 'nan' is not a whole number"),
])
def test_replay_numbers_out_of_range_are_refused(tmp_path, capsys, argv, needle):
    refused(*run(capsys, "replay", "--trace", write_trace(tmp_path), *argv), needle)


def test_audit_tolerance_inf_is_refused(tmp_path, capsys):
    refused(*run(capsys, "audit", "--trace", tmp_path, "--placements", tmp_path, "--report", tmp_path / "r.json",
                 "--tolerance", "inf"), "argument --tolerance: 'inf' is not a finite number")


def test_train_node_hour_cost_nan_is_refused(tmp_path, capsys):
    refused(*run(capsys, "train", "--trace", tmp_path, "--out", tmp_path / "m", "--node-hour-cost", "nan"),
            "argument --node-hour-cost: 'nan' is not a finite number")
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("value, why", [("0", "'0' must be positive"), ("-1", "'-1' must be positive"),
                                        ("x", "'x' is not a whole number")])
def test_train_collections_that_are_not_a_positive_count_are_refused(tmp_path, capsys, value, why):
    refused(*run(capsys, "train", "--trace", tmp_path, "--out", tmp_path / "m", "--collections", value),
            f"argument --collections: {why}")
    assert not (tmp_path / "m").exists()


def test_a_usage_level_with_inf_is_refused(tmp_path, capsys):
    refused(*run(capsys, "trace", "build", "--openb-pods", tmp_path / "p.csv", "--openb-nodes", tmp_path / "n.csv",
                 "--bitbrains", tmp_path, "--out", tmp_path / "t", "--cpu-level", "Burstable=inf:0.5"),
            "--cpu-level: 'inf:0.5' is out of range")
    assert not (tmp_path / "t").exists()


# --- unwritable outputs: refused up front, before any work -------------------------------------

@pytest.fixture()
def a_file(tmp_path) -> Path:
    f = tmp_path / "regular-file"
    f.write_text("not a directory\n")
    return f


@pytest.mark.parametrize("flag, argv", [
    ("--out", ["trace", "synth", "--out", "{file}/trace"]),
    ("--out", ["trace", "synth", "--out", "{file}"]),
    ("--json", ["replay", "--trace", "{trace}", "--json", "{file}/r.json"]),
    ("--json", ["replay", "--trace", "{trace}", "--json", "{tmp}"]),
    ("--plot", ["replay", "--trace", "{trace}", "--plot", "{file}/deeper/p.png"]),
    ("--placements-out", ["replay", "--trace", "{trace}", "--placements-out", "{file}"]),
    ("--out", ["train", "--trace", "{trace}", "--out", "{file}/model"]),
    ("--log-dir", ["train", "--trace", "{trace}", "--out", "{tmp}/m", "--log-dir", "{file}/logs"]),
    ("--json", ["recommend", "--trace", "{trace}", "--model-dir", "{tmp}", "--json", "{file}/r.json"]),
    ("--csv", ["recommend", "--trace", "{trace}", "--model-dir", "{tmp}", "--csv", "{file}/r.csv"]),
    ("--out", ["nightly", "--out", "{file}/nightly"]),
])
def test_an_unwritable_output_is_one_line_and_nothing_is_written(tmp_path, capsys, a_file, flag, argv):
    trace = write_trace(tmp_path / "in")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    argv = [a.format(file=a_file, trace=trace, tmp=tmp_path) for a in argv]
    target = argv[argv.index(flag) + 1]
    refused(*run(capsys, *argv), f"argument {flag}: {target!r} cannot be written: ")
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert a_file.read_text() == "not a directory\n"


def test_recommend_refuses_an_unwritable_model_dir_before_training(tmp_path, capsys, a_file):
    trace = write_trace(tmp_path / "in")
    refused(*run(capsys, "recommend", "--trace", trace, "--train-trace", tmp_path / "other",
                 "--model-dir", a_file / "models"), f"{a_file / 'models'}: cannot write --model-dir",
            f"{a_file} is not a directory")


# --- a writer failing half-way leaves nothing behind --------------------------------------------

def test_a_replay_whose_plot_fails_leaves_no_json_placements_or_plot(tmp_path, capsys, monkeypatch):
    from neurokube.adapters import plots

    def fails(path, *args, **kwargs):
        Path(path).write_bytes(b"\x89PNG half")
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(plots, "plot_replay", fails)
    trace = write_trace(tmp_path / "in")
    out = tmp_path / "out"
    code, err = run(capsys, "replay", "--trace", trace, "--policy", "default", "--json", out / "r.json",
                    "--placements-out", out / "placements", "--plot", out / "sub" / "p.png")
    refused(code, err, f"{out / 'sub' / 'p.png'}: cannot write output (No space left on device)")
    assert not out.exists()


def test_a_synth_whose_writer_fails_leaves_no_directory(tmp_path, capsys, monkeypatch):
    def fails(trace, directory, **kwargs):
        (Path(directory) / "nodes.csv").write_text("name,cpu_milli,memory_mib\n")
        raise OSError(errno.EIO, "Input/output error", str(Path(directory) / "pods.csv"))

    monkeypatch.setattr(trace_files, "write_trace", fails)
    out = tmp_path / "a" / "b" / "trace"
    code, err = run(capsys, "trace", "synth", "--out", out, "--hours", "1", "--nodes", "3", "--workloads", "5")
    refused(code, err, f"{out}: cannot write output (Input/output error)")
    assert list(tmp_path.iterdir()) == []


def test_a_synth_into_an_existing_directory_keeps_other_files_and_drops_stale_profiles(tmp_path, capsys):
    out = tmp_path / "trace"
    out.mkdir()
    (out / "README").write_text("mine\n")
    (out / "profiles.csv").write_text("stale\n")
    code, err = run(capsys, "trace", "synth", "--out", out, "--hours", "1", "--nodes", "3", "--workloads", "5")
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["README", "nodes.csv", "pods.csv", "profiles.csv.gz"]
    assert len(trace_files.read_trace(out).nodes) == 3


# --- audit: a bad report or placements file -----------------------------------------------------

@pytest.fixture()
def replayed(tmp_path, capsys):
    trace = write_trace(tmp_path / "in")
    code, err = run(capsys, "replay", "--trace", trace, "--policy", "default", "--json", tmp_path / "r.json",
                    "--placements-out", tmp_path / "pl")
    assert code == 0, err
    return trace, tmp_path / "r.json", tmp_path / "pl"


@pytest.mark.parametrize("mutate, needle", [
    (lambda doc: doc["config"].update(step_s=float("inf")), "config.step_s is not a finite number"),
    (lambda doc: doc["replay_end_s"].update(default="soon"), "replay_end_s.default is not a finite number"),
    (lambda doc: doc["policies"].update({"../../etc/passwd": {}}), "is not a file name"),
    (lambda doc: doc.pop("policies"), "not a replay JSON report"),
])
def test_a_bad_audit_report_is_one_line(replayed, capsys, mutate, needle):
    trace, report, placements = replayed
    doc = json.loads(report.read_text())
    mutate(doc)
    report.write_text(json.dumps(doc))
    refused(*run(capsys, "audit", "--trace", trace, "--placements", placements, "--report", report),
            f"{report}", needle)


@pytest.mark.parametrize("text, needle", [
    ("pod,node,bind_s\np1,n1,inf\n", ":2: column 'bind_s': 'inf' is not a time"),
    ("pod,node\np1,n1\n", "missing column 'bind_s'"),
    ("pod,node,bind_s\np1,n1,0,9\n", ":2: cannot be read as CSV"),
    ("", "empty file"),
])
def test_a_bad_placements_file_is_one_line(replayed, capsys, text, needle):
    trace, report, placements = replayed
    (placements / "default.csv").write_text(text)
    line = refused(*run(capsys, "audit", "--trace", trace, "--placements", placements, "--report", report), needle)
    assert re.search(rf"{re.escape(str(placements / 'default.csv'))}(:\d+)?: ", line), line


def test_a_newline_in_a_path_stays_on_one_line(tmp_path, capsys):
    refused(*run(capsys, "trace", "info", tmp_path / "two\nlines"), "two\\nlines: not a directory")


def test_outputs_that_cannot_be_renamed_into_place_leave_nothing(tmp_path, monkeypatch):
    import os

    from neurokube.cli import outputs
    from neurokube.errors import InputError

    def no_rename(src, dst):
        raise OSError(errno.EXDEV, "Invalid cross-device link", str(src))

    monkeypatch.setattr(outputs.os, "replace", no_rename)
    target = tmp_path / "new" / "r.json"
    with pytest.raises(InputError, match=rf"{re.escape(str(target))}: cannot write output \(Invalid cross-device"):
        with outputs.Outputs() as out:
            out.file(target, "--json").write_text("{}\n")
    assert os.listdir(tmp_path) == []


def test_an_apiserver_refusal_exits_2_and_an_outage_1(monkeypatch, capsys):
    """A 4xx from the apiserver is final (exit 2, like bad input); a 5xx may pass (exit 1)."""
    from neurokube.cli import main as cli_main
    from neurokube.errors import ApiStatusError

    for status, code in ((403, 2), (503, 1)):
        def boom(args, status=status):
            raise ApiStatusError(status, "Refused", "nope", "GET", "/api/v1/nodes")

        monkeypatch.setattr(cli_main, "build_parser", lambda boom=boom: _parser_with(boom))
        assert cli_main.main(["x"]) == code
        assert len(capsys.readouterr().err.strip().splitlines()) == 1


def _parser_with(func):
    import argparse

    parser = argparse.ArgumentParser(prog="neurokube")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--log-format", default="auto")
    parser.add_argument("cmd")
    parser.set_defaults(func=func)
    return parser
