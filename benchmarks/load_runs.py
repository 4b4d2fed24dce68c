"""Load runs with Locust against the local control plane: the three scenarios of load/, headless.

Usage: .venv/bin/python benchmarks/load_runs.py [--quick] [--scenarios a,b,c] [--nodes 50] [--out DIR]
Writes the "load-runs" section of docs/BENCHMARKS.md (not with ``--quick``, unless ``--write``).
``make load`` is ``--quick --out out/load``: a modest run whose Locust HTML reports, CSVs, logs and
``summary.md`` land in ``out/load/``.

* (b) extender ``/prioritize`` and (a) binder CloudEvents run against the functions of one cluster
  started with ``neurokube cluster up --functions --no-adapter``: Locust plays the receive adapter
  for (a), so no other event reaches the binder, and ``NEUROKUBE_SWEEP_MIN_AGE_S`` (inherited by
  the functions) keeps the sweeper off the pending pods during the run. (a) creates its pending
  pods in that cluster first (``--create-pods``) and counts only ``bound`` as success.
* (c) end to end runs against a second cluster started with ``--functions`` (the receive adapter
  feeding the binder, as deployed), with ``--keep-pods``; afterwards every pod must be bound and no
  node over-committed.
* Both clusters get the test packing model (``--model-dir``) and a loopback Prometheus double
  answering for every node (``--prometheus-url``), so the learned path is what is measured.

Each Locust run writes CSV (``--csv PREFIX --csv-full-history``), its HTML report (``--html``) and
its log under ``--out`` (default load/results/load_runs/, git-ignored); benchmarks/_locust_results.py
reads them back:
``PREFIX_stats.csv`` (whole run), ``PREFIX_stats_history.csv`` (per stage: the 1-second rows,
stage boundaries from the stage length, +-1 s; p50 and p99 are Locust's current 10-second window
at the end of the stage), ``PREFIX_failures.csv``, and the log for the guard's verdict.
Everything started is taken down, also on failure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._locust_results import (  # noqa: E402
    AGGREGATED,
    BIND,
    Limits,
    Totals,
    backlog_spent,
    conf_values,
    counts,
    guard_outcome,
    invariants_line,
    metric_delta,
    ok_invariants,
    outcomes,
    parse_metrics,
    read_failures,
    read_history,
    read_totals,
    server_side,
    stage_table,
    stages,
)
from neurokube.cluster.functions import EVENT_TOKEN_FILE  # noqa: E402

RESULTS = ROOT / "load" / "results" / "load_runs"
SWEEP_OFF_S = "3600"
STAGE_COUNT = 3  # every locustfile's Stages (tests/unit/test_load_scenarios.py checks it)


# -- running (processes, clusters, Locust) ------------------------------------------------------------


@dataclass
class Run:
    """One headless Locust run and what came of it."""

    key: str
    title: str
    locustfile: str
    options: dict[str, object]
    series: tuple[str, str] = AGGREGATED
    env: dict[str, str] = field(default_factory=dict)
    returncode: int | None = None
    log: str = ""
    seconds: float = 0.0

    @property
    def conf(self) -> str:
        return self.locustfile.removesuffix(".py") + ".conf"

    @property
    def prefix(self) -> Path:
        return RESULTS / self.key

    def argv(self) -> list[str]:
        out = ["-f", self.locustfile, "--config", self.conf, "--headless"]
        for key, value in self.options.items():
            if value is True:
                out.append(f"--{key}")
            else:
                out += [f"--{key}", str(value)]
        prefix = _shown(self.prefix)
        return out + ["--csv", prefix, "--csv-full-history", "--html", f"{prefix}.html"]

    def limits(self) -> Limits:
        conf = {**conf_values(ROOT / self.conf), **{k: str(v) for k, v in self.options.items()}}
        return Limits(float(conf["max-fail-ratio"]), float(conf["max-p99-ms"]))

    def stage_seconds(self) -> float:
        return float(self.options.get("stage-seconds") or conf_values(ROOT / self.conf)["stage-seconds"])


class Placeholders:
    """Replace this run's ports and temporary paths by names, so the recorded commands read well."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def add(self, value: str, name: str) -> None:
        self.names[value] = name

    def __call__(self, text: str) -> str:
        for value in sorted(self.names, key=len, reverse=True):
            text = text.replace(value, self.names[value])
        return text


