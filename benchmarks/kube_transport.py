"""Kubernetes API requests: the official client's transport against the lean one, side by side.

What ``neurokube/adapters/kube_http.py`` rests on. On a local control plane (started here, one
KWOK node, taken down afterwards; ``--state-dir DIR`` reuses a running one), one thread sends the
binder's kinds of request through :class:`~neurokube.adapters.kube.KubeClient` with
``lean=False`` (the official ``ApiClient`` and urllib3) and ``lean=True`` (a kept
``http.client`` connection), alternating in rounds so that both see the same machine load:

* ``POST`` a core/v1 ``Scheduled`` Event (what the binder posts per bound pod);
* ``PUT`` a Lease with a 10 KiB annotation, conditional on its resourceVersion (the ledger's write);
* ``GET`` a node.

Per request: the thread's CPU time (what the request costs the process, the number that matters on
a machine whose CPU is the bottleneck) and wall time, the medians over the rounds.
Writes the "kube-transport" section of docs/BENCHMARKS.md (``--no-docs``: print only).

Usage: .venv/bin/python benchmarks/kube_transport.py [--requests 300] [--rounds 5] [--state-dir DIR] [--no-docs]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._report import write_section  # noqa: E402
from neurokube.adapters.kube import KubeClient, KubeError  # noqa: E402
from neurokube.cluster import control, workload  # noqa: E402

SECTION = "kube-transport"
NAMESPACE = "default"
LEASES = f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases"


def event(i: int) -> dict:
    stamp = "2026-01-01T00:00:00Z"
    return {"apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"bench-pod-{i}.", "namespace": NAMESPACE},
            "involvedObject": {"apiVersion": "v1", "kind": "Pod", "namespace": NAMESPACE, "name": f"bench-pod-{i}",
                               "uid": f"00000000-0000-0000-0000-{i:012d}"},
            "reason": "Scheduled", "message": f"Successfully assigned {NAMESPACE}/bench-pod-{i} to kwok-node-0",
            "type": "Normal", "source": {"component": "neurokube"}, "reportingComponent": "neurokube",
            "reportingInstance": "bench", "firstTimestamp": stamp, "lastTimestamp": stamp,
            "eventTime": "2026-01-01T00:00:00.000000Z", "count": 1, "action": "Binding"}


def lease_writer(client: KubeClient, name: str) -> Callable[[int], None]:
    """A conditional PUT of one Lease per call, its annotation ~10 KiB (about 60 reservations)."""
    try:
        client.request("DELETE", f"{LEASES}/{name}")
    except KubeError as exc:
        if not exc.not_found:
            raise
    current = client.create(LEASES, {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                     "metadata": {"name": name, "namespace": NAMESPACE}, "spec": {}})
    filler = "x" * 10_000

    def write(i: int) -> None:
        nonlocal current
        meta = {"name": name, "namespace": NAMESPACE, "resourceVersion": current["metadata"]["resourceVersion"],
                "annotations": {"neurokube.io/reservations": f"{i}{filler}"}}
        current = client.request("PUT", f"{LEASES}/{name}", {**current, "metadata": meta})

    return write


def measure(fn: Callable[[int], None], count: int) -> tuple[float, float]:
    """Microseconds per call: thread CPU, wall."""
    cpu, wall = time.thread_time(), time.perf_counter()
    for i in range(count):
        fn(i)
    return (time.thread_time() - cpu) / count * 1e6, (time.perf_counter() - wall) / count * 1e6


def run(kubeconfig: Path, requests: int, rounds: int) -> list[dict]:
    clients = {"official": KubeClient.from_kubeconfig(kubeconfig, timeout_s=30),
               "lean": KubeClient.from_kubeconfig(kubeconfig, timeout_s=30, lean=True)}
    assert clients["lean"].transport == "lean"
    node = workload.schedulable_nodes(clients["official"])[0]
    kinds: dict[str, dict[str, Callable[[int], None]]] = {
        "POST Event": {t: (lambda i, c=c: c.create(f"/api/v1/namespaces/{NAMESPACE}/events", event(i)))
                       for t, c in clients.items()},
        "PUT Lease (10 KiB annotation)": {t: lease_writer(c, f"bench-transport-{t}") for t, c in clients.items()},
        "GET node": {t: (lambda i, c=c: c.get(f"/api/v1/nodes/{node}")) for t, c in clients.items()},
    }
    for fns in kinds.values():  # warm up: connections, TLS sessions, imports
        for fn in fns.values():
            measure(fn, 20)
    rows = []
    for kind, fns in kinds.items():
        got: dict[str, list[tuple[float, float]]] = {t: [] for t in fns}
        for r in range(rounds):
            for transport in (list(fns) if r % 2 == 0 else list(fns)[::-1]):
                got[transport].append(measure(fns[transport], requests))
        med = {t: (statistics.median(c for c, _ in v), statistics.median(w for _, w in v)) for t, v in got.items()}
        rows.append({"kind": kind, "official_cpu_us": med["official"][0], "lean_cpu_us": med["lean"][0],
                     "official_wall_us": med["official"][1], "lean_wall_us": med["lean"][1]})
        print(f"{kind}: thread CPU {med['official'][0]:.0f} -> {med['lean'][0]:.0f} us, "
              f"wall {med['official'][1]:.0f} -> {med['lean'][1]:.0f} us", flush=True)
    for transport, client in clients.items():
        try:
            client.request("DELETE", f"{LEASES}/bench-transport-{transport}")
        except KubeError:
            pass
    return rows


def markdown(rows: list[dict], requests: int, rounds: int) -> str:
    lines = [f"One thread, {requests} requests per round, {rounds} rounds alternating the order; medians over "
             "the rounds. Thread CPU is what the request costs the calling process; wall includes the "
             "apiserver's work.", "",
             "| request | official: CPU us | lean: CPU us | CPU lean / official | official: wall us | "
             "lean: wall us |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['kind']} | {r['official_cpu_us']:.0f} | {r['lean_cpu_us']:.0f} | "
                     f"{r['lean_cpu_us'] / r['official_cpu_us']:.2f} | {r['official_wall_us']:.0f} | "
                     f"{r['lean_wall_us']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300, help="requests per round and transport")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--state-dir", type=Path, help="a running cluster's state directory (default: start one)")
    parser.add_argument("--no-docs", action="store_true", help="print only, do not write docs/BENCHMARKS.md")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.rounds < 1:
        parser.error("--requests and --rounds must be at least 1")
    with tempfile.TemporaryDirectory(prefix="neurokube-transport-") as tmp:
        state_dir = args.state_dir or Path(tmp) / "cluster"
        result = control.up(control.UpOptions(state_dir=state_dir, nodes=workload.uniform_nodes(1),
                                              start_adapter=False), out=sys.stderr)
        try:
            rows = run(state_dir / "admin.kubeconfig", args.requests, args.rounds)
        finally:
            if not result.already_running:
                control.down(state_dir, out=sys.stderr)
    body = markdown(rows, args.requests, args.rounds)
    print(body)
    if not args.no_docs:
        command = "python benchmarks/kube_transport.py" + (f" --requests {args.requests}" if args.requests != 300
                                                           else "") + (f" --rounds {args.rounds}" if args.rounds != 5
                                                                       else "")
        write_section(SECTION, "Kubernetes API requests: official transport against the lean one", command, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
