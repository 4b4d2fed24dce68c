"""Model-based rollout: a candidate policy's cost estimated from logged data, state shift included.

Why: the one-step estimators (:mod:`neurokube.model.ope`) reweight each logged decision on its
own, so they cannot see that a different placement leaves a different cluster for the pods that
come after it; on our traces they are optimistic. This estimator instead rebuilds the logged
period as a :class:`~neurokube.trace.model.Trace` from what the logs hold, and replays the
candidate (and any other policy) on it in the simulator, so every later decision sees the state
the candidate's own earlier decisions made.

What the logs hold, and what each part of the trace is made of:

* **Pods**: one per pod with a logged decision (``pod`` ``namespace/name``, ``workload``,
  ``qos``). Its requests and CPU limit come back exactly from the chosen node's feature row
  (``f_pod_cpu_req_frac x f_node_cpu_cores``, ``f_pod_mem_req_frac x f_node_mem_gib``,
  ``f_pod_cpu_lim_frac x f_node_cpu_cores``).
* **Usage**: each pod's own CPU and memory samples (the snapshot step's ``pod_usage`` table, one
  row per ``ts``, ``pod``), indexed by the pod's age since its logged decision. Sample ``j`` is the
  pod's profile from age ``j x step`` to ``(j+1) x step``.
* **Nodes**: every node named by the decisions, the candidate sets or the node snapshots;
  allocatable CPU from the snapshots (``cpu_alloc_milli``) or the feature rows, allocatable memory
  from the feature rows (``f_node_mem_gib``).
* **Ends**: a pod ends one step after its last sample.

What the logs do not contain, and how it is filled (each is an assumption of the estimate):

* **Creation time.** The log has the decision time, not the pod's creation: the pod is taken to
  arrive when the logged policy bound it. So the estimate's ``pending_pod_s`` is the time pods
  wait *beyond* what they waited under the logged policy, and the logged policy's own wait is
  not in it.
* **Pods never placed.** A pod the logged policy never bound has no decision and no usage; it is
  not in the estimate.
* **Usage of a pod as independent of its node.** A pod's samples are replayed as they were, on
  whatever node the candidate chooses. The simulator assumes the same (usage is the pod's demand,
  contention never slows it); on a real cluster a throttled pod runs longer and uses its CPU later,
  which this cannot see.
* **Usage between samples.** Held constant from one sample to the next (the snapshot
  resolution); a missing sample inside a pod's life repeats the previous one. With samples at the
  simulator's step the replay of the logged placements reproduces the observed usage exactly
  (tests/unit/test_rollout.py); coarser samples blur peaks.
* **Pods that left within a step, or were bound after the last sample.** No sample: they are
  taken to leave at once (duration 0) and counted in ``pods_without_usage``.
* **The memory limit.** Not logged; recovered from ``f_pod_mem_peak_frac`` where the pod's
  workload had no usage history at its decision (the feature is then the limit, or the request
  without one), carried to the workload's other pods as a ratio to the request, request for a
  Guaranteed pod, none otherwise (counted in ``memory_limits_unknown``). It only matters for the
  features of pods without history; the usage replayed is the observed one.
* **Usage of pods without a decision** (placed before the logged window, or by another
  scheduler) and node usage no pod accounts for (system daemons): left out, counted in
  ``usage_rows_without_decision`` and, with node snapshots, ``unattributed_cpu_core_s``.
* **A pod placed more than once** (an eviction): its first decision only, counted in
  ``repeat_decisions``.
* **Node memory of a node never offered as a candidate**: the median memory per core of the
  other nodes, counted in ``nodes_memory_filled``.

The check that comes with every estimate: the logged placements are replayed on the
reconstruction (:class:`LoggedPlacement`) and their contention and node-hours are compared with
those summed directly from the pod samples (``logged``). A gap there is a reconstruction error
that the candidate's estimate shares.

Pure: numpy and pandas, no I/O. The pipelines (pipelines/evaluate.py) and the benchmark
(benchmarks/rollout_estimate.py) give it frames.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from neurokube.errors import InputError
from neurokube.model.decision_log import QOS_NAMES
from neurokube.model.reward import RewardWeights
from neurokube.policies.base import BEST_EFFORT, GUARANTEED, ClusterView, PodSpec, Policy
from neurokube.policies.common import fits
from neurokube.sim import SimConfig, replay
from neurokube.trace.model import NodeTable, PodTable, ProfileTable, Trace

DAY_S = 86400
DECISION_COLUMNS = (
    "decision_id", "ts_s", "pod", "workload", "qos", "node", "f_node_cpu_cores", "f_node_mem_gib",
    "f_pod_cpu_req_frac", "f_pod_mem_req_frac", "f_pod_cpu_lim_frac", "f_pod_mem_peak_frac", "f_wl_log_samples",
)
"""What the reconstruction reads of the decision log (model/decision_log.py has them all)."""
POD_USAGE_COLUMNS = ("ts", "pod", "node", "cpu_used_milli", "mem_used_mib")
"""The snapshot step's per-pod table (pipelines/usage.py POD_COLUMNS)."""
NODE_COLUMNS = ("ts", "node", "cpu_alloc_milli")
"""What it reads of the node snapshots (``cpu_used_milli`` too, when present, for the unattributed usage)."""
CANDIDATE_COLUMNS = ("node", "f_node_cpu_cores", "f_node_mem_gib")
METRICS = ("contention_core_s", "node_hours", "pending_pod_s", "mem_overflow_mib_s", "unscheduled_pods")
PRIOR_MEMORY_MIB = 200  # what the features assume of a pod with neither a memory request nor a limit

