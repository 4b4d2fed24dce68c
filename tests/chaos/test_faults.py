"""The fault campaign: each fault is done to the real process (kube-apiserver, etcd, MinIO,
MLflow, Prometheus, the binder) while pods of ``schedulerName: neurokube`` are being created.

What must hold after every fault (``settle_and_check``):

* **no pod lost**: every pod created is eventually bound (the sweeper, pinged as the PingSource
  would, picks up whatever an event delivery missed);
* **no double binding**: exactly one successful Binding per pod. The functions log one
  ``pod bound`` line per successful Binding (written before the HTTP answer, unbuffered, so a
  process killed later still has it on disk); across the binder and sweeper logs each pod
  appears exactly once, on the node the apiserver has it on;
* **no over-commit**: on no node do the requests of its bound pods exceed allocatable;
* **the counters say what happened**: each test names the counter that records the fault.

Expected behaviour, written before the tests:

1. **kube-apiserver restarted**: while it is down, pod creation fails (the creator retries), the
   watches of the receive adapter and of the functions' caches break and reconnect. Events the
   adapter had in flight either reach the binder afterwards or are lost; lost ones are placed by
   the sweeper. Nothing is bound twice: a replayed or late event finds the pod bound.
2. **etcd paused 10 s** (SIGSTOP): apiserver calls hang instead of failing; creations issued
   during the pause complete after it. Bindings in flight wait, then succeed or are retried.
3. **MinIO down**: scheduling does not wait for the decision log. Shipments fail and are counted
   (``neurokube_decision_log_ship_failures_total``), the records stay spooled on local disk, and
   once MinIO is back every decision of the test is in the bucket (test_decision_spool.py adds a
   binder SIGKILL and a long outage).
4. **MLflow down**: the champion check fails and is counted
   (``neurokube_champion_checks_total{result="failed"}``); the current model keeps serving, so
   decisions are still made by the learned policy; the check succeeds again once MLflow is back.
5. **Prometheus down**: once the newest metrics are older than ``NEUROKUBE_PROM_STALE_AFTER_S``,
   decisions fall back to default scoring, counted as
   ``neurokube_fallbacks_total{reason="prometheus_unavailable"}``; when Prometheus is back the
   learned policy decides again.
6. **binder killed between scoring and binding** (the failpoint: after the node's reservation
   Lease is written, before the Binding): the delivery gets no answer; gunicorn starts a new
   worker; the adapter's retry or the sweeper places the pod (its own stale reservation does not
   block it), once.
7. **every event delivered 5 times**, concurrently: one delivery binds, the other four answer
   ``already_bound`` (counted as ``neurokube_bind_conflicts_total{kind="already_assigned"}``).
8. **events out of order**: updates before adds, a stale add after the pod was bound, an add of
   a pod already deleted. The stale ones bind nothing (``already_bound``, or 410 ``pod_gone``),
   updates of unbound pods place them, and deleted pods never get a Binding.
"""

from __future__ import annotations

import io
import json
import random
import threading
import time
import urllib.request
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest

from neurokube.adapters.kube import KubeError
from neurokube.adapters.objectstore import MinioStore
from neurokube.cluster import faults, processes, workload
from neurokube.cluster.functions import FunctionsOptions
from neurokube.cluster.livekit import ADD, create_pods, neurokube_pod, over_committed, pods_of
from neurokube.errors import TemporaryError
from neurokube.stack import control as stack_control
from tests.chaos.conftest import Chaos
from tests.polling import wait_for

pytestmark = pytest.mark.chaos

UPDATE = "dev.knative.apiserver.resource.update"
DELETE = "dev.knative.apiserver.resource.delete"
SWEEP_EVERY_S = 5.0
UNLOGGED_AT_A_KILL = FunctionsOptions().threads  # at most one Binding in flight per request thread


# -- helpers ---------------------------------------------------------------------------------------


def new_run(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:5]}"


def manifests(run: str, count: int, cpu: int = 200, memory: int = 128) -> list[dict]:
    return [neurokube_pod(f"{run}-{i:03d}", cpu, memory, run) for i in range(count)]


