"""``mlflow models serve`` serves the placement champion as MLflow's own scoring server.

The champion is registered the way the nightly registers it (:meth:`RunLog.model`, an MLflow Model:
a pyfunc from code with the LightGBM text inside) in an embedded MLflow (SQLite in tmp_path, no
stack needed). ``mlflow models serve -m models:/neurokube-placement@champion --env-manager local``
starts on a free loopback port; once ``/ping`` answers, ``POST /invocations`` with the model's own
serving input example returns, row by row, exactly the value model's predictions on those rows.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from neurokube.adapters.model_files import load_value_model
from neurokube.registry import Registry, placement
from neurokube.testing import write_packing_model

pytestmark = pytest.mark.integration
MODEL = "neurokube-placement"
START_TIMEOUT_S = 90.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_ping(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        assert proc.poll() is None, f"mlflow models serve exited {proc.returncode}:\n{log.read_text()[-3000:]}"
        try:
            with urllib.request.urlopen(url + "/ping", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        assert time.monotonic() < deadline, f"no /ping within {START_TIMEOUT_S:.0f}s:\n{log.read_text()[-3000:]}"
        time.sleep(0.5)


def stop(proc: subprocess.Popen) -> None:
    """The server and its uvicorn workers: its own process group (start_new_session)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=15)
            break
        except subprocess.TimeoutExpired:
            continue
    proc.wait(timeout=15)


def test_mlflow_models_serve_scores_like_the_value_model(tmp_path):
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    registry = Registry(tracking, MODEL, tmp_path / "artifacts")
    model = load_value_model(write_packing_model(tmp_path / "packing", version="serve-it"))
    with registry.run("it-serve", "champion") as run:
        run.model(model)
    registry.set_alias(registry.register(run.run_id))
    request_body = (registry.download(tmp_path / "champion") / "serving_input_example.json").read_bytes()

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    venv_bin = Path(sys.executable).parent  # the command starts uvicorn from PATH, in this environment
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking, "MLFLOW_REGISTRY_URI": tracking,
           "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("PYTHONPATH", None)  # the server imports the installed packages, never the repo's mlflow/ directory
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(venv_bin / "mlflow"), "models", "serve",
                                 "-m", f"models:/{MODEL}@champion", "--env-manager", "local",
                                 "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                                cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for_ping(url, proc, log)
        request = urllib.request.Request(url + "/invocations", data=request_body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            predictions = json.loads(answer.read())["predictions"]
    finally:
        stop(proc)

    rows = placement.input_example().to_numpy()
    assert np.array_equal(json.loads(request_body)["dataframe_split"]["data"], rows.astype(np.float64))
    components = model.components(rows)
    assert len(predictions) == len(rows)
    for column in ("contention", "occupancy", "overflow"):
        assert [p[column] for p in predictions] == components[column].tolist(), column
    assert [p["cost"] for p in predictions] == model.cost(rows).tolist()
    assert len({p["cost"] for p in predictions}) == len(rows)  # the rows are told apart
