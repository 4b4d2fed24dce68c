"""Every dashboard panel and every alert rule of deploy/observability, evaluated against the real
local Prometheus scraping the real functions.

* the binder and the extender run as processes (load/local_functions.py: the function modules
  served by functions-framework's app under gunicorn, over an in-memory apiserver); the binder
  with the test model, the Prometheus double and a decision-log directory, the extender without a
  model (so it counts fallbacks);
* the session stack's Prometheus gets them as extra scrape targets (the stack's own config
  renderer, job ``extra``, then ``/-/reload``) beside the metrics emulator's node series;
* traffic: CloudEvents for pending pods (bound), replays after the watch cache saw the binding
  (already_assigned conflicts), extender /prioritize calls (no_model fallbacks);
* each panel query (``$__rate_interval`` as 1m) and each rule expression must answer without
  error and with at least one finite sample; an alert whose expression is empty now is evaluated
  without its top-level threshold, which must then give data.
"""

from __future__ import annotations

import json
import math
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml
from prometheus_api_client import PrometheusConnect

from neurokube.adapters.usage import Snapshot
from neurokube.emulator.filesource import write_snapshot
from neurokube.stack import promconfig
from neurokube.testing import write_packing_model
from tests.integration.conftest import SNAPSHOT, eventually

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
OBSERVABILITY = ROOT / "deploy" / "observability"
LAUNCHER = ROOT / "load" / "local_functions.py"
RATE_INTERVAL = "1m"
NODES = 30
PODS = 60
THRESHOLD = re.compile(r"^(?P<expr>.*\S)\s*(?:>|<|>=|<=|==|!=)\s*[-+]?[0-9.]+(?:e[-+]?\d+)?\s*$", re.S)

sys.path.insert(0, str(ROOT / "load"))
import nkload  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str], log: Path) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, str(LAUNCHER), *args], stdout=out, stderr=subprocess.STDOUT,
                                cwd=ROOT, start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # gunicorn's master stops its worker
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture(scope="module")
def functions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    work = tmp_path_factory.mktemp("functions")
    write_packing_model(work / "model", version="it-v1")
    ports = {"binder": _free_port(), "extender": _free_port()}
    procs = [
        _start(["binder", "--port", str(ports["binder"]), "--nodes", str(NODES), "--pods", str(PODS),
                "--model-dir", str(work / "model"), "--model-reload-s", "1", "--resync-s", "1",
                "--decision-log", str(work / "decisions")],
               work / "binder.log"),
        _start(["extender", "--port", str(ports["extender"]), "--nodes", str(NODES), "--resync-s", "1"],
               work / "extender.log"),
    ]
    try:
        urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        for name, url in urls.items():
            def ready(url: str = url) -> bool:
                for proc in procs:
                    assert proc.poll() is None, f"a function exited; logs in {work}"
                try:
                    return requests.get(f"{url}/readyz", timeout=2).status_code == 200
                except requests.RequestException:  # the worker is still loading
                    return False
            eventually(ready, timeout_s=90)
        yield {**urls, "model_dir": str(work / "model")}
    finally:
        for proc in procs:
            _stop(proc)


@pytest.fixture(scope="module")
def prom(stack, functions: dict[str, str]) -> Iterator[PrometheusConnect]:
    """The stack's Prometheus with the two functions as extra targets (restored afterwards)."""
    config = stack.layout.prometheus_config
    original = config.read_text()
    url = stack.endpoints["prometheus"]["url"]
    targets = [functions[name].removeprefix("http://") for name in ("binder", "extender")]
    emulator = f"127.0.0.1:{stack.record.ports['emulator']}"
    promconfig.write(config, promconfig.render(stack.record.scrape_interval, emulator,
                                               [*stack.record.scrape_targets, *targets]))
    requests.post(f"{url}/-/reload", timeout=10).raise_for_status()
    client = PrometheusConnect(url=url, disable_ssl=True)
    try:
        eventually(lambda: len(client.custom_query('up{job="extra"} == 1')) == len(targets), timeout_s=60)
        yield client
    finally:
        promconfig.write(config, original)
        requests.post(f"{url}/-/reload", timeout=10)


