"""The handle on a running local cluster (``neurokube cluster``) that the tools and the tests share.

:class:`RunningCluster` is what the live loop (neurokube/liveloop/run.py), the live-functions kit
(cluster/livekit.py), the scheduling benchmark (bench/scheduling.py) and tests/e2e and tests/chaos
hold while a cluster is up: its state record, an admin client and the pinned kubectl.
:func:`running_cluster` starts one for the duration of a block and always takes it down. Nothing
here is a test double; the test-only helpers (a CloudEvents sink, polling) live under tests/.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from neurokube.adapters.kube import KubeClient
from neurokube.cluster import control, workload
from neurokube.cluster.build import Binaries
from neurokube.cluster.state import ClusterRecord


@dataclass(frozen=True)
class RunningCluster:
    record: ClusterRecord
    client: KubeClient

    @property
    def kubeconfig(self) -> str:
        return self.record.kubeconfig

    @property
    def state_dir(self) -> Path:
        return Path(self.record.state_dir)

    def kubectl(self, *args: str, timeout_s: float = 60.0) -> str:
        """Run the pinned kubectl against this cluster; raise AssertionError with its stderr on failure."""
        binary = Binaries(Path(self.record.bin_dir)).path("kubectl")
        proc = subprocess.run([str(binary), *args], env={**os.environ, "KUBECONFIG": self.kubeconfig},
                              capture_output=True, text=True, timeout=timeout_s, check=False)
        if proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc.stdout


@contextmanager
def running_cluster(state_dir: Path, nodes: list[workload.NodeSpec], **options: object) -> Iterator[RunningCluster]:
    """Start a cluster for the duration of the block and always take it down afterwards."""
    try:
        result = control.up(control.UpOptions(state_dir=state_dir, nodes=nodes, **options), out=sys.stderr)
        yield RunningCluster(result.record, control.admin_client(result.record))
    finally:
        control.down(state_dir, out=sys.stderr)