def create_through(client, docs: list[dict], gap_s: float = 0.0, deadline_s: float = 90.0) -> list[float]:
    """Create each pod, retrying while the apiserver is unreachable or failing; seconds per create."""
    took = []
    for doc in docs:
        started = time.monotonic()
        while True:
            try:
                client.create("/api/v1/namespaces/default/pods", doc)
                break
            except KubeError as exc:
                if exc.status == 409:  # an earlier try got through before the connection broke
                    break
                if exc.status < 500 or time.monotonic() - started > deadline_s:
                    raise
            except TemporaryError:
                if time.monotonic() - started > deadline_s:
                    raise
            time.sleep(0.2)
        took.append(time.monotonic() - started)
        time.sleep(gap_s)
    return took


def bound_lines(chaos: Chaos, run: str) -> list[dict]:
    """The ``pod bound`` log lines of the binder and sweeper processes for this run's pods."""
    lines = []
    for log_file in sorted(Path(chaos.live.logs).glob("*.log")):
        if not log_file.name.startswith(("binder", "sweeper")):
            continue
        for line in log_file.read_text(errors="replace").splitlines():
            if f"default/{run}-" not in line or '"pod bound"' not in line:
                continue
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if doc.get("msg") == "pod bound":
                lines.append({**doc, "process": log_file.stem})
    return lines


def settle_and_check(chaos: Chaos, run: str, count: int, timeout_s: float = 150.0,
                     killed_mid_stream: bool = False) -> dict[str, dict]:
    """Wait until all ``count`` pods of the run are bound (pinging the sweeper every 5 s, as the
    PingSource would), then check the invariants of the module docstring.

    ``killed_mid_stream``: a process was SIGKILLed while it placed pods, so a pod whose Binding it
    posted just before it died has no ``pod bound`` line (the line follows the Binding's answer);
    the caller checks those pods another way (test_decision_spool.py: by their decision records)."""
    client = chaos.client
    deadline = time.monotonic() + timeout_s
    next_sweep = time.monotonic() + SWEEP_EVERY_S
    while True:
        pods = pods_of(client, run)
        unbound = [name for name, p in pods.items() if not p["spec"].get("nodeName")]
        if len(pods) == count and not unbound:
            break
        assert time.monotonic() < deadline, f"{len(unbound)} of {len(pods)} pods ({count} expected) never bound: " \
                                            f"{unbound[:5]}"
        if time.monotonic() >= next_sweep:
            try:
                chaos.live.sweeper.ping(timeout_s=60)
            except OSError:
                pass  # the sweeper may be waiting on the same dependency; try again next round
            next_sweep = time.monotonic() + SWEEP_EVERY_S
        time.sleep(0.5)
    # Log lines are written before the answer, but the last ones may be a moment behind.
    lines: list[dict] = []
    for _ in range(20):
        lines = bound_lines(chaos, run)
        if len(lines) >= count:
            break
        time.sleep(0.25)
    per_pod = Counter(line["pod"] for line in lines)
    twice = {pod: n for pod, n in per_pod.items() if n > 1}
    assert not twice, f"pods with more than one successful Binding: {twice}"
    unlogged = sorted(set(pods) - {p.split("/", 1)[1] for p in per_pod})
    assert len(unlogged) <= (UNLOGGED_AT_A_KILL if killed_mid_stream else 0), f"bindings not logged: {unlogged[:5]}"
    moved = [line["pod"] for line in lines if pods[line["pod"].split("/", 1)[1]]["spec"]["nodeName"] != line["node"]]
    assert not moved, f"pods on another node than their Binding said: {moved[:5]}"
    assert over_committed(client) == []
    return pods


def by_process(chaos: Chaos, run: str) -> Counter:
    return Counter(line["process"] for line in bound_lines(chaos, run))


def cleanup(chaos: Chaos, run: str) -> None:
    workload.delete_pods(chaos.client, list(pods_of(chaos.client, run)))


def eventually(check, timeout_s: float, what: str, interval_s: float = 0.5):
    return wait_for(what, check, timeout_s, interval_s)