@pytest.fixture(scope="module")
def traffic(prom: PrometheusConnect, functions: dict[str, str]) -> None:
    """Decisions, conflicts, fallbacks and extender calls spread over several scrapes."""
    session = requests.Session()
    nodes = json.loads(nkload.node_list_json(NODES))

    def pod_event(i: int) -> dict:
        pod = nkload.pod_doc(i, uid=str(uuid.uuid5(uuid.NAMESPACE_URL, nkload.pod_name(i))))
        headers = nkload.cloudevent_headers(uuid.uuid4().hex, "dev.knative.apiserver.resource.add", nkload.POD_NAMESPACE,
                                            nkload.pod_name(i))
        resp = session.post(functions["binder"] + "/", data=json.dumps(pod), headers=headers, timeout=30)
        assert resp.status_code == 200, resp.text
        return resp.json()

    outcomes = []
    for batch in range(6):
        for i in range(batch * 8, batch * 8 + 8):
            outcomes.append(pod_event(i)["outcome"])
        for _ in range(3):
            args = {"Pod": nkload.pod_doc(1000 + batch), "Nodes": nodes, "NodeNames": None}
            resp = session.post(functions["extender"] + "/prioritize", json=args, timeout=30)
            listed = resp.json() if resp.status_code == 200 else None  # nodes scoring 0 are left out
            assert isinstance(listed, list) and len(listed) <= NODES, resp.text
            assert all(1 <= entry["Score"] <= 10 for entry in listed), resp.text
        time.sleep(1.5)  # > --resync-s: the cache now knows these pods are bound
        outcomes.append(pod_event(batch * 8)["outcome"])  # a replay: already bound
        if batch == 2:  # a new champion half-way: the next decision reloads it
            write_packing_model(Path(functions["model_dir"]), version="it-v2")
    assert outcomes.count("bound") == 48, outcomes
    # Everything scraped at least twice after the last request.
    metrics = session.get(functions["binder"] + "/metrics", timeout=10).text
    assert 'neurokube_bind_conflicts_total{kind="already_assigned"}' in metrics
    assert 'neurokube_model_reloads_total{result="loaded"}' in metrics and 'version="it-v2"' in metrics
    assert 'neurokube_decision_log_records_total{result="written"}' in metrics or _wait_written(session, functions)
    time.sleep(3)


def _wait_written(session: requests.Session, functions: dict[str, str]) -> bool:
    return bool(eventually(lambda: 'result="written"' in session.get(functions["binder"] + "/metrics",
                                                                     timeout=10).text, timeout_s=20))


def panel_queries() -> list[tuple[str, str]]:
    doc = json.loads((OBSERVABILITY / "neurokube-dashboard.json").read_text())
    out = []
    for panel in doc["panels"]:
        for target in panel.get("targets", []):
            out.append((f"panel {panel['title']!r} {target['refId']}",
                        target["expr"].replace("$__rate_interval", RATE_INTERVAL)))
    return out


def rule_expressions() -> list[tuple[str, str, bool]]:
    doc = yaml.safe_load((OBSERVABILITY / "neurokube-alerts.yaml").read_text())
    return [(f"rule {rule.get('alert') or rule.get('record')}", rule["expr"].strip(), "alert" in rule)
            for group in doc["groups"] for rule in group["rules"]]


def finite_samples(prom: PrometheusConnect, expr: str) -> list[float]:
    """The finite values of an instant query; raises on an error answer."""
    rows = prom.custom_query(expr)
    values = [float(row["value"][1]) for row in rows]
    return [v for v in values if math.isfinite(v)]


def check_panel(prom: PrometheusConnect, expr: str) -> None:
    assert finite_samples(prom, expr), f"no finite sample for {expr}"


def check_rule(prom: PrometheusConnect, expr: str, alert: bool) -> None:
    if finite_samples(prom, expr):
        return
    match = THRESHOLD.match(expr) if alert else None
    assert match, f"empty and not a threshold alert: {expr}"
    assert finite_samples(prom, match["expr"]), f"no finite sample even without the threshold: {match['expr']}"


