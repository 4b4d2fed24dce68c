"""``neurokube bench scheduling``: the same pods placed by kube-scheduler and by NeuroKube, one
after the other on one local control plane, timed from the apiserver's side.

What runs (docs/OPERATIONS.md, "Benchmarking against kube-scheduler"):

* a local cluster of N uniform KWOK nodes (started and taken down by the bench, or an already
  running one given with ``--state-dir``, left running);
* NeuroKube's binder and sweeper as functions-framework processes with the least-privilege
  ServiceAccount, a Knative receive adapter delivering pod events to the binder, and a timer that
  pings the sweeper every minute (what a PingSource does);
* a model: the champion in ``--model DIR``, else a small generated LightGBM packing model;
* node metrics from :class:`~neurokube.testing.prometheus.FakePrometheus`, a loopback double of the
  Prometheus HTTP API that the binder queries exactly as it would a real one (see the docs for why
  not the real stack).

Each phase creates the same M pods (same requests, same order, same creation procedure), only
``spec.schedulerName`` differs, and records per pod when it was created and when a watch on the
pods first saw ``spec.nodeName``. Then it checks the invariants (every pod bound, no node over its
allocatable; for NeuroKube one successful placement per pod), deletes the pods and waits until
they are gone. With ``--extender`` a third phase runs a second kube-scheduler whose configuration
calls NeuroKube's extender (filter and prioritize), for the extender's added latency. For the
kube-scheduler phases the bench also reads the scheduling scheduler's own
``scheduler_scheduling_attempt_duration_seconds`` histogram before and after, so that the
extender's cost is seen from inside kube-scheduler too, not only from the pods' side.
"""

from __future__ import annotations

import copy
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import psutil
import urllib3
import yaml
from prometheus_client.parser import text_string_to_metric_families

from neurokube.adapters.kube import KubeClient, KubeError
from neurokube.bench import stats
from neurokube.cluster import components, control, functions, livekit, processes, rbac, schedconfig, workload
from neurokube.cluster.broker import LocalBroker
from neurokube.cluster.build import Binaries
from neurokube.cluster.session import RunningCluster
from neurokube.cluster.state import Layout
from neurokube.errors import InputError, TemporaryError

LABEL = "neurokube-bench"
NAMESPACE = "default"
DEFAULT_SCHEDULER = "default-scheduler"
NEUROKUBE_SCHEDULER = "neurokube"
EXTENDER_SCHEDULER = "bench-extender-scheduler"  # the second kube-scheduler's one profile
SCHEDULING_ATTEMPTS = "scheduler_scheduling_attempt_duration_seconds"  # kube-scheduler's, labels result, profile
EXTENDER_WEIGHT = 5  # as deploy/knative/kube-scheduler/extender-config.yaml
CPU_CHOICES = (100, 250, 500, 1000)  # millicores
MEMORY_CHOICES = (128, 256, 512, 1024)  # MiB
SWEEP_EVERY_S = 60.0
BINDER_THREADS = functions.BINDER_THREADS  # the binder's THREADS and containerConcurrency as deployed
FUNCTION_PROCESSES = frozenset({"binder", "sweeper", "extender"})  # a functions-framework master and its worker

#: ``progress(description, total, unit)`` -> a context manager yielding ``update(done, total)``
#: (neurokube.cli.progress.progress has this shape).
Progress = Callable[[str, int, str], AbstractContextManager[Callable[[int, int], None]]]


@dataclass(frozen=True)
class BenchOptions:
    nodes: int
    pods: int
    state_dir: Path | None = None
    model_dir: Path | None = None
    extender: bool = False
    threads: int = 8  # client threads creating pods
    rate: float = 0.0  # pods/s to create at; 0: as fast as the threads can
    binder_threads: int = BINDER_THREADS  # gunicorn threads of the binder (functions-framework's THREADS)
    timeout_s: float = 0.0  # per phase, until every pod is bound; 0: 60 s + 0.5 s per pod
    seed: int = 0
    direct: bool = False  # the receive adapter posts straight to the binder (no Broker stand-in)
    rounds: int = 1  # kube-scheduler and NeuroKube (alternating which goes first; then the extender), this many
    # times; medians reported
    kubeconfig: Path | None = None  # the bench's own requests as this user (default: the cluster's admin)

    def __post_init__(self) -> None:
        if self.nodes < 1 or self.pods < 1:
            raise InputError("--nodes and --pods must be positive")
        if self.threads < 1 or self.binder_threads < 1:
            raise InputError("thread counts must be positive")
        if self.rounds < 1:
            raise InputError("--rounds must be positive")
        if self.rate < 0:
            raise InputError("--rate must not be negative")
        if self.kubeconfig is not None and self.state_dir is None:
            raise InputError("--kubeconfig needs --state-dir", why="a kubeconfig names a cluster that already runs; "
                             "start it with `neurokube cluster up --state-dir DIR` first")
        if self.model_dir is not None and not (self.model_dir / "manifest.json").is_file():
            raise InputError("not a model directory", where=str(self.model_dir),
                             why="expected manifest.json and the LightGBM files of a trained champion "
                                 "(neurokube train --out DIR)")

    @property
    def phase_timeout_s(self) -> float:
        return self.timeout_s or 60.0 + 0.5 * self.pods


@dataclass
class PhaseRecord:
    scheduler: str
    result: stats.PhaseResult
    placements: dict[str, str]
    created_wall: dict[str, float]  # time.time() when each create returned (to line up with logs)
    profile: dict = field(default_factory=dict)
    api_requests: dict | None = None  # stats.api_requests_per_pod over the phase; None: /metrics unreadable
    #: kube-scheduler phases: its scheduling-attempt bucket deltas (stats.bucket_deltas); None: /metrics unreadable
    attempts: dict | None = None
    #: CPU milliseconds per bound pod that each local process used during the phase (stats.CPU_ROLES)
    cpu_ms_per_pod: dict[str, float] = field(default_factory=dict)


