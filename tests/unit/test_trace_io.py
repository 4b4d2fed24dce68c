"""Trace format v1 reader: round trip, extra columns, gzip, and every bad-trace case named in the
contract (missing column, negative / non-numeric value, unknown profile, duplicate name, empty
file), each with a message naming file, line and column."""

import gzip
import shutil

import numpy as np
import pandas as pd
import pytest

from neurokube.adapters.trace_files import read_trace, write_trace
from neurokube.errors import InputError
from neurokube.trace.usage import pod_usage

NODES = "name,cpu_milli,memory_mib\nn1,4000,8192\nn2,8000,16384\n"
PODS_HEADER = ("name,namespace,workload,qos,cpu_request_milli,memory_request_mib,cpu_limit_milli,"
               "memory_limit_mib,creation_s,duration_s,profile,profile_offset_s,cpu_scale_milli,memory_scale_mib\n")
POD = "p1,default,web,Burstable,500,512,1000,0,0,600,flat,0,400,300\n"
PROFILES = "profile,t_s,cpu,memory\nflat,0,1.0,1.0\nflat,300,2.0,1.0\nflat,600,4.0,0.5\n"


def write(tmp_path, nodes=NODES, pods=PODS_HEADER + POD, profiles=PROFILES):
    d = tmp_path / "t"
    d.mkdir(exist_ok=True)
    (d / "nodes.csv").write_text(nodes)
    (d / "pods.csv").write_text(pods)
    (d / "profiles.csv").write_text(profiles)
    return d


def test_reads_a_minimal_trace_and_ignores_extra_columns(tmp_path):
    pods = PODS_HEADER.replace("\n", ",owner\n") + POD.replace("\n", ",team-a\n")
    trace = read_trace(write(tmp_path, pods=pods))
    assert len(trace.nodes) == 2 and len(trace.pods) == 1
    assert trace.profiles.step_s.tolist() == [300.0]


def test_usage_follows_profile_loops_and_caps_at_limit(tmp_path):
    trace = read_trace(write(tmp_path))
    pod = np.zeros(5, dtype=np.int64)
    cpu, mem = pod_usage(trace.pods, trace.profiles, pod, np.array([0, 299, 300, 600, 900.0]))
    # scale 400m: 1x=400, 2x=800, 4x=1600 capped at the 1000m limit, then loops to 1x
    assert cpu.tolist() == [400, 400, 800, 1000, 400]
    assert mem.tolist() == [300, 300, 300, 150, 300]  # no memory limit


def test_profiles_may_be_gzipped(tmp_path):
    d = write(tmp_path)
    with open(d / "profiles.csv", "rb") as src, gzip.open(d / "profiles.csv.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    (d / "profiles.csv").unlink()
    assert len(read_trace(d).profiles) == 1


def test_round_trip(tmp_path, small_trace):
    back = read_trace(write_trace(small_trace, tmp_path / "rt"))
    assert len(back.pods) == len(small_trace.pods)
    np.testing.assert_array_equal(back.pods.cpu_request_milli, small_trace.pods.cpu_request_milli)
    np.testing.assert_allclose(back.pods.duration_s, small_trace.pods.duration_s, atol=1e-3)
    idx = np.arange(len(back.pods))
    age = np.full(idx.size, 1234.0)
    np.testing.assert_allclose(pod_usage(back.pods, back.profiles, idx, age)[0],
                               pod_usage(small_trace.pods, small_trace.profiles, idx, age)[0], rtol=1e-3)


@pytest.mark.parametrize("kind, files, needle", [
    ("missing column", {"nodes": "name,cpu_milli\nn1,4000\n"}, "nodes.csv: missing column 'memory_mib'"),
    ("negative", {"pods": PODS_HEADER + POD.replace(",500,", ",-5,")}, "pods.csv:2: column 'cpu_request_milli': -5 is negative"),
    ("non-numeric", {"pods": PODS_HEADER + POD.replace(",600,", ",soon,")}, "pods.csv:2: column 'duration_s': 'soon' is not a number"),
    ("unknown profile", {"pods": PODS_HEADER + POD.replace(",flat,", ",spiky,")}, "pods.csv:2: column 'profile': unknown profile 'spiky'"),
    ("duplicate pod", {"pods": PODS_HEADER + POD + POD}, "pods.csv:3: duplicate pod 'default/p1'"),
    ("duplicate node", {"nodes": NODES + "n1,1,1\n"}, "nodes.csv:4: duplicate name 'n1'"),
    ("empty file", {"pods": ""}, "pods.csv: empty file"),
    ("header only", {"nodes": "name,cpu_milli,memory_mib\n"}, "nodes.csv: empty file"),
    ("bad qos", {"pods": PODS_HEADER + POD.replace("Burstable", "Gold")}, "pods.csv:2: column 'qos': unknown class 'Gold'"),
    ("uneven profile", {"profiles": PROFILES + "flat,1000,1,1\n"}, "profile 'flat': t_s steps are not uniform"),
    ("zero capacity", {"nodes": NODES + "n3,0,10\n"}, "nodes.csv:4: column 'cpu_milli' is 0"),
])
def test_bad_traces_name_file_line_and_column(tmp_path, kind, files, needle):
    d = write(tmp_path, **files)
    with pytest.raises(InputError) as info:
        read_trace(d)
    assert needle in str(info.value), kind


def test_missing_file_and_directory(tmp_path):
    d = write(tmp_path)
    (d / "profiles.csv").unlink()
    with pytest.raises(InputError, match="profiles.csv .or profiles.csv.gz. not found"):
        read_trace(d)
    with pytest.raises(InputError, match="not a directory"):
        read_trace(tmp_path / "nope")


def test_written_trace_has_exact_v1_columns(tmp_path, small_trace):
    d = write_trace(small_trace, tmp_path / "cols")
    assert list(pd.read_csv(d / "nodes.csv", nrows=1).columns) == ["name", "cpu_milli", "memory_mib"]
    assert ",".join(pd.read_csv(d / "pods.csv", nrows=1).columns) + "\n" == PODS_HEADER
    assert list(pd.read_csv(d / "profiles.csv.gz", nrows=1).columns) == ["profile", "t_s", "cpu", "memory"]
