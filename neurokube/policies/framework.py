"""A small scheduling framework: a policy is a profile of plugins, run by one generic cycle.

kube-scheduler's framework (pkg/scheduler/framework) gives every plugin the same extension
points and lets a profile say which plugins run at each, with what weight. This module keeps the
part a replay and the live functions need, vectorised over a :class:`ClusterView`'s nodes:

* **Filter**: a boolean mask of the nodes that pass, and for the nodes that do not, which
  :class:`Reason` (a node may fail for several: too little CPU *and* memory);
* **Score**: a number per feasible node (kube-scheduler's plugins give 0..100 integers; a score
  plugin may also return a :class:`Status`: ``Skip`` to take no part for this pod, ``Error`` to fail);
* **NormalizeScore** (optional, a ``normalize_score`` method on a score plugin): rescale the
  plugin's scores over the feasible nodes before weights apply;
* **Reserve** (optional): told of the chosen node before the cycle returns; may refuse it.

:func:`run_cycle` filters once, scores the feasible nodes, normalises, sums ``weight * score``
plugin by plugin in profile order, and picks the highest total with the project's tie-break
(:func:`select_host`: one uniform draw among the tied nodes, none when a single node is best).
A score plugin that fails with a fallback-eligible reason (:data:`FALLBACK_REASONS`) hands the
scoring to the profile's ``fallback`` plugins on the same feasible nodes, and the result says why.
:func:`score_cycle` is the same cycle without the pick (an extender's prioritize verb).

Every outcome is a :class:`Status` with a :class:`Code` and an enum :class:`Reason`: a pod that
fits nowhere says which plugin rejected how many nodes for which reason, as kube-scheduler's
"0/5 nodes are available: 3 Insufficient cpu, 2 ..." does, so no caller classifies a failure by
searching its message. Pure: numpy only, no I/O, no clock.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from neurokube.policies.base import ClusterView, PodSpec

MAX_NODE_SCORE = 100


class Code(enum.Enum):
    """What a plugin or a cycle reports (kube-scheduler's framework.Code, the members used here)."""

    SUCCESS = "Success"
    UNSCHEDULABLE = "Unschedulable"
    """The pod does not fit now; another cycle (more capacity, fresher metrics) may place it."""
    ERROR = "Error"
    """The plugin itself failed (no model, a prediction error): not a fact about the nodes."""
    SKIP = "Skip"
    """The plugin takes no part for this pod (e.g. BalancedAllocation for a BestEffort pod)."""
    WAIT = "Wait"
    """The policy chose to leave a pod that fits pending for now (the learned wait action)."""


class Reason(enum.StrEnum):
    """Every reason a policy gives for not placing a pod, not scoring a node or falling back.

    The values are the labels the live functions count fallbacks under (``predict_error``), so a
    member compares equal to its label; :attr:`text` is the human sentence.
    """

    # NodeResourcesFit (kube-scheduler)
    INSUFFICIENT_CPU = "insufficient_cpu"
    INSUFFICIENT_MEMORY = "insufficient_memory"
    INSUFFICIENT_PODS = "insufficient_pods"
    # Koordinator LoadAwareScheduling
    CPU_LOAD_THRESHOLD_EXCEEDED = "cpu_load_threshold_exceeded"
    MEMORY_LOAD_THRESHOLD_EXCEEDED = "memory_load_threshold_exceeded"
    METRICS_EXPIRED = "metrics_expired"
    # Score plugins
    BEST_EFFORT_POD = "best_effort_pod"
    NO_METRICS = "no_metrics"
    # The learned policy and the live Decider (fallback reasons)
    NO_MODEL = "no_model"
    MODEL_MISSING = "model_missing"
    MODEL_CORRUPT = "model_corrupt"
    PREDICT_ERROR = "predict_error"
    NON_FINITE_SCORE = "non_finite_score"
    PROMETHEUS_DISABLED = "prometheus_disabled"
    PROMETHEUS_UNAVAILABLE = "prometheus_unavailable"
    POLICY_DECLINED = "policy_declined"
    WAITING = "waiting"
    CACHE_UNAVAILABLE = "cache_unavailable"
    """The live extender's watch cache has not listed yet: it filters nothing and scores 0."""
    # Reserve
    RESERVE_REFUSED = "reserve_refused"

    @property
    def text(self) -> str:
        return _TEXT[self]


_TEXT: dict[Reason, str] = {
    Reason.INSUFFICIENT_CPU: "Insufficient cpu",
    Reason.INSUFFICIENT_MEMORY: "Insufficient memory",
    Reason.INSUFFICIENT_PODS: "Too many pods",
    Reason.CPU_LOAD_THRESHOLD_EXCEEDED: "node(s) cpu usage exceed threshold",
    Reason.MEMORY_LOAD_THRESHOLD_EXCEEDED: "node(s) memory usage exceed threshold",
    Reason.METRICS_EXPIRED: "node(s) nodeMetric expired",
    Reason.BEST_EFFORT_POD: "BestEffort pod: the plugin does not score it",
    Reason.NO_METRICS: "no metrics reported for the node",
    Reason.NO_MODEL: "no model configured",
    Reason.MODEL_MISSING: "the model directory has no model",
    Reason.MODEL_CORRUPT: "the model could not be loaded",
    Reason.PREDICT_ERROR: "the model failed to predict",
    Reason.NON_FINITE_SCORE: "the model predicted a non-finite cost",
    Reason.PROMETHEUS_DISABLED: "no metrics source configured",
    Reason.PROMETHEUS_UNAVAILABLE: "metrics unavailable or stale",
    Reason.POLICY_DECLINED: "the policy found no node although one fits",
    Reason.WAITING: "every fitting node is predicted to run hot: waiting",
    Reason.CACHE_UNAVAILABLE: "the watch cache has not listed the cluster yet",
    Reason.RESERVE_REFUSED: "a reserve plugin refused the node",
}
assert set(_TEXT) == set(Reason)

FALLBACK_REASONS: frozenset[Reason] = frozenset({
    Reason.NO_MODEL, Reason.MODEL_MISSING, Reason.MODEL_CORRUPT, Reason.PREDICT_ERROR,
    Reason.NON_FINITE_SCORE, Reason.PROMETHEUS_DISABLED, Reason.PROMETHEUS_UNAVAILABLE,
})
"""A score plugin failing for one of these hands the scoring to the profile's fallback plugins:
the scorer's inputs are missing or broken, the nodes are fine."""


@dataclass(frozen=True, slots=True)
class Status:
    """A plugin's or a cycle's outcome: a code, the reason (None on success), the plugin, detail."""

    code: Code = Code.SUCCESS
    reason: Reason | None = None
    message: str = ""
    plugin: str = ""

    @property
    def ok(self) -> bool:
        return self.code is Code.SUCCESS

    @classmethod
    def unschedulable(cls, reason: Reason, message: str = "", plugin: str = "") -> "Status":
        return cls(Code.UNSCHEDULABLE, reason, message, plugin)

    @classmethod
    def error(cls, reason: Reason, message: str = "", plugin: str = "") -> "Status":
        return cls(Code.ERROR, reason, message, plugin)

    @classmethod
    def skip(cls, reason: Reason, plugin: str = "") -> "Status":
        return cls(Code.SKIP, reason, "", plugin)

    @classmethod
    def wait(cls, reason: Reason = Reason.WAITING, message: str = "", plugin: str = "") -> "Status":
        return cls(Code.WAIT, reason, message, plugin)


SUCCESS = Status()


class CycleState(dict):
    """Per-cycle scratch space shared by the plugins of one cycle (kube-scheduler's CycleState).

    A plugin that runs at two extension points computes its inputs once, keyed by its name
    (Koordinator's usage estimate serves its filter and its score).
    """


@dataclass(frozen=True, slots=True)
class Filtered:
    """A filter's answer: ``feasible`` per node, and per reason the nodes it rejected for it."""

    feasible: np.ndarray  # bool, one per view node
    failures: Mapping[Reason, np.ndarray] = field(default_factory=dict)  # bool masks


@runtime_checkable
class FilterPlugin(Protocol):
    name: str

    def filter(self, pod: PodSpec, view: ClusterView, state: CycleState) -> Filtered: ...


@runtime_checkable
class ScorePlugin(Protocol):
    """``score`` returns one number per node of ``nodes`` (view indices), or a non-success Status."""

    name: str

    def score(self, pod: PodSpec, view: ClusterView, nodes: np.ndarray, state: CycleState
              ) -> np.ndarray | Status: ...


@runtime_checkable
class NormalizeScorePlugin(Protocol):
    """A score plugin with this method has its scores over the feasible nodes rescaled by it."""

    def normalize_score(self, pod: PodSpec, scores: np.ndarray, state: CycleState) -> np.ndarray: ...


@runtime_checkable
class ReservePlugin(Protocol):
    name: str

    def reserve(self, pod: PodSpec, view: ClusterView, node: int, state: CycleState) -> Status: ...

    def unreserve(self, pod: PodSpec, view: ClusterView, node: int, state: CycleState) -> None: ...


@runtime_checkable
class HostSelector(Protocol):
    """A profile's own pick among the scored nodes, replacing :func:`select_host` (the learned
    policy breaks near-ties by what its objective implies). It may read what its score plugin left
    in ``state``."""

    def select_host(self, candidates: np.ndarray, totals: np.ndarray, state: CycleState,
                    rng: np.random.Generator) -> int | None: ...


@dataclass(frozen=True, slots=True)
class Weighted:
    """A score plugin in a profile, with its weight (kube-scheduler allows 1..100; profile builders
    leave a plugin of weight 0 out rather than multiply by 0)."""

    plugin: ScorePlugin
    weight: int | float = 1


@dataclass(frozen=True)
class Profile:
    """The plugins of a policy at each extension point, in the order they run."""

    filters: tuple[FilterPlugin, ...]
    scores: tuple[Weighted, ...] = ()
    reserves: tuple[ReservePlugin, ...] = ()
    fallback: tuple[Weighted, ...] = ()
    """Score plugins that take over when one of ``scores`` fails with a fallback-eligible reason."""
    selector: HostSelector | None = None
    """The pick when ``scores`` decided (None, and always after a fallback: :func:`select_host`)."""


@dataclass(frozen=True)
class CycleResult:
    """One cycle's outcome: the chosen view index (None: the pod stays pending) and why.

    ``status`` is the cycle's verdict. ``fallback`` is the failure of the score plugin whose
    reason made the profile's fallback score instead (None if it did not). ``candidates`` are the
    feasible nodes and ``plugin_scores`` each score plugin's (normalised, unweighted) scores over
    them; ``diagnosis`` counts, for a pod that fits nowhere, the nodes each (filter plugin,
    reason) rejected, first failing plugin only. ``state`` is what the plugins left in the cycle.
    """

    choice: int | None
    status: Status
    candidates: np.ndarray
    plugin_scores: dict[str, np.ndarray] = field(default_factory=dict)
    totals: np.ndarray | None = None
    fallback: Status | None = None
    diagnosis: dict[tuple[str, Reason], int] = field(default_factory=dict)
    state: CycleState = field(default_factory=CycleState)


def select_host(candidates: np.ndarray, totals: np.ndarray, rng: np.random.Generator) -> int | None:
    """The candidate with the highest total, ties broken uniformly at random.

    kube-scheduler keeps the best score with reservoir sampling (schedule_one.go selectHost),
    which is a uniform choice among the tied nodes. The generator is drawn from only when two or
    more nodes tie, once: every policy's random stream depends on exactly this.
    """
    if candidates.size == 0:
        return None
    best = candidates[totals == totals.max()]
    if best.size == 1:
        return int(best[0])
    return int(best[rng.integers(best.size)])


def default_normalize_score(scores: np.ndarray, reverse: bool = False) -> np.ndarray:
    """kube-scheduler's helper.DefaultNormalizeScore: scale so the highest is 100 (integers).

    ``score * 100 // max``; with ``reverse`` the result is ``100 - that`` (lower raw is better).
    All zero: 0 everywhere, or 100 with ``reverse``.
    """
    scores = np.asarray(scores, dtype=np.int64)
    top = int(scores.max()) if scores.size else 0
    if top == 0:
        return np.full(scores.shape, MAX_NODE_SCORE if reverse else 0, dtype=np.int64)
    out = scores * MAX_NODE_SCORE // top
    return MAX_NODE_SCORE - out if reverse else out


def run_filters(filters: tuple[FilterPlugin, ...], pod: PodSpec, view: ClusterView, state: CycleState
                ) -> tuple[np.ndarray, list[tuple[str, Filtered]]]:
    """The nodes every filter passes, and each filter's answer (for :func:`diagnose`)."""
    feasible = np.ones(view.n_nodes, dtype=bool)
    answers = []
    for plugin in filters:
        answer = plugin.filter(pod, view, state)
        answers.append((plugin.name, answer))
        feasible = feasible & answer.feasible
    return feasible, answers


def diagnose(answers: list[tuple[str, Filtered]], n_nodes: int) -> dict[tuple[str, Reason], int]:
    """Nodes rejected per (plugin, reason), each node charged to the first plugin that rejected it."""
    open_ = np.ones(n_nodes, dtype=bool)
    counts: dict[tuple[str, Reason], int] = {}
    for name, answer in answers:
        rejected = open_ & ~answer.feasible
        for reason, mask in answer.failures.items():
            k = int((rejected & mask).sum())
            if k:
                counts[(name, reason)] = k
        open_ = open_ & answer.feasible
    return counts


def _unschedulable(counts: dict[tuple[str, Reason], int], n_nodes: int) -> Status:
    parts = ", ".join(f"{k} {reason.text}" for (_, reason), k in counts.items())
    message = f"0/{n_nodes} nodes are available" + (f": {parts}." if parts else ".")
    if not counts:
        return Status(Code.UNSCHEDULABLE, None, message)
    (plugin, reason), _ = max(counts.items(), key=lambda item: item[1])  # first of the largest
    return Status.unschedulable(reason, message, plugin)


def score_nodes(scores: tuple[Weighted, ...], pod: PodSpec, view: ClusterView, nodes: np.ndarray,
                state: CycleState) -> tuple[np.ndarray | None, dict[str, np.ndarray], Status]:
    """``sum(weight * score)`` over ``nodes``, plugin by plugin in profile order.

    Returns the totals (int64 zeros when no plugin scored), each plugin's scores, and SUCCESS, or
    (None, ..., the failing plugin's Status) when one fails.
    """
    total = None
    per_plugin: dict[str, np.ndarray] = {}
    for weighted in scores:
        plugin = weighted.plugin
        got = plugin.score(pod, view, nodes, state)
        if isinstance(got, Status):
            if got.code is Code.SKIP:
                continue
            return None, per_plugin, got if got.plugin else Status(got.code, got.reason, got.message, plugin.name)
        normalize = getattr(plugin, "normalize_score", None)
        if normalize is not None:
            got = normalize(pod, got, state)
        per_plugin[plugin.name] = got
        part = weighted.weight * got
        total = part if total is None else total + part
    if total is None:
        total = np.zeros(nodes.size, dtype=np.int64)
    return total, per_plugin, SUCCESS


def score_cycle(profile: Profile, pod: PodSpec, view: ClusterView) -> CycleResult:
    """The first half of a cycle: filter once, score, normalise, weigh, with the fallback rule.

    No pick and no reserve (``choice`` is None, no random draw): what an extender's prioritize
    verb answers, and what :func:`run_cycle` picks from. ``totals`` is None when the pod fits
    nowhere or scoring failed (``status`` says why); ``fallback`` is set as in :func:`run_cycle`.
    """
    state = CycleState()
    feasible, answers = run_filters(profile.filters, pod, view, state)
    candidates = np.flatnonzero(feasible)
    if candidates.size == 0:
        counts = diagnose(answers, view.n_nodes)
        return CycleResult(None, _unschedulable(counts, view.n_nodes), candidates, diagnosis=counts, state=state)
    totals, per_plugin, status = score_nodes(profile.scores, pod, view, candidates, state)
    fallback = None
    if totals is None:
        if status.reason not in FALLBACK_REASONS or not profile.fallback:
            return CycleResult(None, status, candidates, per_plugin, state=state)
        fallback = status
        totals, per_plugin, status = score_nodes(profile.fallback, pod, view, candidates, state)
        if totals is None:
            return CycleResult(None, status, candidates, per_plugin, fallback=fallback, state=state)
    return CycleResult(None, SUCCESS, candidates, per_plugin, totals, fallback, state=state)


def run_cycle(profile: Profile, pod: PodSpec, view: ClusterView, rng: np.random.Generator) -> CycleResult:
    """One scheduling cycle: :func:`score_cycle`, then pick and reserve."""
    scored = score_cycle(profile, pod, view)
    if scored.totals is None:
        return scored
    candidates, per_plugin, totals, fallback, state = (scored.candidates, scored.plugin_scores, scored.totals,
                                                       scored.fallback, scored.state)
    if profile.selector is not None and fallback is None:
        choice = profile.selector.select_host(candidates, totals, state, rng)
    else:
        choice = select_host(candidates, totals, rng)
    for i, plugin in enumerate(profile.reserves):
        verdict = plugin.reserve(pod, view, choice, state)
        if not verdict.ok:
            for earlier in reversed(profile.reserves[:i]):
                earlier.unreserve(pod, view, choice, state)
            verdict = verdict if verdict.plugin else Status(verdict.code, verdict.reason, verdict.message, plugin.name)
            return CycleResult(None, verdict, candidates, per_plugin, totals, fallback, state=state)
    return CycleResult(choice, SUCCESS, candidates, per_plugin, totals, fallback, state=state)


class FrameworkPolicy:
    """A policy that is a :class:`Profile`: ``select`` runs the cycle with the policy's generator.

    Subclasses set ``name``, ``rng`` and ``profile``; :class:`ScoredPolicy` adds ``scores``.
    """

    name: str
    rng: np.random.Generator
    profile: Profile

    @property
    def fallbacks(self) -> int:
        """Decisions this policy handed to its fallback score (0 for a profile without one; the
        learned policy counts them by reason). Reports add it as ``fallback_decisions``."""
        return 0

    def cycle(self, pod: PodSpec, view: ClusterView) -> CycleResult:
        return run_cycle(self.profile, pod, view, self.rng)

    def score_cycle(self, pod: PodSpec, view: ClusterView) -> CycleResult:
        """The cycle's filter and score points only (:func:`score_cycle`): no pick, no draw."""
        return score_cycle(self.profile, pod, view)

    def select(self, pod: PodSpec, view: ClusterView) -> int | None:
        return self.cycle(pod, view).choice


class ScoredPolicy(FrameworkPolicy):
    """A framework policy that also tells its total score for every view node, feasible or not
    (the extender stretches these onto 0..10)."""

    def scores(self, pod: PodSpec, view: ClusterView) -> np.ndarray:
        totals, _, status = score_nodes(self.profile.scores, pod, view, np.arange(view.n_nodes), CycleState())
        if totals is None:
            raise RuntimeError(f"{self.name}: {status.plugin} failed: {status.reason} {status.message}")
        return totals


class ProfilePolicy(ScoredPolicy):
    """A policy given as a name and a profile (what the registry builds for a new score plugin)."""

    def __init__(self, name: str, profile: Profile, rng: np.random.Generator, args=None) -> None:
        self.name = name
        self.profile = profile
        self.rng = rng
        self.args = args
