"""Install the CustomResourceDefinitions of the pinned Knative Serving and Eventing releases.

Only the CRDs: no Knative controllers or webhooks run, so objects are stored and served but not
reconciled, defaulted or validated beyond their OpenAPI schemas. A few Eventing CRDs (EventType,
PingSource) declare webhook conversion; their objects work in the storage version only.
"""

from __future__ import annotations

import time
import urllib.parse
from pathlib import Path

import yaml

from neurokube.adapters.kube import KubeClient, KubeError
from neurokube.errors import InputError, TemporaryError

CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
APPLY_PATCH = "application/apply-patch+yaml"
FIELD_MANAGER = "neurokube"


def manifests(crds_dir: Path) -> list[dict]:
    docs = []
    for path in sorted(crds_dir.glob("*/*.yaml")):
        try:
            loaded = list(yaml.safe_load_all(path.read_text()))
        except yaml.YAMLError as exc:
            raise InputError("unreadable CRD manifest", where=str(path), why=str(exc)) from None
        docs += [doc for doc in loaded if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition"]
    if not docs:
        raise InputError("no CRD manifests found", where=str(crds_dir), why="run `neurokube cluster build`")
    return docs


def install(client: KubeClient, crds_dir: Path, timeout_s: float = 60.0) -> list[str]:
    """Server-side apply every CRD (idempotent) and wait until all are Established."""
    names = []
    for doc in manifests(crds_dir):
        name = doc["metadata"]["name"]
        query = urllib.parse.urlencode({"fieldManager": FIELD_MANAGER, "force": "true"})
        try:
            client.request("PATCH", f"{CRD_PATH}/{name}?{query}", doc, content_type=APPLY_PATCH)
        except KubeError as exc:
            raise TemporaryError(f"installing CRD {name} failed: {exc}") from None
        names.append(name)
    deadline = time.monotonic() + timeout_s
    pending = set(names)
    while pending:
        pending = {name for name in pending if not _established(client.get(f"{CRD_PATH}/{name}"))}
        if pending and time.monotonic() > deadline:
            raise TemporaryError(f"CRDs not Established after {timeout_s:.0f}s: {', '.join(sorted(pending))}")
        if pending:
            time.sleep(0.25)
    return sorted(names)


def _established(crd: dict) -> bool:
    return any(c.get("type") == "Established" and c.get("status") == "True"
               for c in (crd.get("status") or {}).get("conditions") or [])
