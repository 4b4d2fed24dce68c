"""The bounded wait action: when every feasible node is predicted to run hot, the learned policy
leaves the pod pending for a step, at most ``max_wait_steps`` in a row, then places it on the best
node anyway. The replay counts every such decision (``waits``)."""

import numpy as np
import pytest

from neurokube.errors import InputError
from neurokube.model.policy import LearnedArgs, LearnedPolicy
from neurokube.model.reward import RewardWeights
from neurokube.model.value_model import ValueModel
from neurokube.policies.common import fits
from neurokube.policies.spec import parse_spec, typed_args
from neurokube.sim import SimConfig, replay
from neurokube.trace.assemble import ArrivalSettings
from neurokube.trace.synth import SynthSettings, synth_trace


class Constant:
    def __init__(self, value):
        self.value = value

    def predict(self, features, num_threads=1):
        return np.full(features.shape[0], self.value)


def policy(hot: float, max_wait: int) -> LearnedPolicy:
    model = ValueModel({"contention": Constant(hot), "occupancy": Constant(0.1)}, RewardWeights())
    return LearnedPolicy(model, np.random.default_rng(0), max_wait_steps=max_wait, wait_above_core_s=60.0)


@pytest.fixture(scope="module")
def trace():
    return synth_trace("wait", SynthSettings(
        arrivals=ArrivalSettings(hours=2, target_load=0.6, warmup_hours=0.5, seed=9), nodes=6, workloads=20))


class Spy:
    """Counts, per pod, the offers the policy declined although the pod's requests fit a node."""

    def __init__(self, inner):
        self.inner, self.name = inner, inner.name
        self.declined: dict[int, int] = {}

    def select(self, pod, view):
        choice = self.inner.select(pod, view)
        if choice is None and fits(pod, view).any():
            self.declined[pod.index] = self.declined.get(pod.index, 0) + 1
        return choice


def test_no_pod_waits_beyond_the_maximum_and_every_wait_is_counted(trace):
    config = SimConfig()
    base = replay(trace, policy(hot=1000.0, max_wait=0), config)
    waiting = policy(hot=1000.0, max_wait=3)
    spy = Spy(waiting)
    result = replay(trace, spy, config)
    assert base.metrics["waits"] == 0
    assert result.metrics["waits"] == waiting.waits == sum(spy.declined.values()) > 0
    assert max(spy.declined.values()) == 3  # every node is hot: each pod waits the maximum, never more
    assert waiting._waited == {}  # and is placed in the end
    assert np.isnan(result.bind_s).sum() == np.isnan(base.bind_s).sum()  # never starves a pod
    delay = (result.bind_s - base.bind_s) / config.step_s
    assert np.median(delay[~np.isnan(delay)]) == 3


def test_cool_nodes_never_wait(trace):
    cool = policy(hot=1.0, max_wait=5)
    result = replay(trace, cool, SimConfig())
    assert cool.waits == 0 and result.metrics["waits"] == 0


def test_the_spec_carries_the_wait_settings():
    args = typed_args(LearnedArgs, parse_spec("neurokube:max_wait_steps=2,wait_above_core_s=30"))
    assert (args.max_wait_steps, args.wait_above_core_s) == (2, 30.0)
    assert LearnedArgs().max_wait_steps == 0  # off by default
    with pytest.raises(InputError, match="max_wait_steps must be in 0..1440"):
        typed_args(LearnedArgs, parse_spec("neurokube:max_wait_steps=-1"))
