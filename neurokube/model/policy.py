"""The ``neurokube`` placement policy: the lowest expected cost under the value model.

A framework profile (:mod:`neurokube.policies.framework`): the NodeResourcesFit filter, the
:class:`ValueScore` score plugin and, as the profile's fallback, kube-scheduler's default scoring.
Safe by construction:
- it only ever considers nodes where the requests fit (NodeResourcesFit), so it never picks an
  infeasible node;
- with no model, or a model that fails to load or predict, the score plugin fails with an enum
  reason (``no_model``, ``model_missing``, ``model_corrupt``, ``predict_error``,
  ``non_finite_score``) and the cycle's fallback rule scores with the default profile; the policy
  logs why once per reason and counts every fallback in ``fallbacks_by_reason``. Without a model
  every decision counts, one that fits nowhere too. :meth:`LearnedPolicy.fallback` is that rule,
  and callers (the live Decider, the extender's scores) read the reason from it, never from an
  exception.

Candidates whose expected cost is within a small tolerance of the best are broken by the objective
the rate implies: towards the node with the most requested CPU (packing: fewer node-hours) when a
node-hour costs anything, towards the lowest projected CPU peak (spreading) when
``node_hour_cost=0``; then at random. The tolerance is ``tie_core_s`` (1e-3 core-s by default, exact
ties only): wider, it hands more decisions to request packing, which keeps whole nodes' free room
for big pods and so cuts pending time, at the price of node-hours (the model's own choices spread
requests over the nodes its occupancy model expects to stay busy). ``tie_from_requested`` widens
the ties only while the cluster's requested CPU is at least that share of its allocatable CPU:
pods wait for room only in a nearly full cluster, so below it the model's own choices stand.

In large clusters the model scores a shortlist. Features are computed for every feasible node
(vectorised, about 0.2 ms for 1,000 nodes). The ``shortlist`` best go to the model, half by
lowest projected peak CPU and half by most requested CPU among nodes projected to stay under
capacity. A LightGBM call costs about half a millisecond however few rows it gets, and its cost
per row grows with the trees, so scoring 1,000 rows would take 10-20 ms.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, replace

import numpy as np

from neurokube.features import FEATURE_NAMES, candidate_features
from neurokube.logs import event
from neurokube.model.reward import RewardWeights
from neurokube.model.value_model import ValueModel, combine
from neurokube.policies.base import ClusterView, PodSpec
from neurokube.policies.default import FIT_FILTER, DefaultArgs, kube_profile
from neurokube.policies.framework import CycleResult, CycleState, FrameworkPolicy, Profile, Reason, Status, Weighted

log = logging.getLogger(__name__)
REQ_CPU_COLUMN = FEATURE_NAMES.index("req_cpu_frac_after")
PROJ_PEAK_COLUMN = FEATURE_NAMES.index("proj_cpu_peak_frac")
DEFAULT_SHORTLIST = 64
RELATIVE_TIE = 1e-3
ABSOLUTE_TIE = 1e-3
CANDIDATES_KEY = "/candidates"  # cycle state: every candidate the score plugin saw and its features
TIE_KEY = "/tie"  # cycle state: the near-tie width of this decision (tie_core_s, or exact below tie_from_requested)


@dataclass(frozen=True)
class LearnedArgs:
    """Arguments of the ``neurokube`` policy spec (``neurokube:model=DIR,node_hour_cost=60``).

    ``node_hour_cost`` is the exchange rate applied at decision time, in core-seconds of CPU
    contention per node-hour: the model predicts contention, node-hours (and memory overflow)
    separately, so any rate works without retraining. ``None`` keeps the rate recorded in the
    model's manifest, the one it was trained with (360 unless ``neurokube train
    --node-hour-cost`` said otherwise).
    """

    model: str | None = None
    node_hour_cost: float | None = None
    max_wait_steps: int = 0
    """The wait action: when every feasible node is predicted to add more than ``wait_above_core_s``
    of contention, leave the pod pending for a step, at most this many steps in a row; then place it
    on the best node anyway. 0 (the default) never waits."""
    wait_above_core_s: float = 60.0
    """Predicted added contention (core-seconds) above which a node counts as running hot."""
    tie_core_s: float = ABSOLUTE_TIE
    """Near-tie width: expected costs within this many core-seconds of the best (or 1e-3 of it
    relative, whichever is larger) are near-ties, which go to the most requested node (the lowest
    projected peak at ``node_hour_cost=0``). Wider ties hand more decisions to request packing: on
    the validation traces (summed) ``tie_core_s=10`` cut pending time by 12 % and raised node-hours by 6 %
    (docs/LEARNING.md). The default, 1e-3, only breaks exact ties."""
    tie_from_requested: float = 0.0
    """``tie_core_s`` applies only while the cluster's requested CPU is at least this share of its
    allocatable CPU (:meth:`ClusterView.requested_cpu_share`); below it only exact ties are broken.
    Pods wait when no single node has room for their request, which happens in a nearly full
    cluster: there the wide ties keep whole nodes' room free, and elsewhere the model's own choices
    (less contention, fewer node-hours) stand. 0 (the default): at any share."""

    def __post_init__(self) -> None:
        if not 0 <= self.tie_core_s <= 1e9:
            raise ValueError("tie_core_s must be in [0, 1e9] core-seconds")
        if not 0 <= self.tie_from_requested <= 1:
            raise ValueError("tie_from_requested must be a share of the cluster's CPU, in [0, 1]")
        if not 0 <= self.max_wait_steps <= 1440:
            raise ValueError("max_wait_steps must be in 0..1440")
        if not 0 <= self.wait_above_core_s <= 1e9:
            raise ValueError("wait_above_core_s must be in [0, 1e9]")
        if self.node_hour_cost is not None and not 0 <= self.node_hour_cost <= 1e9:
            raise ValueError("node_hour_cost must be in [0, 1e9] core-seconds per node-hour")
        if self.model is not None and not self.model.strip():
            raise ValueError("model must name a directory")

    def weights(self, trained: RewardWeights) -> RewardWeights:
        """The decision-time weights: ``trained`` with this spec's node-hour rate, if it sets one."""
        return trained if self.node_hour_cost is None else replace(trained, node_hour=self.node_hour_cost)