def readiness(chaos: Chaos) -> dict:
    with urllib.request.urlopen(chaos.live.binder.url + "/readyz", timeout=10) as response:
        return json.loads(response.read())


# -- the campaign ----------------------------------------------------------------------------------


def test_apiserver_restart_loses_no_pod(chaos: Chaos):
    run = new_run("apirestart")
    docs = manifests(run, 40)
    binder = chaos.live.binder
    failed_before = binder.counter("neurokube_decisions_total", outcome="failed")
    creator = threading.Thread(target=create_through, args=(chaos.client, docs, 0.15), daemon=True)
    creator.start()
    eventually(lambda: len(pods_of(chaos.client, run)) >= 12, 60, "the first pods")
    downtime = faults.restart(chaos.cluster.state_dir, "kube-apiserver")
    creator.join(timeout=180)
    assert not creator.is_alive()
    pods = settle_and_check(chaos, run, 40)
    origin = by_process(chaos, run)
    print(f"\napiserver down {downtime:.1f}s; bound by {dict(origin)}; binder requests that failed "
          f"{binder.counter('neurokube_decisions_total', outcome='failed') - failed_before:.0f}")
    assert downtime > 1.0  # it really was down (a restart takes seconds)
    assert sum(origin.values()) == 40 and origin["binder"] > 0  # events reached the binder before and after
    # The functions' caches are fresh again: they re-listed after the restart.
    assert eventually(lambda: binder.counter("neurokube_cache_age_seconds", resource="pods") < 30, 60,
                      "a fresh pods cache")
    cleanup(chaos, run)
    assert len(pods) == 40


def test_etcd_paused_10s_loses_no_pod(chaos: Chaos):
    run = new_run("etcdpause")
    docs = manifests(run, 40)
    took: list[float] = []
    creator = threading.Thread(target=lambda: took.extend(create_through(chaos.client, docs, 0.15)), daemon=True)
    creator.start()
    eventually(lambda: len(pods_of(chaos.client, run)) >= 12, 60, "the first pods")
    with faults.paused(chaos.cluster.state_dir, "etcd"):
        time.sleep(10)
    creator.join(timeout=180)
    assert not creator.is_alive()
    settle_and_check(chaos, run, 40)
    print(f"\nslowest create {max(took):.1f}s; bound by {dict(by_process(chaos, run))}")
    assert max(took) > 3.0, "no create waited on etcd: the pause did not happen while pods were created"
    cleanup(chaos, run)


def test_minio_down_decisions_buffered_then_written(chaos: Chaos):
    binder = chaos.live.binder
    run = new_run("nominio")
    failed_before = binder.counter("neurokube_decision_log_ship_failures_total")
    dropped_before = binder.counter("neurokube_decision_log_records_total", result="dropped")
    stack_control.stop_service(chaos.stack.state_dir, "minio")
    try:
        create_pods(chaos.client, manifests(run, 30), threads=4)
        started = time.monotonic()
        pods = settle_and_check(chaos, run, 30)
        bound_in = time.monotonic() - started
        eventually(lambda: binder.counter("neurokube_decision_log_ship_failures_total") > failed_before, 30,
                   "a counted failed shipment")
    finally:
        stack_control.start_service(chaos.stack.state_dir, "minio")
    print(f"\n30 pods bound {bound_in:.1f}s after creation with MinIO down")
    assert binder.counter("neurokube_decision_log_records_total", result="dropped") == dropped_before
    uids = {p["metadata"]["uid"] for p in pods.values()}
    m = chaos.stack.endpoints["minio"]
    store = MinioStore(m["endpoint"].removeprefix("http://"), m["access_key"], m["secret_key"], m["bucket"])

    def logged() -> set[str]:
        found: set[str] = set()
        for key in store.list(chaos.decision_prefix + "/"):
            if key.endswith(".decisions.parquet"):
                table = pd.read_parquet(io.BytesIO(store.get_bytes(key)), columns=["pod_uid"])
                found |= uids & set(table["pod_uid"])
        return found if found >= uids else set()

    # Bound by the binder (the sweeper logs its own decisions the same way).
    eventually(logged, 60, "every decision of the run in MinIO")
    cleanup(chaos, run)


