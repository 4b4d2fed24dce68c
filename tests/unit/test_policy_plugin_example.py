"""The worked example of docs/ARCHITECTURE.md, "Adding a scoring plugin", done exactly as written.

A score plugin defined here (one "file"), registered with one registry line, is reachable by
its spec string: validated arguments, a framework cycle that uses it, and `neurokube replay`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest

from neurokube.cli.main import main
from neurokube.policies.base import ClusterView, PodSpec
from neurokube.policies.registry import REGISTRY, Entry, make_policy, score_plugin
from tests.conftest import make_view


# --- the plugin's file (docs/ARCHITECTURE.md) ---
@dataclass(frozen=True)
class LeastPodsArgs:
    max_pods: int = 110  # kubelet's default maxPods

    def __post_init__(self) -> None:
        if self.max_pods < 1:
            raise ValueError("max_pods must be at least 1")


class LeastPods:
    """Score: fewer bound pods is better, 0..100."""

    name = "LeastPods"

    def __init__(self, args: LeastPodsArgs = LeastPodsArgs()) -> None:
        self.args = args

    def score(self, pod: PodSpec, view: ClusterView, nodes: np.ndarray, state) -> np.ndarray:
        free = np.maximum(self.args.max_pods - view.pod_count[nodes], 0)
        return free * 100 // self.args.max_pods
# --- end of the plugin's file ---


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(REGISTRY, "least-pods", Entry(LeastPodsArgs, score_plugin(LeastPods)))  # the one line


def test_a_cycle_with_the_new_plugin_from_its_spec(registered):
    policy = make_policy("least-pods:max_pods=4", trace=None)
    assert policy.name == "least-pods:max_pods=4" and policy.args == LeastPodsArgs(4)
    view = make_view([4000] * 3, [8000] * 3, [4000, 0, 0])  # node 0 full
    view.pod_count = np.array([0, 3, 1])
    result = policy.cycle(PodSpec(500, 500), view)
    assert result.choice == 2  # node 0 has fewer pods but the pod does not fit there
    assert result.plugin_scores["LeastPods"].tolist() == [25, 75]
    assert policy.scores(PodSpec(500, 500), view).tolist() == [100, 25, 75]
    assert make_policy("least-pods", trace=None).name == "least-pods"


def test_bad_arguments_are_refused_like_any_policy(registered):
    with pytest.raises(Exception, match="max_pods must be at least 1"):
        make_policy("least-pods:max_pods=0", trace=None)


def test_replay_with_the_new_plugin(registered, small_trace_dir, tmp_path):
    report = tmp_path / "replay.json"
    assert main(["replay", "--trace", str(small_trace_dir), "--policy", "least-pods:max_pods=8",
                 "--policy", "default", "--json", str(report)]) == 0
    data = json.loads(report.read_text(encoding="utf-8"))
    assert set(data["policies"]) == {"least-pods:max_pods=8", "default"}
    spread, default = data["policies"]["least-pods:max_pods=8"], data["policies"]["default"]
    assert spread != default  # it placed pods by its own scores