@dataclass
class BenchResult:
    options: BenchOptions
    rounds: list[dict[str, PhaseRecord]]
    model: str
    metrics: str
    cluster: str

    @property
    def phases(self) -> dict[str, PhaseRecord]:
        """The last round's phases (placements and NeuroKube's profile)."""
        return self.rounds[-1]

    @property
    def results(self) -> dict[str, stats.PhaseResult]:
        """Per scheduler, the median over the rounds."""
        return {name: stats.median_of([r[name].result for r in self.rounds]) for name in self.rounds[0]}

    def to_json(self) -> dict:
        extra = {"pods": self.options.pods, "model": self.model, "node_metrics": self.metrics,
                 "nodes_used": {name: len(set(phase.placements.values())) for name, phase in self.phases.items()},
                 "cluster": self.cluster,
                 "creation": {"threads": self.options.threads, "rate_per_s": self.options.rate or "max"},
                 "binder_threads": self.options.binder_threads,
                 "profile": {name: phase.profile for name, phase in self.phases.items() if phase.profile},
                 "rounds": [{name: {**phase.result.to_json(), "api_requests_per_pod": phase.api_requests,
                                    "cpu_ms_per_pod": phase.cpu_ms_per_pod, **_attempts_json(name, phase)}
                             for name, phase in r.items()} for r in self.rounds]}
        doc = stats.to_json(self.results, self.options.nodes, extra)
        for name, requests in self.api_requests().items():
            doc[name]["api_requests_per_pod"] = requests
        for name, cpu in self.cpu().items():
            doc[name]["cpu_ms_per_pod"] = cpu
        attempts = self.scheduling_attempts()
        for name, summary in attempts.items():
            doc[name]["scheduling_attempt_ms"] = summary
        if attempts.get(stats.KUBE_SCHEDULER) and attempts.get(stats.EXTENDER):
            doc["ratios"]["extender_added_attempt_p99_ms"] = round(
                attempts[stats.EXTENDER]["p99"] - attempts[stats.KUBE_SCHEDULER]["p99"], 3)
        doc["goals"] = [v.to_json() for v in self.verdicts()]
        return doc

    def scheduling_attempts(self) -> dict[str, dict | None]:
        """Per kube-scheduler phase, its own scheduling attempts (stats.scheduling_attempts) over all
        rounds together (the rounds' bucket deltas summed); None if a round's /metrics was unread."""
        out: dict[str, dict | None] = {}
        for name in (stats.KUBE_SCHEDULER, stats.EXTENDER):
            if name in self.rounds[0]:
                found = [r[name].attempts for r in self.rounds]
                out[name] = (stats.scheduling_attempts(stats.pooled(found))
                             if all(d is not None for d in found) else None)
        return out

    def verdicts(self) -> list[stats.Verdict]:
        """The goal verdicts: create-to-bound (stats.verdicts) and, with the extender, the added p99
        of kube-scheduler's own scheduling attempt."""
        found = stats.verdicts(self.results, self.options.nodes,
                               [{name: phase.result for name, phase in r.items()} for r in self.rounds])
        if stats.EXTENDER in self.rounds[0]:
            attempts = self.scheduling_attempts()
            found.append(stats.attempt_verdict(attempts[stats.KUBE_SCHEDULER], attempts[stats.EXTENDER],
                                               self.options.nodes))
        return found

    def cpu(self) -> dict[str, dict[str, float]]:
        """Per scheduler, the CPU milliseconds per bound pod of each process: medians over the rounds."""
        return {name: stats.median_cpu([r[name].cpu_ms_per_pod for r in self.rounds]) for name in self.rounds[0]}

    def api_requests(self) -> dict[str, dict | None]:
        """Per scheduler, the apiserver's requests per bound pod: medians over the rounds (None if unread)."""
        out: dict[str, dict | None] = {}
        for name in self.rounds[0]:
            found = [r[name].api_requests for r in self.rounds if r[name].api_requests is not None]
            out[name] = stats.median_requests(found) if found else None
        return out


def _attempts_json(name: str, phase: PhaseRecord) -> dict:
    """A kube-scheduler phase's ``scheduling_attempt_ms`` (None when unread); nothing for NeuroKube's."""
    if name not in (stats.KUBE_SCHEDULER, stats.EXTENDER):
        return {}
    return {"scheduling_attempt_ms": stats.scheduling_attempts(phase.attempts) if phase.attempts is not None
            else None}


# -- the pods ---------------------------------------------------------------------------------------


def pod_specs(count: int, seed: int) -> list[tuple[int, int]]:
    """(cpu millicores, memory MiB) of each pod: a fixed mix, the same for every phase."""
    rng = random.Random(seed)
    return [(rng.choice(CPU_CHOICES), rng.choice(MEMORY_CHOICES)) for _ in range(count)]


PHASE_CODES = {stats.KUBE_SCHEDULER: "ks", stats.NEUROKUBE: "nk", stats.EXTENDER: "ex"}


def manifests(run: str, phase: str, scheduler_name: str, specs: list[tuple[int, int]], round_: int = 1) -> list[dict]:
    """The phase's pods; names are unique per run, phase and round (the watch keys on them)."""
    prefix = f"{run}-{PHASE_CODES[phase]}{round_}"
    return [workload.pod_manifest(workload.PodSpec(f"{prefix}-{i:05d}", cpu, memory, scheduler_name=scheduler_name,
                                                   labels={LABEL: run, f"{LABEL}-phase": phase}))
            for i, (cpu, memory) in enumerate(specs)]


# -- the apiserver's view: a watch with local timestamps -------------------------------------------------


