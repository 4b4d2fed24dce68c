"""Acting on running pods in the replay: limits, in-place resizes and evictions, with Kubernetes' rules.

The replay loop (sim/engine.py) runs every pod's usage through :meth:`Actuation.usage` and, after
each step's measurement, lets the actuator look and act (:meth:`Actuation.after_step`). The rules
applied here are the cluster's, so every actuator (VPA in place, the descheduler, NeuroKube's) is
held to the same ones (docs/ACTING.md):

* **Limits.** CPU demand above a pod's CPU limit is throttled: the pod uses its limit, and every
  pod-second spent there counts in ``throttled_s``. Memory demand above the memory limit is an
  OOM kill and a restart: one kill per step while the demand stays above it (the restarted
  container meets the same demand), counted in ``oom_kills``; the CPU work the container had done
  since it started is lost (``oom_lost_work_core_s``). Deviation, stated: the replay keeps the
  restarted container's usage at the limit and its age unchanged (the workload's demand goes on);
  it does not model the restart back-off.
* **Resize in place** (``pods/resize``, KEP 1287): refused when the pod does not run, when the new
  values change its QoS class, remove a limit or put a request above its limit (the apiserver's
  422), or when a request is above the node's allocatable ("Infeasible"). A resize that fits
  beside the node's other pods applies at once (the node's requests change in the same step); one
  that does not waits ("Deferred") and is retried at the start of every step, as the kubelet
  retries when pods leave. A newer resize of the same pod replaces a waiting one.
* **Evict** (the Eviction API): refused when the pod's workload already has ``max_unavailable``
  pods evicted and not running again (its disruption budget; the trace's optional
  ``max_unavailable`` column, default 1). An evicted pod leaves its node, its CPU work since it
  started is lost (``lost_work_core_s``), and it joins the back of the queue with the requests in
  force (or those the eviction names, as VPA's admission controller sets them, when they would
  pass the resize checks). Once placed again its demand is the one it would have had at that
  time had it stayed (the workload's load goes on; its profile does not start over), and it runs
  until the end its first run would have had. So an eviction moves demand to another node and
  never removes it: before this rule the re-placed pod replayed its profile from the start, which
  swapped the rest of a spike for the profile's quieter start, and on the validation traces that
  vanished demand was larger than the contention the actuator's evictions removed (docs/ACTING.md).
  Its time back in the queue adds to ``pending_pod_s``; the work lost (``lost_work_core_s``) is the
  cost of the restart.

Pure: numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from neurokube.acting.base import Action, Actuator, ActuatorView, Evict, NoActuator, Resize, RunningPods, qos_class
from neurokube.sim.state import ReplayState
from neurokube.trace.model import PodTable

ACTING_METRICS = (
    "throttled_s", "oom_kills", "oom_lost_work_core_s", "lost_work_core_s", "resizes", "resizes_deferred",
    "resizes_refused", "evictions", "evictions_refused",
)
"""The metrics this module adds to every replay's result (docs/METRICS.md)."""


@dataclass(frozen=True)
class PodRules:
    """Per-pod facts an actuator must respect, from the trace's optional columns."""

    priority: np.ndarray  # int64 per pod
    controlled: np.ndarray  # bool per pod
    max_unavailable: np.ndarray  # int64 per workload

    @classmethod
    def defaults(cls, n_pods: int, n_workloads: int) -> PodRules:
        """Priority 0, every pod controlled, a budget of one unavailable pod per workload."""
        return cls(np.zeros(n_pods, np.int64), np.ones(n_pods, bool), np.ones(n_workloads, np.int64))

    @classmethod
    def of(cls, pods: PodTable) -> PodRules:
        """From the trace's optional ``priority``, ``controlled`` and ``max_unavailable`` columns
        (the defaults where a column is absent)."""
        workload = pods.workload_ids()
        rules = cls.defaults(len(pods), int(workload.max()) + 1 if len(workload) else 0)
        per_workload = rules.max_unavailable
        if pods.max_unavailable is not None:
            per_workload[workload] = pods.max_unavailable  # one value per workload (the trace reader checks)
        return cls(rules.priority if pods.priority is None else np.asarray(pods.priority, np.int64),
                   rules.controlled if pods.controlled is None else np.asarray(pods.controlled, bool), per_workload)


@dataclass
class Counters:
    throttled_steps: int = 0
    oom_kills: int = 0
    oom_lost_milli_s: float = 0.0
    lost_work_milli_s: float = 0.0
    resizes: int = 0
    resizes_deferred: int = 0
    resizes_refused: int = 0
    evictions: int = 0
    evictions_refused: int = 0
    repending_s: float = 0.0
    refusals: dict[str, int] = field(default_factory=dict)

    def refuse(self, why: str) -> None:
        self.refusals[why] = self.refusals.get(why, 0) + 1


