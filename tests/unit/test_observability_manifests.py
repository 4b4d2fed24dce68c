"""deploy/observability as files: the checked-in dashboard JSON is what the grafana-foundation-sdk
builder (dashboard.py) renders, every panel carries a query (so the integration test, which reads
the JSON, evaluates every panel), and the kustomization renders only files that exist, never the
promtool test file, with the dashboard labelled for Grafana's sidecar.

The rendered manifests are validated by the real apiserver in tests/e2e/test_knative_manifests.py;
the queries against a real Prometheus in tests/integration/test_observability.py."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import yaml

OBSERVABILITY = Path(__file__).resolve().parents[2] / "deploy" / "observability"
DASHBOARD_JSON = OBSERVABILITY / "neurokube-dashboard.json"
#: Files of the directory that are deliberately not rendered by the kustomization.
NOT_RENDERED = {"kustomization.yaml", "dashboard.py", "neurokube-alerts.test.yaml"}
#: kubectl apply (client side) keeps the whole object in an annotation limited to this many bytes.
ANNOTATION_LIMIT = 256 * 1024


@pytest.fixture(scope="module")
def generator():
    spec = importlib.util.spec_from_file_location("neurokube_dashboard_generator", OBSERVABILITY / "dashboard.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def kustomization() -> dict:
    return yaml.safe_load((OBSERVABILITY / "kustomization.yaml").read_text())


def referenced_files(doc: dict) -> list[str]:
    files = list(doc.get("resources", []))
    for generator in doc.get("configMapGenerator", []) + doc.get("secretGenerator", []):
        files += [entry.split("=", 1)[-1] for entry in generator.get("files", [])]
        files += generator.get("envs", [])
    return files


# --- the dashboard ----------------------------------------------------------------------------

def test_the_checked_in_json_is_the_builders_output(generator):
    assert DASHBOARD_JSON.read_text() == generator.render(), (
        "regenerate: python deploy/observability/dashboard.py > deploy/observability/neurokube-dashboard.json")


def test_the_comparison_notices_a_changed_query(generator, monkeypatch):
    monkeypatch.setattr(generator, "RATE", "5m")
    assert DASHBOARD_JSON.read_text() != generator.render()


def test_every_panel_has_a_query_and_the_import_input(generator):
    doc = generator.dashboard()
    assert [p["name"] for p in doc["__inputs"]] == ["DS_PROMETHEUS"]
    assert [v["name"] for v in doc["templating"]["list"]] == ["DS_PROMETHEUS"]  # the sidecar's path
    rows = [p for p in doc["panels"] if p["type"] == "row"]
    panels = [p for p in doc["panels"] if p["type"] != "row"]
    assert [r["title"] for r in rows] == ["Scheduling", "Inputs and state", "Nodes"]
    assert len(panels) == 16 and len({p["title"] for p in panels}) == 16
    assert sum(len(p["targets"]) for p in panels) == 17  # docs/OPERATIONS.md: 17 queries in 16 panels
    assert sorted(p["id"] for p in doc["panels"]) == list(range(1, len(doc["panels"]) + 1))
    for panel in panels:
        assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"]), panel["title"]
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}"
        assert {t["datasource"]["uid"] for t in panel["targets"]} == {"${DS_PROMETHEUS}"}
        assert [t["refId"] for t in panel["targets"]] == list("ABCDEFGH"[:len(panel["targets"])])


def test_the_sdk_lays_the_panels_out_on_the_24_column_grid_without_overlap(generator):
    panels = generator.dashboard()["panels"]
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        pos = panel["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, panel["title"]
        mine = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not mine & cells, panel["title"]
        cells |= mine
    rows = [p["gridPos"]["y"] for p in panels if p["type"] == "row"]
    assert rows == [0, 22, 35]  # every row directly below the previous row's panels


def test_units_and_instant_table_queries(generator):
    panels = {p["title"]: p for p in generator.dashboard()["panels"] if p["type"] != "row"}
    assert panels["Learned-policy share of bindings"]["fieldConfig"]["defaults"]["unit"] == "percentunit"
    assert panels["Placement latency p50 / p99 by stage"]["fieldConfig"]["defaults"]["unit"] == "s"
    for title in ("Model in use", "Hottest nodes now"):
        [target] = panels[title]["targets"]
        assert panels[title]["type"] == "table" and target["instant"] and target["format"] == "table"


# --- the kustomization ------------------------------------------------------------------------

def test_the_kustomization_references_files_that_exist_and_not_the_promtool_tests():
    doc = kustomization()
    files = referenced_files(doc)
    assert sorted(files) == ["neurokube-alerts.yaml", "neurokube-dashboard.json"]
    for name in files:
        assert (OBSERVABILITY / name).is_file(), name
    present = {p.name for p in OBSERVABILITY.iterdir() if p.is_file() and not p.name.startswith(".")}
    assert present - set(files) == NOT_RENDERED, "a new file here: render it or list it in NOT_RENDERED"


def test_the_referenced_files_check_sees_a_missing_file():
    doc = {"configMapGenerator": [{"name": "x", "files": ["key=missing.yaml"]}], "resources": ["gone.yaml"]}
    assert sorted(referenced_files(doc)) == ["gone.yaml", "missing.yaml"]
    assert not any((OBSERVABILITY / name).is_file() for name in referenced_files(doc))


def test_the_generators_give_stable_names_labels_and_a_namespace():
    doc = kustomization()
    assert doc["namespace"] == "monitoring"
    assert doc["generatorOptions"]["disableNameSuffixHash"] is True
    generators = {g["name"]: g for g in doc["configMapGenerator"]}
    assert set(generators) == {"neurokube-alerts", "neurokube-dashboard"}
    assert generators["neurokube-dashboard"]["options"]["labels"] == {"grafana_dashboard": "1"}
    assert "resources" not in doc  # no PrometheusRule: it would need the operator's CRD


def test_the_alerts_are_a_plain_rules_file_and_each_configmap_fits_kubectl_apply():
    rules = yaml.safe_load((OBSERVABILITY / "neurokube-alerts.yaml").read_text())
    assert set(rules) == {"groups"} and "kind" not in rules
    for name in ("neurokube-alerts.yaml", "neurokube-dashboard.json"):
        assert len((OBSERVABILITY / name).read_bytes()) < ANNOTATION_LIMIT // 2, name
    json.loads(DASHBOARD_JSON.read_text())