class BindWatch:
    """Watches the bench's pods; remembers when each was first seen and first seen bound."""

    def __init__(self, kube: KubeClient, run: str) -> None:
        self.kube = kube
        self.selector = f"{LABEL}={run}"
        self.seen: dict[str, float] = {}
        self.bound: dict[str, float] = {}
        self.node: dict[str, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._error: str | None = None
        listed = kube.get(f"/api/v1/namespaces/{NAMESPACE}/pods", labelSelector=self.selector)
        self._version = str(listed["metadata"]["resourceVersion"])
        self._thread = threading.Thread(target=self._run, name="bench-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        path = f"/api/v1/namespaces/{NAMESPACE}/pods"
        while not self._stop.is_set():
            query = {"labelSelector": self.selector, "resourceVersion": self._version, "timeoutSeconds": "30",
                     "allowWatchBookmarks": "true"}
            try:
                for item in self.kube.watch(path, query, read_timeout_s=60):
                    now = time.monotonic()
                    obj = item.get("object") or {}
                    meta = obj.get("metadata") or {}
                    self._version = str(meta.get("resourceVersion") or self._version)
                    if item.get("type") == "ERROR":
                        self._error = f"watch error: {obj.get('message')}"
                        return
                    if item.get("type") not in ("ADDED", "MODIFIED"):
                        continue
                    name = meta["name"]
                    node = (obj.get("spec") or {}).get("nodeName")
                    with self._lock:
                        self.seen.setdefault(name, now)
                        if node and name not in self.bound:
                            self.bound[name] = now
                            self.node[name] = node
                    if self._stop.is_set():
                        return
            except TemporaryError as exc:
                if self._stop.is_set():
                    return
                self._error = str(exc)
                return

    def check(self) -> None:
        if self._error:
            raise TemporaryError(f"the bench's pod watch failed: {self._error}")

    def count_bound(self, names: set[str]) -> int:
        with self._lock:
            return sum(1 for name in names if name in self.bound)

    def close(self) -> None:
        self._stop.set()


# -- the function processes' metrics --------------------------------------------------------------------


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``url``/metrics as {(name, sorted labels): value}."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def apiserver_requests(kube: KubeClient) -> dict[tuple[str, str, str], float] | None:
    """The apiserver's own ``apiserver_request_total`` per (verb, resource, subresource), summed
    over the other labels; None when /metrics cannot be read (a user without the permission)."""
    try:
        text = kube.request("GET", "/metrics", accept="text/plain", raw=True)
    except (KubeError, TemporaryError):
        return None
    out: dict[tuple[str, str, str], float] = defaultdict(float)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "apiserver_request_total":
                labels = sample.labels
                out[(labels.get("verb", ""), labels.get("resource", ""), labels.get("subresource", ""))] += sample.value
    return dict(out)


def scheduler_client(kube: KubeClient, port: int) -> KubeClient:
    """``kube``'s credentials aimed at a local kube-scheduler's secure port, for its /metrics.

    kube-scheduler serves that port with a self-signed certificate (it is started without
    ``--tls-cert-file``), so the server's certificate is not checked: it is a process of this
    machine on 127.0.0.1. The scheduler asks the apiserver who the client is and whether it may
    GET /metrics (``--authentication-kubeconfig``, ``--authorization-kubeconfig``): whoever may read
    the apiserver's /metrics (the cluster's admin) may read the scheduler's."""
    configuration = copy.deepcopy(kube.configuration)
    configuration.host = f"https://{components.LOCALHOST}:{port}"
    configuration.verify_ssl = False
    return KubeClient(configuration, timeout_s=10.0, user_agent="neurokube-bench")


def scheduling_attempt_buckets(client: KubeClient, profile: str) -> dict[tuple[str, float], float] | None:
    """A kube-scheduler's own ``scheduler_scheduling_attempt_duration_seconds`` for one profile
    (:func:`attempt_buckets`); None when its /metrics cannot be read."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
            text = client.request("GET", "/metrics", accept="text/plain", raw=True)
    except (KubeError, TemporaryError):
        return None
    return attempt_buckets(text, profile)


def attempt_buckets(text: str, profile: str) -> dict[tuple[str, float], float]:
    """The cumulative count per (``result``, ``le`` in seconds) of the scheduling-attempt histogram
    of ``profile`` in a kube-scheduler's /metrics text (stats.Buckets)."""
    out: dict[tuple[str, float], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == SCHEDULING_ATTEMPTS + "_bucket" and sample.labels.get("profile") == profile:
                key = (sample.labels.get("result", ""), float(sample.labels["le"]))
                out[key] = out.get(key, 0.0) + sample.value
    return out


def delta(before: dict, after: dict, name: str, **labels: str) -> float:
    """Sum over the samples of ``name`` whose labels include ``labels``, after minus before."""
    total = 0.0
    for (sample, sample_labels), value in after.items():
        got = dict(sample_labels)
        if sample == name and all(got.get(k) == v for k, v in labels.items()):
            total += value - before.get((sample, sample_labels), 0.0)
    return total


def histogram_profile(before: dict, after: dict, name: str, label: str, value: str) -> dict:
    """Count, mean and bucket-bound p50/p99 (ms) of one labelled histogram over the phase."""
    count = delta(before, after, f"{name}_count", **{label: value})
    if count <= 0:
        return {"count": 0}
    total = delta(before, after, f"{name}_sum", **{label: value})
    buckets = sorted((float(dict(lbls)["le"]), after[(n, lbls)] - before.get((n, lbls), 0.0))
                     for (n, lbls) in after if n == f"{name}_bucket" and dict(lbls).get(label) == value)

    def quantile(q: float) -> float:
        for bound, cumulative in buckets:
            if cumulative >= q * count:
                return bound * 1000.0
        return float("inf")

    return {"count": int(count), "mean_ms": round(total / count * 1000.0, 2), "p50_ms_le": quantile(0.5),
            "p99_ms_le": quantile(0.99)}


def binder_log_profile(log_path: Path, offset: int, created_wall: dict[str, float],
                       bound_wall: dict[str, float]) -> dict:
    """Where a NeuroKube pod's create-to-bound time goes, from the binder's decision log lines:
    waiting for delivery (created -> placement start), the placement (decide + reservation +
    Binding, the line's ``ms``), and the Binding becoming visible to the bench's watch."""
    wait, place, visible = [], [], []
    with open(log_path, "rb") as handle:
        handle.seek(offset)
        for raw in handle:
            try:
                doc = json.loads(raw)
            except ValueError:
                continue
            if doc.get("msg") != "pod bound" or "ms" not in doc:
                continue
            name = str(doc.get("pod", "")).partition("/")[2]
            if name not in created_wall:
                continue
            end = float(doc["ts"])
            start = end - float(doc["ms"]) / 1000.0
            wait.append(max(0.0, start - created_wall[name]) * 1000.0)
            place.append(float(doc["ms"]))
            if name in bound_wall:
                visible.append(max(0.0, bound_wall[name] - end) * 1000.0)
    out = {"pods_in_log": len(place)}
    for key, values in (("wait_for_delivery_ms", wait), ("placement_ms", place), ("bound_to_watch_ms", visible)):
        if values:
            out[key] = {"p50": round(stats.percentile(values, 50), 1), "p99": round(stats.percentile(values, 99), 1),
                        "mean": round(sum(values) / len(values), 1)}
    return out


# -- the run --------------------------------------------------------------------------------------------


def _no_progress(desc: str, total: int, unit: str) -> AbstractContextManager[Callable[[int, int], None]]:
    return nullcontext(lambda done, new_total: None)


def run(options: BenchOptions, out: IO[str] | None = None, progress: Progress | None = None) -> BenchResult:
    out = out or sys.stderr
    progress = progress or _no_progress
    with ExitStack() as stack:
        work = Path(tempfile.mkdtemp(prefix="neurokube-bench-"))
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        cluster, described = stack.enter_context(_cluster(options, work, out))
        model_dir, model = _model(options, work)
        node_names = workload.schedulable_nodes(cluster.client)
        prometheus = _prometheus(node_names, options.seed)
        stack.callback(prometheus.close)
        logs = Path(cluster.state_dir) / "bench-logs" if options.state_dir else work / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        fn_options = functions.FunctionsOptions(model_dir=model_dir, prometheus_url=prometheus.url,
                                                threads=options.binder_threads)
        print(f"starting the binder, sweeper and receive adapter (logs: {logs})", file=out, flush=True)
        rbac.grant_adapter(cluster.client)  # the cluster was started without its own adapter
        live = stack.enter_context(livekit.live_functions(cluster, fn_options, logs))
        live.binder.wait_metrics_fresh(timeout_s=60)
        broker = None
        if not options.direct:
            broker = LocalBroker(live.binder.url + "/", concurrency=options.binder_threads,
                                 authorization=live.binder.auth_headers().get("Authorization"))
            stack.callback(broker.close)
            live.restart_adapter(sink=broker.url)
            print(f"events: receive adapter -> Broker stand-in (the add Trigger, {options.binder_threads} "
                  "deliveries at a time) -> binder", file=out, flush=True)
        else:
            print("events: receive adapter -> binder, directly (one event at a time)", file=out, flush=True)
        stack.enter_context(livekit.sweep_timer(live.sweeper, SWEEP_EVERY_S))
        kube = KubeClient.from_kubeconfig(options.kubeconfig or cluster.kubeconfig, timeout_s=30)
        run_id = f"bench-{int(time.time()) % 100000:05d}"
        watch = BindWatch(kube, run_id)
        stack.callback(watch.close)
        stack.callback(_delete_quietly, kube, run_id)
        specs = pod_specs(options.pods, options.seed)
        print(f"model: {model}\nnode metrics: Prometheus double (loopback), {len(node_names)} nodes", file=out)
        schedulers = {stats.KUBE_SCHEDULER: (scheduler_client(cluster.client, cluster.record.ports["scheduler"]),
                                             DEFAULT_SCHEDULER)}
        extra_pids: dict[str, int] = {}
        if options.extender:
            port, extra_pids = stack.enter_context(_extender_scheduler(cluster, live, logs, out))
            schedulers[stats.EXTENDER] = (scheduler_client(cluster.client, port), EXTENDER_SCHEDULER)
        ctx = _Context(options, specs, run_id, kube, watch, cluster, live, broker, out, progress, schedulers,
                       extra_pids)
        rounds: list[dict[str, PhaseRecord]] = []
        for number in range(1, options.rounds + 1):
            if options.rounds > 1:
                print(f"round {number} of {options.rounds}", file=out, flush=True)
            ran = {name: _phase(ctx, name, scheduler, number) for name, scheduler in phase_order(number)}
            phases = {stats.KUBE_SCHEDULER: ran[stats.KUBE_SCHEDULER], stats.NEUROKUBE: ran[stats.NEUROKUBE]}
            if options.extender:
                phases[stats.EXTENDER] = _phase(ctx, stats.EXTENDER, EXTENDER_SCHEDULER, number)
            rounds.append(phases)
        return BenchResult(options, rounds, model, "Prometheus double (neurokube.testing.FakePrometheus)",
                           described)


def phase_order(round_: int) -> list[tuple[str, str]]:
    """(phase, schedulerName) in the order round ``round_`` runs them: kube-scheduler first in odd
    rounds, NeuroKube first in even ones. The phase after another one pays for some of its cleanup:
    KWOK's pod-delete stage can run up to a minute behind and send its DELETEs for the previous
    phase's pods (404 by then) into the next phase (docs/BENCHMARKS.md, "scheduling"); alternating
    shares that between the two schedulers instead of always charging it to NeuroKube."""
    order = [(stats.KUBE_SCHEDULER, DEFAULT_SCHEDULER), (stats.NEUROKUBE, NEUROKUBE_SCHEDULER)]
    return order if round_ % 2 else order[::-1]


@contextmanager
def _cluster(options: BenchOptions, work: Path, out: IO[str]) -> Iterator[tuple[RunningCluster, str]]:
    """Start a cluster (taken down afterwards) or reuse the one running in ``--state-dir``."""
    state_dir = options.state_dir or work / "cluster"
    result = control.up(control.UpOptions(state_dir=state_dir, nodes=workload.uniform_nodes(options.nodes),
                                          start_adapter=False), out=out)
    record = result.record
    started = not result.already_running
    try:
        client = (KubeClient.from_kubeconfig(options.kubeconfig, timeout_s=30.0) if options.kubeconfig
                  else control.admin_client(record))
        cluster = RunningCluster(record, client)
        if result.already_running:
            names = {p.name for p in record.processes}
            if names & set(functions.FUNCTIONS):
                raise InputError(f"the cluster in {state_dir} runs its own live functions",
                                 why="the bench starts its own binder; use a cluster started without --functions")
            count = len(workload.schedulable_nodes(cluster.client))
            if count != options.nodes:
                raise InputError(f"the cluster in {state_dir} has {count} schedulable nodes, --nodes asks for "
                                 f"{options.nodes}", why="take it down or give the matching --nodes")
        described = (f"{'started' if started else 'reused'}: {options.nodes} KWOK nodes of 32 CPU / 128 GiB / "
                     f"110 pods, kube-scheduler with percentageOfNodesToScore 100")
        yield cluster, described
    finally:
        if started:
            control.down(state_dir, out=out)


def _model(options: BenchOptions, work: Path) -> tuple[Path, str]:
    if options.model_dir is not None:
        manifest = json.loads((options.model_dir / "manifest.json").read_text())
        return options.model_dir.absolute(), f"{manifest.get('version', '?')} (champion from {options.model_dir})"
    from neurokube.testing import write_packing_model

    directory = write_packing_model(work / "model" / "champion", version="bench-packing")
    return directory, "bench-packing (generated: a small LightGBM packing model; give --model for a trained one)"


def _prometheus(node_names: list[str], seed: int):
    from neurokube.testing import FakePrometheus

    rng = random.Random(seed)
    return FakePrometheus({name: (rng.uniform(0.5, 8.0), rng.uniform(1.0, 16.0) * 2**30) for name in node_names})


@contextmanager
def _extender_scheduler(cluster: RunningCluster, live: livekit.LiveFunctions, logs: Path,
                        out: IO[str]) -> Iterator[tuple[int, dict[str, int]]]:
    """The extender function and a second kube-scheduler whose one profile calls it; yields that
    scheduler's secure port (its /metrics) and the two processes' pids (for their CPU time)."""
    extender = livekit.Function("extender", live.env, logs).start()
    try:
        layout = Layout(cluster.state_dir)
        config = schedconfig.write(logs / "kube-scheduler-extender.yaml", layout.kubeconfig("kube-scheduler"),
                                   schedconfig.Extender(extender.url, schedconfig.DEFAULT_VERBS, EXTENDER_WEIGHT))
        doc = yaml.safe_load(config.read_text())
        doc["profiles"] = [{"schedulerName": EXTENDER_SCHEDULER}]
        config.write_text(yaml.safe_dump(doc, sort_keys=False))
        ports = components.free_ports(("scheduler",))
        launch = components.kube_scheduler(Binaries(Path(cluster.record.bin_dir)), layout, ports, config)
        proc = processes.start("kube-scheduler-extender", launch.argv, logs / "kube-scheduler-extender.log", cwd=logs)
        try:
            deadline = time.monotonic() + 60
            while not launch.ready():
                if not processes.is_running(proc) or time.monotonic() > deadline:
                    raise TemporaryError(f"the extender's kube-scheduler did not start; see "
                                         f"{logs / 'kube-scheduler-extender.log'}")
                time.sleep(0.2)
            print(f"started a second kube-scheduler (profile {EXTENDER_SCHEDULER}) calling the extender at "
                  f"{extender.url}", file=out, flush=True)
            yield ports["scheduler"], {"kube-scheduler-extender": proc.pid, "extender": extender.process.pid}
        finally:
            processes.stop(proc)
    finally:
        extender.stop()


@dataclass(frozen=True)
class _Context:
    options: BenchOptions
    specs: list[tuple[int, int]]
    run_id: str
    kube: KubeClient
    watch: BindWatch
    cluster: RunningCluster
    live: livekit.LiveFunctions
    broker: LocalBroker | None
    out: IO[str]
    progress: Progress
    #: phase -> (a client of the kube-scheduler placing its pods, that scheduler's profile)
    schedulers: dict[str, tuple[KubeClient, str]] = field(default_factory=dict)
    #: pids of processes started for one phase (the extender's), beside the cluster's and the functions'
    extra_pids: dict[str, int] = field(default_factory=dict)

    def pids(self) -> dict[str, int]:
        """The local processes whose CPU time each phase reads (stats.CPU_PROCESSES), by name."""
        found = {p.name: p.pid for p in self.cluster.record.processes}
        for name, function in (("binder", self.live.binder), ("sweeper", self.live.sweeper)):
            if function.process is not None:
                found[name] = function.process.pid
        if self.live.adapter is not None:
            found["receive-adapter"] = self.live.adapter.pid
        found["bench"] = os.getpid()
        return {**found, **self.extra_pids}


def _phase(ctx: _Context, name: str, scheduler_name: str, round_: int) -> PhaseRecord:
    options, run_id, kube, watch, cluster, live, broker, out, progress = (
        ctx.options, ctx.run_id, ctx.kube, ctx.watch, ctx.cluster, ctx.live, ctx.broker, ctx.out, ctx.progress)
    specs = ctx.specs
    docs = manifests(run_id, name, scheduler_name, specs, round_)
    names = {d["metadata"]["name"] for d in docs}
    print(f"{stats.LABELS[name]}: creating {len(docs)} pods (schedulerName {scheduler_name})", file=out, flush=True)
    binder_log = Path(live.logs) / f"{live.binder.label}.log"
    log_offset = binder_log.stat().st_size if binder_log.exists() else 0
    before = {"binder": scrape(live.binder.url), "sweeper": scrape(live.sweeper.url)}
    source = ctx.schedulers.get(name)
    attempts_before = scheduling_attempt_buckets(*source) if source else None
    requests_before = apiserver_requests(cluster.client)
    broker_before = _broker_snapshot(broker)
    pids = ctx.pids()
    cpu_before = process_cpu_s(pids)
    created, created_wall = _create(kube, docs, options, progress, name)
    deadline = time.monotonic() + options.phase_timeout_s
    with progress(f"{name}: bound", len(docs), "pod") as update:
        while True:
            watch.check()
            bound = watch.count_bound(names)
            update(bound, len(docs))
            if bound == len(docs):
                break
            if time.monotonic() > deadline:
                raise TemporaryError(f"{stats.LABELS[name]}: only {bound} of {len(docs)} pods bound after "
                                     f"{options.phase_timeout_s:.0f}s (logs: {live.logs})")
            time.sleep(0.1)
    after = _settled_metrics(live, before, len(docs) if name == stats.NEUROKUBE else None)
    cpu_after = process_cpu_s(pids)
    requests_after = apiserver_requests(cluster.client)
    attempts = _attempts_over(source, attempts_before, len(docs)) if source and attempts_before is not None else None
    with watch._lock:
        first_seen = {n: watch.seen.get(n, created[n]) for n in names}
        bound_at = {n: watch.bound[n] for n in names}
        placements = {n: watch.node[n] for n in names}
    created_at = {n: min(created[n], first_seen[n]) for n in names}
    result = stats.summarize(name, created_at, bound_at)
    bad = livekit.over_committed(cluster.client)
    if bad:
        raise TemporaryError(f"{stats.LABELS[name]}: nodes over allocatable: {'; '.join(bad[:3])}")
    profile: dict = {}
    if name == stats.NEUROKUBE:
        placed = _placed(before, after)
        if placed != len(docs):
            raise TemporaryError(f"NeuroKube: {placed:.0f} successful placements for {len(docs)} pods "
                                 "(expected exactly one each)")
        profile = _neurokube_profile(before, after, result, binder_log, log_offset, created_wall, created, bound_at)
        profile["delivery"] = _delivery_profile(broker, broker_before)
    requests = (stats.api_requests_per_pod(requests_before, requests_after, result.bound)
                if requests_before is not None and requests_after is not None else None)
    print(f"  {result.bound}/{result.pods} bound, {result.pods_per_s:.1f} pods/s, p50 {result.p50_ms:.0f} ms, "
          f"p99 {result.p99_ms:.0f} ms (created in {result.create_span_s:.1f}s); no node over allocatable; "
          + (f"apiserver writes per pod {requests['writes']:.2f}" if requests else "apiserver /metrics not readable"),
          file=out, flush=True)
    if source:
        summary = stats.scheduling_attempts(attempts) if attempts is not None else None
        print("  kube-scheduler's own scheduling attempts: " + (
            f"p50 {summary['p50']:.1f} ms, p99 {summary['p99']:.1f} ms over {summary['attempts']} attempts"
            if summary else "none read (its /metrics not readable)"), file=out, flush=True)
    _delete_all(kube, run_id)
    _wait_gone(kube, run_id, progress)
    _wait_delivered(live.binder.url)
    return PhaseRecord(name, result, placements, created_wall, profile, requests, attempts,
                       stats.cpu_ms_per_pod(cpu_before, cpu_after, result.bound))


def process_cpu_s(pids: dict[str, int], with_children: frozenset[str] = FUNCTION_PROCESSES) -> dict[str, float]:
    """CPU seconds (user + system) that each named process has used so far.

    A function is a functions-framework master with its gunicorn worker as a child, so for the names
    in ``with_children`` the live children count too. Nothing else counts its children: the bench's
    own process started the cluster and the functions, which are read under their own names. A
    process that is gone or cannot be read is left out (its column stays empty)."""
    out: dict[str, float] = {}
    for name, pid in pids.items():
        try:
            process = psutil.Process(pid)
            times = process.cpu_times()
            children = process.children(recursive=True) if name in with_children else []
        except psutil.Error:
            continue
        total = times.user + times.system
        for child in children:
            try:
                child_times = child.cpu_times()
            except psutil.Error:  # it ended in between
                continue
            total += child_times.user + child_times.system
        out[name] = total
    return out


def _attempts_over(source: tuple[KubeClient, str], before: dict, pods: int,
                   timeout_s: float = 10.0) -> dict | None:
    """The phase's scheduling-attempt bucket deltas, once the scheduler has counted a successful
    attempt per pod (it observes one when its Binding call returns, which the bench's watch can
    see first), or after ``timeout_s``; None when its /metrics cannot be read."""
    deadline = time.monotonic() + timeout_s
    while True:
        after = scheduling_attempt_buckets(*source)
        if after is None:
            return None
        deltas = stats.bucket_deltas(before, after)
        summary = stats.scheduling_attempts(deltas)
        scheduled = ((summary or {}).get("by_result", {}).get("scheduled") or {}).get("attempts", 0)
        if scheduled >= pods or time.monotonic() > deadline:
            return deltas
        time.sleep(0.5)


def _create(kube: KubeClient, docs: list[dict], options: BenchOptions, progress: Progress,
            name: str) -> tuple[dict[str, float], dict[str, float]]:
    created: dict[str, float] = {}
    created_wall: dict[str, float] = {}
    lock = threading.Lock()

    def create(doc: dict) -> None:
        try:
            kube.request("POST", f"/api/v1/namespaces/{NAMESPACE}/pods", doc)
        except KubeError as exc:
            raise TemporaryError(f"creating pod {doc['metadata']['name']} failed: {exc}") from None
        now, wall = time.monotonic(), time.time()
        with lock:
            created[doc["metadata"]["name"]] = now
            created_wall[doc["metadata"]["name"]] = wall

    with progress(f"{name}: created", len(docs), "pod") as update, ThreadPoolExecutor(options.threads) as pool:
        started = time.monotonic()
        futures = []
        for i, doc in enumerate(docs):
            if options.rate:
                pause = started + i / options.rate - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
            futures.append(pool.submit(create, doc))
        for i, future in enumerate(futures, start=1):
            future.result()
            update(i, len(docs))
    return created, created_wall


def _neurokube_profile(before: dict, after: dict, result: stats.PhaseResult, binder_log: Path, offset: int,
                       created_wall: dict[str, float], created: dict[str, float],
                       bound_at: dict[str, float]) -> dict:
    b, a = before["binder"], after["binder"]
    stages = {stage: histogram_profile(b, a, "neurokube_decision_duration_seconds", "stage", stage)
              for stage in ("decide", "reserve", "bind", "total")}
    busy_s = delta(b, a, "neurokube_decision_duration_seconds_sum", stage="total")
    events: dict[str, float] = defaultdict(float)
    for (sample, labels), value in a.items():
        if sample == "neurokube_cloudevents_total":
            got = dict(labels)
            d = value - b.get((sample, labels), 0.0)
            if d:
                events[f"{got['type'].rsplit('.', 1)[-1]}:{got['result']}"] += d
    conflicts = {kind: delta(b, a, "neurokube_bind_conflicts_total", kind=kind)
                 for kind in ("already_assigned", "reservation", "no_room", "node_gone", "contended")}
    offset_wall = {n: created_wall[n] - created[n] for n in created_wall}  # wall - monotonic, per pod
    cpu_s = {part: delta(b, a, "neurokube_cpu_seconds_total", part=part)
             for part in ("event_handled", "event_ignored", "decide", "place")}
    handled = sum(v for k, v in events.items() if k.endswith(":handled"))
    ignored = sum(v for k, v in events.items() if k.endswith(":ignored"))
    per = {"decide_per_handled": (cpu_s["decide"], handled), "place_per_handled": (cpu_s["place"], handled),
           "handled_event": (cpu_s["event_handled"], handled), "ignored_event": (cpu_s["event_ignored"], ignored)}
    cpu_ms = {k: round(1000.0 * s / n, 3) for k, (s, n) in per.items() if n}
    bound_wall = {n: bound_at[n] + offset_wall[n] for n in bound_at if n in offset_wall}
    lookups = {source: delta(b, a, "neurokube_pod_lookups_total", source=source)
               for source in ("cache", "watch_wait", "apiserver")}
    reserved = {how: delta(b, a, "neurokube_ledger_reservations_total", how=how) for how in ("write", "credit")}
    return {
        "decision_stages": stages,
        "handler_cpu_ms": cpu_ms,
        "binder_busy_share": round(busy_s / result.span_s, 3) if result.span_s > 0 else None,
        "events_delivered": {k: int(v) for k, v in sorted(events.items())},
        "bind_conflicts": {k: int(v) for k, v in conflicts.items() if v},
        "pod_lookups": {k: int(v) for k, v in lookups.items()},
        "ledger_reservations": {k: int(v) for k, v in reserved.items()},
        "sweeper_bound": int(delta(before["sweeper"], after["sweeper"], "neurokube_decisions_total", outcome="bound")),
        "per_pod": binder_log_profile(binder_log, offset, created_wall, bound_wall),
    }


def _placed(before: dict, after: dict) -> float:
    return sum(delta(before[f], after[f], "neurokube_decisions_total", outcome="bound") for f in ("binder", "sweeper"))


def _settled_metrics(live: livekit.LiveFunctions, before: dict, expected: int | None,
                     timeout_s: float = 30.0) -> dict:
    """The functions' metrics once their bookkeeping has caught up: a Binding can be seen by the
    watch before its answer reaches the binder, which counts the placement only then. With
    ``expected``, wait (up to ``timeout_s``) until binder and sweeper count that many placements."""
    deadline = time.monotonic() + timeout_s
    while True:
        time.sleep(1.0)
        after = {"binder": scrape(live.binder.url), "sweeper": scrape(live.sweeper.url)}
        if expected is None or _placed(before, after) >= expected or time.monotonic() > deadline:
            return after


def _broker_snapshot(broker: LocalBroker | None) -> dict:
    if broker is None:
        return {}
    s = broker.stats
    return {"received": s.received, "filtered": s.filtered, "delivered": s.delivered, "retries": s.retries,
            "failed": s.failed, "rejected": s.rejected, "waits": len(s.queue_wait_s)}


def _delivery_profile(broker: LocalBroker | None, before: dict) -> dict:
    if broker is None:
        return {"path": "receive adapter -> binder (one event at a time)"}
    now = _broker_snapshot(broker)
    waits = [w * 1000.0 for w in broker.stats.queue_wait_s[before["waits"]:]]
    out = {"path": "receive adapter -> Broker stand-in -> binder",
           **{k: now[k] - before[k] for k in now if k != "waits"},
           "max_in_flight": broker.stats.max_in_flight}
    if waits:
        out["broker_queue_ms"] = {"p50": round(stats.percentile(waits, 50), 1),
                                  "p99": round(stats.percentile(waits, 99), 1)}
    return out


def _delete_quietly(kube: KubeClient, run_id: str) -> None:
    try:
        _delete_all(kube, run_id)
    except TemporaryError:
        pass  # the cluster is going away, or the caller reports the first failure


def _delete_all(kube: KubeClient, run_id: str, threads: int = 8) -> int:
    """Delete the bench's pods that still exist (one DELETE each, grace period 0); returns how many."""
    path = f"/api/v1/namespaces/{NAMESPACE}/pods"
    left = [p["metadata"]["name"] for p in kube.get(path, labelSelector=f"{LABEL}={run_id}").get("items") or []
            if not p["metadata"].get("deletionTimestamp")]

    def delete(name: str) -> None:
        try:
            kube.request("DELETE", f"{path}/{urllib.parse.quote(name)}", {"gracePeriodSeconds": 0})
        except KubeError as exc:
            if not exc.not_found:
                raise

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(delete, left))
    return len(left)


def _wait_delivered(binder_url: str, quiet_s: float = 3.0, timeout_s: float = 300.0) -> None:
    """Wait until the receive adapter has delivered its backlog (the binder's event count stops
    moving for ``quiet_s``): it delivers one event at a time, and the next phase must not queue
    behind this one's update and delete events."""
    deadline = time.monotonic() + timeout_s
    last, since = -1.0, time.monotonic()
    while time.monotonic() < deadline:
        now_count = delta({}, scrape(binder_url), "neurokube_cloudevents_total")
        if now_count != last:
            last, since = now_count, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return
        time.sleep(0.25)


def _wait_gone(kube: KubeClient, run_id: str, progress: Progress, timeout_s: float = 300.0) -> None:
    deadline = time.monotonic() + timeout_s
    path = f"/api/v1/namespaces/{NAMESPACE}/pods"
    with progress("deleting", 0, "pod") as update:
        while True:
            items = kube.get(path, labelSelector=f"{LABEL}={run_id}").get("items") or []
            left = len(items)
            update(0, left)
            if not left:
                return
            if any(not p["metadata"].get("deletionTimestamp") for p in items):
                _delete_all(kube, run_id)
            if time.monotonic() > deadline:
                raise TemporaryError(f"{left} bench pods still exist {timeout_s:.0f}s after their deletion")
            time.sleep(0.5)


def markdown(result: BenchResult, command: str) -> str:
    """The docs/BENCHMARKS.md section body."""
    found = result.verdicts()
    r = stats.ratios(result.results)
    pace = "as fast as they can" if not result.options.rate else f"at {result.options.rate:g} pods/s"
    lines = [
        f"{result.options.pods:,} pods on {result.options.nodes:,} KWOK nodes, created by "
        f"{result.options.threads} client threads {pace}; "
        f"the same pods (requests {'/'.join(map(str, CPU_CHOICES))}m CPU x {'/'.join(map(str, MEMORY_CHOICES))} MiB, "
        "seeded) for each scheduler, one after the other. Create-to-bound is timed by a watch on the pods "
        "(local timestamps: created when the create call returned or the watch saw the pod, bound when the watch "
        "first saw spec.nodeName). Model: " + result.model + ". Node metrics: " + result.metrics + ".",
        "",
        stats.table(result.results),
        "",
        *_rounds_lines(result),
        f"Ratios NeuroKube / kube-scheduler: throughput {r['throughput']:.2f} x, p50 {r['p50']:.2f} x, "
        f"p99 {r['p99']:.2f} x.",
        "",
        stats.goals_table(found),
        *_attempts_lines(result),
        *_requests_lines(result),
        *_cpu_lines(result),
    ]
    profile = result.phases[stats.NEUROKUBE].profile
    if profile:
        lines += ["", "Where NeuroKube's time goes (binder /metrics and decision log over its last phase):", "",
                  profile_text(profile)]
    return "\n".join(lines)


def _attempts_lines(result: BenchResult) -> list[str]:
    """kube-scheduler's own scheduling-attempt duration per kube-scheduler phase (with the extender)."""
    attempts = result.scheduling_attempts()
    if stats.EXTENDER not in attempts:
        return []
    rows = ["", f"kube-scheduler's own scheduling-attempt duration (`{SCHEDULING_ATTEMPTS}`, the phase's bucket "
            "deltas of the scheduler that placed its pods, all rounds together; quantiles interpolated inside the "
            "bucket as Prometheus' `histogram_quantile` does, so only as fine as the buckets, which double from "
            "1 ms):", "", "| scheduler | attempts | p50 ms | p99 ms | by result |", "|---|---:|---:|---:|---|"]
    for name, summary in attempts.items():
        if summary is None:
            rows.append(f"| {stats.LABELS[name]} | not read | | | |")
            continue
        results = ", ".join(f"{r} {v['attempts']}" for r, v in summary["by_result"].items())
        rows.append(f"| {stats.LABELS[name]} | {summary['attempts']} | {summary['p50']:.1f} | {summary['p99']:.1f} | "
                    f"{results} |")
    plain, extender = attempts.get(stats.KUBE_SCHEDULER), attempts.get(stats.EXTENDER)
    if plain and extender:
        added = extender["p99"] - plain["p99"]
        met = added <= stats.EXTENDER_ADDED_ATTEMPT_P99_MS_MAX
        rows += ["", f"The extender adds {added:.1f} ms to kube-scheduler's p99 scheduling attempt (goal <= "
                 f"{stats.EXTENDER_ADDED_ATTEMPT_P99_MS_MAX:.0f} ms): {'met' if met else '**NOT met**'}."]
    return rows


def _cpu_lines(result: BenchResult) -> list[str]:
    """CPU milliseconds per bound pod of each scheduler's own processes and of the shared ones."""
    cpu = {name: found for name, found in result.cpu().items() if found}
    if not cpu:
        return []
    return ["", "CPU per bound pod, ms (user + system, children included, the median of the rounds; each row is "
            "one scheduler's phase, so a shared process's column is what that phase cost it; on 2 cores every "
            "millisecond here is one the creators, the apiserver and the scheduler compete for):", "",
            stats.cpu_table(cpu)]


def _requests_lines(result: BenchResult) -> list[str]:
    """The apiserver's requests per bound pod, by verb, per scheduler (its own apiserver_request_total)."""
    found = {name: r for name, r in result.api_requests().items() if r is not None}
    if not found:
        return []
    verbs = sorted({v for r in found.values() for v in r["by_verb"]})
    lines = ["", "Requests the apiserver served per bound pod during each phase (its own `apiserver_request_total`, "
             "everyone's requests: the bench's creates, KWOK's status updates and the controllers' are the same "
             "in every phase; the difference is the scheduler's):", "",
             "| scheduler | writes | " + " | ".join(verbs) + " |", "|---|---:|" + "---:|" * len(verbs)]
    for name, r in found.items():
        lines.append(f"| {stats.LABELS[name]} | {r['writes']:.2f} | "
                     + " | ".join(f"{r['by_verb'].get(v, 0.0):.2f}" for v in verbs) + " |")
    last = result.phases
    detail = "; ".join(f"{stats.LABELS[name]}: " + ", ".join(
        f"{k} {v:.2f}" for k, v in list((phase.api_requests or {}).get("by_request", {}).items())[:6])
        for name, phase in last.items() if phase.api_requests)
    return lines + ["", f"Largest requests per pod in the last round: {detail}."]


def _rounds_lines(result: BenchResult) -> list[str]:
    """With several rounds: say the rows are medians, and list each round's ratios."""
    if len(result.rounds) < 2:
        return []
    parts = []
    for number, r in enumerate(result.rounds, start=1):
        ratios = stats.ratios({name: phase.result for name, phase in r.items()})
        parts.append(f"round {number}: throughput {ratios['throughput']:.2f} x, p99 {ratios['p99']:.2f} x "
                     f"({r[stats.KUBE_SCHEDULER].result.p99_ms:.0f} vs {r[stats.NEUROKUBE].result.p99_ms:.0f} ms)")
    return [f"Each row is the median of {len(result.rounds)} rounds (kube-scheduler first in odd rounds, "
            "NeuroKube first in even ones); "
            + "; ".join(parts) + ".", ""]


def profile_text(profile: dict) -> str:
    stages = profile["decision_stages"]
    per_pod = profile.get("per_pod", {})
    rows = ["| part | p50 ms | p99 ms | mean ms |", "|---|---:|---:|---:|"]
    for key, label in (("wait_for_delivery_ms", "created -> binder starts placing (delivery, a free binder thread)"),
                       ("placement_ms", "placement in the binder (decide + reservation + Binding)"),
                       ("bound_to_watch_ms", "Binding -> seen bound by the watch")):
        if key in per_pod:
            v = per_pod[key]
            rows.append(f"| {label} | {v['p50']:.0f} | {v['p99']:.0f} | {v['mean']:.0f} |")
    for stage in ("decide", "reserve", "bind", "total"):
        s = stages.get(stage, {})
        if s.get("count"):
            rows.append(f"| stage `{stage}` (histogram, bucket bounds) | <= {s['p50_ms_le']:g} | "
                        f"<= {s['p99_ms_le']:g} | {s['mean_ms']:.1f} |")
    events = ", ".join(f"{k} {v}" for k, v in profile.get("events_delivered", {}).items())
    tail = [f"Binder threads placing at once, on average: {profile.get('binder_busy_share') or 0:.1f}; events "
            f"delivered to it: {events or 'none'}; bind conflicts: {profile.get('bind_conflicts') or 'none'}; "
            f"placed by the sweeper: {profile.get('sweeper_bound', 0)}."]
    reserved = profile.get("ledger_reservations") or {}
    if any(reserved.values()):
        tail.append(f"Pods whose room the ledger reserved: with a Lease write {reserved.get('write', 0)}, under "
                    f"the binder's credit (no write) {reserved.get('credit', 0)}.")
    lookups = profile.get("pod_lookups") or {}
    if any(lookups.values()):
        tail.append("Pods the events name, read from: the watch cache " f"{lookups.get('cache', 0)}, the watch "
                    f"cache after waiting for the watch {lookups.get('watch_wait', 0)}, a GET "
                    f"{lookups.get('apiserver', 0)}.")
    cpu = profile.get("handler_cpu_ms") or {}
    if "handled_event" in cpu:
        tail.append(f"CPU of the binder's event handlers (thread time, `neurokube_cpu_seconds_total`): "
                    f"{cpu['handled_event']:.2f} ms per handled event, of which deciding "
                    f"{cpu.get('decide_per_handled', 0):.2f} and reserving and binding "
                    f"{cpu.get('place_per_handled', 0):.2f}; "
                    + (f"{cpu['ignored_event']:.2f} ms per ignored event" if "ignored_event" in cpu
                       else "no event ignored")
                    + ". The rest of the binder's CPU is HTTP serving, the watches and the Event posters.")
    return "\n".join(rows + [""] + tail)
