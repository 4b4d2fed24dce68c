"""Command lines of the stack's processes and the health check that says each one is serving.

Everything listens on 127.0.0.1 only, on ports chosen free at `up` and recorded in stack.json.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from pathlib import Path

from neurokube.cluster.components import Launch
from neurokube.stack.state import Credentials, Layout

LOCALHOST = "127.0.0.1"
PORT_NAMES = ("minio", "minio_console", "prometheus", "mlflow", "emulator")
#: Start order; `down` stops in reverse.
ORDER = ("minio", "emulator", "prometheus", "mlflow")


def minio(binary: Path, layout: Layout, ports: dict[str, int], creds: Credentials, timeout_s: float) -> Launch:
    argv = [
        str(binary), "server", str(layout.minio_data),
        "--address", f"{LOCALHOST}:{ports['minio']}",
        "--console-address", f"{LOCALHOST}:{ports['minio_console']}",
    ]
    env = {
        "MINIO_ROOT_USER": creds.access_key,
        "MINIO_ROOT_PASSWORD": creds.secret_key,
        "MINIO_BROWSER": "off",  # no web console; the stack is used through the SDK
        "MINIO_UPDATE": "off",  # never look for updates on the network
    }
    url = f"http://{LOCALHOST}:{ports['minio']}/minio/health/ready"
    return Launch("minio", argv, lambda: http_ok(url), timeout_s, env)


def emulator(snapshot: Path, ports: dict[str, int], timeout_s: float) -> Launch:
    argv = [sys.executable, "-m", "neurokube.emulator", "--source", str(snapshot),
            "--host", LOCALHOST, "--port", str(ports["emulator"])]
    url = f"http://{LOCALHOST}:{ports['emulator']}/metrics"
    return Launch("emulator", argv, lambda: http_ok(url), timeout_s)


def prometheus(binary: Path, layout: Layout, ports: dict[str, int], retention: str, timeout_s: float) -> Launch:
    argv = [
        str(binary),
        f"--config.file={layout.prometheus_config}",
        f"--storage.tsdb.path={layout.prometheus_data}",
        f"--storage.tsdb.retention.time={retention}",
        f"--web.listen-address={LOCALHOST}:{ports['prometheus']}",
        "--web.enable-lifecycle",  # POST /-/reload after editing the config
    ]
    url = f"http://{LOCALHOST}:{ports['prometheus']}/-/ready"
    return Launch("prometheus", argv, lambda: http_ok(url), timeout_s)


def mlflow(layout: Layout, ports: dict[str, int], workers: int, timeout_s: float) -> Launch:
    argv = [
        sys.executable, "-m", "mlflow", "server",
        "--host", LOCALHOST, "--port", str(ports["mlflow"]),
        "--backend-store-uri", f"sqlite:///{layout.mlflow_db}",
        "--serve-artifacts", "--artifacts-destination", str(layout.mlflow_artifacts),
        "--workers", str(workers),
    ]
    # MLflow 3's job runner (GenAI evaluation jobs, trace roll-ups) starts seven huey worker
    # processes (~1.5 GB); tracking and the model registry do not use it.
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    url = f"http://{LOCALHOST}:{ports['mlflow']}/health"
    return Launch("mlflow", argv, lambda: http_ok(url), timeout_s, env)


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2.0) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False
