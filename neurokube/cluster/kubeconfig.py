"""Write kubeconfig files for the local cluster (one per client identity, certificates embedded)."""

from __future__ import annotations

import base64
from pathlib import Path

import yaml

CLUSTER_NAME = "neurokube-local"


def write(path: Path, server: str, ca_cert: Path, client_cert: Path, client_key: Path, user: str) -> Path:
    """A self-contained kubeconfig for ``user`` talking to ``server``; readable by the owner only."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CLUSTER_NAME, "cluster": {
            "server": server,
            "certificate-authority-data": _b64(ca_cert),
        }}],
        "users": [{"name": user, "user": {
            "client-certificate-data": _b64(client_cert),
            "client-key-data": _b64(client_key),
        }}],
        "contexts": [{"name": CLUSTER_NAME, "context": {"cluster": CLUSTER_NAME, "user": user}}],
        "current-context": CLUSTER_NAME,
        "preferences": {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")
