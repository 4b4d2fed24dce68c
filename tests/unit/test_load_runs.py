"""benchmarks/load_runs.py and benchmarks/_locust_results.py without a cluster or Locust: reading
Locust's CSV files and log, cutting the history into stages, the goal verdicts, the rendered
commands and tables, the server-side metric deltas, the cluster checks, and the function URLs the
cluster record keeps for the script."""

from __future__ import annotations

import csv
import io
import re
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from benchmarks import _locust_results as lr
from benchmarks import load_runs
from neurokube.cli import cluster_cmd as cluster_cli
from neurokube.cluster.state import ClusterRecord

ROOT = Path(__file__).resolve().parents[2]
PERCENTILES = ["50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%"]
STATS_HEADER = ["Type", "Name", "Request Count", "Failure Count", "Median Response Time", "Average Response Time",
                "Min Response Time", "Max Response Time", "Average Content Size", "Requests/s", "Failures/s",
                *PERCENTILES]
HISTORY_HEADER = ["Timestamp", "User Count", "Type", "Name", "Requests/s", "Failures/s", *PERCENTILES,
                  "Total Request Count", "Total Failure Count", "Total Median Response Time",
                  "Total Average Response Time", "Total Min Response Time", "Total Max Response Time",
                  "Total Average Content Size"]


def _write(path: Path, header: list[str], rows: list[dict]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, header)
        writer.writeheader()
        for row in rows:
            writer.writerow({key: row.get(key, "0") for key in header})
    return path


def _history_row(ts: int, users: int, total: int, failed: int, p50="N/A", p99="N/A",
                 kind: str = "", name: str = "Aggregated") -> dict:
    return {"Timestamp": ts, "User Count": users, "Type": kind, "Name": name, "50%": p50, "99%": p99,
            "Total Request Count": total, "Total Failure Count": failed}


@pytest.fixture
def history(tmp_path: Path) -> Path:
    """Idle for 2 s, then 2 users for stage 1 (t 101..105), 8 users from t 106; the run stops at
    t 108, in the middle of stage 2 (stages of 5 s from t0 = 100)."""
    rows = [_history_row(99, 0, 0, 0), _history_row(100, 0, 0, 0)]
    total = 0
    for ts in range(101, 109):
        users = 2 if ts <= 105 else 8
        total += 10 if users == 2 else 40
        rows.append(_history_row(ts, users, total, 1 if ts >= 107 else 0, p50=str(ts), p99=str(ts * 10)))
        rows.append(_history_row(ts, users, total * 2, 0, kind="BIND", name="create -> bound"))
    return _write(tmp_path / "x_stats_history.csv", HISTORY_HEADER, rows)


def test_stages_come_from_the_cumulative_counts_and_end_of_stage_percentiles(history: Path) -> None:
    rows = lr.stages(lr.read_history(history, lr.AGGREGATED), 5, 3)
    assert [(s.users, s.requests, s.failures, s.complete) for s in rows] == [(2, 50, 0, True), (8, 120, 1, False)]
    first, second = rows
    assert (first.p50_ms, first.p99_ms) == (105.0, 1050.0)  # the stage's last row: Locust's current window
    assert first.rps == pytest.approx(50 / 5)
    assert second.seconds == 3 and second.rps == pytest.approx(40)


def test_history_is_read_per_series_and_not_available_percentiles_are_none(history: Path) -> None:
    bind = lr.read_history(history, lr.BIND)
    assert {s.name for s in bind} == {"create -> bound"} and bind[-1].requests == 2 * 170
    idle = lr.read_history(history, lr.AGGREGATED)[0]
    assert idle.p50_ms is None and idle.p99_ms is None


def test_stages_of_a_run_that_never_started_and_a_bad_stage_length(history: Path) -> None:
    assert lr.stages([lr.Sample(1, 0, "", "Aggregated", 0, 0, None, None)], 10, 3) == []
    with pytest.raises(ValueError):
        lr.stages(lr.read_history(history, lr.AGGREGATED), 0, 3)


def test_rows_after_the_last_stage_belong_to_it(history: Path) -> None:
    """The shape ended at t 104 (two 2-s stages from t0 = 100) but rows ran on while Locust stopped."""
    rows = lr.stages(lr.read_history(history, lr.AGGREGATED), 2, 2)
    assert [(s.requests, s.complete) for s in rows] == [(20, True), (150, True)]
    assert rows[1].users == 8 and rows[1].p99_ms == 1080.0


