"""collect -> fit -> improved policy, for N iterations, with a learning curve and an OPE check.

* Iteration 0 collects experience from the hand-written policies with epsilon-greedy
  exploration, so the first model sees packing, spreading and load-aware placements and their
  consequences.
* Every later iteration collects with the current model (epsilon-greedy) and refits on all the
  experience so far: a replay buffer, as in fitted-Q / batch bandit learning.
* After each fit the new model runs greedily on every training trace. That gives the learning
  curve, and the actual mean reward per decision that the off-policy estimates of the same
  model (from the previous iteration's logs) are compared with.
* ``state_aware_discount`` > 0 fits each model by fitted Q iteration over the later decisions on
  the same node (:mod:`neurokube.learning.lookahead`) instead of on one-step targets; 0, the
  default, is today's one-step fit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from neurokube.errors import InputError
from neurokube.features import FEATURE_NAMES
from neurokube.learning.collect import Episode, run_episode
from neurokube.learning.fit import FitSettings, fit_value_model
from neurokube.learning.lookahead import fit_state_aware
from neurokube.model.decision_log import FEATURE_COLUMNS
from neurokube.model.ope import estimate, greedy_choice
from neurokube.model.policy import LearnedPolicy
from neurokube.model.reward import RewardWeights
from neurokube.model.value_model import ValueModel
from neurokube.policies import make_policy
from neurokube.sim import SimConfig
from neurokube.trace.model import Trace

BEHAVIOUR_POLICIES = ("default", "most-allocated", "tlp", "lvrb", "koordinator")


@dataclass(frozen=True)
class TrainSettings:
    iterations: int = 3
    epsilon_initial: float = 0.2
    """Exploration of the hand-written behaviour policies in iteration 0."""
    epsilon: float = 0.1
    """Exploration around the current model in later iterations."""
    weights: RewardWeights = field(default_factory=RewardWeights)
    fit: FitSettings = field(default_factory=FitSettings)
    seed: int = 0
    sim: SimConfig = field(default_factory=SimConfig)
    state_aware_discount: float = 0.0
    """Discount of the cost the later decisions on the same node incur, bootstrapped from the
    model (:mod:`neurokube.learning.lookahead`); 0 fits today's one-step targets."""
    collections: int = 1
    """Exploration runs of every behaviour policy on every trace in iteration 0, each with its own
    exploration seed; their decisions are pooled into one fit (more data, the same model size)."""


@dataclass
class TrainResult:
    model: ValueModel
    curve: list[dict]
    ope: list[dict]
    decisions: pd.DataFrame


Progress = Callable[[str], None]


COLLECTION_SEED_STRIDE = 7_919
"""Seed offset between successive collections: larger than every offset within one collection
(``100 x trace + policy``) for fewer than 79 traces, so no two collections share a seed."""

OPE_SAMPLE = 20_000
"""Decisions drawn (uniformly, seeded) for the off-policy estimate; every candidate row of a
drawn decision is scored, so this bounds the work to about ``OPE_SAMPLE x nodes`` predictions."""


def ope_report(model: ValueModel, episodes: list[Episode], sample: int = OPE_SAMPLE, seed: int = 0) -> dict:
    """Off-policy estimate of ``model``'s greedy policy from logged ``episodes``."""
    decs = pd.concat([e.decisions for e in episodes if len(e.decisions)], ignore_index=True)
    if len(decs) > sample:
        decs = decs.sample(n=sample, random_state=seed)
    wanted = set(decs["decision_id"])
    cands = pd.concat([e.candidates[e.candidates["decision_id"].isin(wanted)] for e in episodes
                       if len(e.candidates)], ignore_index=True)
    group = pd.factorize(cands["decision_id"])[0]
    order = np.argsort(group, kind="stable")
    cands = cands.iloc[order].reset_index(drop=True)
    group = group[order]
    cost = model.cost(cands[list(FEATURE_COLUMNS)].to_numpy(dtype=np.float32))
    target = greedy_choice(group, cost)
    ids = pd.unique(cands["decision_id"])
    reward = -decs.set_index("decision_id").loc[ids, "cost"].to_numpy(dtype=np.float64)
    return estimate(group, cands["chosen"].to_numpy(bool), cands["propensity"].to_numpy(float), target,
                    -cost, reward).to_dict()