PolicyFactory = Callable[[Trace], Policy]
"""Builds a policy for the reconstructed trace (some policies, the oracle, read the trace)."""


@dataclass(frozen=True)
class Reconstruction:
    """The logged period as a trace, and what could not be rebuilt."""

    trace: Trace
    origin_s: float
    """Epoch second of the trace's time 0 (a UTC midnight, so the time-of-day features match)."""
    step_s: int
    """Resolution of the usage samples."""
    logged_node: np.ndarray
    """Node index of each pod's logged placement."""
    observed: dict[str, float]
    """``contention_core_s`` and ``node_hours`` summed straight from the pod samples of the reconstructed pods."""
    gaps: dict[str, float]
    """What the logs lacked (module docstring): counts of pods, rows and nodes filled in."""


@dataclass(frozen=True)
class RolloutEstimate:
    metrics: dict[str, dict[str, float]]
    """Policy name -> :data:`METRICS` and ``cost`` (``weights.cost(contention_core_s, node_hours)``)
    of its replay on the reconstruction. ``pending_pod_s`` is the wait beyond the logged policy's."""
    logged: dict[str, float]
    """The check: ``observed_*`` (from the samples) and ``replayed_*`` (the logged placements
    replayed on the reconstruction) contention, node-hours and cost, and ``misfits`` (logged
    placements that did not fit the reconstruction)."""
    reconstruction: dict[str, float]
    """``pods``, ``nodes``, ``hours``, ``step_s`` and the gaps."""

    def cost(self, policy: str) -> float:
        return self.metrics[policy]["cost"]

    def gain(self, candidate: str, incumbent: str) -> float:
        """Relative cost reduction of ``candidate`` against ``incumbent`` (positive: better)."""
        c, i = self.cost(candidate), self.cost(incumbent)
        return (i - c) / i if i > 0 else (0.0 if c == 0 else -1.0)

    def to_dict(self) -> dict:
        return {"metrics": self.metrics, "logged": self.logged, "reconstruction": self.reconstruction}


class LoggedPlacement:
    """Binds every pod to the node the logged policy chose (the reconstruction's own check).

    A logged node that cannot take the pod in the reconstruction (a reconstruction error) gives the
    first node that can, counted in :attr:`misfits`, so the replay never waits forever."""

    name = "logged"

    def __init__(self, node_of: np.ndarray) -> None:
        self.node_of = np.asarray(node_of, dtype=np.int64)
        self.misfits = 0

    def select(self, pod: PodSpec, view: ClusterView) -> int | None:
        n = int(self.node_of[pod.index])
        ok = fits(pod, view)
        if ok[n]:
            return n
        self.misfits += 1
        where = np.flatnonzero(ok)
        return int(where[0]) if where.size else None


