"""Drive one slice of pods through the real apiserver and watch them get bound.

Pods are created at their wall times (a few client threads, so a burst does not fall behind), a
watch on the run's label stamps when each is first seen bound and where, and tells the usage
source, which from then on serves the pod's profile to the emulator. The run ends when every pod
has been bound and has finished its run (KWOK completes it), or at the deadline. Its pods are then
deleted. The usage snapshot file the emulator serves is rewritten every ``write_every_s``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from neurokube.adapters.kube import KubeClient, KubeError
from neurokube.emulator.filesource import write_snapshot
from neurokube.errors import TemporaryError
from neurokube.liveloop.plan import LivePod, owner_manifest, pod_manifest
from neurokube.liveloop.usage import LiveUsage
from neurokube.logs import event

log = logging.getLogger("neurokube.liveloop.driver")
RUN_LABEL = "neurokube-loop-run"


@dataclass
class RunResult:
    scheduler: str
    started_s: float  # wall clock
    ended_s: float
    created: dict[str, float]
    bound: dict[str, float]
    node: dict[str, str]

    @property
    def unbound(self) -> int:
        return len(self.created) - len(self.bound)


def ensure_owners(kube: KubeClient, namespace: str, names: set[str]) -> dict[str, str]:
    """The ConfigMaps standing for the workloads (created when missing): name -> uid."""
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    have = {c["metadata"]["name"]: c["metadata"]["uid"]
            for c in kube.get(path, labelSelector=f"{RUN_LABEL}=owners").get("items") or []}
    for name in sorted(names - set(have)):
        try:
            made = kube.create(path, owner_manifest(name, namespace, RUN_LABEL, "owners"))
        except KubeError as exc:
            if getattr(exc, "status", None) != 409:
                raise
            made = kube.get(f"{path}/{name}")
        have[name] = made["metadata"]["uid"]
    return have


class _Watch:
    def __init__(self, kube: KubeClient, namespace: str, run: str, on_bound: Callable[[str, str, float], None]):
        self.kube, self.path, self.selector, self.on_bound = kube, f"/api/v1/namespaces/{namespace}/pods", \
            f"{RUN_LABEL}={run}", on_bound
        self.bound: dict[str, float] = {}
        self.node: dict[str, str] = {}
        self.error: str | None = None
        self._stop = threading.Event()
        self._version = str(kube.get(self.path, labelSelector=self.selector)["metadata"]["resourceVersion"])
        self._thread = threading.Thread(target=self._run, name="loop-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            query = {"labelSelector": self.selector, "resourceVersion": self._version, "timeoutSeconds": "30",
                     "allowWatchBookmarks": "true"}
            try:
                for item in self.kube.watch(self.path, query, read_timeout_s=60):
                    now = time.time()
                    obj = item.get("object") or {}
                    meta = obj.get("metadata") or {}
                    self._version = str(meta.get("resourceVersion") or self._version)
                    if item.get("type") == "ERROR":
                        self.error = f"watch error: {obj.get('message')}"
                        return
                    name, node = meta.get("name"), (obj.get("spec") or {}).get("nodeName")
                    if name and node and name not in self.bound:
                        self.bound[name], self.node[name] = now, node
                        self.on_bound(name, node, now)
                    if self._stop.is_set():
                        return
            except TemporaryError as exc:
                if self._stop.wait(1.0):
                    return
                event(log, "watch broke, resuming", logging.WARNING, error=str(exc))

    def close(self) -> None:
        self._stop.set()


def drive(kube: KubeClient, pods: list[LivePod], *, namespace: str, scheduler_name: str, run: str,
          usage: LiveUsage, owners: dict[str, str], snapshot_path: Path, timeout_s: float,
          progress: Callable[[int, int], None] = lambda bound, total: None, threads: int = 4,
          write_every_s: float = 0.5) -> RunResult:
    """Create ``pods`` at their times with ``scheduler_name``; wait until all are bound and done."""
    by_name = {p.name: p for p in pods}
    labels = {RUN_LABEL: run}
    created: dict[str, float] = {}
    lock = threading.Lock()

    def on_bound(name: str, node: str, at: float) -> None:
        pod = by_name.get(name)
        if pod is not None:
            usage.bind(name, pod.index, node, at, pod.run_for_s)

    watch = _Watch(kube, namespace, run, on_bound)
    stop_writer = threading.Event()

    def writer() -> None:
        while not stop_writer.wait(write_every_s):
            write_snapshot(snapshot_path, usage.snapshot(time.time()))

    writing = threading.Thread(target=writer, name="loop-usage-writer", daemon=True)
    writing.start()
    started = time.time()
    deadline = started + timeout_s
    try:
        def create(pod: LivePod) -> None:
            doc = pod_manifest(pod, namespace, scheduler_name, owners[pod.workload], labels)
            try:
                kube.create(f"/api/v1/namespaces/{namespace}/pods", doc)
            except KubeError as exc:
                raise TemporaryError(f"creating pod {pod.name} failed: {exc}") from None
            with lock:
                created[pod.name] = time.time()

        with ThreadPoolExecutor(threads) as pool:
            futures = []
            for pod in pods:
                pause = started + pod.create_at_s - time.time()
                if pause > 0:
                    time.sleep(pause)
                futures.append(pool.submit(create, pod))
                progress(len(watch.bound), len(pods))
            for future in futures:
                future.result()
        while time.time() < deadline:
            if watch.error:
                raise TemporaryError(f"the loop's pod watch failed: {watch.error}")
            bound = dict(watch.bound)
            progress(len(bound), len(pods))
            if len(bound) == len(pods) and usage.running(time.time()) == 0:
                break
            time.sleep(0.5)
        ended = time.time()
        write_snapshot(snapshot_path, usage.snapshot(ended))
    finally:
        stop_writer.set()
        watch.close()
    usage.forget(set(by_name))
    write_snapshot(snapshot_path, usage.snapshot(time.time()))  # the run's pods are gone from the series
    result = RunResult(scheduler_name, started, ended, created, dict(watch.bound), dict(watch.node))
    event(log, "run done", scheduler=scheduler_name, pods=len(pods), bound=len(result.bound),
          seconds=round(ended - started, 1))
    return result


def delete_run(kube: KubeClient, namespace: str, run: str) -> None:
    """Delete the run's pods (all at once, by label)."""
    kube.request("DELETE", f"/api/v1/namespaces/{namespace}/pods",
                 {"gracePeriodSeconds": 0}, query={"labelSelector": f"{RUN_LABEL}={run}"})
