"""Pick a node for a pod: the learned policy, with a counted fallback for every way it can fail.

The model layer may fail; scheduling may not. A decision uses default scoring (kube-scheduler's
LeastAllocated + BalancedAllocation) and counts the reason when:

* ``prometheus_disabled`` / ``prometheus_unavailable``: no metrics, or metrics older than the
  staleness limit (the model was trained on fresh ones);
* ``no_model`` / ``model_missing`` / ``model_corrupt`` / ``predict_error`` / ``non_finite_score``:
  :class:`~neurokube.model.policy.LearnedPolicy`'s own reasons;
* ``policy_declined``: the policy found no node although the filter did (a peer's own filter,
  such as Koordinator's load thresholds, left a pod that fits pending).

The view holds only the nodes the edge's exact filter passed (``ClusterView.prefiltered``), so the
policies' fit filter takes that verdict: a pod is filtered once.

With ``epsilon > 0`` a share of decisions goes to a uniformly random feasible node; every
decision carries the exact propensity of each candidate and the candidates' features, for the
decision log and off-policy evaluation.

The model comes from one of two places:
* the MLflow champion (``NEUROKUBE_MLFLOW_URI``): :class:`~neurokube.live.champion.ChampionSync`
  loads each new version in the background and calls :meth:`Decider.install`, which swaps the
  policy under the decision lock, so every decision sees either the old model or the new one;
* a local model directory (``NEUROKUBE_MODEL_DIR``), re-checked every ``model_reload_s``; a new
  model there that fails to load leaves the current one serving. With MLflow configured too, the
  directory is the model served until the first champion arrives, and is no longer watched after.

A scheduling profile (:mod:`neurokube.live.profile`) may name the policy instead: ``neurokube:...``
sets the learned policy's arguments (e.g. ``node_hour_cost``), any other spec is that peer, built
by the replay's registry and fed the same view. A peer reads the view's metrics as it finds them
(no metrics: its own rule, e.g. TLP scores such a node 0), so only ``policy_declined`` applies to
it. Every choice names the spec that decided (or ``default`` on a fallback).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from neurokube.adapters.model_files import load_learned_policy
from neurokube.features import FEATURE_VERSION, candidate_features
from neurokube.live.telemetry import Telemetry
from neurokube.logs import event
from neurokube.model.policy import LearnedArgs, LearnedPolicy
from neurokube.model.value_model import Predictor, ValueModel
from neurokube.policies.base import ClusterView, PodSpec
from neurokube.policies.common import fits, pick_best
from neurokube.policies.default import DefaultPolicy
from neurokube.policies.framework import Reason, ScoredPolicy
from neurokube.policies.registry import LEARNED, make_policy
from neurokube.policies.spec import PolicySpec, typed_args

log = logging.getLogger("neurokube.live.decide")
MAX_EXTENDER_SCORE = 10


@dataclass(frozen=True)
class Choice:
    index: int  # into the view
    policy: str  # the policy that chose: "neurokube" (or the profile's spec) or "default"
    fallback: str  # why the learned policy did not ("" if it did)
    model_version: str
    candidates: np.ndarray  # view indices of the nodes that fit
    features: np.ndarray  # one row per candidate
    propensity: np.ndarray  # probability of each candidate under the behaviour policy


class Decider:
    def __init__(self, model_dir: Path | None, telemetry: Telemetry, *, seed: int = 0, epsilon: float = 0.0,
                 reload_s: float = 60.0, metrics_configured: bool = True,
                 clock: Callable[[], float] = time.monotonic, spec: PolicySpec | None = None,
                 compiler: Callable[[ValueModel], Mapping[str, Predictor]] | None = None) -> None:
        """``spec``: the profile's policy (None: the learned policy as trained, named ``neurokube``).
        ``compiler``: compiles each model served, in the background
        (:func:`~neurokube.adapters.compiled_model.compile_model`); None: LightGBM predicts."""
        self.compiler = compiler
        self.compiling: threading.Thread | None = None  # the latest background compilation
        self.model_dir = model_dir
        self.telemetry = telemetry
        self.epsilon = epsilon
        self.reload_s = reload_s
        self.metrics_configured = metrics_configured
        self.clock = clock
        self.rng = np.random.default_rng(seed)
        self._lock = threading.Lock()
        self.spec = spec
        self.peer = None
        self.learned_args = typed_args(LearnedArgs, spec) if spec is not None and spec.name == LEARNED \
            else LearnedArgs()
        if spec is not None and spec.name != LEARNED:
            self.peer = make_policy(spec, trace=None, seed=int(self.rng.integers(2**31)))
            self.model_dir = None  # a peer needs no model: nothing to load or watch
            self.policy = LearnedPolicy(None, self.rng, "no_model")  # never asked; keeps model_version "none"
            event(log, "profile policy", policy=spec.text)
        self._stamp = self._manifest_stamp()
        if self.peer is None:
            self.policy = self._load()
            self._compile_later(self.policy)
        self._checked_at = clock()
        self.default = DefaultPolicy(self.rng)

    @property
    def policy_name(self) -> str:
        """The name decisions record: the profile's spec text, or ``neurokube`` without a profile."""
        return self.spec.text if self.spec is not None else LearnedPolicy.name

    # -- model ---------------------------------------------------------------------------------

    @property
    def model_version(self) -> str:
        return self.policy.version

    def _manifest_stamp(self) -> tuple[int, int] | None:
        if self.model_dir is None:
            return None
        try:
            stat = (Path(self.model_dir) / "manifest.json").stat()
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size)

    def _learned(self) -> LearnedPolicy:
        policy = load_learned_policy(self.model_dir, seed=int(self.rng.integers(2**31)),
                                     node_hour_cost=self.learned_args.node_hour_cost,
                                     wait_above_core_s=self.learned_args.wait_above_core_s,
                                     tie_core_s=self.learned_args.tie_core_s,
                                     tie_from_requested=self.learned_args.tie_from_requested)
        policy.name = self.policy_name
        return policy

    def _load(self) -> LearnedPolicy:
        policy = self._learned()
        self.telemetry.model_loaded(policy.version, FEATURE_VERSION, str(self.model_dir or ""))
        event(log, "model loaded" if policy.model is not None else "no usable model, default scoring",
              model_version=policy.version, model_dir=str(self.model_dir or ""))
        return policy

    def _compile_later(self, policy: LearnedPolicy) -> threading.Thread | None:
        """Compile ``policy``'s model in a background thread and predict through the compiled trees
        once they are ready, if that policy still serves; LightGBM predicts until then, and for good
        when compiling fails (counted, logged). The thread, for tests to wait on."""
        model = policy.model
        if self.compiler is None or model is None:
            return None

        def run() -> None:
            started = time.perf_counter()
            try:
                predictors = self.compiler(model)
            except Exception as exc:  # noqa: BLE001 - the AI layer may fail; scheduling may not
                self.telemetry.model_compiles.labels(result="failed").inc()
                event(log, "could not compile the model; LightGBM keeps predicting", logging.WARNING,
                      model_version=model.version, error=str(exc))
                return
            with self._lock:
                current = self.policy is policy and policy.model is model
                if current:
                    policy.use_model(model.with_compiled(predictors))
            self.telemetry.model_compiles.labels(result="compiled" if current else "superseded").inc()
            event(log, "model compiled" if current else "model compiled after it was replaced; not used",
                  model_version=model.version, seconds=round(time.perf_counter() - started, 2))

        thread = threading.Thread(target=run, name="model-compile", daemon=True)
        thread.start()
        self.compiling = thread
        return thread

    def install(self, model: ValueModel, source: str) -> None:
        """Serve ``model`` from the next decision on (the MLflow champion; ``source`` its URI).

        The swap is atomic: the policy is built outside the lock and replaced under it. The local
        model directory, if any, is no longer watched. A profile's peer policy ignores models."""
        if self.peer is not None:
            return
        if self.learned_args.node_hour_cost is not None:
            model = replace(model, weights=replace(model.weights, node_hour=float(self.learned_args.node_hour_cost)))
        with self._lock:
            seed = int(self.rng.integers(2**31))
        policy = LearnedPolicy(model, np.random.default_rng(seed),
                               wait_above_core_s=self.learned_args.wait_above_core_s,
                               tie_core_s=self.learned_args.tie_core_s,
                               tie_from_requested=self.learned_args.tie_from_requested)
        policy.name = self.policy_name
        with self._lock:
            self.policy = policy
            self.model_dir = None
            self._stamp = None
        self.telemetry.model_loaded(policy.version, FEATURE_VERSION, source)
        self.telemetry.model_reloads.labels(result="loaded").inc()
        event(log, "model installed", model_version=policy.version, source=source)
        self._compile_later(policy)

    def maybe_reload(self) -> None:
        """Called under the lock before each decision; cheap unless the period has elapsed."""
        now = self.clock()
        if self.peer is not None or now - self._checked_at < self.reload_s:
            return
        self._checked_at = now
        stamp = self._manifest_stamp()
        if stamp == self._stamp:
            return
        self._stamp = stamp
        candidate = self._learned()
        if candidate.model is None and self.policy.model is not None:
            event(log, "new model did not load; keeping the current one", logging.WARNING,
                  model_version=self.policy.version)
            self.telemetry.model_reloads.labels(result="failed").inc()
            return
        self.policy = candidate
        self.telemetry.model_loaded(candidate.version, FEATURE_VERSION, str(self.model_dir or ""))
        self.telemetry.model_reloads.labels(result="loaded").inc()
        event(log, "model reloaded", model_version=candidate.version)
        self._compile_later(candidate)

    # -- decisions ------------------------------------------------------------------------------

    def _metrics_reason(self, metrics_fresh: bool) -> Reason | None:
        if not self.metrics_configured:
            return Reason.PROMETHEUS_DISABLED
        return None if metrics_fresh else Reason.PROMETHEUS_UNAVAILABLE

    def _count(self, reason: Reason | None) -> str:
        """Count a fallback under its enum reason's label; the label ("" for none)."""
        if reason is None:
            return ""
        self.telemetry.fallbacks.labels(reason=reason.value).inc()
        return reason.value

    def choose(self, pod: PodSpec, view: ClusterView, metrics_fresh: bool) -> Choice | None:
        """The node for ``pod`` among the view's nodes, or None if none fits."""
        candidates = np.flatnonzero(fits(pod, view))
        with self._lock:
            self.maybe_reload()
            policy = self.policy
            reason = None if self.peer is not None else self._metrics_reason(metrics_fresh)
            features = None
            if self.peer is not None:
                choice = self.peer.select(pod, view)
            elif reason is not None:
                choice = self.default.select(pod, view)
            else:
                result = policy.cycle(pod, view)
                choice = result.choice
                failed = policy.fallback(result)  # the cycle's enum reason; None if the model decided
                reason = failed.reason if failed is not None else None
                seen = policy.candidate_features(result)
                if seen is not None and np.array_equal(seen[0], candidates):
                    features = seen[1]
            if choice is None and candidates.size:
                # A peer's own filter (Koordinator's load thresholds) left a pod that fits pending.
                choice = pick_best(self.default.scores(pod, view), np.isin(np.arange(view.n_nodes), candidates),
                                   self.rng)
                reason = reason or Reason.POLICY_DECLINED
            if choice is None:
                return None
            name = "default" if reason is not None else self.policy_name
            chosen = int(choice)
            if self.epsilon > 0 and self.rng.random() < self.epsilon:
                chosen = int(candidates[self.rng.integers(candidates.size)])
            model_version = policy.version
        label = self._count(reason)
        if features is None:
            features = candidate_features(pod, view, candidates)
        propensity = np.full(candidates.size, self.epsilon / candidates.size)
        propensity[candidates == choice] += 1.0 - self.epsilon
        return Choice(chosen, name, label, model_version, candidates, features, propensity)

    def scores(self, pod: PodSpec, view: ClusterView, metrics_fresh: bool) -> tuple[np.ndarray, str]:
        """Extender scores 0..10 per view node (10 = lowest expected cost), and the fallback reason.

        The learned policy's :meth:`~neurokube.model.policy.LearnedPolicy.scores` runs the cycle's
        filter and score points and says why it fell back, as an enum reason counted here. On any
        fallback every node scores 0: the extender then adds nothing, and kube-scheduler's own
        scoring decides alone.
        """
        if self.peer is not None:  # its own scores over the fitting nodes (``random`` has none: all 0)
            candidates = np.flatnonzero(fits(pod, view))
            if not isinstance(self.peer, ScoredPolicy) or candidates.size == 0:
                return np.zeros(view.n_nodes, dtype=np.int64), ""
            with self._lock:
                raw = np.asarray(self.peer.scores(pod, view), dtype=np.float64)
            return stretch(raw, candidates), ""
        with self._lock:
            self.maybe_reload()
            reason = self._metrics_reason(metrics_fresh)
            raw = None
            if reason is None:
                raw, failed = self.policy.scores(pod, view)
                reason = failed.reason if failed is not None else None
                if failed is not None and failed.reason is Reason.PREDICT_ERROR:
                    event(log, "model failed while scoring", logging.WARNING, error=failed.message)
        if reason is not None:
            return np.zeros(view.n_nodes, dtype=np.int64), self._count(reason)
        return stretch(raw, np.flatnonzero(np.isfinite(raw))), ""


def stretch(raw: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    """Extender scores 0..10 over ``raw``'s nodes: ``nodes``' raw scores mapped linearly (highest
    10, lowest 0; all 10 when they tie), every other node 0."""
    out = np.zeros(raw.size, dtype=np.int64)
    if nodes.size == 0:
        return out
    part = raw[nodes]
    spread = float(part.max() - part.min())
    if spread <= 1e-12:
        out[nodes] = MAX_EXTENDER_SCORE
    else:
        out[nodes] = np.floor(MAX_EXTENDER_SCORE * (part - part.min()) / spread + 0.5).astype(np.int64)
    return out
