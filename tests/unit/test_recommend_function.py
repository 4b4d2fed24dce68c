"""The recommender function in-process (functions-framework test client): a known workload is
200 with its numbers, an unknown one 404 with a message, missing query parameters 400, a missing
recommendations file 503, and a directory holding recommendations.csv works as the path; its
settings are read once at start-up, a bad one stops it, and docs/FORECASTS.md carries their table."""

import sys
from pathlib import Path

import functions_framework
import pytest

from neurokube import envsettings
from neurokube.errors import InputError

SOURCE = str(Path(__file__).resolve().parents[2] / "functions" / "recommender" / "main.py")
CSV = ("namespace,workload,source,cpu_request_milli,cpu_limit_milli,memory_request_mib,memory_limit_mib,"
       "written_cpu_request_milli,written_memory_request_mib,expected_slack_core_h,expected_throttled_share\n"
       "team-01,app-0003,forecast,420.0,840.0,1500.0,2250.0,1000.0,4096.0,3.5,0.02\n"
       "team-02,batch,as-written,100.0,0.0,256.0,0.0,100.0,256.0,0.0,nan\n")


@pytest.fixture
def client(tmp_path, monkeypatch):
    (tmp_path / "recommendations.csv").write_text(CSV)
    monkeypatch.setenv("NEUROKUBE_RECOMMENDATIONS", str(tmp_path))
    return functions_framework.create_app("recommendations", SOURCE).test_client()


def test_known_workload(client):
    r = client.get("/recommendations?namespace=team-01&workload=app-0003")
    assert r.status_code == 200
    doc = r.get_json()
    assert doc["cpu_request_milli"] == 420.0 and doc["memory_limit_mib"] == 2250.0 and doc["source"] == "forecast"
    assert client.get("/recommendations?namespace=team-02&workload=batch").get_json()[
        "expected_throttled_share"] is None


def test_unknown_workload_is_404_with_a_message(client):
    r = client.get("/recommendations?namespace=team-01&workload=nope")
    assert r.status_code == 404
    assert "team-01/nope" in r.get_json()["error"]


@pytest.mark.parametrize("query, missing", [("", "namespace, workload"), ("?namespace=team-01", "workload"),
                                            ("?workload=x&namespace=", "namespace")])
def test_missing_parameters_are_400(client, query, missing):
    r = client.get(f"/recommendations{query}")
    assert r.status_code == 400
    assert missing in r.get_json()["error"]


def test_missing_file_is_503(tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROKUBE_RECOMMENDATIONS", str(tmp_path / "absent.csv"))
    c = functions_framework.create_app("recommendations", SOURCE).test_client()
    r = c.get("/recommendations?namespace=a&workload=b")
    assert r.status_code == 503 and "absent.csv" in r.get_json()["error"]


def test_settings_are_read_at_start_up_and_documented(tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROKUBE_RECOMMENDATIONS", str(tmp_path))
    monkeypatch.setenv("NEUROKUBE_DEBUG", "maybe")
    with pytest.raises(InputError, match="NEUROKUBE_DEBUG='maybe': expected true or false"):
        functions_framework.create_app("recommendations", SOURCE)
    monkeypatch.setenv("NEUROKUBE_DEBUG", "off")  # not "1": debug logging would outlive this test
    functions_framework.create_app("recommendations", SOURCE)
    module = sys.modules["main"]
    assert module.SETTINGS.recommendations == tmp_path and module.SETTINGS.debug is False
    docs = (Path(__file__).resolve().parents[2] / "docs" / "FORECASTS.md").read_text()
    assert envsettings.table(module.RecommenderFunctionSettings) in docs