def reconstruct(decisions: pd.DataFrame, pod_usage: pd.DataFrame, *, step_s: int,
                nodes: pd.DataFrame | None = None, candidates: pd.DataFrame | None = None,
                name: str = "logged") -> Reconstruction:
    """The logged period as a trace: ``decisions`` (the decision log), ``pod_usage`` (one row per
    ``ts``, ``pod`` every ``step_s`` seconds), optionally the node snapshots (``nodes``) and the
    candidate rows (``candidates``: the allocatable memory of nodes never chosen). Times are epoch
    seconds. InputError for anything it cannot read."""
    d = _checked_decisions(decisions, pod_usage, step_s, nodes, candidates)
    # one row per pod: its first decision, in decision order within a time
    d = d.assign(_order=np.arange(len(d)), pod=d["pod"].astype(str), ts_s=d["ts_s"].astype(float))
    d = d.sort_values(["ts_s", "_order"], kind="stable")
    first = d.drop_duplicates("pod", keep="first").reset_index(drop=True)
    origin = float(np.floor(first["ts_s"].astype(float).min() / DAY_S) * DAY_S)

    node_names, cap_cpu, cap_mem, filled = _nodes(d, nodes, candidates)
    if (cap_cpu <= 0).any():
        raise InputError(f"node {node_names[int(np.argmax(cap_cpu <= 0))]!r} has no allocatable CPU",
                         "rollout reconstruction")
    node_index = pd.Index(node_names)
    resources = _pod_resources(first)
    usage = _usage_by_age(first, pod_usage, step_s)
    pods, profiles = _pod_tables(first, resources, usage, origin, step_s)
    trace = Trace(name=name, nodes=NodeTable(name=np.asarray(node_names, dtype=object), cpu_milli=cap_cpu,
                                             memory_mib=cap_mem), pods=pods, profiles=profiles)
    gaps = {"pods_without_usage": int((~usage.seen).sum()), "usage_rows_without_decision": usage.orphan_rows,
            "usage_rows_before_decision": usage.early_rows, "repeat_decisions": int(len(d) - len(first)),
            "memory_limits_unknown": int(resources.unknown_limits), "nodes_memory_filled": int(filled)}
    if nodes is not None and "cpu_used_milli" in nodes.columns and len(nodes):
        node_total = float(nodes.drop_duplicates(["ts", "node"], keep="last")["cpu_used_milli"].astype(float).sum())
        pod_total = float(pod_usage["cpu_used_milli"].astype(float).sum())
        gaps["unattributed_cpu_core_s"] = max(node_total - pod_total, 0.0) * step_s / 1000.0
    return Reconstruction(trace=trace, origin_s=origin, step_s=int(step_s),
                          logged_node=node_index.get_indexer(first["node"].astype(str)).astype(np.int64),
                          observed=_observed(usage.rows, node_index, cap_cpu, step_s), gaps=gaps)


def _checked_decisions(decisions: pd.DataFrame, pod_usage: pd.DataFrame, step_s: int,
                       nodes: pd.DataFrame | None, candidates: pd.DataFrame | None) -> pd.DataFrame:
    """The decision log with one row per decision id (the last), after every input check."""
    where = "rollout reconstruction"
    if not isinstance(step_s, (int, np.integer)) or step_s <= 0:
        raise InputError("the usage sample step must be a positive whole number of seconds", where, f"got {step_s!r}")
    _require(decisions, DECISION_COLUMNS, "the decision log")
    _require(pod_usage, POD_USAGE_COLUMNS, "the pod usage")
    if nodes is not None:
        _require(nodes, NODE_COLUMNS, "the node snapshots")
    if candidates is not None:
        _require(candidates, CANDIDATE_COLUMNS, "the candidates")
    d = decisions.drop_duplicates("decision_id", keep="last")
    if d.empty:
        raise InputError("no logged decisions to rebuild a period from", where)
    _finite(d, ("ts_s", *DECISION_COLUMNS[6:]), "the decision log")
    _finite(pod_usage, ("ts", "cpu_used_milli", "mem_used_mib"), "the pod usage")
    if (pod_usage["cpu_used_milli"].to_numpy(float) < 0).any() or (pod_usage["mem_used_mib"].to_numpy(float) < 0).any():
        raise InputError("the pod usage has negative values", where)
    bad_qos = sorted(set(d["qos"].astype(str)) - set(QOS_NAMES))
    if bad_qos:
        raise InputError(f"unknown QoS class {bad_qos[0]!r} in the decision log", where, f"expected one of {QOS_NAMES}")
    return d


@dataclass(frozen=True)
class _Resources:
    """Each pod's requests and limits, read back from its chosen node's feature row."""

    qos: np.ndarray
    cpu_req: np.ndarray
    mem_req: np.ndarray
    cpu_lim: np.ndarray
    mem_lim: np.ndarray
    unknown_limits: int