def test_mlflow_down_current_model_keeps_serving(chaos: Chaos):
    binder = chaos.live.binder
    run = new_run("nomlflow")
    failed_before = binder.counter("neurokube_champion_checks_total", result="failed")
    stack_control.stop_service(chaos.stack.state_dir, "mlflow")
    try:
        eventually(lambda: binder.counter("neurokube_champion_checks_total", result="failed") > failed_before,
                   60, "a counted failed champion check")
        learned_before = binder.counter("neurokube_decisions_total", policy="neurokube", outcome="bound")
        create_pods(chaos.client, manifests(run, 20), threads=4)
        settle_and_check(chaos, run, 20)
        learned = binder.counter("neurokube_decisions_total", policy="neurokube", outcome="bound") - learned_before
    finally:
        stack_control.start_service(chaos.stack.state_dir, "mlflow")
    print(f"\n{learned:.0f} of 20 pods placed by the learned policy with MLflow down; "
          f"bound by {dict(by_process(chaos, run))}")
    assert learned >= 18  # the model kept serving (a refresh racing a decision may fall back once or twice)
    ok_before = binder.counter("neurokube_champion_checks_total", result="unchanged")
    eventually(lambda: binder.counter("neurokube_champion_checks_total", result="unchanged") > ok_before, 90,
               "a successful champion check after MLflow came back")
    cleanup(chaos, run)


def test_prometheus_down_falls_back_then_recovers(chaos: Chaos):
    binder = chaos.live.binder
    run = new_run("noprom")
    fallback_before = binder.counter("neurokube_fallbacks_total", reason="prometheus_unavailable")
    stack_control.stop_service(chaos.stack.state_dir, "prometheus")
    try:
        eventually(lambda: readiness(chaos)["metrics"] == "stale", 30, "stale metrics")
        create_pods(chaos.client, manifests(run, 20), threads=4)
        settle_and_check(chaos, run, 20)
        fallbacks = binder.counter("neurokube_fallbacks_total", reason="prometheus_unavailable") - fallback_before
    finally:
        stack_control.start_service(chaos.stack.state_dir, "prometheus")
    origin = by_process(chaos, run)
    print(f"\nPrometheus down: {fallbacks:.0f} fallbacks counted; bound by {dict(origin)}")
    assert fallbacks >= origin["binder"] > 0  # every binder decision while it was down fell back
    binder.wait_metrics_fresh(timeout_s=90)
    run2 = new_run("promback")
    learned_before = binder.counter("neurokube_decisions_total", policy="neurokube", outcome="bound")
    create_pods(chaos.client, manifests(run2, 10), threads=4)
    settle_and_check(chaos, run2, 10)
    learned = binder.counter("neurokube_decisions_total", policy="neurokube", outcome="bound") - learned_before
    assert learned >= by_process(chaos, run2)["binder"] - 1 >= 8  # the learned policy decides again
    cleanup(chaos, run)
    cleanup(chaos, run2)


def test_binder_killed_between_scoring_and_binding(chaos: Chaos):
    run = new_run("killbind")
    log_file = Path(chaos.live.logs) / "binder.log"
    before = log_file.read_text(errors="replace").count("failpoint: exiting between")
    chaos.trigger.touch()  # armed: the next placement that has reserved its node exits
    create_pods(chaos.client, manifests(run, 20), threads=4)
    eventually(lambda: not chaos.trigger.exists(), 60, "the failpoint firing")
    pods = settle_and_check(chaos, run, 20)
    text = log_file.read_text(errors="replace")
    assert text.count("failpoint: exiting between") == before + 1
    killed_pod = [json.loads(line)["pod"] for line in text.splitlines()
                  if "failpoint: exiting between" in line][-1]
    assert killed_pod.split("/", 1)[1] in pods  # ... and that very pod was bound afterwards, once
    origin = by_process(chaos, run)
    print(f"\nbinder worker exited before binding {killed_pod}; bound by {dict(origin)}")
    eventually(lambda: readiness(chaos)["cache"] == "synced", 60, "a new binder worker")
    cleanup(chaos, run)