class Actuation:
    """The replay's side of acting: current limits, waiting resizes, evictions and their accounting."""

    def __init__(self, actuator: Actuator, state: ReplayState, rules: PodRules, step_s: int, scrape_s: int) -> None:
        pods = state.pods
        self.actuator, self.state, self.rules = actuator, state, rules
        self.idle = isinstance(actuator, NoActuator)  # nothing acts: skip the actuator's bookkeeping
        self.step, self.scrape = step_s, scrape_s
        n = len(pods)
        # the state's arrays, changed only through state.resize
        self.cpu_req, self.mem_req = state.cpu_request, state.memory_request
        self.cpu_lim, self.mem_lim = state.cpu_limit, state.memory_limit
        self.qos = pods.qos.astype(np.int8)
        self.work = np.zeros(n)  # millicore-seconds done since the current run started
        self.cpu_now = np.zeros(n)  # usage at the newest measured step
        self.mem_now = np.zeros(n)
        self.waiting: dict[int, tuple[Resize, float]] = {}  # pod -> (resize, waiting since)
        self.evicted_at = np.full(n, np.nan)
        self.unavailable = np.zeros(len(rules.max_unavailable), np.int64)
        self.counters = Counters()

    # --- usage -------------------------------------------------------------------------------

    def usage(self, run_idx: np.ndarray, cpu_demand: np.ndarray, mem_demand: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
        """The running pods' usage this step under their limits in force; accounts throttling,
        OOM kills and the work they lose."""
        cpu_lim, mem_lim = self.cpu_lim[run_idx], self.mem_lim[run_idx]
        throttled = (cpu_lim > 0) & (cpu_demand > cpu_lim)
        cpu = np.where(throttled, cpu_lim, cpu_demand)
        killed = (mem_lim > 0) & (mem_demand > mem_lim)
        mem = np.where(killed, mem_lim, mem_demand)
        c = self.counters
        c.throttled_steps += int(throttled.sum())
        self.work[run_idx] += cpu * self.step
        if killed.any():
            dead = run_idx[killed]
            c.oom_kills += int(killed.sum())
            c.oom_lost_milli_s += float(self.work[dead].sum())
            self.work[dead] = 0.0
        if not self.idle:  # only an actuator reads the usage now
            self.cpu_now[run_idx] = cpu
            self.mem_now[run_idx] = mem
        return cpu, mem

    # --- the actuator's turn ---------------------------------------------------------------

    def retry_waiting(self) -> None:
        """Apply waiting resizes that fit now (the kubelet retries as pods leave)."""
        for p, (resize, since) in list(self.waiting.items()):
            self._resize(resize, since, retry=True)

    def after_step(self, t: float, run_idx: np.ndarray) -> None:
        """Show the actuator this step (a scrape and, on its interval, the view) and apply its actions."""
        if self.idle:
            return
        if t % self.scrape == 0:
            self.actuator.observe(t, self.running(run_idx, t))
        if t % self.actuator.interval_s == 0:
            actions = self.actuator.act(self.view(run_idx, t))
            self.apply(actions, t)

    def running(self, run_idx: np.ndarray, t: float) -> RunningPods:
        state, rules = self.state, self.rules
        waiting = np.full(len(run_idx), np.nan)
        if self.waiting:
            pos = {int(p): i for i, p in enumerate(run_idx)}
            for p, (_, since) in self.waiting.items():
                if p in pos:
                    waiting[pos[p]] = since
        return RunningPods(
            pod=run_idx, node=state.node_of[run_idx], workload=state.workload_of[run_idx].astype(np.int64),
            qos=self.qos[run_idx], priority=rules.priority[run_idx], controlled=rules.controlled[run_idx],
            cpu_request=self.cpu_req[run_idx], memory_request=self.mem_req[run_idx],
            cpu_limit=self.cpu_lim[run_idx], memory_limit=self.mem_lim[run_idx],
            cpu_usage=self.cpu_now[run_idx], memory_usage=self.mem_now[run_idx],
            started_s=state.bind_step[run_idx] * float(self.step), resize_waiting_s=waiting,
        )

    def view(self, run_idx: np.ndarray, t: float) -> ActuatorView:
        v = self.state.view
        return ActuatorView(
            now_s=t, alloc_cpu=v.alloc_cpu, alloc_mem=v.alloc_mem, req_cpu=v.req_cpu.copy(), req_mem=v.req_mem.copy(),
            metrics=v.metrics, pods=self.running(run_idx, t), unavailable=self.unavailable.copy(),
            max_unavailable=self.rules.max_unavailable, pending=len(self.state.queue),
        )

    def apply(self, actions: list[Action], t: float) -> None:
        for action in actions:
            if isinstance(action, Resize):
                self._resize(action, t, retry=False)
            elif isinstance(action, Evict):
                self._evict(action, t)
            else:
                raise TypeError(f"actuator {self.actuator.name!r} returned {action!r}, not a Resize or Evict")

    def _resize(self, a: Resize, since: float, *, retry: bool) -> None:
        state, c, p = self.state, self.counters, int(a.pod)
        if not retry:  # a newer resize replaces a waiting one; the pod has been waiting since the first
            previous = self.waiting.pop(p, None)
            if previous is not None:
                since = previous[1]
        if not (0 <= p < len(self.cpu_req)) or not state.running[p]:
            self.waiting.pop(p, None)
            if not retry:  # a waiting resize whose pod has since ended is simply dropped
                c.resizes_refused += 1
                c.refuse("resize: not running")
            return
        old = state.resources(p)
        new = (int(a.cpu_request_milli), int(a.memory_request_mib), int(a.cpu_limit_milli), int(a.memory_limit_mib))
        if new == old:
            self.waiting.pop(p, None)
            return
        why = _invalid(old, new)
        n = int(state.node_of[p])
        view = state.view
        if why is None and (new[0] > view.alloc_cpu[n] or new[1] > view.alloc_mem[n]):
            why = "resize: infeasible (above the node's allocatable)"
        if why is not None:
            c.resizes_refused += 1
            c.refuse(why)
            self.waiting.pop(p, None)
            return
        if (view.req_cpu[n] - old[0] + new[0] > view.alloc_cpu[n]
                or view.req_mem[n] - old[1] + new[1] > view.alloc_mem[n]):
            if not retry:
                c.resizes_deferred += 1
                self.waiting[p] = (a, since)
            return
        self.waiting.pop(p, None)
        state.resize(p, new)
        c.resizes += 1

    def _evict(self, a: Evict, t: float) -> None:
        state, c, p = self.state, self.counters, int(a.pod)
        if not (0 <= p < len(self.cpu_req)) or not state.running[p]:
            c.evictions_refused += 1
            c.refuse("evict: not running")
            return
        w = int(state.workload_of[p])
        if self.unavailable[w] >= self.rules.max_unavailable[w]:
            c.evictions_refused += 1
            c.refuse("evict: disruption budget")
            return
        self.waiting.pop(p, None)
        c.lost_work_milli_s += float(self.work[p])
        self.work[p] = 0.0
        state.evict(p)
        if a.recreate_with is not None:
            new = tuple(int(v) for v in a.recreate_with)
            if _invalid(state.resources(p), new) is None:
                state.resize(p, new)
        state.queue.append(p)
        self.evicted_at[p] = t
        self.unavailable[w] += 1
        c.evictions += 1

    def on_bind(self, p: int, t: float) -> None:
        """Pod ``p`` was placed at ``t``: an evicted pod is back, and its time in the queue counts."""
        since = self.evicted_at[p]
        if np.isfinite(since):
            self.counters.repending_s += t - since
            self.evicted_at[p] = np.nan
            self.unavailable[int(self.state.workload_of[p])] -= 1

    def finish(self, end_s: float) -> tuple[dict[str, float], float]:
        """The acting metrics, and the pending time of evicted pods (including those still waiting at ``end_s``)."""
        c = self.counters
        still = self.evicted_at[np.isfinite(self.evicted_at)]
        repending = c.repending_s + float(np.maximum(end_s - still, 0.0).sum())
        metrics = {
            "throttled_s": c.throttled_steps * float(self.step),
            "oom_kills": c.oom_kills,
            "oom_lost_work_core_s": c.oom_lost_milli_s / 1000.0,
            "lost_work_core_s": c.lost_work_milli_s / 1000.0,
            "resizes": c.resizes,
            "resizes_deferred": c.resizes_deferred,
            "resizes_refused": c.resizes_refused,
            "evictions": c.evictions,
            "evictions_refused": c.evictions_refused,
        }
        return metrics, repending


def _invalid(old: tuple[int, int, int, int], new: tuple[int, int, int, int]) -> str | None:
    """Why the apiserver would refuse resizing ``old`` to ``new`` (422), or None."""
    if min(new) < 0:
        return "resize: negative value"
    if qos_class(*new) != qos_class(*old):
        return "resize: changes the QoS class"
    if (old[2] > 0 and new[2] == 0) or (old[3] > 0 and new[3] == 0):
        return "resize: removes a limit"
    if (new[2] > 0 and new[0] > new[2]) or (new[3] > 0 and new[1] > new[3]):
        return "resize: request above limit"
    return None