def test_totals_failures_and_binder_outcomes(tmp_path: Path) -> None:
    stats = _write(tmp_path / "x_stats.csv", STATS_HEADER, [
        {"Type": "POST", "Name": "CloudEvent pod add -> bound", "Request Count": "90", "Failure Count": "0",
         "Median Response Time": "120", "99%": "900", "Requests/s": "9.5"},
        {"Type": "POST", "Name": "CloudEvent pod add -> http_503", "Request Count": "3", "Failure Count": "3",
         "Median Response Time": "40", "99%": "N/A", "Requests/s": "0.3"},
        {"Type": "", "Name": "Aggregated", "Request Count": "93", "Failure Count": "3",
         "Median Response Time": "110", "99%": "900", "Requests/s": "9.8"},
    ])
    totals = lr.read_totals(stats)
    whole = totals[lr.AGGREGATED]
    assert (whole.requests, whole.failures, whole.median_ms, whole.p99_ms, whole.rps) == (93, 3, 110.0, 900.0, 9.8)
    assert totals[("POST", "CloudEvent pod add -> http_503")].p99_ms is None
    assert lr.outcomes(totals) == {"bound": 90, "http_503": 3}
    failures = _write(tmp_path / "x_failures.csv", ["Method", "Name", "Error", "Occurrences"], [
        {"Method": "POST", "Name": "a", "Error": "HTTP 503", "Occurrences": "2"},
        {"Method": "POST", "Name": "b", "Error": "timeout", "Occurrences": "7"}])
    assert lr.read_failures(failures) == [("b", "timeout", 7), ("a", "HTTP 503", 2)]
    assert lr.read_failures(tmp_path / "missing.csv") == []


def test_the_log_lines_the_script_looks_for_are_the_ones_the_locustfiles_write() -> None:
    """Ties the patterns to the locustfiles' own messages, so a reworded message fails here."""
    guard = re.search(r'"(guard: stopping the run: )%s"', (ROOT / "load" / "nklocust.py").read_text())
    spent = re.search(r'"(binder_events: all )%d( pods were sent)', (ROOT / "load" / "binder_events.py").read_text())
    assert guard and spent
    log = (f"[x] ERROR/neurokube.load: {guard.group(1)}p99 2300 ms > 2000 ms\n"
           f"[x] WARNING/neurokube.load: {spent.group(1)}1500{spent.group(2)}; ending the run early\n")
    assert lr.guard_outcome(log) == "p99 2300 ms > 2000 ms"
    assert lr.backlog_spent(log) == 1500
    assert lr.guard_outcome("All users spawned") is None and lr.backlog_spent("") is None


@pytest.mark.parametrize(("requests", "failures", "p99", "expected"), [
    (100, 1, 2000, "ok"),                                   # exactly at both limits
    (100, 2, 100, "over: failures 2.0% > 1%"),
    (100, 0, 2100, "over: p99 2.10 s > 2.00 s"),
    (0, 0, None, "ok"),                                     # nothing measured: nothing over
])
def test_verdict_against_the_guard_limits(requests: int, failures: int, p99, expected: str) -> None:
    assert lr.verdict(requests, failures, p99, lr.Limits(0.01, 2000)) == expected


def test_stage_table_marks_cut_stages_and_the_guard_stop() -> None:
    rows = [lr.StageStats(0, 2, 10, 100, 0, 50, 200, True), lr.StageStats(1, 8, 4, 80, 0, 90, 2500, False)]
    total = lr.Totals("", "Aggregated", 180, 0, 60, 2400, 12.9)
    table = lr.stage_table(rows, total, lr.Limits(0.01, 2000), "p99 2500 ms > 2000 ms", None).splitlines()
    assert table[0].startswith("| stage | users | requests") and "p99 <= 2.00 s" in table[0]
    assert table[2] == "| 1 | 2 | 100 | 0 | 10.0 | 50 ms | 200 ms | ok |"
    assert table[3].startswith("| 2 (cut) | 8 | 80 | 0 | 20.0 |") and "over: p99 2.50 s > 2.00 s" in table[3]
    assert table[4].endswith("guard stopped the run: p99 2500 ms > 2000 ms |") and "**180**" in table[4]
    held = lr.stage_table(rows[:1], total, lr.Limits(0.01, 5000), None, "backlog of 600 pods spent").splitlines()
    assert held[-1].endswith("guard held; ok; backlog of 600 pods spent |")


def test_run_renders_the_locust_command_and_its_limits() -> None:
    run = load_runs.Run("b5000", "t", "load/extender_prioritize.py",
                 {"host": "http://127.0.0.1:1234", "nodes": 5000, "max-p99-ms": 5000, "stage-seconds": 3})
    argv = run.argv()
    assert argv[:5] == ["-f", "load/extender_prioritize.py", "--config", "load/extender_prioritize.conf",
                        "--headless"]
    assert argv[argv.index("--nodes") + 1] == "5000"
    assert argv[-5:] == ["--csv", "load/results/load_runs/b5000", "--csv-full-history",
                         "--html", "load/results/load_runs/b5000.html"]
    assert run.limits() == lr.Limits(0.01, 5000.0)  # the override wins over the config file's 1500
    assert run.stage_seconds() == 3
    default = load_runs.Run("c", "t", "load/end_to_end.py", {"keep-pods": True})
    assert "--keep-pods" in default.argv() and "True" not in default.argv()
    assert default.limits() == lr.Limits(0.01, 10000.0) and default.stage_seconds() == 20.0