def train(traces: list[Trace], settings: TrainSettings = TrainSettings(),
          progress: Progress = lambda _msg: None) -> TrainResult:
    if not traces:
        raise ValueError("no training traces")
    s = settings
    if not 0.0 <= s.state_aware_discount <= 1.0:
        raise InputError("the state-aware discount must be in [0, 1]", "train", f"got {s.state_aware_discount}")
    buffer: list[pd.DataFrame] = []
    lookahead = s.state_aware_discount > 0
    episodes: list[Episode] = []
    if s.collections < 1:
        raise InputError("at least one collection is needed", "train", f"got {s.collections}")
    for c in range(s.collections):
        base = s.seed + COLLECTION_SEED_STRIDE * c  # collection 0 is the single collection's, unchanged
        for i, trace in enumerate(traces):
            for j, name in enumerate(BEHAVIOUR_POLICIES):
                which = f" (collection {c + 1} of {s.collections})" if s.collections > 1 else ""
                progress(f"iteration 0: {name} (epsilon {s.epsilon_initial}) on {trace.name}{which}")
                ep = run_episode(trace, make_policy(name, trace=trace, seed=base + j),
                                 epsilon=s.epsilon_initial, seed=base + 100 * i + j, weights=s.weights,
                                 config=s.sim, successors_on_node=lookahead, run=f"c{c + 1}" if c else "")
                episodes.append(ep)
                buffer.append(ep.training_rows())
    curve: list[dict] = []
    ope: list[dict] = []
    best: tuple[float, ValueModel] | None = None
    model = None
    for it in range(s.iterations + 1):
        data = pd.concat(buffer, ignore_index=True)
        progress(f"iteration {it}: fitting on {len(data):,} decisions")
        info = {"iteration": it, "traces": [t.name for t in traces], "features": len(FEATURE_NAMES)}
        if lookahead:
            model = fit_state_aware(data, s.weights, s.state_aware_discount, s.fit, version=f"it{it}", info=info)
        else:
            model = fit_value_model(data, s.weights, s.fit, version=f"it{it}", info=info)
        estimate_now = ope_report(model, episodes)
        greedy = []
        for i, trace in enumerate(traces):
            progress(f"iteration {it}: evaluating the new model on {trace.name}")
            greedy.append(run_episode(trace, LearnedPolicy(model, np.random.default_rng(s.seed + i)), epsilon=0.0,
                                      seed=s.seed + i, weights=s.weights, config=s.sim, keep_candidates=False))
        actual = float(-pd.concat([g.decisions for g in greedy])["cost"].mean())
        row = {"iteration": it, "decisions": int(len(data)), "actual_reward_per_decision": actual}
        for key in ("contention_core_s", "node_hours", "pending_pod_s", "hot_node_fraction"):
            row[key] = float(np.mean([g.metrics[key] for g in greedy]))
        curve.append(row)
        ope.append({"iteration": it, **estimate_now, "actual": actual})
        progress(f"iteration {it}: contention {row['contention_core_s']:,.0f} core-s, "
                 f"node-hours {row['node_hours']:,.1f}, reward/decision {actual:,.2f} (OPE DR {estimate_now['dr']:,.2f})")
        score = -actual
        if best is None or score < best[0]:
            best = (score, model)
        if it == s.iterations:
            break
        episodes = []
        for i, trace in enumerate(traces):
            progress(f"iteration {it + 1}: collecting with the model (epsilon {s.epsilon}) on {trace.name}")
            ep = run_episode(trace, LearnedPolicy(model, np.random.default_rng(s.seed + it * 31 + i)),
                             epsilon=s.epsilon, seed=s.seed + 1000 * (it + 1) + i, weights=s.weights,
                             config=s.sim, model_version=model.version, successors_on_node=lookahead)
            episodes.append(ep)
            buffer.append(ep.training_rows())
    assert best is not None
    chosen = best[1]
    chosen.info["selected_iteration"] = int(chosen.info["iteration"])
    return TrainResult(model=chosen, curve=curve, ope=ope, decisions=pd.concat(buffer, ignore_index=True))