class ValueScore:
    """Score plugin: minus the value model's expected cost, over a shortlist of the feasible nodes.

    Nodes off the shortlist score ``-inf``. It is also the profile's host selector: near-ties in
    cost go to the node the objective prefers, then at random. It fails with an enum reason when
    there is no model, the model raises, or it predicts a non-finite cost, and returns ``Wait``
    for the bounded wait action.
    """

    name = "NeuroKubeValue"

    def __init__(self, model: ValueModel | None, missing_reason: Reason = Reason.NO_MODEL,
                 shortlist: int = DEFAULT_SHORTLIST, max_wait_steps: int = 0, wait_above_core_s: float = 60.0,
                 tie_core_s: float = ABSOLUTE_TIE, tie_from_requested: float = 0.0) -> None:
        self.model = model
        self.missing_reason = Reason(missing_reason)
        self.shortlist = max(2, shortlist)
        self.max_wait_steps = max_wait_steps
        self.wait_above_core_s = wait_above_core_s
        self.tie_core_s = tie_core_s
        self.tie_from_requested = tie_from_requested
        self.waits = 0
        self._waited: dict[int, int] = {}  # pod index -> steps waited in a row
        self.last_components: dict[str, np.ndarray] | None = None

    def shortlisted(self, features: np.ndarray) -> np.ndarray:
        """Rows of ``features`` the model should score (all of them in small clusters)."""
        n = features.shape[0]
        if n <= self.shortlist:
            return np.arange(n)
        half = self.shortlist // 2
        peak = features[:, PROJ_PEAK_COLUMN]
        packed = features[:, REQ_CPU_COLUMN]
        safest = np.argpartition(peak, half)[:half]
        fuller = np.lexsort((-packed, peak > 1.0))[:half]
        return np.union1d(safest, fuller)

    def costs(self, pod: PodSpec, view: ClusterView, candidates: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Shortlisted candidates, their features and expected costs, and every candidate's features."""
        features = candidate_features(pod, view, candidates)
        keep = self.shortlisted(features)
        self.last_components = self.model.components(features[keep])
        return candidates[keep], features[keep], combine(self.last_components, self.model.weights), features

    def _wait(self, pod: PodSpec) -> bool:
        """The bounded wait action: True to leave ``pod`` pending this step."""
        if self.max_wait_steps <= 0 or pod.index < 0:
            return False
        hot = float(self.last_components["contention"].min()) > self.wait_above_core_s
        waited = self._waited.get(pod.index, 0)
        if hot and waited < self.max_wait_steps:
            self._waited[pod.index] = waited + 1
            self.waits += 1
            return True
        self._waited.pop(pod.index, None)
        return False

    def score(self, pod: PodSpec, view: ClusterView, nodes: np.ndarray, state: CycleState) -> np.ndarray | Status:
        if self.model is None:
            return Status.error(self.missing_reason, plugin=self.name)
        try:
            kept, features, cost, every = self.costs(pod, view, nodes)
        except Exception as exc:  # noqa: BLE001 - the AI layer may fail; scheduling may not
            return Status.error(Reason.PREDICT_ERROR, f"{type(exc).__name__}: {exc}", self.name)
        if not np.isfinite(cost).all():
            return Status.error(Reason.NON_FINITE_SCORE, plugin=self.name)
        if self._wait(pod):
            return Status.wait(Reason.WAITING, plugin=self.name)
        state[self.name] = (kept, features, cost)
        state[self.name + TIE_KEY] = self._tie(view)
        state[self.name + CANDIDATES_KEY] = (nodes, every)
        out = np.full(nodes.size, -np.inf)
        out[np.searchsorted(nodes, kept)] = -cost
        return out

    def _tie(self, view: ClusterView) -> float:
        """The near-tie width for a decision in ``view``: ``tie_core_s`` from the requested share on."""
        if self.tie_from_requested <= 0 or self.tie_core_s <= ABSOLUTE_TIE:
            return self.tie_core_s
        return self.tie_core_s if view.requested_cpu_share() >= self.tie_from_requested else ABSOLUTE_TIE

    def select_host(self, candidates: np.ndarray, totals: np.ndarray, state: CycleState,
                    rng: np.random.Generator) -> int:
        """Among costs within a small tolerance of the best: the objective's preference, then random."""
        kept, features, cost = state[self.name]
        best = cost.min()
        near = np.flatnonzero(cost <= best + max(state[self.name + TIE_KEY], RELATIVE_TIE * abs(best)))
        if self.model.weights.node_hour > 0:  # ties go to fewer node-hours: the most requested node
            packed = features[near, REQ_CPU_COLUMN]
            top = near[packed == packed.max()]
        else:  # node-hours are free: ties go to the least risk, the lowest projected CPU peak
            peak = features[near, PROJ_PEAK_COLUMN]
            top = near[peak == peak.min()]
        return int(kept[top[rng.integers(top.size)] if top.size > 1 else top[0]])


class LearnedPolicy(FrameworkPolicy):
    name = "neurokube"

    def __init__(self, model: ValueModel | None, rng: np.random.Generator, fallback_reason: str = "no_model",
                 shortlist: int = DEFAULT_SHORTLIST, max_wait_steps: int = 0, wait_above_core_s: float = 60.0,
                 tie_core_s: float = ABSOLUTE_TIE, tie_from_requested: float = 0.0) -> None:
        self.plugin = ValueScore(model, Reason(fallback_reason) if model is None else Reason.NO_MODEL,
                                 shortlist, max_wait_steps, wait_above_core_s, tie_core_s, tie_from_requested)
        self.rng = rng
        self.profile = Profile(filters=(FIT_FILTER,), scores=(Weighted(self.plugin),),
                               fallback=kube_profile(DefaultArgs()).scores, selector=self.plugin)
        self.fallbacks_by_reason: Counter[str] = Counter()
        self.last: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # candidates, features, cost
        self.last_fallback: Reason | None = None
        """Why the latest decision fell back (None: the model decided, or nothing fitted with a model)."""

    @property
    def model(self) -> ValueModel | None:
        return self.plugin.model

    def use_model(self, model: ValueModel) -> None:
        """Score with ``model`` from the next decision on (the same trees, compiled: the caller holds
        the lock that orders decisions)."""
        self.plugin.model = model

    @property
    def shortlist(self) -> int:
        return self.plugin.shortlist

    @property
    def max_wait_steps(self) -> int:
        return self.plugin.max_wait_steps

    @property
    def wait_above_core_s(self) -> float:
        return self.plugin.wait_above_core_s

    @property
    def _waited(self) -> dict[int, int]:
        """Pods waiting now -> steps waited in a row (the wait action's state, in the plugin)."""
        return self.plugin._waited

    @property
    def waits(self) -> int:
        """Decisions that left a fitting pod pending (the wait action)."""
        return self.plugin.waits

    @property
    def last_components(self) -> dict[str, np.ndarray] | None:
        return self.plugin.last_components

    @property
    def fallbacks(self) -> int:
        return sum(self.fallbacks_by_reason.values())

    @property
    def version(self) -> str:
        return self.model.version if self.model is not None else "none"

    def shortlisted(self, features: np.ndarray) -> np.ndarray:
        return self.plugin.shortlisted(features)

    def fallback(self, result: CycleResult) -> Status | None:
        """Why ``result`` is not the model's: the score plugin's failure that made the cycle fall
        back (its reason is in ``FALLBACK_REASONS``), or, without a model, the missing model's
        reason even when nothing fitted (every decision counts). None: the model scored."""
        if result.fallback is not None:
            return result.fallback
        if self.model is None:
            return Status.error(self.plugin.missing_reason, plugin=self.plugin.name)
        return None

    def scored(self, result: CycleResult) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The shortlisted candidates, their features and expected costs behind ``result``'s
        choice (None unless the model chose)."""
        if result.choice is None or self.fallback(result) is not None:
            return None
        return result.state.get(self.plugin.name)

    def candidate_features(self, result: CycleResult) -> tuple[np.ndarray, np.ndarray] | None:
        """Every candidate the score plugin saw and its features, as the cycle computed them
        (None unless the model chose). The decision record needs them; computing them a second time
        took about 4 % of the binder's CPU in the 500-node scheduling bench (issue 13)."""
        if self.scored(result) is None:
            return None
        return result.state.get(self.plugin.name + CANDIDATES_KEY)

    def cycle(self, pod: PodSpec, view: ClusterView) -> CycleResult:
        """Run the cycle and account for it: ``last``, ``last_fallback`` and the fallback counts."""
        result = super().cycle(pod, view)
        failed = self.fallback(result)
        self.last_fallback = failed.reason if failed is not None else None
        if failed is not None:
            label = str(failed.reason)  # the plain label: an enum member hashes by its name, not its value
            if label not in self.fallbacks_by_reason:
                event(log, "learned policy falling back to default scoring", level=logging.WARNING,
                      reason=label, detail=failed.message)
            self.fallbacks_by_reason[label] += 1
        self.last = self.scored(result)
        return result

    def scores(self, pod: PodSpec, view: ClusterView) -> tuple[np.ndarray | None, Status | None]:
        """The value score of every view node and None, or (None, the fallback) as :meth:`fallback` says.

        The score is minus the expected cost, ``-inf`` where the pod does not fit or off the
        shortlist. The cycle's filter and score points only (the extender's prioritize): no pick,
        no draw, nothing counted.
        """
        result = self.score_cycle(pod, view)
        failed = self.fallback(result)
        if failed is not None:
            return None, failed
        out = np.full(view.n_nodes, -np.inf)
        value = result.plugin_scores.get(self.plugin.name)
        if value is not None:
            out[result.candidates] = value
        return out, None


def learned_policy(model: ValueModel | None, *, seed: int = 0, fallback_reason: str = "no_model",
                   node_hour_cost: float | None = None, max_wait_steps: int = 0, wait_above_core_s: float = 60.0,
                   tie_core_s: float = ABSOLUTE_TIE, tie_from_requested: float = 0.0) -> LearnedPolicy:
    """The learned policy of ``model``, its tie-breaks drawn from ``seed``; without a model, the
    fallback for ``fallback_reason`` (``no_model``, ``model_missing``, ``model_corrupt``).

    ``node_hour_cost`` (core-seconds of contention per node-hour) replaces the model's trained
    rate at decision time (the model's weights are set to it). A model directory is loaded at the
    edge: :func:`neurokube.adapters.model_files.load_learned_policy`.
    """
    rng = np.random.default_rng(seed)
    if model is None:
        return LearnedPolicy(None, rng, fallback_reason)
    if node_hour_cost is not None:
        model.weights = replace(model.weights, node_hour=float(node_hour_cost))
    return LearnedPolicy(model, rng, max_wait_steps=max_wait_steps, wait_above_core_s=wait_above_core_s,
                         tie_core_s=tie_core_s, tie_from_requested=tie_from_requested)
