"""``neurokube recommend``: trains on two synthetic traces, evaluates on a third, writes exactly
the documented JSON keys and a recommendations CSV; reloads the saved models; bad input (no
models, evaluation trace among the training traces) is one line and exit 2.
"""

import csv
import json

import pytest

from neurokube.cli import main as cli

REQUIRED = {
    "forecast": {"rmse_15m", "rmse_60m", "persistence_rmse_15m", "persistence_rmse_60m"},
    "rightsizing": {"slack_core_h", "requested_slack_core_h", "throttled_s", "vpa_slack_core_h", "vpa_throttled_s"},
    "bottleneck": {"precision", "recall"},
}


@pytest.fixture(scope="module")
def traces(tmp_path_factory):
    root = tmp_path_factory.mktemp("traces")
    for seed in (1, 2, 3):
        assert cli.main(["trace", "synth", "--out", str(root / f"s{seed}"), "--hours", "4", "--warmup-hours", "2",
                         "--nodes", "10", "--workloads", "30", "--target-load", "0.8", "--seed", str(seed)]) == 0
    return root


def test_json_keys_csv_and_reload(traces, tmp_path, capsys):
    out, recs, models = tmp_path / "r.json", tmp_path / "recs.csv", tmp_path / "models"
    assert cli.main(["recommend", "--trace", str(traces / "s3"), "--train-trace", str(traces / "s1"),
                     "--train-trace", str(traces / "s2"), "--model-dir", str(models),
                     "--json", str(out), "--csv", str(recs)]) == 0
    doc = json.loads(out.read_text())
    for section, keys in REQUIRED.items():
        assert set(doc[section]) == keys
    assert "CPU RMSE 15m" in capsys.readouterr().out
    rows = list(csv.DictReader(recs.read_text().splitlines()))
    assert rows and {"namespace", "workload", "cpu_request_milli", "memory_limit_mib"} <= set(rows[0])
    assert not list(models.glob("*.pkl")) and (models / "manifest.json").is_file()
    out2 = tmp_path / "again.json"
    assert cli.main(["recommend", "--trace", str(traces / "s3"), "--model-dir", str(models), "--json", str(out2)]) == 0
    assert json.loads(out2.read_text())["forecast"] == doc["forecast"]


@pytest.mark.parametrize("argv, needle", [
    (["--trace", "{s3}"], "--train-trace"),
    (["--trace", "{s3}", "--train-trace", "{s3}"], "did not train on"),
    (["--trace", "{s3}", "--model-dir", "{tmp}"], "not a model directory"),
])
def test_bad_input_is_one_line_and_exit_2(traces, tmp_path, capsys, argv, needle):
    argv = [a.format(s3=traces / "s3", tmp=tmp_path) for a in argv]
    assert cli.main(["recommend", *argv]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1
