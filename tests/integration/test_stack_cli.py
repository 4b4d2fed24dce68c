"""The `neurokube stack` commands and the stack's life cycle.

* `status --json` prints exactly the minio/prometheus/mlflow endpoints and `running`;
* credentials are generated once, mode 0600;
* a second `up` finds the running stack (same pids and ports);
* on a second state directory: `status` exits 3 before `up`; `up`, then `down` stops every
  process it started (ports closed, pids gone) and `status` exits 3 again.
"""

from __future__ import annotations

import argparse
import json
import stat
from pathlib import Path

import pytest

from neurokube.cli import stack_cmd as cli
from neurokube.cluster.components import port_in_use
from neurokube.stack import control
from neurokube.stack.procgroup import members
from neurokube.stack.settings import StackSettings

pytestmark = pytest.mark.integration


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Run `neurokube stack ...` in-process through the module's own parser registration."""
    parser = argparse.ArgumentParser(prog="neurokube")
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["stack", *argv])
    capsys.readouterr()
    code = args.func(args)
    return code, capsys.readouterr().out


def test_status_json_has_exactly_the_client_keys(stack, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "status", "--state-dir", str(stack.state_dir), "--json")
    doc = json.loads(out)
    assert code == 0
    assert set(doc) == {"minio", "prometheus", "mlflow", "running"}
    assert set(doc["minio"]) == {"endpoint", "access_key", "secret_key", "bucket"}
    assert set(doc["prometheus"]) == {"url"} and set(doc["mlflow"]) == {"url"}
    assert doc["running"] is True
    assert doc["minio"]["bucket"] == "neurokube"
    for url in (doc["minio"]["endpoint"], doc["prometheus"]["url"], doc["mlflow"]["url"]):
        assert url.startswith("http://127.0.0.1:")
    assert doc == {**stack.endpoints, "running": True}


def test_credentials_are_private(stack) -> None:
    mode = stat.S_IMODE(stack.layout.credentials.stat().st_mode)
    assert mode == 0o600
    creds = json.loads(stack.layout.credentials.read_text())
    assert len(creds["secret_key"]) >= 32


def test_second_up_finds_the_running_stack(stack, snapshot_file: Path) -> None:
    before = control.status(stack.state_dir)["components"]  # a backfill may have restarted Prometheus
    settings = StackSettings(state_dir=stack.state_dir, emulator_source=snapshot_file, bucket="ignored")
    result = control.up(settings)
    assert result.already_running
    assert result.record.ports == stack.record.ports
    assert result.record.bucket == "neurokube"
    assert {p.name: p.pid for p in result.record.processes} == {name: c["pid"] for name, c in before.items()}


def test_up_status_down_lifecycle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.integration.conftest import require_go

    require_go()
    state_dir = str(tmp_path / "stack")
    code, out = run(capsys, "status", "--state-dir", state_dir, "--json")
    assert code == cli.NOT_RUNNING and json.loads(out) == {"running": False}
    try:
        code, out = run(capsys, "up", "--state-dir", state_dir, "--json", "--bucket", "lifecycle")
        assert code == 0
        doc = json.loads(out)
        assert doc["running"] is True and doc["minio"]["bucket"] == "lifecycle"
        record = control.status(Path(state_dir))
        pids = [proc["pid"] for proc in record["components"].values()]
        assert sorted(record["components"]) == ["emulator", "minio", "mlflow", "prometheus"]
        ports = [int(url.rsplit(":", 1)[1].split("/")[0]) for url in
                 (doc["minio"]["endpoint"], doc["prometheus"]["url"], doc["mlflow"]["url"])]
        assert all(port_in_use(port) for port in ports)
    finally:
        code, _ = run(capsys, "down", "--state-dir", state_dir)
    assert code == 0
    assert not any(port_in_use(port) for port in ports)
    assert not any(members(pid) for pid in pids)  # the servers' children (MLflow's uvicorn) are gone too
    code, out = run(capsys, "status", "--state-dir", state_dir, "--json")
    assert code == cli.NOT_RUNNING and json.loads(out)["running"] is False