def test_every_event_delivered_five_times_binds_once(chaos: Chaos):
    binder = chaos.live.binder
    run = new_run("dup5")
    conflicts_before = binder.counter("neurokube_bind_conflicts_total", kind="already_assigned")
    created = create_pods(chaos.client, manifests(run, 30), threads=4)
    deliveries = [pod for pod in created for _ in range(5)]  # the adapter delivers a sixth
    random.Random(11).shuffle(deliveries)
    with ThreadPoolExecutor(12) as pool:
        replies = list(pool.map(binder.post_event, deliveries))
    settle_and_check(chaos, run, 30)
    outcomes = Counter(r.get("outcome", r.get("status")) for r in replies)
    conflicts = binder.counter("neurokube_bind_conflicts_total", kind="already_assigned") - conflicts_before
    print(f"\n150 extra deliveries: {dict(outcomes)}; already_assigned conflicts +{conflicts:.0f}")
    assert set(outcomes) <= {"bound", "already_bound"}, outcomes
    assert outcomes["already_bound"] >= 150 - 30
    assert conflicts >= outcomes["already_bound"]
    cleanup(chaos, run)


def test_events_out_of_order_bind_nothing_twice(chaos: Chaos):
    """The adapter is stopped, and the test plays the events itself, shuffled: for each pod an
    add, an update (a label change) and a stale copy of the add; for pods deleted before any
    event arrives, their add and delete in reverse order."""
    live, binder, client = chaos.live, chaos.live.binder, chaos.client
    run = new_run("reorder")
    if live.adapter is not None:  # the test is the only source of events
        processes.stop(live.adapter)
        live.adapter = None
    try:
        created = create_pods(client, manifests(run, 25), threads=4)
        doomed_docs = manifests(f"{run}-gone", 5)
        for doc in doomed_docs:
            doc["metadata"]["labels"]["neurokube-e2e"] = f"{run}-gone"
        doomed = create_pods(client, doomed_docs, threads=4)
        workload.delete_pods(client, [d["metadata"]["name"] for d in doomed])
        eventually(lambda: not pods_of(client, f"{run}-gone"), 30, "deleted pods gone")
        events: list[tuple[str, dict]] = []
        for pod in created:
            updated = client.merge_patch(f"/api/v1/namespaces/default/pods/{pod['metadata']['name']}",
                                         {"metadata": {"labels": {"touched": "yes"}}})
            events += [(ADD, pod), (UPDATE, updated), (ADD, pod)]
        for pod in doomed:
            events += [(DELETE, pod), (ADD, pod)]
        rng = random.Random(7)
        rng.shuffle(events)
        # updates first for a third of the pods: move some updates ahead of everything
        events.sort(key=lambda e: 0 if e[0] == UPDATE and rng.random() < 0.33 else 1)
        with ThreadPoolExecutor(8) as pool:
            replies = list(pool.map(lambda e: (e[0], e[1]["metadata"]["name"], binder.post_event(e[1], kind=e[0])),
                                    events))
    finally:
        live.restart_adapter()
    settle_and_check(chaos, run, 25)
    doomed_replies = Counter(r.get("outcome", r.get("status")) for kind, name, r in replies if "-gone-" in name)
    live_replies = Counter(r.get("outcome", r.get("status")) for kind, name, r in replies if "-gone-" not in name)
    print(f"\nlive pods: {dict(live_replies)}; deleted pods: {dict(doomed_replies)}")
    assert live_replies["bound"] == 25 and set(live_replies) <= {"bound", "already_bound"}, live_replies
    # a deleted pod's add: the apiserver has no such pod, 410 (Knative does not retry it)
    assert set(doomed_replies) <= {410, "ignored"} and doomed_replies[410] == 5, doomed_replies
    assert all(json.loads(r["error"])["reason"] == "pod_gone" for _, name, r in replies
               if "-gone-" in name and r.get("status") == 410)
    assert not bound_lines(chaos, f"{run}-gone")
    cleanup(chaos, run)
