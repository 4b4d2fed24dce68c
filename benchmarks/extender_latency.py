"""Extender latency: what kube-scheduler's extender calls cost per pod (goal: <= 5 ms p99 per pod
at 1,000 nodes), in-process and over HTTP, with the code before a change measured side by side.

Usage: .venv/bin/python benchmarks/extender_latency.py [--calls 200] [--sizes 100,1000,5000]
           [--http-nodes 1000] [--no-http] [--pause-ms 50] [--baseline REV] [--no-write]
Writes the "extender-latency" section of docs/BENCHMARKS.md.

One *pod* costs what kube-scheduler waits for in one scheduling cycle: with NeuroKube's deployed
configuration (prioritize only), one ``/prioritize``, on which the goal is judged. Each pod is also
sent to ``/filter`` first, for what a configuration with the filter verb would cost, and prioritize
gets the nodes that filter kept. The requests are what kube-scheduler (v1.35) sends: filter gets
the nodes its own filters passed (cordoned nodes, untolerated taints and a mismatching nodeSelector
are gone; resources are left for the extender to judge, a little more work than in a real cycle),
prioritize gets the nodes the extender's filter kept. A watch event binding a pod precedes every
measured pod (a busy cluster: the cache changes between any two pods), so nothing is served from a
cache that a real cluster would invalidate.

* **In-process**: the extender's own work per call, exactly what the HTTP edge runs around it:
  ``json.loads`` of the request body and ``handlers.extender_reply`` (argument parsing, feasibility,
  the view, features, the model on its shortlist, the reply encoded as the HTTP edge sends it).
  Both modes: ``NodeNames`` (``nodeCacheCapable: true``: names only, the extender's watch cache
  has the nodes) and ``Nodes`` (``nodeCacheCapable: false``: every request carries the NodeList,
  and the filter reply carries it back). Wall time, and the thread's CPU time (what the call
  costs when the machine is shared with other work).
* **HTTP**: the real extender function (``load/local_functions.py``: functions-framework under
  gunicorn, gthread, 8 threads, as the container runs it) on loopback in ``NodeNames`` mode, one
  keep-alive connection as kube-scheduler's Go client keeps one. Short, so it runs
  ``--http-repeats`` times per tree and reports the median of each percentile.
* **Paced** (``--pause-ms``, default 50: one pod every 50 ms, the 20 pods/s of the paced
  scheduling bench): ``/prioritize`` alone, as deployed, with the nodes kube-scheduler's own filters
  passed, after a pause in which the extender does nothing. The calls above come back to back, and
  a call that follows another finds the processor's caches and predictors trained on the same
  work; a call after a pause does not, and on this machine costs about twice the CPU (the section's
  text has the numbers). kube-scheduler below its capacity calls the extender like this, so these
  columns are what a scheduling cycle waits for at a moderate pod rate. ``0`` skips them.

The cluster: every 50th node is tainted and every 97th cordoned; 0-6 pods are bound to each node,
plus 1,000 pods bound through the watch over the last 15 minutes (the "recent" pods the view adds
to a node's projected load); Prometheus (a loopback double) answers for every node, and the
model is the test packing model, so prioritize runs the learned path (checked: a call scoring
every node 0 fails the run). Pods vary in requests; every 4th has a nodeSelector and every 7th
tolerates the taint. The clock is fixed, so replies are deterministic, and ``--baseline`` checks
that the old and the new code give byte-identical replies. Once set up, the cache's ``on_listed``
hook runs if the code has one, as a real watch cache runs it after its list.

``--baseline REV`` exports ``git archive REV`` of neurokube/, functions/ and load/ to a temporary
directory (the working tree is not touched) and measures it with the same script, alternating
with the working tree size by size so that both see the same machine load.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import http.client
import json
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
GOAL_MS = 5.0
T0 = 1_800_000_000.0  # the fixed clock's start (wall-clock seconds)
TAINT = [{"key": "dedicated", "value": "batch", "effect": "NoSchedule"}]
CPUS = ("100m", "250m", "500m", "1", "2")
MEMORIES = ("128Mi", "256Mi", "1Gi", "2Gi", "4Gi")
MODES = ("NodeNames", "Nodes")
WARM_UP = 5
RESYNC_S = 300  # the HTTP extender's re-list period (NEUROKUBE_RESYNC_S's default; the launcher's is 5 s)
SECTION = "extender-latency"


# -- the worker: runs inside the tree being measured (only APIs that both trees have) -------------


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class GcPauses:
    """Full (generation 2) collections while measuring: what most of a p99 is made of."""

    def __init__(self) -> None:
        self.pauses_ms: list[float] = []
        self._started = 0.0
        self.on = False

    def __call__(self, phase: str, info: dict) -> None:
        if not self.on or info.get("generation") != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses_ms.append((time.perf_counter() - self._started) * 1000)


def _cluster_nodes(n: int, nkload) -> list[dict]:
    nodes = [nkload.node_doc(i) for i in range(n)]
    for i in range(0, n, 50):
        nodes[i]["spec"]["taints"] = TAINT
    for i in range(7, n, 97):
        nodes[i]["spec"]["unschedulable"] = True
    return nodes


def _bound(nkload, k: int, node: str) -> dict:
    doc = nkload.pod_doc(k, cpu=CPUS[k % 5], memory=MEMORIES[(k // 5) % 5], uid=f"bound-{k}")
    doc["metadata"]["name"] = f"bound-{k}"
    doc["spec"]["schedulerName"] = "default-scheduler"
    doc["spec"]["nodeName"] = node
    doc["status"]["phase"] = "Running"
    return doc


def _probe(nkload, i: int) -> dict:
    doc = nkload.pod_doc(i, cpu=CPUS[(i * 3) % 5], memory=MEMORIES[(i * 2) % 5], uid=f"probe-{i}")
    doc["spec"]["schedulerName"] = "default-scheduler"
    if i % 4 == 0:
        doc["spec"]["nodeSelector"] = {"topology.kubernetes.io/zone": f"zone-{i % 3}"}
    if i % 7 == 0:
        doc["spec"]["tolerations"] = [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]
    return doc


def _k8s(module: str):
    """``neurokube.k8s.<module>``, or ``neurokube.live.<module>`` in a --baseline tree from before the
    pure Kubernetes rules left neurokube.live."""
    import importlib

    try:
        return importlib.import_module(f"neurokube.k8s.{module}")
    except ImportError:
        return importlib.import_module(f"neurokube.live.{module}")


class SchedulerSide:
    """The requests kube-scheduler makes: its own filters first, then the extender's filter, then
    prioritize on what that filter kept (``nodeCacheCapable`` decides names or Node objects)."""

    def __init__(self, node_docs: list[dict], mode: str) -> None:
        parse_node = _k8s("objects").parse_node

        self.mode = mode
        self.nodes = [parse_node(doc) for doc in node_docs]
        self.names = [node.name for node in self.nodes]
        self.items = [json.dumps(doc, separators=(",", ":")) for doc in node_docs]
        self.index = {name: i for i, name in enumerate(self.names)}
        self._passing: dict[str, list[int]] = {}

    def filter_body(self, pod_doc: dict) -> bytes:
        admits, parse_pod = _k8s("feasibility").admits, _k8s("objects").parse_pod

        spec = pod_doc["spec"]
        key = json.dumps([spec.get("nodeSelector"), spec.get("tolerations")], sort_keys=True)
        if key not in self._passing:
            pod = parse_pod(pod_doc)
            self._passing[key] = [i for i, node in enumerate(self.nodes) if admits(pod, node) is None]
        return self._body(pod_doc, self._passing[key])

    def prioritize_body(self, pod_doc: dict, filter_reply: dict) -> bytes:
        names = (filter_reply["NodeNames"] if self.mode == "NodeNames"
                 else [item["metadata"]["name"] for item in filter_reply["Nodes"]["items"]])
        return self._body(pod_doc, [self.index[name] for name in names])

    def _body(self, pod_doc: dict, rows: list[int]) -> bytes:
        pod_json = json.dumps(pod_doc, separators=(",", ":"))
        if self.mode == "NodeNames":
            names = json.dumps([self.names[i] for i in rows], separators=(",", ":"))
            return f'{{"Pod":{pod_json},"Nodes":null,"NodeNames":{names}}}'.encode()
        items = ",".join(self.items[i] for i in rows)
        return (f'{{"Pod":{pod_json},"Nodes":{{"apiVersion":"v1","kind":"NodeList","metadata":{{}},'
                f'"items":[{items}]}},"NodeNames":null}}').encode()


def _comparable(verb: str, reply: str) -> str:
    """A reply as hashed for the before/after check: a prioritize reply's nonzero entries only, since
    a node that scores 0 is left out of the reply since 32a44e2 and was listed with 0 before."""
    if verb != "prioritize":
        return reply
    return json.dumps([[e["Host"], e["Score"]] for e in json.loads(reply) if e["Score"]], separators=(",", ":"))


def _stats(values_ms: list[float]) -> dict:
    p50, p99 = np.percentile(values_ms, [50, 99])
    return {"p50": float(p50), "p99": float(p99), "max": float(max(values_ms)), "n": len(values_ms)}


def measure_in_process(n: int, calls: int, pause_ms: float = 0.0) -> dict:
    """Both modes at ``n`` nodes against one runtime (the same cache, metrics and model); with
    ``pause_ms``, also ``/prioritize`` alone after that pause, NodeNames mode (see the docstring)."""
    import nkload

    from neurokube.live import handlers
    from neurokube.live import runtime as live_runtime
    from neurokube.live.settings import Settings
    from neurokube.live.telemetry import Telemetry
    try:
        from neurokube.testing import FakeKube, FakePrometheus, fake_runtime, write_packing_model
    except ImportError:  # a --baseline tree from before the test doubles left neurokube.live
        from neurokube.live.testing import FakeKube, FakePrometheus, fake_runtime, write_packing_model

    names = [nkload.node_name(i) for i in range(n)]
    kube = FakeKube(nodes=_cluster_nodes(n, nkload), namespaces=("neurokube", nkload.POD_NAMESPACE))
    k = 0
    for i, name in enumerate(names):
        for _ in range(i % 7):
            kube.add_pod(_bound(nkload, k, name))
            k += 1
    prom = FakePrometheus({name: (2.0 + (i % 7), float((8 + i % 5) << 30)) for i, name in enumerate(names)})
    model = write_packing_model(Path(tempfile.mkdtemp(prefix="nk-bench-model-")) / "m")
    settings = Settings(model_dir=model, prometheus_url=prom.url, replica="bench")
    rt = fake_runtime(kube, settings, Telemetry())
    clock = Clock(T0 - 900.0)
    rt.cache.clock = rt.extender.clock = rt.metrics.clock = clock
    for j in range(1000):  # bound through the watch over the last 15 minutes: the "recent" pods
        clock.t = T0 - 900.0 + 0.9 * j
        rt.cache.apply("pods", "ADDED", _bound(nkload, k, names[(j * 7919) % n]))
        k += 1
    clock.t = T0
    rt.metrics.refresh()
    live_runtime.install(rt)
    node_docs = [kube.nodes[name] for name in names]  # as the apiserver has them (resourceVersion set)
    on_listed = getattr(rt.cache, "on_listed", None)
    if on_listed is not None:  # what a real watch cache runs after its list (the runtime's heap.settle)
        on_listed()
    encode = getattr(handlers, "extender_reply", None)  # what the HTTP edge sends; a baseline tree may lack it
    if encode is None:
        def encode(verb: str, doc: object, settings: Settings) -> str:
            return json.dumps(handlers.extender_call(verb, doc, settings), separators=(",", ":"))
    bound = k

    def previous_binding() -> None:
        """The watch event of the pod bound before the next measured one (the cache changes)."""
        nonlocal bound
        clock.t += 0.05
        rt.cache.apply("pods", "ADDED", _bound(nkload, bound, names[(bound * 104729) % n]))
        bound += 1

    pauses = GcPauses()
    gc.callbacks.append(pauses)
    out = {}
    try:
        for mode in MODES:
            side = SchedulerSide(node_docs, mode)
            times: dict[str, list[float]] = {"filter": [], "prioritize": [], "pod": [], "prioritize_cpu": []}
            digest = hashlib.sha256()
            pauses.pauses_ms.clear()
            for i in range(WARM_UP + calls):
                previous_binding()
                pod = _probe(nkload, i)
                body = side.filter_body(pod)
                per_pod = 0.0
                pauses.on = i >= WARM_UP
                for verb in ("filter", "prioritize"):
                    started, cpu_started = time.perf_counter(), time.thread_time()
                    reply = encode(verb, json.loads(body), settings)
                    elapsed = (time.perf_counter() - started) * 1000
                    cpu_ms = (time.thread_time() - cpu_started) * 1000
                    digest.update(_comparable(verb, reply).encode())
                    per_pod += elapsed
                    if i >= WARM_UP:
                        times[verb].append(elapsed)
                        if verb == "prioritize":
                            times["prioritize_cpu"].append(cpu_ms)
                    if verb == "filter":
                        body = side.prioritize_body(pod, json.loads(reply))
                    elif not any(entry["Score"] for entry in json.loads(reply)):
                        raise SystemExit(f"prioritize scored every node 0 at {n} nodes ({mode}): not the learned path")
                if i >= WARM_UP:
                    times["pod"].append(per_pod)
            out[mode] = {name: _stats(v) for name, v in times.items()} | {
                "digest": digest.hexdigest()[:16], "gc2": len(pauses.pauses_ms),
                "gc2_max_ms": max(pauses.pauses_ms, default=0.0)}
            if pause_ms > 0 and mode == "NodeNames":
                paced: dict[str, list[float]] = {"paced": [], "paced_cpu": []}
                for i in range(WARM_UP + calls):
                    previous_binding()
                    body = side.filter_body(_probe(nkload, i))  # ExtenderArgs: what kube-scheduler's filters passed
                    time.sleep(pause_ms / 1000)
                    started, cpu_started = time.perf_counter(), time.thread_time()
                    encode("prioritize", json.loads(body), settings)
                    if i >= WARM_UP:
                        paced["paced"].append((time.perf_counter() - started) * 1000)
                        paced["paced_cpu"].append((time.thread_time() - cpu_started) * 1000)
                out[mode] |= {name: _stats(v) for name, v in paced.items()}
    finally:
        gc.callbacks.remove(pauses)
        live_runtime.install(None)
        prom.close()
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(conn: http.client.HTTPConnection, path: str, body: bytes) -> tuple[int, bytes]:
    conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    return response.status, response.read()


def measure_http(root: Path, n: int, calls: int, pause_ms: float = 0.0) -> dict:
    """The real extender process on loopback, NodeNames mode: filter then prioritize per pod; with
    ``pause_ms``, then ``/prioritize`` alone after that pause."""
    import nkload

    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(root)}
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([sys.executable, str(root / "load" / "local_functions.py"), "extender", "--port",
                             str(port), "--nodes", str(n), "--packing-model", "--resync-s", str(RESYNC_S)],
                            cwd=root, env=env, stdout=log, stderr=log)
    side = SchedulerSide([nkload.node_doc(i) for i in range(n)], "NodeNames")
    try:
        deadline = time.monotonic() + 90
        while True:  # ready, and on the learned path (metrics refreshed) rather than the fallback
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                status, reply = _post(conn, "/prioritize", side.filter_body(_probe(nkload, 1)))
                if status == 200 and any(entry["Score"] for entry in json.loads(reply)):
                    break
                conn.close()
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                log.seek(0)
                raise SystemExit(f"the extender never scored on the learned path:\n{log.read()[-2000:].decode()}")
            time.sleep(0.3)
        times: dict[str, list[float]] = {"filter": [], "prioritize": [], "pod": []}
        for i in range(WARM_UP + calls):
            pod = _probe(nkload, i)
            body = side.filter_body(pod)
            per_pod = 0.0
            for verb in ("filter", "prioritize"):
                started = time.perf_counter()
                status, reply = _post(conn, f"/{verb}", body)
                elapsed = (time.perf_counter() - started) * 1000
                if status != 200:
                    raise SystemExit(f"/{verb} answered {status}: {reply[:300]!r}")
                if verb == "filter":
                    body = side.prioritize_body(pod, json.loads(reply))
                per_pod += elapsed
                if i >= WARM_UP:
                    times[verb].append(elapsed)
            if i >= WARM_UP:
                times["pod"].append(per_pod)
        if pause_ms > 0:
            times["paced"] = []
            for i in range(WARM_UP + calls):
                body = side.filter_body(_probe(nkload, i))
                time.sleep(pause_ms / 1000)
                started = time.perf_counter()
                status, reply = _post(conn, "/prioritize", body)
                if status != 200:
                    raise SystemExit(f"/prioritize answered {status}: {reply[:300]!r}")
                if i >= WARM_UP:
                    times["paced"].append((time.perf_counter() - started) * 1000)
        conn.close()
        return {"NodeNames": {name: _stats(v) for name, v in times.items()}}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def worker(root: Path, what: str, n: int, calls: int, pause_ms: float) -> dict:
    sys.path.insert(0, str(root / "load"))
    sys.path.insert(0, str(root))
    import logging

    import neurokube

    if not Path(neurokube.__file__).resolve().is_relative_to(root.resolve()):
        raise SystemExit(f"measuring {root} but neurokube comes from {neurokube.__file__}")
    logging.disable(logging.WARNING)  # the fallback warnings of a cold start are not measured
    load_before = os.getloadavg()[0]
    if what == "in-process":
        result = measure_in_process(n, calls, pause_ms)
    else:
        result = measure_http(root, n, calls, pause_ms)
    return {"result": result, "load": [load_before, os.getloadavg()[0]]}


# -- the driver ------------------------------------------------------------------------------------


def run_worker(root: Path, what: str, n: int, calls: int, pause_ms: float) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", str(root), "--what", what,
               "--sizes", str(n), "--calls", str(calls), "--pause-ms", str(pause_ms)]
    done = subprocess.run(command, cwd=root, env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True,
                          text=True)
    if done.returncode:
        sys.stderr.write(done.stderr[-3000:])
        raise SystemExit(f"the {what} measurement of {n} nodes in {root} failed ({done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def median_of_runs(runs: list[dict]) -> dict:
    """Each percentile as the median over repeated runs (a burst of load on a shared machine lands
    in one run, not in all); other fields from the first run."""
    if len(runs) == 1:
        return runs[0]
    out = {}
    for mode, first in runs[0].items():
        out[mode] = {key: ({stat: float(np.median([r[mode][key][stat] for r in runs])) for stat in value}
                           if isinstance(value, dict) else value) for key, value in first.items()}
    return out


def export_tree(rev: str, into: Path) -> Path:
    archive = subprocess.run(["git", "archive", rev, "neurokube", "functions", "load"], cwd=ROOT,
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def _cell(s: dict) -> str:
    return f"{s['p50']:.2f} / {s['p99']:.2f}"


def _verdict(p99: float) -> str:
    return "met" if p99 <= GOAL_MS else "NOT met"


def _table(rows_in: list[tuple[str, int, str, dict, dict | None]], old_label: str | None, cpu: bool) -> list[str]:
    paced = any("paced" in s for *_, s, _ in rows_in)
    head = ("| nodes | mode | filter p50 / p99 | **prioritize p50 / p99** | filter + prioritize p50 / p99 "
            + ("| prioritize CPU p50 / p99 " if cpu else "")
            + ("| paced prioritize p50 / p99 " if paced else "")
            + ("| paced CPU p50 / p99 " if paced and cpu else "")
            + (f"| before ({old_label}) prioritize p50 / p99 | p99 before / after " if old_label else "")
            + "| <= 5 ms p99 per pod (prioritize, as deployed) |")
    sep = ("|---:|---|---:|---:|---:|" + ("---:|" if cpu else "") + ("---:|" if paced else "")
           + ("---:|" if paced and cpu else "") + ("---:|---:|" if old_label else "") + "---|")
    rows = [head, sep]
    for _, n, mode, s, b in rows_in:
        row = f"| {n:,} | {mode} | {_cell(s['filter'])} | **{_cell(s['prioritize'])}** | {_cell(s['pod'])} "
        if cpu:
            row += f"| {_cell(s['prioritize_cpu'])} "
        if paced:
            row += f"| {_cell(s['paced'])} " if "paced" in s else "| - "
            if cpu:
                row += f"| {_cell(s['paced_cpu'])} " if "paced_cpu" in s else "| - "
        if old_label:
            row += (f"| {_cell(b['prioritize'])} | {b['prioritize']['p99'] / s['prioritize']['p99']:.1f}x "
                    if b else "| - | - ")
        verdict = _verdict(s["prioritize"]["p99"]) + (
            f" (CPU: {_verdict(s['prioritize_cpu']['p99'])})" if cpu else "") + (
            f" (paced: {_verdict(s['paced']['p99'])})" if "paced" in s else "")
        rows.append(row + f"| {verdict} |")
    return rows


def report(new: dict, old: dict | None, rev: str | None, calls: int, loads: list[float],
           http_repeats: int = 1, pause_ms: float = 0.0) -> str:
    in_rows, http_rows, same, gcs = [], [], [], []
    for key, runs in new.items():
        what, n = key.split(":")
        for mode, s in runs.items():
            b = (old or {}).get(key, {}).get(mode)
            (in_rows if what == "in-process" else http_rows).append((what, int(n), mode, s, b))
            if b is not None and "digest" in s:
                same.append(b["digest"] == s["digest"])
            if "gc2" in s:
                gcs.append((int(n), mode, s["gc2"], s["gc2_max_ms"]))
    in_rows.sort(key=lambda r: (r[1], MODES.index(r[2])))
    lines = ["**In-process** (decode, the verb, encode; a binding reaches the cache before every pod), ms:", ""]
    lines += _table(in_rows, rev if old else None, cpu=True)
    if http_rows:
        lines += ["", "**HTTP round trip** (the real function under gunicorn on loopback, NodeNames mode, one "
                  f"keep-alive connection; the cache re-listed every {RESYNC_S} s, metrics refreshed every 5 s; "
                  + (f"each percentile the median of {http_repeats} runs" if http_repeats > 1 else "one run")
                  + (", alternating with the baseline" if old else "") + "), ms:", ""]
        lines += _table(http_rows, rev if old else None, cpu=False)
    notes = [f"{calls} pods per row after {WARM_UP} warm-up pods; each pod is one `/filter` and one "
             "`/prioritize` call with the nodes the filter kept. NeuroKube's kube-scheduler configurations call "
             "the extender for prioritize only (deploy/knative/kube-scheduler/extender-config.yaml), so a pod "
             "costs kube-scheduler one `/prioritize` and the goal is judged on it; filter + prioritize is what a "
             "configuration that adds the filter verb would cost. The goal is set at 1,000 nodes; the other "
             "sizes are judged against the same 5 ms for reference. This is the extender's own cost; "
             "kube-scheduler's side (encoding the request, its plugins) is measured end to end elsewhere.",
             f"Machine load (1-minute load average, 2 cores) while measuring: {min(loads):.1f} to "
             f"{max(loads):.1f}. Wall-clock percentiles on a shared machine include time the process waited "
             "for a core; the CPU column is the calls' own cost."]
    if any("paced" in s for runs in new.values() for s in runs.values()):
        notes.append(f"Paced: `/prioritize` alone (as deployed), {calls} pods after {WARM_UP} warm-up pods, each "
                     f"after a {pause_ms:g} ms pause in which the extender does nothing, as at "
                     f"{1000 / pause_ms:.0f} pods/s below kube-scheduler's capacity (the module docstring says why "
                     "this costs more than back to back).")
    if gcs:
        notes.append("Full garbage collections during the in-process rows (count, longest): " + "; ".join(
            f"{n:,} {mode} {count}, {longest:.0f} ms" for n, mode, count, longest in sorted(gcs)) + ".")
    if old:
        notes.append(f"\"Before\" is `git archive {rev}` measured by the same script in the same run, alternating "
                     f"with the working tree size by size. Replies identical before and after (fixed clock, same "
                     f"pods, same bindings, every reply hashed; a prioritize reply's nonzero entries): "
                     f"{'yes' if same and all(same) else 'NO'} ({sum(same)}/{len(same)} rows).")
    return "\n".join(lines) + "\n\n" + "\n\n".join(notes)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=200, help="pods measured per row")
    ap.add_argument("--sizes", default="100,1000,5000", help="node counts of the in-process rows, comma-separated")
    ap.add_argument("--http-nodes", type=int, default=1000, help="node count of the HTTP row")
    ap.add_argument("--http-repeats", type=int, default=3, help="HTTP runs per tree; each percentile is their median")
    ap.add_argument("--no-http", action="store_true", help="skip the HTTP round trip")
    ap.add_argument("--pause-ms", type=float, default=50.0,
                    help="also /prioritize alone after this pause (NodeNames mode); 0 skips it")
    ap.add_argument("--baseline", metavar="REV", help="also measure git revision REV (exported, not checked out)")
    ap.add_argument("--no-write", action="store_true", help="print the section instead of writing docs/BENCHMARKS.md")
    ap.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--what", choices=("in-process", "http"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if args.worker:
        print(json.dumps(worker(args.worker, args.what, sizes[0], args.calls, args.pause_ms)))
        return 0
    jobs = [("in-process", n) for n in sizes] + ([] if args.no_http else [("http", args.http_nodes)])
    new: dict = {}
    old: dict | None = {} if args.baseline else None
    loads: list[float] = []
    with tempfile.TemporaryDirectory(prefix="nk-bench-baseline-") as tmp:
        trees = [("working tree", ROOT, new)]
        if args.baseline:
            trees.append((args.baseline, export_tree(args.baseline, Path(tmp)), old))
        for what, n in jobs:
            runs: dict[str, list[dict]] = {label: [] for label, _, _ in trees}
            for repeat in range(args.http_repeats if what == "http" else 1):
                for label, root, into in trees:
                    print(f"{what}, {n:,} nodes: {label} ({repeat + 1})", file=sys.stderr, flush=True)
                    done = run_worker(root, what, n, args.calls, args.pause_ms)
                    runs[label].append(done["result"])
                    loads += done["load"]
            for label, _, into in trees:
                into[f"{what}:{n}"] = median_of_runs(runs[label])
    body = report(new, old, args.baseline, args.calls, loads, args.http_repeats, args.pause_ms)
    print(body)
    if not args.no_write:
        command = " ".join(["python benchmarks/extender_latency.py", *map(shlex.quote, sys.argv[1:])])
        sys.path.insert(0, str(ROOT))
        from benchmarks._report import write_section

        write_section(SECTION, "Extender latency per pod", command, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