def test_dashboard_and_rules_reference_only_existing_series(prom: PrometheusConnect, traffic: None) -> None:
    failures = []
    for name, expr in panel_queries():
        try:
            eventually(lambda expr=expr: check_panel(prom, expr) or True, timeout_s=20, interval_s=1)
        except Exception as exc:  # noqa: BLE001 - collect every broken query, then fail once
            failures.append(f"{name}: {exc}")
    for name, expr, alert in rule_expressions():
        try:
            eventually(lambda expr=expr, alert=alert: check_rule(prom, expr, alert) or True, timeout_s=20,
                       interval_s=1)
        except Exception as exc:  # noqa: BLE001
            failures.append(f"{name}: {exc}")
    assert not failures, "\n".join(failures)
    assert len(panel_queries()) >= 15 and len(rule_expressions()) >= 10


def test_the_check_fails_on_a_wrong_metric_or_a_broken_query(prom: PrometheusConnect, traffic: None) -> None:
    """The checks above can fail: a misspelt metric gives no data, bad PromQL an error."""
    with pytest.raises(AssertionError):
        check_panel(prom, f"sum by (policy) (rate(neurokube_decision_total[{RATE_INTERVAL}]))")
    with pytest.raises(AssertionError):
        check_rule(prom, "max(neurokube_pending_podz) > 100", alert=True)
    with pytest.raises(Exception):  # noqa: B017 - prometheus-api-client raises its own error type
        check_panel(prom, "sum by (le (rate(neurokube_decision_duration_seconds_bucket[1m]))")


def test_hot_node_rule_fires_only_for_the_hot_node(prom: PrometheusConnect, traffic: None, snapshot_file: Path) -> None:
    """The hot-node expression gives each node's utilisation, and its threshold picks the hot one.

    The rule's 5m range is shortened to 10s: this Prometheus is seconds old, and rate() divides
    the increase by the whole range, so a series younger than the range reads low (in production
    the rule's ``for: 10m`` covers that)."""
    rule = next(e for n, e, _ in rule_expressions() if n == "rule NeuroKubeHotNode").replace("[5m]", "[10s]")
    base = THRESHOLD.match(rule)["expr"]

    def utilisation() -> dict[str, float]:
        return {row["metric"]["instance"]: float(row["value"][1]) for row in prom.custom_query(base)}

    assert utilisation() == {"it-node-a": pytest.approx(0.5, abs=0.02), "it-node-b": pytest.approx(0.25, abs=0.02)}
    assert not prom.custom_query(rule)
    hot = Snapshot(nodes=[SNAPSHOT.nodes[0]._replace(cpu_milli_used=3900.0), *SNAPSHOT.nodes[1:]], pods=SNAPSHOT.pods)
    write_snapshot(snapshot_file, hot)
    try:
        eventually(lambda: utilisation()["it-node-a"] == pytest.approx(0.975, abs=0.01), timeout_s=30, interval_s=1)
        assert {row["metric"]["instance"] for row in prom.custom_query(rule)} == {"it-node-a"}
    finally:
        # Leave the shared emulator as we found it, rates included: other modules (test_prometheus)
        # read 10 s rates of the same counters, so wait until the hot seconds are out of that window.
        write_snapshot(snapshot_file, SNAPSHOT)
        eventually(lambda: utilisation()["it-node-a"] == pytest.approx(0.5, abs=0.01), timeout_s=60, interval_s=1)


def test_model_panel_shows_the_reloaded_version(prom: PrometheusConnect, traffic: None) -> None:
    """it-v1 was replaced by it-v2 in the binder; the extender, without a model, reports "none"."""
    expr = next(e for n, e in panel_queries() if n.startswith("panel 'Model in use'"))
    def versions() -> set[str]:
        return {row["metric"]["version"] for row in prom.custom_query(expr)}

    try:
        eventually(lambda: versions() == {"it-v2", "none"}, timeout_s=10)  # the extender has no model
    except AssertionError:
        raise AssertionError(f"model versions in Prometheus: {prom.custom_query(expr)}") from None