def _shown(path: Path) -> str:
    """``path`` relative to the repository when it is inside it (Locust runs there), else absolute."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _bin(name: str) -> str:
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else name


def shell(argv: Sequence[str], env: dict[str, str] | None = None) -> str:
    prefix = " ".join(f"{k}={v}" for k, v in (env or {}).items())
    words = [Path(argv[0]).name if argv[0].startswith("/") else argv[0], *argv[1:]]
    return (prefix + " " if prefix else "") + " ".join(words)


@dataclass
class Cluster:
    state_dir: Path
    argv: list[str]
    env: dict[str, str]
    info: dict = field(default_factory=dict)

    def up(self) -> dict:
        print(f"$ {shell(self.argv, self.env)}", flush=True)
        proc = subprocess.run(self.argv, env={**os.environ, **self.env}, stdout=subprocess.PIPE, text=True,
                              timeout=900, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"cluster up failed with status {proc.returncode}; logs in {self.state_dir}/logs")
        self.info = json.loads(proc.stdout)
        return self.info

    def down(self) -> None:
        subprocess.run([_bin("neurokube"), "cluster", "down", "--state-dir", str(self.state_dir)], check=False,
                       timeout=120)

    def client(self):
        from neurokube.adapters.kube import KubeClient

        return KubeClient.from_kubeconfig(self.info["kubeconfig"], timeout_s=60.0)


def wait_fresh(url: str, timeout_s: float = 90.0) -> bool:
    """The function's watch cache has listed and its node metrics are fresh (/readyz)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=10) as response:
                if json.loads(response.read()).get("metrics") == "fresh":
                    return True
        except (OSError, ValueError):
            pass
        time.sleep(1.0)
    return False


def scrape(url: str) -> dict:
    with urllib.request.urlopen(url + "/metrics", timeout=30) as response:
        return parse_metrics(response.read().decode())


def settled(url: str, timeout_s: float = 30.0) -> dict:
    """/metrics once the binder's decision count stopped moving: requests still in flight when
    Locust stopped are answered (and bound) after Locust stopped counting."""
    last = scrape(url)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        time.sleep(2.0)
        now = scrape(url)
        if metric_delta(last, now, "neurokube_decisions_total") == 0:
            return now
        last = now
    return last


def run_locust(run: Run, timeout_s: float) -> Run:
    RESULTS.mkdir(parents=True, exist_ok=True)
    for old in RESULTS.glob(f"{run.key}_*.csv"):
        old.unlink()
    argv = [_bin("locust"), *run.argv()]
    env = {k: v for k, v in os.environ.items() if k != "LOCUST_SKIP_MONKEY_PATCH"}
    print(f"$ {shell(argv, run.env)}", flush=True)
    started = time.monotonic()
    try:
        proc = subprocess.run(argv, cwd=ROOT, env={**env, **run.env}, capture_output=True, text=True,
                              timeout=timeout_s, check=False)
        run.returncode, run.log = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        run.returncode, run.log = None, f"{exc.stdout or ''}{exc.stderr or ''}\nTIMEOUT after {timeout_s:.0f} s"
    run.seconds = time.monotonic() - started
    (RESULTS / f"{run.key}.log").write_text(run.log)
    print(f"  exit {run.returncode} after {run.seconds:.0f} s; log {RESULTS / (run.key + '.log')}", flush=True)
    return run


def summarise(run: Run, names: Placeholders) -> tuple[str, Totals | None]:
    """The markdown for one run: command, table, failures."""
    lines = [f"**{run.title}**", "", f"```console\n$ {names(shell(['locust', *run.argv()], run.env))}\n```", ""]
    stats_path = Path(f"{run.prefix}_stats.csv")
    if not stats_path.exists():
        tail = "\n".join(run.log.strip().splitlines()[-8:])
        return "\n".join(lines + [f"No statistics: Locust exited with {run.returncode}.", "", "```", tail, "```"]), None
    totals = read_totals(stats_path)
    total = totals.get(run.series) or Totals(*run.series, 0, 0, None, None, 0.0)
    rows = stages(read_history(Path(f"{run.prefix}_stats_history.csv"), run.series), run.stage_seconds(),
                  STAGE_COUNT)
    spent = backlog_spent(run.log)
    early = f"backlog of {spent:,} pods spent, run ended early" if spent else None
    lines.append(stage_table(rows, total, run.limits(), guard_outcome(run.log), early))
    if run.returncode not in (0, 1):
        lines += ["", f"Locust exited with status {run.returncode}."]
    failures = read_failures(Path(f"{run.prefix}_failures.csv"))
    if failures:
        shown = "; ".join(f"{n} x `{error[:160]}` ({name})" for name, error, n in failures[:4])
        lines += ["", f"Failures: {shown}."]
    return "\n".join(lines), total


