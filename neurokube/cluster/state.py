"""The state directory of one local cluster and its record, ``cluster.json``.

Layout::

    <state>/cluster.json          ports, pids, URLs (this module)
    <state>/admin.kubeconfig      cluster-admin kubeconfig for users and tests
    <state>/pki/                  CA, serving and client certificates, service-account keys
    <state>/kubeconfigs/          one kubeconfig per component identity
    <state>/config/               kube-scheduler configuration, KWOK stages
    <state>/etcd/                 etcd data (wiped by every fresh `up`)
    <state>/logs/<component>.log  stdout and stderr of each process
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from neurokube.adapters import statedir
from neurokube.cluster.processes import Process

RECORD = "cluster.json"
MARKER = ".neurokube-cluster"  # present in every directory this tool manages
FORMAT = 1


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def record(self) -> Path:
        return self.root / RECORD

    @property
    def admin_kubeconfig(self) -> Path:
        return self.root / "admin.kubeconfig"

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    def kubeconfig(self, identity: str) -> Path:
        return self.root / "kubeconfigs" / f"{identity}.kubeconfig"

    @property
    def config(self) -> Path:
        return self.root / "config"

    @property
    def etcd_data(self) -> Path:
        return self.root / "etcd"

    def log(self, component: str) -> Path:
        return self.root / "logs" / f"{component}.log"


@dataclass
class ClusterRecord:
    """What `up` started, for `status` and `down`."""

    state_dir: str
    bin_dir: str
    apiserver: str
    kubeconfig: str
    ports: dict[str, int]
    nodes: int = 0
    sink: str | None = None
    extender: dict | None = None
    functions: dict[str, str] | None = None  # `up --functions`: function name -> its URL on 127.0.0.1
    ready: bool = False
    processes: list[Process] = field(default_factory=list)

    def to_json(self) -> dict:
        doc = {key: value for key, value in vars(self).items() if key != "processes"}
        doc["processes"] = [p.to_json() for p in self.processes]
        doc["format"] = FORMAT
        return doc

    @classmethod
    def from_json(cls, doc: dict) -> ClusterRecord:
        fields = {key: doc[key] for key in ("state_dir", "bin_dir", "apiserver", "kubeconfig", "ports")}
        extra = {key: doc[key] for key in ("nodes", "sink", "extender", "functions", "ready")
                 if key in doc}
        return cls(**fields, **extra, processes=[Process.from_json(p) for p in doc.get("processes", [])])

    def process(self, name: str) -> Process | None:
        return next((p for p in self.processes if p.name == name), None)


def load(layout: Layout) -> ClusterRecord | None:
    return statedir.read_record(layout.record, "cluster record", FORMAT, ClusterRecord.from_json)


def save(layout: Layout, record: ClusterRecord) -> None:
    statedir.write_record(layout.record, record.to_json())


def prepare_fresh(layout: Layout) -> None:
    """Empty the state directory for a new cluster, refusing directories this tool did not create."""
    root = layout.root
    statedir.refuse_foreign(root, MARKER)
    if root.exists():
        for child in root.iterdir():
            if child.name in (MARKER, statedir.LOCK):
                continue
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).touch()


def purge(layout: Layout) -> None:
    statedir.purge(layout.root, MARKER)


def locked(layout: Layout):
    """Serialise `up`, `down` and `crds` on one state directory."""
    return statedir.locked(layout.root)