def _pod_resources(first: pd.DataFrame) -> _Resources:
    where = "rollout reconstruction"
    row_cpu = np.rint(first["f_node_cpu_cores"].to_numpy(float) * 1000.0)
    row_mem = np.rint(first["f_node_mem_gib"].to_numpy(float) * 1024.0)
    if (row_cpu <= 0).any() or (row_mem <= 0).any():
        raise InputError("a decision's node has no allocatable CPU or memory in its features", where)
    cpu_req = np.rint(first["f_pod_cpu_req_frac"].to_numpy(float) * row_cpu).astype(np.int64)
    mem_req = np.rint(first["f_pod_mem_req_frac"].to_numpy(float) * row_mem).astype(np.int64)
    cpu_lim = np.rint(first["f_pod_cpu_lim_frac"].to_numpy(float) * row_cpu).astype(np.int64)
    if (cpu_req < 0).any() or (mem_req < 0).any() or (cpu_lim < 0).any():
        raise InputError("a decision's pod requests or limits are negative", where)
    qos = np.array([QOS_NAMES.index(q) for q in first["qos"].astype(str)], dtype=np.int8)
    mem_peak = np.rint(first["f_pod_mem_peak_frac"].to_numpy(float) * row_mem).astype(np.int64)
    fresh = first["f_wl_log_samples"].to_numpy(float) == 0
    mem_lim, unknown = _memory_limits(first["workload"].astype(str).to_numpy(), qos, mem_req, mem_peak, fresh)
    return _Resources(qos, cpu_req, mem_req, cpu_lim, mem_lim, unknown)


@dataclass(frozen=True)
class _Usage:
    """Each pod's usage by age since its logged decision, as flat profiles (``start``/``length``
    per pod), and the usage rows that belong to a logged pod."""

    rows: pd.DataFrame
    start: np.ndarray
    length: np.ndarray
    seen: np.ndarray
    cpu: np.ndarray
    mem: np.ndarray
    orphan_rows: int
    early_rows: int


def _usage_by_age(first: pd.DataFrame, pod_usage: pd.DataFrame, step_s: int) -> _Usage:
    u = pod_usage[["ts", "pod", "node", "cpu_used_milli", "mem_used_mib"]]
    who = pd.Index(first["pod"].to_numpy(dtype=object)).get_indexer(u["pod"].astype(str))
    known = who >= 0
    orphan_rows = int((~known).sum())
    u, who = u[known], who[known]
    age = u["ts"].to_numpy(float) - first["ts_s"].to_numpy(float)[who]
    before = age < -1e-6  # a sample before the pod's decision (clock skew): not part of its life
    early_rows = int(before.sum())
    u, who, age = u[~before], who[~before], np.maximum(age[~before], 0.0)
    j = np.floor(age / step_s + 1e-9).astype(np.int64)
    samples = pd.DataFrame({"p": who, "j": j, "cpu": u["cpu_used_milli"].to_numpy(float),
                            "mem": u["mem_used_mib"].to_numpy(float)}).groupby(["p", "j"], sort=True).mean()
    length = np.ones(len(first), dtype=np.int64)
    seen = np.zeros(len(first), dtype=bool)
    if len(samples):
        last_j = samples.reset_index().groupby("p")["j"].max()
        length[last_j.index.to_numpy()] = last_j.to_numpy() + 1
        seen[last_j.index.to_numpy()] = True
    start = np.concatenate([[0], np.cumsum(length)[:-1]])
    flat_cpu = np.full(int(length.sum()), np.nan)
    flat_mem = np.full(int(length.sum()), np.nan)
    if len(samples):
        idx = samples.index
        at = start[idx.get_level_values(0).to_numpy()] + idx.get_level_values(1).to_numpy()
        flat_cpu[at] = samples["cpu"].to_numpy()
        flat_mem[at] = samples["mem"].to_numpy()
    owner = np.repeat(np.arange(len(first)), length)
    flat_cpu = pd.Series(flat_cpu).groupby(owner).ffill().fillna(0.0).to_numpy()
    flat_mem = pd.Series(flat_mem).groupby(owner).ffill().fillna(0.0).to_numpy()
    return _Usage(u, start, length, seen, flat_cpu, flat_mem, orphan_rows, early_rows)