def check_pods(client, namespace: str, settle_s: float = 30.0) -> dict:
    """Pods of the namespace: how many, how many bound (waiting up to ``settle_s`` for stragglers),
    and the nodes over-committed."""
    from neurokube.cluster.livekit import over_committed

    deadline = time.monotonic() + settle_s
    while True:
        pods = client.get(f"/api/v1/namespaces/{namespace}/pods", labelSelector="app=neurokube-load")["items"]
        unbound = [p["metadata"]["name"] for p in pods if not p["spec"].get("nodeName")]
        if not unbound or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    nodes = {n["metadata"]["name"] for n in client.get("/api/v1/nodes")["items"]}
    ghosts = [p["metadata"]["name"] for p in pods if p["spec"].get("nodeName") and p["spec"]["nodeName"] not in nodes]
    used = {p["spec"]["nodeName"] for p in pods if p["spec"].get("nodeName")}
    return {"pods": len(pods), "bound": len(pods) - len(unbound), "unbound": unbound[:5], "nodes": len(used),
            "over_committed": over_committed(client), "unknown_nodes": ghosts[:5]}


# -- the benchmark ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    nodes: int
    stage_a: float
    stage_b: float
    stage_c: float
    create_pods: int
    sizes: tuple[int, ...]

    @classmethod
    def of(cls, quick: bool, nodes: int | None, create_pods: int | None) -> Plan:
        if quick:
            return cls(nodes or 10, 3, 3, 4, create_pods or 600, (100, 1000, 5000))
        return cls(nodes or 50, 10, 10, 20, create_pods or 2000, (100, 1000, 5000))


def prometheus_double(cluster_nodes: int, load_nodes: int):
    """Node metrics for the cluster's nodes and the synthetic ones of scenario (b)."""
    from neurokube.testing import FakePrometheus

    names = [f"kwok-node-{i:04d}" for i in range(cluster_nodes)] + [f"load-node-{i:05d}" for i in range(load_nodes)]
    return FakePrometheus({n: (2.0 + (i % 7), float((8 + i % 5) << 30)) for i, n in enumerate(names)})


def cluster_argv(state_dir: Path, nodes: int, model: Path, prom: str, adapter: bool) -> list[str]:
    argv = [_bin("neurokube"), "cluster", "up", "--nodes", str(nodes), "--functions"]
    if not adapter:
        argv.append("--no-adapter")
    return argv + ["--model-dir", str(model), "--prometheus-url", prom, "--state-dir", str(state_dir), "--json"]


