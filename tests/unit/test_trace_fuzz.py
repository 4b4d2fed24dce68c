"""A fuzzer over the trace reader, through the real command line (issue: "every bad trace or
argument to the CLI is a one-line error").

A tiny valid v1 trace (3 nodes, 5 pods, two 4-sample profiles) is mutated: CSV structure (a
column dropped, added, duplicated or renamed, rows with missing or extra fields, blank lines, a
BOM, quoted garbage, duplicated rows), numbers (inf, nan, 1e30, -1, 1.5 for a whole-number
column, huge integers, empty cells...), then optionally gzipped, then bytes (random files,
truncation, flipped or inserted bytes, so also corrupt and truncated gzip). Each mutant goes
through ``neurokube trace info DIR`` in-process (``main(argv)``, stdout and stderr captured) and
through ``read_trace``. The property: exit code 0 or 2, never an exception or a traceback; on 2
one line on stderr naming a file of the trace (and a line that exists, when it names one); the
reader either returns a trace within the documented limits or raises ``InputError``, agreeing
with the exit code. The main test runs 2,000 derandomized examples.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import logging
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from neurokube.adapters import trace_files
from neurokube.cli.main import main
from neurokube.errors import InputError
from neurokube.trace import format as trace_format

NODES = "name,cpu_milli,memory_mib\nn1,4000,8192\nn2,8000,16384\nn3,16000,65536\n"
PODS = (
    "name,namespace,workload,qos,cpu_request_milli,memory_request_mib,cpu_limit_milli,memory_limit_mib,"
    "creation_s,duration_s,profile,profile_offset_s,cpu_scale_milli,memory_scale_mib\n"
    "p1,default,web,Burstable,500,512,1000,0,0,600,flat,0,400,300\n"
    "p2,default,web,Burstable,500,512,1000,0,60,1200.5,flat,300,400,300\n"
    "p3,batch,job,Guaranteed,2000,4096,2000,4096,120,3600,wave,0,1500,3000\n"
    "p4,batch,job,Guaranteed,2000,4096,2000,4096,180,30,wave,600,1500,3000\n"
    "p5,default,cache,BestEffort,0,0,0,0,240,900,flat,0,100,200\n"
)
PROFILES = ("profile,t_s,cpu,memory\nflat,0,1.0,1.0\nflat,300,2.0,1.0\nflat,600,4.0,0.5\nflat,900,1.0,0.5\n"
            "wave,0,0.5,1.0\nwave,60,1.0,1.0\nwave,120,1.5,1.0\nwave,180,1.0,1.0\n")
TEMPLATE = {"nodes.csv": NODES, "pods.csv": PODS, "profiles.csv": PROFILES}
FILES = tuple(TEMPLATE)

NUMBERS = ("inf", "-inf", "Infinity", "+inf", "nan", "NaN", "-nan", "1e30", "-1", "-0", "+5", "1.5", "0.5",
           "0", "1e-300", "5e-324", "1e308", "1e309", "99999999999999999999999", "9223372036854775807",
           "9223372036854775808", "1000000000", "1000000001", "1e12", "1000000000001", "100000000",
           "100000001", "1_000", "0x10", "1,5", "", " ", "  7  ", "٣", "1e", ".", "-", "3600.0000001")
SNIPPETS = (b",", b"\n", b"\r", b"\r\n", b'"', b'""', b"\x00", b"\xff", b"\xef\xbb\xbf", b" ", b"\t", b";",
            b"nan", b"inf", b"1e30", b"-", b"\n\n", b',"x\ny",', b"\x1f\x8b")
FUZZ = settings(max_examples=2000, derandomize=True, deadline=None, database=None, print_blob=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much, HealthCheck.large_base_example])

# --- mutations -------------------------------------------------------------------------------

fractions = st.floats(0, 1, allow_nan=False)
files = st.sampled_from(FILES)
text_values = st.one_of(st.sampled_from(NUMBERS), st.text(max_size=12))
NUMERIC = {name: [i for i, c in enumerate(text.split("\n")[0].split(",")) if c not in
                  ("name", "namespace", "workload", "qos", "profile")] for name, text in TEMPLATE.items()}
number = st.tuples(st.just("number"), files, fractions, fractions, st.sampled_from(NUMBERS))
csv_mutation = st.one_of(
    number, number, number,  # weighted: out-of-range and malformed numbers are the main attack
    st.tuples(st.just("cell"), files, fractions, fractions, text_values),
    st.tuples(st.just("drop_column"), files, fractions),
    st.tuples(st.just("extra_column"), files, st.sampled_from(("owner", "", "name", "cpu", '"q"'))),
    st.tuples(st.just("duplicate_column"), files, fractions),
    st.tuples(st.just("rename_column"), files, fractions, st.text(max_size=8)),
    st.tuples(st.just("blank_lines"), files, fractions, st.sampled_from(("\n", "\n\n", "   \n", ",,\n", "\r\n"))),
    st.tuples(st.just("bom"), files),
    st.tuples(st.just("quote_garbage"), files, fractions, fractions, st.sampled_from(('"abc', 'x"y', '"a,b"', '"\n"'))),
    st.tuples(st.just("extra_field"), files, fractions),
    st.tuples(st.just("missing_field"), files, fractions),
    st.tuples(st.just("duplicate_row"), files, fractions),
    st.tuples(st.just("header_only"), files),
    st.tuples(st.just("swap_rows"), files, fractions, fractions),
)
byte_mutation = st.one_of(
    st.tuples(st.just("replace"), st.sampled_from((*FILES, "profiles.csv.gz")), st.binary(max_size=120)),
    st.tuples(st.just("truncate"), st.sampled_from((*FILES, "profiles.csv.gz")), fractions),
    st.tuples(st.just("flip"), st.sampled_from((*FILES, "profiles.csv.gz")), fractions, st.integers(1, 255)),
    st.tuples(st.just("insert"), st.sampled_from((*FILES, "profiles.csv.gz")), fractions,
              st.one_of(st.sampled_from(SNIPPETS), st.binary(min_size=1, max_size=6))),
)
mutants = st.tuples(st.lists(csv_mutation, max_size=3), st.booleans(), st.lists(byte_mutation, max_size=2))


def _index(fraction: float, n: int) -> int:
    return min(int(fraction * n), n - 1) if n > 0 else 0


def apply_csv(text: str, m: tuple) -> str:
    rows = [line.split(",") for line in text.split("\n")[:-1]] if text.endswith("\n") else \
        [line.split(",") for line in text.split("\n")]
    op, data = m[0], max(len(rows) - 1, 1)
    if op in ("cell", "number"):
        r = 1 + _index(m[2], data)
        if r < len(rows) and rows[r]:
            columns = NUMERIC[m[1]] if op == "number" else range(len(rows[r]))
            c = columns[_index(m[3], len(columns))]
            if c < len(rows[r]):
                rows[r][c] = m[4]
    elif op == "drop_column" and rows:
        c = _index(m[2], len(rows[0]))
        rows = [row[:c] + row[c + 1:] for row in rows]
    elif op == "extra_column":
        rows = [row + ([m[2]] if i == 0 else ["x"]) for i, row in enumerate(rows)]
    elif op == "duplicate_column" and rows:
        c = _index(m[2], len(rows[0]))
        rows = [row + [row[c]] if c < len(row) else row for row in rows]
    elif op == "rename_column" and rows:
        rows[0][_index(m[2], len(rows[0]))] = m[3]
    elif op == "blank_lines":
        rows.insert(1 + _index(m[2], data), [m[3].rstrip("\n")] if m[3] != "\n" else [""])
        if m[3] == "\n\n":
            rows.insert(1 + _index(m[2], data), [""])
    elif op == "bom" and rows:
        rows[0][0] = "\ufeff" + rows[0][0]
    elif op == "quote_garbage":
        r = _index(m[2], len(rows))
        if rows[r]:
            rows[r][_index(m[3], len(rows[r]))] = m[4]
    elif op == "extra_field":
        rows[1 + _index(m[2], data) if len(rows) > 1 else 0].append("extra")
    elif op == "missing_field":
        r = 1 + _index(m[2], data) if len(rows) > 1 else 0
        rows[r] = rows[r][:-1]
    elif op == "duplicate_row" and len(rows) > 1:
        r = 1 + _index(m[2], data)
        rows.insert(r, list(rows[min(r, len(rows) - 1)]))
    elif op == "header_only":
        rows = rows[:1]
    elif op == "swap_rows" and len(rows) > 2:
        a, b = 1 + _index(m[2], data), 1 + _index(m[3], data)
        a, b = min(a, len(rows) - 1), min(b, len(rows) - 1)
        rows[a], rows[b] = rows[b], rows[a]
    return "".join(",".join(row) + "\n" for row in rows)


def apply_bytes(raw: bytes, m: tuple) -> bytes:
    op = m[0]
    if op == "replace":
        return m[2]
    if op == "truncate":
        return raw[:int(m[2] * len(raw))]
    if op == "flip" and raw:
        i = _index(m[2], len(raw))
        return raw[:i] + bytes([raw[i] ^ m[3]]) + raw[i + 1:]
    if op == "insert":
        i = int(m[2] * len(raw))
        return raw[:i] + m[3] + raw[i:]
    return raw


@dataclass
class Mutant:
    files: dict[str, bytes]

    def write(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        for old in directory.iterdir():
            old.unlink()
        for name, raw in self.files.items():
            (directory / name).write_bytes(raw)
        return directory


def mutate(mutations: tuple) -> Mutant:
    csv_ops, gzipped, byte_ops = mutations
    texts = dict(TEMPLATE)
    for m in csv_ops:
        texts[m[1]] = apply_csv(texts[m[1]], m)
    raw = {name: text.encode("utf-8", "surrogatepass") for name, text in texts.items()}
    if gzipped:
        raw["profiles.csv.gz"] = gzip.compress(raw.pop("profiles.csv"), mtime=0)
    for m in byte_ops:
        name = m[1]
        if name == "profiles.csv" and gzipped:
            name = "profiles.csv.gz"
        elif name == "profiles.csv.gz" and not gzipped:
            name = "profiles.csv"
        raw[name] = apply_bytes(raw[name], m)
    return Mutant(raw)


# --- running the CLI in-process --------------------------------------------------------------

def run_cli(*argv: str) -> tuple[int, str, str]:
    """``neurokube argv`` in this process: (exit code, stdout, stderr). Anything but SystemExit
    escaping ``main`` fails the test with its traceback, which is the point."""
    out, err = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(argv))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 2
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
    return code, out.getvalue(), err.getvalue()


LOCATION = re.compile(r"^neurokube: error: (?P<file>.+?/(?:nodes|pods|profiles)\.csv(?:\.gz)?)(?::(?P<line>\d+))?: ")


def line_count(raw: bytes, name: str) -> int:
    if name.endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error):
            return 10**9  # undecodable: any line is plausible
    return raw.count(b"\n") + raw.count(b"\r") + 1


def check_refusal(stderr: str, directory: Path, mutant: Mutant) -> None:
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    match = LOCATION.match(lines[0])
    assert match, f"the error does not name a trace file: {lines[0]!r}"
    assert Path(match["file"]).parent == directory, lines[0]
    if match["line"]:
        name = Path(match["file"]).name
        assert 1 <= int(match["line"]) <= line_count(mutant.files[name], name), lines[0]


def check_trace_within_limits(trace) -> None:
    n, p, pr = trace.nodes, trace.pods, trace.profiles
    assert len(n) and len(p) and len(pr)
    assert ((n.cpu_milli >= 1) & (n.cpu_milli <= trace_format.MAX_CPU_MILLI)).all()
    assert ((n.memory_mib >= 1) & (n.memory_mib <= trace_format.MAX_MEMORY_MIB)).all()
    for column, maximum in {**trace_format._INT_POD, **trace_format._FLOAT_POD}.items():
        values = getattr(p, column)
        assert np.isfinite(values).all() and (values >= 0).all() and (values <= maximum).all(), column
    assert (pr.step_s >= trace_format.MIN_PROFILE_STEP_S).all() and np.isfinite(pr.cpu).all()
    assert ((p.profile >= 0) & (p.profile < len(pr))).all()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def test_the_template_is_a_valid_trace(workdir):
    directory = Mutant({k: v.encode() for k, v in TEMPLATE.items()}).write(workdir / "template")
    code, out, err = run_cli("trace", "info", str(directory))
    assert code == 0, err
    assert "pods" in out and err == ""


@FUZZ
@given(mutations=mutants)
def test_trace_info_never_gives_a_traceback(workdir, mutations):
    """2,000 mutants through ``neurokube trace info``; an accepted one is read again with
    ``read_trace`` to check that what passed is within the documented limits."""
    mutant = mutate(mutations)
    directory = mutant.write(workdir / "t")
    code, _, err = run_cli("trace", "info", str(directory))
    assert code in (0, 2), err
    assert "Traceback" not in err
    if code == 2:
        check_refusal(err, directory, mutant)
        with pytest.raises(InputError):
            trace_files.read_trace(directory)
    else:
        check_trace_within_limits(trace_files.read_trace(directory))


@settings(max_examples=100, derandomize=True, deadline=None, database=None, print_blob=False,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutations=mutants, policy=st.sampled_from(("default", "tlp")))
def test_replay_refuses_or_replays_every_mutant(workdir, mutations, policy):
    """The same mutants through ``neurokube replay`` (a reader call that then simulates): a trace
    the reader accepts must replay, and a refusal leaves no --json behind."""
    mutant = mutate(mutations)
    directory = mutant.write(workdir / "r")
    with contextlib.suppress(InputError):  # a long (valid) trace would only make the test slow
        assume(trace_files.read_trace(directory).end_s <= 86_400)
    report = workdir / "r.json"
    report.unlink(missing_ok=True)
    code, _, err = run_cli("replay", "--trace", str(directory), "--policy", policy, "--json", str(report))
    assert code in (0, 2), err
    if code == 2:
        check_refusal(err, directory, mutant)
        assert not report.exists()
    else:
        assert report.exists()