def _pod_tables(first: pd.DataFrame, r: _Resources, usage: _Usage, origin: float,
                step_s: int) -> tuple[PodTable, ProfileTable]:
    pod_names = first["pod"].to_numpy(dtype=object)
    ns_name = [_split(p) for p in pod_names]
    workloads = [_split(w)[1] for w in first["workload"].astype(str)]
    n = len(first)
    duration = np.where(usage.seen, usage.length * float(step_s), 0.0)
    pods = PodTable(
        name=np.array([x[1] for x in ns_name], dtype=object), namespace=np.array([x[0] for x in ns_name], dtype=object),
        workload=np.array(workloads, dtype=object), qos=r.qos,
        cpu_request_milli=r.cpu_req, memory_request_mib=r.mem_req, cpu_limit_milli=r.cpu_lim,
        memory_limit_mib=r.mem_lim, creation_s=first["ts_s"].to_numpy(float) - origin, duration_s=duration,
        profile=np.arange(n, dtype=np.int32), profile_offset_s=np.zeros(n), cpu_scale_milli=np.ones(n),
        memory_scale_mib=np.ones(n))
    profiles = ProfileTable(names=pod_names.copy(), step_s=np.full(n, float(step_s)),
                            start=usage.start.astype(np.int64), length=usage.length, cpu=usage.cpu, memory=usage.mem)
    return pods, profiles


def rollout(rec: Reconstruction, policies: Mapping[str, PolicyFactory], weights: RewardWeights,
            config: SimConfig = SimConfig()) -> RolloutEstimate:
    """Replay each of ``policies`` on the reconstruction; with the logged placements' check."""
    if rec.step_s % config.step_s:
        raise InputError("the usage samples must fall on simulator steps", "rollout",
                         f"samples every {rec.step_s} s, simulator step {config.step_s} s")
    if not policies:
        raise InputError("no policy to roll out", "rollout")
    metrics = {}
    for name, make in policies.items():
        result = replay(rec.trace, make(rec.trace), config)
        metrics[name] = _summary(result.metrics, weights)
    logged_policy = LoggedPlacement(rec.logged_node)
    replayed = _summary(replay(rec.trace, logged_policy, config).metrics, weights)
    observed_cost = float(weights.cost(rec.observed["contention_core_s"], rec.observed["node_hours"]))
    logged = {"observed_contention_core_s": rec.observed["contention_core_s"],
              "observed_node_hours": rec.observed["node_hours"], "observed_cost": observed_cost,
              "replayed_contention_core_s": replayed["contention_core_s"],
              "replayed_node_hours": replayed["node_hours"], "replayed_cost": replayed["cost"],
              "misfits": float(logged_policy.misfits)}
    trace = rec.trace
    info = {"pods": float(len(trace.pods)), "nodes": float(len(trace.nodes)), "step_s": float(rec.step_s),
            "hours": float(trace.end_s - trace.pods.creation_s.min(initial=0.0)) / 3600.0,
            **{k: float(v) for k, v in rec.gaps.items()}}
    return RolloutEstimate(metrics=metrics, logged=logged, reconstruction=info)


def estimate(decisions: pd.DataFrame, pod_usage: pd.DataFrame, policies: Mapping[str, PolicyFactory],
             weights: RewardWeights, *, step_s: int, nodes: pd.DataFrame | None = None,
             candidates: pd.DataFrame | None = None, config: SimConfig = SimConfig(),
             name: str = "logged") -> RolloutEstimate:
    """:func:`reconstruct` then :func:`rollout`: the cost of each policy on the logged period."""
    rec = reconstruct(decisions, pod_usage, step_s=step_s, nodes=nodes, candidates=candidates, name=name)
    return rollout(rec, policies, weights, config)


# --- helpers ----------------------------------------------------------------------------------