def run_ab(plan: Plan, which: set[str], work: Path, model: Path, prom: str, names: Placeholders,
           out: list[str], problems: list[str]) -> None:
    state = work / "cluster-ab"
    cluster = Cluster(state, cluster_argv(state, plan.nodes, model, prom, adapter=False),
                      {"NEUROKUBE_SWEEP_MIN_AGE_S": SWEEP_OFF_S})
    try:
        info = cluster.up()
        urls = info["functions"]
        names.add(urls["binder"], "$BINDER")
        names.add(urls["extender"], "$EXTENDER")
        names.add(info["kubeconfig"], "$STATE_AB/admin.kubeconfig")
        names.add(str(state), "$STATE_AB")
        out += ["Cluster for (a) and (b):", "", f"```console\n$ {names(shell(cluster.argv, cluster.env))}\n```", ""]
        for fn in ("extender", "binder"):
            if not wait_fresh(urls[fn]):
                problems.append(f"{fn}: node metrics never became fresh; its numbers are the fallback path")
        if "b" in which:
            out += ["### (b) extender `/prioritize`", ""]
            for size in plan.sizes:
                options: dict[str, object] = {"host": urls["extender"], "stage-seconds": plan.stage_b, "nodes": size}
                if size >= 5000:
                    options["max-p99-ms"] = 5000  # kube-scheduler's httpTimeout is the hard limit at this size
                run = Run(f"b{size}", f"(b) {size:,} nodes, `Nodes` mode (nodeCacheCapable false)",
                          "load/extender_prioritize.py", options)
                before = scrape(urls["extender"])
                run_locust(run, 3 * plan.stage_b + 120)
                text, total = summarise(run, names)
                side = server_side(before, scrape(urls["extender"]), False)
                out += [text, "", f"Server side (extender `/metrics`): {side}.", ""]
                _note(run, total, problems)
        if "a" in which:
            out += ["### (a) binder, pod-create CloudEvents for pending pods of the cluster", ""]
            run = Run("a", f"(a) {plan.create_pods:,} pending pods created in the cluster first, one event each",
                      "load/binder_events.py",
                      {"host": urls["binder"], "stage-seconds": plan.stage_a, "create-pods": plan.create_pods,
                       "ok-outcomes": "bound",
                       "event-token": (state / EVENT_TOKEN_FILE).read_text().strip()},
                      env={"KUBECONFIG": info["kubeconfig"]})
            before = scrape(urls["binder"])
            run_locust(run, 3 * plan.stage_a + 300)
            text, total = summarise(run, names)
            after = settled(urls["binder"])
            stats_path = Path(f"{run.prefix}_stats.csv")
            split = outcomes(read_totals(stats_path)) if stats_path.exists() else {}
            decided = int(metric_delta(before, after, "neurokube_decisions_total", outcome="bound"))
            found = check_pods(cluster.client(), "load", settle_s=0)
            line = invariants_line(found, decided, unbound_expected=True)
            out += [text, "", f"Outcomes Locust counted: {counts({k: float(v) for k, v in split.items()})} "
                    f"(requests still in flight when the run stopped are not counted). "
                    f"Server side (binder `/metrics`): {server_side(before, after, True)}.",
                    "", f"Cluster after the run: {line} (the pods never announced stay pending).", ""]
            if not ok_invariants(found, decided, all_bound=False):
                problems.append(f"(a) invariants: {line}")
            _note(run, total, problems)
    finally:
        cluster.down()


def run_c(plan: Plan, work: Path, model: Path, prom: str, names: Placeholders, out: list[str],
          problems: list[str]) -> None:
    state = work / "cluster-c"
    cluster = Cluster(state, cluster_argv(state, plan.nodes, model, prom, adapter=True), {})
    try:
        info = cluster.up()
        urls = info["functions"]
        names.add(urls["binder"], "$BINDER_C")
        names.add(info["kubeconfig"], "$STATE_C/admin.kubeconfig")
        names.add(str(state), "$STATE_C")
        out += ["### (c) end to end: pods created through the apiserver, timed until bound", "",
                "Cluster (the receive adapter feeds the binder, as deployed):", "",
                f"```console\n$ {names(shell(cluster.argv, cluster.env))}\n```", ""]
        if not wait_fresh(urls["binder"]):
            problems.append("binder (c): node metrics never became fresh")
        run = Run("c", "(c) create -> bound (request type `BIND`), pods kept for the check", "load/end_to_end.py",
                  {"stage-seconds": plan.stage_c, "keep-pods": True}, series=BIND,
                  env={"KUBECONFIG": info["kubeconfig"]})
        before = scrape(urls["binder"])
        run_locust(run, 3 * plan.stage_c + 180)
        text, total = summarise(run, names)
        after = settled(urls["binder"])
        creates = None
        stats_path = Path(f"{run.prefix}_stats.csv")
        if stats_path.exists():
            row = read_totals(stats_path).get(("POST", "pods"))
            creates = row.requests - row.failures if row else None
        found = check_pods(cluster.client(), "load")
        decided = int(metric_delta(before, after, "neurokube_decisions_total", outcome="bound"))
        line = invariants_line(found, decided)
        counted = (f"; Locust counted {creates:,} creates (a create still in flight when the run stopped is "
                   "not counted)") if creates is not None else ""
        out += [text, "", f"Server side (binder `/metrics`): {server_side(before, after, True)}.", "",
                f"Cluster after the run (30 s allowed for the last pods): {line}{counted}.", ""]
        if not ok_invariants(found, decided):
            problems.append(f"(c) invariants: {line}")
        _note(run, total, problems)
    finally:
        cluster.down()


