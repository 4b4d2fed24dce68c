"""Command lines of the control-plane processes and how to tell that each one is ready.

Everything listens on 127.0.0.1 only, on ports chosen free at `up` (the Knative receive adapter
is the exception: its probe server is hard-wired to :8080, see adapter.py).
"""

from __future__ import annotations

import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from neurokube.cluster.build import Binaries
from neurokube.cluster.certs import FRONT_PROXY_CLIENT, Pki
from neurokube.cluster.state import Layout

LOCALHOST = "127.0.0.1"
SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"  # first address of SERVICE_CIDR: the `kubernetes` Service
KWOK_DEFAULT_POD_CIDR = "10.64.0.0/16"  # for nodes without spec.podCIDR
PORT_NAMES = ("etcd", "etcd_peer", "apiserver", "controller_manager", "scheduler", "kwok", "adapter_profiling")


@dataclass(frozen=True)
class Launch:
    """One process to start and the probe that says it is serving."""

    name: str
    argv: list[str]
    ready: Callable[[], bool]
    timeout_s: float
    env: dict[str, str] | None = None


def free_ports(names: tuple[str, ...] = PORT_NAMES) -> dict[str, int]:
    """Distinct free TCP ports on 127.0.0.1 (all sockets are held open until every port is chosen)."""
    sockets = []
    try:
        for _ in names:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((LOCALHOST, 0))
            sockets.append(sock)
        return {name: sock.getsockname()[1] for name, sock in zip(names, sockets, strict=True)}
    finally:
        for sock in sockets:
            sock.close()


def port_in_use(port: int, host: str = LOCALHOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def apiserver_url(ports: dict[str, int]) -> str:
    return f"https://{LOCALHOST}:{ports['apiserver']}"


def etcd(binaries: Binaries, layout: Layout, ports: dict[str, int]) -> Launch:
    client = f"http://{LOCALHOST}:{ports['etcd']}"
    peer = f"http://{LOCALHOST}:{ports['etcd_peer']}"
    argv = [
        str(binaries.path("etcd")),
        "--name=neurokube",
        f"--data-dir={layout.etcd_data}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=neurokube={peer}",
        # The data is thrown away with the cluster; skipping fsync keeps a busy laptop responsive.
        "--unsafe-no-fsync=true",
        "--log-level=warn",
    ]
    return Launch("etcd", argv, lambda: _http_ok(f"{client}/health"), 30.0)


def kube_apiserver(binaries: Binaries, layout: Layout, pki: Pki, ports: dict[str, int],
                   probe: Callable[[], bool]) -> Launch:
    argv = [
        str(binaries.path("kube-apiserver")),
        f"--etcd-servers=http://{LOCALHOST}:{ports['etcd']}",
        f"--bind-address={LOCALHOST}",
        f"--advertise-address={LOCALHOST}",
        f"--secure-port={ports['apiserver']}",
        f"--tls-cert-file={pki.serving_cert}",
        f"--tls-private-key-file={pki.serving_key}",
        f"--client-ca-file={pki.ca_cert}",
        f"--token-auth-file={pki.token_file}",
        f"--requestheader-client-ca-file={pki.front_proxy_ca_cert}",
        f"--requestheader-allowed-names={FRONT_PROXY_CLIENT}",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={pki.front_proxy_client_cert}",
        f"--proxy-client-key-file={pki.front_proxy_client_key}",
        "--authorization-mode=RBAC",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={pki.sa_public}",
        f"--service-account-signing-key-file={pki.sa_private}",
        "--allow-privileged=true",
        "--profiling=false",
    ]
    return Launch("kube-apiserver", argv, probe, 90.0)


def kube_controller_manager(binaries: Binaries, layout: Layout, pki: Pki, ports: dict[str, int]) -> Launch:
    kubeconfig = layout.kubeconfig("kube-controller-manager")
    argv = [
        str(binaries.path("kube-controller-manager")),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        f"--bind-address={LOCALHOST}",
        f"--secure-port={ports['controller_manager']}",
        "--leader-elect=false",
        "--use-service-account-credentials=true",
        f"--service-account-private-key-file={pki.sa_private}",
        f"--root-ca-file={pki.ca_cert}",
        f"--cluster-signing-cert-file={pki.ca_cert}",
        f"--cluster-signing-key-file={pki.ca_key}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        # At the default 20 QPS the node lifecycle controller needs ~20 s to lift the not-ready
        # taint from 100 fresh nodes (measured); at 200 it takes ~4 s.
        "--kube-api-qps=200",
        "--kube-api-burst=400",
        "--profiling=false",
    ]
    url = f"https://{LOCALHOST}:{ports['controller_manager']}/healthz"
    return Launch("kube-controller-manager", argv, lambda: _https_ok_unverified(url), 60.0)


def kube_scheduler(binaries: Binaries, layout: Layout, ports: dict[str, int], config: Path) -> Launch:
    kubeconfig = layout.kubeconfig("kube-scheduler")
    argv = [
        str(binaries.path("kube-scheduler")),
        f"--config={config}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        f"--bind-address={LOCALHOST}",
        f"--secure-port={ports['scheduler']}",
    ]
    url = f"https://{LOCALHOST}:{ports['scheduler']}/healthz"
    return Launch("kube-scheduler", argv, lambda: _https_ok_unverified(url), 60.0)


def kwok(binaries: Binaries, layout: Layout, ports: dict[str, int], stages: list[Path]) -> Launch:
    argv = [
        str(binaries.path("kwok")),
        f"--kubeconfig={layout.kubeconfig('kwok')}",
        *(f"--config={stage}" for stage in stages),
        "--manage-all-nodes=true",
        f"--cidr={KWOK_DEFAULT_POD_CIDR}",
        f"--node-ip={LOCALHOST}",
        f"--node-port={ports['kwok']}",
        f"--server-address={LOCALHOST}:{ports['kwok']}",
        # Renew a Lease per node like a kubelet (every 10 s); the node-heartbeat stage refreshes
        # node conditions on top.
        "--node-lease-duration-seconds=40",
    ]
    url = f"http://{LOCALHOST}:{ports['kwok']}/healthz"
    return Launch("kwok", argv, lambda: _http_ok(url), 30.0)


def _http_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2.0, context=context) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _https_ok_unverified(url: str) -> bool:
    # kube-scheduler and kube-controller-manager serve /healthz with a self-signed certificate.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return _http_ok(url, context)