def test_placeholders_replace_the_longest_value_first() -> None:
    names = load_runs.Placeholders()
    names.add("/tmp/x", "$STATE")
    names.add("/tmp/x/admin.kubeconfig", "$KUBE")
    text = "KUBECONFIG=/tmp/x/admin.kubeconfig up --state-dir /tmp/x"
    assert names(text) == "KUBECONFIG=$KUBE up --state-dir $STATE"
    assert load_runs.shell(["/venv/bin/locust", "-f", "a.py"], {"K": "v"}) == "K=v locust -f a.py"


def test_conf_values_read_the_scenario_configs() -> None:
    conf = lr.conf_values(ROOT / "load" / "binder_events.conf")
    assert conf["max-p99-ms"] == "2000" and conf["create-pods"] == "0"
    assert not any(key.startswith("#") for key in conf)


def test_metric_deltas_by_label() -> None:
    before = lr.parse_metrics('neurokube_decisions_total{policy="neurokube",outcome="bound"} 5\n')
    after = lr.parse_metrics('neurokube_decisions_total{policy="neurokube",outcome="bound"} 25\n'
                             'neurokube_decisions_total{policy="default",outcome="bound"} 3\n'
                             'neurokube_decision_duration_seconds_sum{stage="total"} 2.0\n'
                             'neurokube_decision_duration_seconds_count{stage="total"} 20\n')
    assert lr.metric_delta(before, after, "neurokube_decisions_total", outcome="bound") == 23
    assert lr.by_label(before, after, "neurokube_decisions_total", "policy") == {"default": 3, "neurokube": 20}
    assert "total 100 ms" in lr.server_side(before, after, True)


def test_invariants() -> None:
    good = {"pods": 10, "bound": 10, "unbound": [], "over_committed": [], "unknown_nodes": [], "nodes": 2}
    assert lr.ok_invariants(good, 10)
    assert not lr.ok_invariants(good, 9)                       # a Binding nobody decided, or a lost one
    assert not lr.ok_invariants({**good, "over_committed": ["n1: ..."]})
    pending = {**good, "bound": 8, "unbound": ["p9", "p10"]}
    assert not lr.ok_invariants(pending) and lr.ok_invariants(pending, 8, all_bound=False)
    assert "bound pods = the binder's `bound` decisions (10)" in lr.invariants_line(good, 10)


def test_plan_sizes() -> None:
    full, quick = load_runs.Plan.of(False, None, None), load_runs.Plan.of(True, None, 100)
    assert (full.nodes, full.stage_c, full.sizes) == (50, 20, (100, 1000, 5000))
    assert (quick.nodes, quick.create_pods) == (10, 100) and quick.stage_a < full.stage_a


def test_cluster_record_keeps_the_function_urls_and_status_prints_them() -> None:
    """`up --functions` records where the functions listen; the load runs read it from `up --json`."""
    urls = {"binder": "http://127.0.0.1:4001", "extender": "http://127.0.0.1:4002"}
    record = ClusterRecord("/s", "/b", "https://127.0.0.1:6443", "/s/admin.kubeconfig", {}, functions=urls)
    assert ClusterRecord.from_json(record.to_json()).functions == urls
    old = record.to_json()
    del old["functions"]
    assert ClusterRecord.from_json(old).functions is None  # a record written before the field existed
    out = io.StringIO()
    with redirect_stdout(out):
        cluster_cli._print_status({"state_dir": "/s", "running": True, "apiserver": "a", "kubeconfig": "k",
                                   "components": {"binder": {"pid": 1, "running": True, "log": "l"}},
                                   "functions": urls})
    assert "binder      http://127.0.0.1:4001" in out.getvalue()


def test_results_outside_the_repository_are_named_absolutely(monkeypatch, tmp_path) -> None:
    """``--out`` (``make load`` uses out/load): inside the repository Locust gets a relative prefix, outside an
    absolute one, since it runs with the repository as its working directory."""
    monkeypatch.setattr(load_runs, "RESULTS", load_runs.ROOT / "out" / "load")
    run = load_runs.Run("a", "t", "load/binder_events.py", {})
    assert run.argv()[-5:] == ["--csv", "out/load/a", "--csv-full-history", "--html", "out/load/a.html"]
    monkeypatch.setattr(load_runs, "RESULTS", tmp_path)
    assert run.argv()[-4:] == [str(tmp_path / "a"), "--csv-full-history", "--html", f"{tmp_path / 'a'}.html"]