def _note(run: Run, total: Totals | None, problems: list[str]) -> None:
    guard = guard_outcome(run.log)
    if guard:
        problems.append(f"{run.key}: the guard stopped the run: {guard}")
    if total is None:
        problems.append(f"{run.key}: no statistics (Locust exit {run.returncode})")
    elif total.failures:
        problems.append(f"{run.key}: {total.failures} of {total.requests} requests failed")
    if backlog_spent(run.log):
        problems.append(f"{run.key}: the pending-pod backlog was spent before the last stage ended")


def main(argv: Iterable[str] | None = None) -> int:
    global RESULTS  # --out: where every run of this process writes
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short stages and a small cluster (smoke run)")
    ap.add_argument("--scenarios", default="a,b,c", help="which scenarios, comma-separated (a, b, c)")
    ap.add_argument("--nodes", type=int, default=None, help="cluster nodes (default 50; quick 10)")
    ap.add_argument("--create-pods", type=int, default=None,
                    help="(a): pending pods to create (default 2000; quick 600)")
    ap.add_argument("--write", action="store_true", help="write docs/BENCHMARKS.md also with --quick")
    ap.add_argument("--out", type=Path, default=None,
                    help="directory for Locust's CSVs, HTML reports, logs and summary.md "
                         "(default load/results/load_runs)")
    args = ap.parse_args(list(argv) if argv is not None else None)
    if args.out is not None:
        RESULTS = args.out.resolve()
    which = {s.strip() for s in args.scenarios.split(",") if s.strip()}
    if not which or which - {"a", "b", "c"}:
        ap.error(f"--scenarios takes a, b and c, got {args.scenarios!r}")
    plan = Plan.of(args.quick, args.nodes, args.create_pods)

    from neurokube.testing import write_packing_model

    work = Path(tempfile.mkdtemp(prefix="neurokube-load-runs-"))
    names = Placeholders()
    out: list[str] = []
    problems: list[str] = []
    prom = prometheus_double(plan.nodes, max(plan.sizes))
    try:
        model = write_packing_model(work / "model")
        names.add(str(model), "$MODEL")
        names.add(prom.url, "$PROMETHEUS")
        if which & {"a", "b"}:
            run_ab(plan, which, work, model, prom.url, names, out, problems)
        if "c" in which:
            run_c(plan, work, model, prom.url, names, out, problems)
    finally:
        prom.close()
        shutil.rmtree(work, ignore_errors=True)

    command = "python benchmarks/load_runs.py" + (" --quick" if args.quick else "") + (
        f" --scenarios {args.scenarios}" if which != {"a", "b", "c"} else "")
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                           text=True, check=False).stdout.strip()
    tree = ("The working tree had uncommitted changes (sessions editing in parallel), so the code measured "
            "is the commit plus those. " if dirty else "")
    body = "\n".join([
        tree + "Locust 2.47, headless, one process, on the same 2 shared cores as the control plane (etcd, "
        "kube-apiserver, kube-scheduler, KWOK), the functions and the Prometheus double; other "
        "sessions' tests and benchmarks were running on the machine too, so the numbers are noisy. "
        f"Clusters of {plan.nodes} KWOK nodes (32 CPU, 128 GiB, 110 pods); the functions run the "
        "test packing model (`--model-dir $MODEL`, written by `neurokube.testing.write_packing_model`) "
        "with fresh node metrics from a loopback Prometheus double (`--prometheus-url $PROMETHEUS`). "
        "Names starting with `$` stand for this run's temporary paths and free ports "
        "(`neurokube cluster status --state-dir DIR` prints the function URLs). Per-stage numbers come from "
        "Locust's 1-second history (stage boundaries +-1 s); a stage's p50/p99 is Locust's current "
        "10-second window at the stage's end, the whole-run row is Locust's own total. The goal column "
        "checks each stage against the scenario's guard limits; the guard itself judges every second.",
        "",
        *out,
        "**Problems seen in this run:** " + ("; ".join(problems) if problems else "none") + ".",
    ])
    print(body)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "summary.md").write_text(f"# Load runs\n\n`{command}`\n\n{body}\n")
    print(f"reports: {_shown(RESULTS)}/ (summary.md, <scenario>.html, <scenario>_stats*.csv, <scenario>.log)")
    if not args.quick or args.write:
        from benchmarks._report import write_section

        write_section("load-runs", "Load runs (Locust)", command, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