def _require(frame: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise InputError(f"{what} is not a table", "rollout reconstruction", f"got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"{what} lacks column(s) {missing}", "rollout reconstruction",
                         f"has {sorted(map(str, frame.columns))[:12]}")


def _finite(frame: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    for c in columns:
        try:
            values = frame[c].to_numpy(dtype=float)
        except (TypeError, ValueError):
            raise InputError(f"{what} column {c!r} is not numeric", "rollout reconstruction") from None
        if not np.isfinite(values).all():
            raise InputError(f"{what} column {c!r} has missing or infinite values", "rollout reconstruction",
                             f"{int((~np.isfinite(values)).sum())} of {len(values)} rows")


def _split(text: str) -> tuple[str, str]:
    """``namespace/name`` -> (namespace, name); a bare name has namespace ''."""
    ns, sep, rest = text.partition("/")
    return (ns, rest) if sep else ("", text)


def _nodes(decisions: pd.DataFrame, snapshots: pd.DataFrame | None, candidates: pd.DataFrame | None
           ) -> tuple[list[str], np.ndarray, np.ndarray, int]:
    """Names (snapshot order first, then the others sorted), allocatable CPU and memory, and how
    many nodes had their memory filled in."""
    rows = [decisions[list(CANDIDATE_COLUMNS)]]
    if candidates is not None and len(candidates):
        rows.append(candidates[list(CANDIDATE_COLUMNS)])
    feats = pd.concat(rows, ignore_index=True)
    feats = feats.assign(node=feats["node"].astype(str)).drop_duplicates("node", keep="last").set_index("node")
    order: list[str] = []
    snap_cpu: dict[str, float] = {}
    if snapshots is not None and len(snapshots):
        s = snapshots.assign(node=snapshots["node"].astype(str))
        order = list(pd.unique(s["node"]))
        snap_cpu = s.drop_duplicates("node", keep="last").set_index("node")["cpu_alloc_milli"].astype(float).to_dict()
    order += sorted(set(feats.index) - set(order))
    cpu = np.array([snap_cpu[n] if n in snap_cpu else float(feats.at[n, "f_node_cpu_cores"]) * 1000.0 for n in order])
    cpu = np.rint(cpu).astype(np.int64)
    mem = np.array([float(feats.at[n, "f_node_mem_gib"]) * 1024.0 if n in feats.index else np.nan for n in order])
    missing = ~np.isfinite(mem)
    if missing.any():
        per_core = np.nanmedian(mem / np.maximum(cpu, 1)) if (~missing).any() else 4096.0 / 1000.0
        mem[missing] = cpu[missing] * per_core
    return order, cpu, np.rint(mem).astype(np.int64), int(missing.sum())


def _memory_limits(workload: np.ndarray, qos: np.ndarray, request: np.ndarray, peak: np.ndarray,
                   fresh: np.ndarray) -> tuple[np.ndarray, int]:
    """Each pod's memory limit (0: none) and how many were unknown (module docstring).

    Without workload history the features' memory peak is the limit, or the request (or 200 MiB)
    when there is none: a peak equal to that default reads as no limit (a limit equal to the
    request changes no feature either)."""
    default = np.where(request > 0, request, PRIOR_MEMORY_MIB)
    inferred = np.where(np.abs(peak - default) <= 1, 0, peak)
    limit = np.zeros(len(request), dtype=np.int64)
    known = fresh.copy()
    limit[fresh] = inferred[fresh]
    # a workload's pods share their shape: carry the ratio to the request (or the value) to its other pods
    ratio: dict[str, float] = {}
    for w, lim, req in zip(workload[fresh], inferred[fresh], request[fresh], strict=True):
        ratio.setdefault(w, (lim / req) if req > 0 else -float(lim))
    for i in np.flatnonzero(~fresh):
        r = ratio.get(workload[i])
        if r is not None:
            limit[i] = (int(round(r * request[i])) if request[i] > 0 else 0) if r >= 0 else int(round(-r))
            known[i] = True
    limit[qos == GUARANTEED] = request[qos == GUARANTEED]
    limit[qos == BEST_EFFORT] = 0
    unknown = int((~known & (qos != GUARANTEED) & (qos != BEST_EFFORT)).sum())
    return limit, unknown


def _observed(usage: pd.DataFrame, node_index: pd.Index, cap_cpu: np.ndarray, step_s: int) -> dict[str, float]:
    """Contention and busy node-hours summed from the pod samples (the logged placements' truth)."""
    if usage.empty:
        return {"contention_core_s": 0.0, "node_hours": 0.0}
    per = usage.groupby(["ts", usage["node"].astype(str)])["cpu_used_milli"].sum()
    node = node_index.get_indexer(per.index.get_level_values(1))
    cap = np.where(node >= 0, cap_cpu[np.maximum(node, 0)], np.inf)
    over = np.maximum(per.to_numpy(float) - cap, 0.0)
    return {"contention_core_s": float(over.sum()) * step_s / 1000.0, "node_hours": len(per) * step_s / 3600.0}


def _summary(metrics: dict[str, float], weights: RewardWeights) -> dict[str, float]:
    out = {k: float(metrics[k]) for k in METRICS}
    out["cost"] = float(weights.cost(out["contention_core_s"], out["node_hours"]))
    return out
