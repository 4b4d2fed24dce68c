"""Live-function test kit: function processes started and stopped by a test, and the cluster-wide
invariants every scheduling test checks (all pods bound, one Binding each, no node over-committed).

Used by tests/e2e and tests/chaos against the real local control plane, and by ``neurokube bench``.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from neurokube.adapters.kube import KubeError
from neurokube.cluster import adapter, certs, components, functions, processes, rbac, workload
from neurokube.cluster.build import Binaries
from neurokube.cluster.session import RunningCluster
from neurokube.cluster.state import Layout
from neurokube.k8s.quantity import cpu_milli, memory_bytes
from neurokube.testing import FakePrometheus, write_packing_model

ADD = "dev.knative.apiserver.resource.add"
SMALL_POOL = "neurokube.io/pool"


class Function:
    """One function process (functions-framework + gunicorn), started and stopped by the test."""

    def __init__(self, name: str, env: dict[str, str], logs: Path, label: str | None = None) -> None:
        self.name, self.env, self.logs = name, env, logs
        self.label = label or name
        self.port = functions.plan().ports[name]
        self.process: processes.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Function:
        launch = functions.function_launch(self.name, self.port, {**self.env, "NEUROKUBE_REPLICA": self.label},
                                           self.label)
        self.process = processes.start(self.label, launch.argv, self.logs / f"{self.label}.log", cwd=self.logs,
                                       env={**os.environ, **launch.env})
        deadline = time.monotonic() + 60
        while not launch.ready():
            assert processes.is_running(self.process), f"{self.label} died; see {self.logs}/{self.label}.log"
            assert time.monotonic() < deadline, f"{self.label} not ready after 60 s"
            time.sleep(0.2)
        return self

    def wait_metrics_fresh(self, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            with urllib.request.urlopen(self.url + "/readyz", timeout=10) as response:
                if json.loads(response.read())["metrics"] == "fresh":
                    return
            assert time.monotonic() < deadline, f"{self.label}: metrics never fresh"
            time.sleep(0.2)

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)  # the gunicorn arbiter and its worker
        processes.stop(self.process, grace_s=5)

    def stop(self) -> None:
        if self.process is not None:
            processes.stop(self.process)

    def post_event(self, pod: dict, kind: str = ADD, retries: int = 5) -> dict:
        """Deliver a binary-mode CloudEvent the way Knative does: retry 5xx with exponential backoff."""
        body = json.dumps(pod).encode()
        headers = {"ce-specversion": "1.0", "ce-type": kind, "ce-source": "https://kube-apiserver",
                   "ce-id": str(uuid.uuid4()), "ce-kind": "Pod", "Content-Type": "application/json",
                   "ce-subject": f"/apis/v1/namespaces/{pod['metadata']['namespace']}/pods/{pod['metadata']['name']}"}
        headers.update(self.auth_headers())
        delay = 0.2
        for attempt in range(retries + 1):
            request = urllib.request.Request(self.url + "/", data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError as exc:
                if exc.code < 500 or attempt == retries:
                    return {"status": exc.code, "error": exc.read().decode()}
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    def auth_headers(self) -> dict[str, str]:
        """``Authorization`` with the function's static token (the event token; the extender's own)."""
        token = self.env.get("NEUROKUBE_TOKEN" if self.name == "extender" else "NEUROKUBE_EVENT_TOKEN")
        return {"Authorization": f"Bearer {token}"} if token else {}

    def ping(self, timeout_s: float = 120.0) -> dict:
        """One PingSource-shaped event to this (sweeper) function, with its token."""
        return functions.ping(self.url + "/", timeout_s=timeout_s, token=self.env.get("NEUROKUBE_EVENT_TOKEN"))

    def counter(self, name: str, **labels: str) -> float:
        with urllib.request.urlopen(self.url + "/metrics", timeout=10) as response:
            text = response.read().decode()
        total = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    total += sample.value
        return total


def create_pods(client, manifests: list[dict], threads: int = 8) -> list[dict]:
    def create(m: dict) -> dict:
        return client.create(f"/api/v1/namespaces/{m['metadata']['namespace']}/pods", m)

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(create, manifests))


def neurokube_pod(name: str, cpu: int, memory: int, run: str, small_pool: bool = False) -> dict:
    manifest = workload.pod_manifest(workload.PodSpec(name, cpu, memory, scheduler_name="neurokube",
                                                      labels={"neurokube-e2e": run}))
    if small_pool:
        manifest["spec"]["nodeSelector"] = {SMALL_POOL: "small"}
        manifest["spec"]["tolerations"] = [{"key": SMALL_POOL, "operator": "Equal", "value": "small",
                                            "effect": "NoSchedule"}]
    return manifest


def pods_of(client, run: str) -> dict[str, dict]:
    items = client.get("/api/v1/namespaces/default/pods", labelSelector=f"neurokube-e2e={run}")["items"]
    return {p["metadata"]["name"]: p for p in items}


def wait_bound(client, run: str, count: int, timeout_s: float) -> dict[str, dict]:
    deadline = time.monotonic() + timeout_s
    while True:
        pods = pods_of(client, run)
        bound = sum(1 for p in pods.values() if p["spec"].get("nodeName"))
        if bound >= count:
            return pods
        if time.monotonic() > deadline:
            raise AssertionError(f"only {bound} of {count} pods bound after {timeout_s:.0f}s")
        time.sleep(0.2)


def scheduled_events(client, component: str = "neurokube") -> Counter:
    items = client.get("/api/v1/namespaces/default/events", fieldSelector="reason=Scheduled")["items"]
    return Counter(e["involvedObject"]["uid"] for e in items
                   if (e.get("reportingComponent") or e["source"].get("component")) == component)


def over_committed(client) -> list[str]:
    """Nodes whose bound, non-terminal pods request more than allocatable (CPU, memory or pods)."""
    used: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for pod in client.get("/api/v1/pods")["items"]:
        node = pod["spec"].get("nodeName")
        if not node or pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            continue
        for c in pod["spec"]["containers"]:
            requests = (c.get("resources") or {}).get("requests") or {}
            used[node][0] += cpu_milli(requests.get("cpu", "0"))
            used[node][1] += memory_bytes(requests.get("memory", "0"))
        used[node][2] += 1
    bad = []
    for node in client.get("/api/v1/nodes")["items"]:
        alloc = node["status"]["allocatable"]
        u = used[node["metadata"]["name"]]
        if u[0] > cpu_milli(alloc["cpu"]) or u[1] > memory_bytes(alloc["memory"]) or u[2] > int(alloc["pods"]):
            bad.append(f"{node['metadata']['name']}: {u} > {alloc}")
    return bad


# -- the live functions beside a running cluster ------------------------------------------------


@dataclass
class LiveFunctions:
    binder: Function
    sweeper: Function
    env: dict[str, str]
    logs: Path
    cluster: RunningCluster
    adapter: processes.Process | None = None
    started: list[Function] = field(default_factory=list)

    def restart_adapter(self, sink: str | None = None) -> None:
        """Stop the receive adapter (if running) and start a new one towards ``sink`` (the binder)."""
        if self.adapter is not None:
            processes.stop(self.adapter)
        self.adapter = start_adapter(self.cluster, sink or self.binder.url + "/", self.logs)


def service_account_env(cluster: RunningCluster, options: functions.FunctionsOptions) -> dict[str, str]:
    """The functions' environment, each function authenticated as its own ServiceAccount of
    deploy/knative/rbac.yaml."""
    functions.apply_manifests(cluster.client)
    kubeconfig = functions.service_account_kubeconfigs(cluster.client, Layout(cluster.state_dir),
                                                      certs.Pki(cluster.state_dir / "pki").ca_cert,
                                                      cluster.record.apiserver)
    return functions.function_env(kubeconfig, options, "unused")


def packing_env(cluster: RunningCluster, work: Path, env: dict[str, str]) -> tuple[dict[str, str], FakePrometheus]:
    """The functions' environment for a test (each as its own ServiceAccount) with the packing test
    model (written under ``work``) and a Prometheus double that reports every node at 0.5 cores
    and 2 GiB; the caller closes the double."""
    names = [n["metadata"]["name"] for n in cluster.client.get("/api/v1/nodes")["items"]]
    prometheus = FakePrometheus({name: (0.5, 2.0 * 2**30) for name in names})
    model = write_packing_model(work / "champion")
    options = functions.FunctionsOptions(model_dir=model, prometheus_url=prometheus.url, env=env)
    return service_account_env(cluster, options), prometheus


def ensure_namespace(client, name: str) -> None:
    """Create the namespace unless it exists."""
    try:
        client.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    except KubeError as exc:
        if not exc.conflict:
            raise


def start_adapter(cluster: RunningCluster, sink: str, logs: Path, name: str = "receive-adapter-test",
                  timeout_s: float = 15.0) -> processes.Process:
    """A Knative receive adapter watching pods and delivering to ``sink``; returns once it watches."""
    rbac.grant_adapter(cluster.client)  # idempotent; `up` grants it only when it starts an adapter itself
    log_path = logs / f"{name}.log"
    offset = log_path.stat().st_size if log_path.exists() else 0
    launch = adapter.launch(Binaries(Path(cluster.record.bin_dir)), Layout(cluster.state_dir).kubeconfig(
        "receive-adapter"), sink, components.free_ports(("profiling",))["profiling"], log_path)
    proc = processes.start(name, launch.argv, log_path, cwd=logs, env={**os.environ, **launch.env})
    deadline = time.monotonic() + timeout_s
    while adapter.STARTED_MARKER not in log_path.read_text(errors="replace")[offset:]:
        if time.monotonic() > deadline:
            processes.stop(proc)
            raise AssertionError(f"the receive adapter did not start; see {log_path}")
        time.sleep(0.2)
    return proc


@contextmanager
def sweep_timer(sweeper: Function, every_s: float) -> Iterator[None]:
    """Ping the sweeper every ``every_s`` seconds, like the deployed PingSource, for the duration of the
    block. A failed ping is skipped (the next one comes soon), as a PingSource's would be retried."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every_s):
            try:
                sweeper.ping(timeout_s=max(every_s, 5.0))
            except OSError:
                pass

    thread = threading.Thread(target=loop, name="sweep-timer", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()


@contextmanager
def live_functions(cluster: RunningCluster, options: functions.FunctionsOptions, logs: Path,
                   adapter_: bool = True) -> Iterator[LiveFunctions]:
    """The binder and sweeper as the ServiceAccount and (optionally) a receive adapter feeding the
    binder, for the duration of the block; everything started is stopped afterwards."""
    env = service_account_env(cluster, options)
    started: list[Function] = []
    running: LiveFunctions | None = None
    try:
        binder = Function("binder", env, logs).start()
        started.append(binder)
        sweeper = Function("sweeper", env, logs).start()
        started.append(sweeper)
        running = LiveFunctions(binder, sweeper, env, logs, cluster, started=started)
        if adapter_:
            running.restart_adapter()
        yield running
    finally:
        if running is not None and running.adapter is not None:
            processes.stop(running.adapter)
        for fn in started:
            fn.stop()
