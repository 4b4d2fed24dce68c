"""The KubeSchedulerConfiguration the local kube-scheduler runs with.

``percentageOfNodesToScore: 100``: by default the scheduler stops looking for feasible nodes once
it has found an adaptive share of the cluster (``50 - N/125`` percent of N nodes, at least 5%, and
never fewer than 100 nodes) and scores only those. Above 100 nodes the subset it sees depends on
where its round-robin search started, so the same pod on the same cluster can land differently,
and the best node may not be scored at all. NeuroKube
compares the real scheduler with its simulator, which scores every feasible node; scoring all
nodes makes the real scheduler deterministic up to ties and comparable placement for placement.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from neurokube.errors import InputError

EXTENDER_VERBS = ("filter", "prioritize", "bind")
#: What NeuroKube's extender is called for by default: scores only. Its /filter applies
#: kube-scheduler's own fit rules (resources, taints, selectors) to its own watch cache, on nodes
#: kube-scheduler has just passed with the same rules, so it can only agree or be behind; calling
#: it costs a second HTTP round trip per pod in every scheduling cycle (about 1.2 ms of the 3.8 at
#: 1,000 nodes, docs/BENCHMARKS.md "extender-latency"). deploy/knative/kube-scheduler/extender-config.yaml
#: configures the same.
DEFAULT_VERBS = ("prioritize",)


@dataclass(frozen=True)
class Extender:
    """A scheduler extender (HTTP webhook); verbs are appended to ``url`` (``<url>/<verb>``).

    ``node_cache_capable`` (default true, what NeuroKube's extender wants): kube-scheduler sends
    node names and the extender judges them from its own watch cache. False sends every Node
    object in every call, which costs the extender milliseconds per 100 nodes (JSON both ways),
    and with a filter verb makes kube-scheduler v1.35 score the Nodes of the filter's reply as if
    no pod ran on them (kubernetes#141781). Set it false only for an extender without a cache.
    """

    url: str
    verbs: tuple[str, ...] = DEFAULT_VERBS
    weight: int = 1
    node_cache_capable: bool = True

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise InputError(f"extender URL {self.url!r} is not http(s)", where="--extender-url")
        unknown = [verb for verb in self.verbs if verb not in EXTENDER_VERBS]
        if unknown or not self.verbs:
            raise InputError(f"unknown extender verbs {unknown or '(none)'}", where="--extender-verbs",
                             why=f"choose from {', '.join(EXTENDER_VERBS)}")
        if "prioritize" in self.verbs and self.weight <= 0:
            raise InputError("the extender weight must be positive with prioritize", where="--extender-weight")

    def to_config(self) -> dict:
        entry: dict = {"urlPrefix": self.url.rstrip("/"), "enableHTTPS": self.url.startswith("https://"),
                       "nodeCacheCapable": self.node_cache_capable, "httpTimeout": "5s"}
        for verb in self.verbs:
            entry[f"{verb}Verb"] = verb
        if "prioritize" in self.verbs:
            entry["weight"] = self.weight
        return entry


def write(path: Path, kubeconfig: Path, extender: Extender | None = None) -> Path:
    doc: dict = {
        "apiVersion": "kubescheduler.config.k8s.io/v1",
        "kind": "KubeSchedulerConfiguration",
        # Binding is one API call per pod: the default 50 QPS would cap throughput at ~50 pods/s.
        # Client rate limits change how fast, never where, pods are placed.
        "clientConnection": {"kubeconfig": str(kubeconfig), "qps": 200, "burst": 400},
        "leaderElection": {"leaderElect": False},  # a single scheduler; no lease round-trips at start
        "percentageOfNodesToScore": 100,  # see the module docstring
        "profiles": [{"schedulerName": "default-scheduler"}],
    }
    if extender is not None:
        doc["extenders"] = [extender.to_config()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path
