"""The extender's two modes and what makes them cheap: Nodes and NodeNames give the same answers
when the request's nodes are the cache's; a request node the cache has at another version, or
not at all, is judged on the object sent; Node objects are parsed once per name and
resourceVersion (never without one, never when invalid); Prometheus columns are computed once
per node list; and NeuroKube's kube-scheduler configurations are node-cache-capable."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from neurokube.cluster import functions as cluster_functions
from neurokube.cluster import schedconfig
from neurokube.errors import InputError
from neurokube.live import extender as extender_module
from neurokube.live.extender import ExtenderArgs, NodeMemo
from neurokube.live.prometheus import MetricsSnapshot
from neurokube.live.settings import Settings
from neurokube.live.telemetry import Telemetry
from neurokube.testing import FakeKube, FakePrometheus, fake_runtime, node_doc, pod_doc, write_packing_model

ROOT = Path(__file__).resolve().parents[2]
TAINT = [{"key": "dedicated", "value": "ml", "effect": "NoSchedule"}]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return write_packing_model(tmp_path_factory.mktemp("model") / "m")


@pytest.fixture
def cluster(model):
    docs = [node_doc(f"n{i}", cpu=str(2 + i % 6), labels={"zone": f"z{i % 3}"}, taints=TAINT if i % 9 == 4 else None)
            for i in range(30)]
    pods = [pod_doc(f"b{i}", f"{200 * (i % 7)}m", "512Mi", node=f"n{i % 30}", uid=f"b{i}",
                    scheduler="default-scheduler") for i in range(70)]
    kube = FakeKube(docs, pods)
    prom = FakePrometheus({f"n{i}": (0.1 * (i % 4), 2**30) for i in range(30)})
    runtime = fake_runtime(kube, Settings(model_dir=model, prometheus_url=prom.url, replica="t"), Telemetry())
    runtime.metrics.refresh()
    yield kube, runtime.extender
    prom.close()


PODS = [pod_doc("plain", "700m", "1Gi", scheduler="default-scheduler"),
        pod_doc("zoned", "300m", "1Gi", scheduler="default-scheduler", node_selector={"zone": "z1"}),
        pod_doc("tolerant", "2500m", "1Gi", scheduler="default-scheduler",
                tolerations=[{"key": "dedicated", "operator": "Exists"}])]


def both_modes(kube, pod, names):
    items = [kube.nodes[n] for n in names]  # as the apiserver has them, resourceVersion included
    return (ExtenderArgs({"Pod": pod, "Nodes": None, "NodeNames": names}),
            ExtenderArgs({"Pod": pod, "Nodes": {"items": items}, "NodeNames": None}))


@pytest.mark.parametrize("pod", PODS, ids=lambda p: p["metadata"]["name"])
def test_nodes_and_node_names_give_the_same_answers(cluster, pod):
    kube, extender = cluster
    names = [f"n{i}" for i in (17, 3, 4, 25, 0, 11, 8, 29, 13)]  # any order, any subset
    by_names, by_nodes = both_modes(kube, pod, names)
    names_reply, nodes_reply = extender.filter(by_names), extender.filter(by_nodes)
    assert names_reply["FailedNodes"] == nodes_reply["FailedNodes"]
    assert names_reply["FailedAndUnresolvableNodes"] == nodes_reply["FailedAndUnresolvableNodes"]
    assert names_reply["NodeNames"] == [n["metadata"]["name"] for n in nodes_reply["Nodes"]["items"]]
    assert names_reply["FailedNodes"] or names_reply["FailedAndUnresolvableNodes"]  # the filter did something
    scores = extender.prioritize(by_names)
    assert scores == extender.prioritize(by_nodes) and scores  # the learned path scored some nodes
    every = extender.scores(by_names)  # a score per request node; the reply lists those above 0, in order
    assert scores == [{"Host": n, "Score": int(v)} for n, v in zip(names, every) if v > 0]
    assert 0 < len(scores) < len(names) and all(1 <= s["Score"] <= 10 for s in scores)


@pytest.mark.parametrize("pod", PODS, ids=lambda p: p["metadata"]["name"])
def test_the_encoded_prioritize_reply_is_json_of_the_wire_objects(cluster, pod):
    """What the HTTP edge sends (prioritize_json, memoised per-node prefixes) is json.dumps of
    what prioritize returns, the second time (prefixes from the memo) as the first."""
    import json

    kube, extender = cluster
    names = [f"n{i}" for i in (17, 3, 4, 25, 0, 11, 8, 29, 13)]
    args = ExtenderArgs({"Pod": pod, "Nodes": None, "NodeNames": names})
    expected = json.dumps(extender.prioritize(args), separators=(",", ":"))
    assert extender.prioritize_json(args) == expected
    assert extender.prioritize_json(args) == expected


def test_the_priority_encoder_escapes_as_json_and_starts_over_beyond_its_limit():
    import json

    encoder = extender_module.PriorityEncoder(limit=3)
    names = ["zero", "plain", 'quo"te', "back\\slash", "ünïcode", "tab\t"]
    scores = np.array([0, 2, 10, 7, 3, 1], dtype=np.int64)
    wire = [{"Host": n, "Score": int(s)} for n, s in zip(names, scores) if s]  # a node scoring 0 is left out
    assert encoder.encode(names, scores) == json.dumps(wire, separators=(",", ":"))
    assert len(encoder._prefixes) <= 3  # five names through a memo of three: it started over
    assert json.loads(encoder.encode(names[:3], scores[:3])) == wire[:2]
    assert encoder.encode(names, np.zeros(len(names), dtype=np.int64)) == "[]"
    with pytest.raises(ValueError):  # a score per name, or an error: never a reply for other nodes
        encoder.encode(names, scores[:2])


def test_a_request_node_unlike_the_cache_is_judged_as_sent(cluster):
    kube, extender = cluster
    changed = {**kube.nodes["n1"], "spec": {"taints": TAINT}}  # tainted since the cache saw it
    changed["metadata"] = {**changed["metadata"], "resourceVersion": "999"}
    unknown = node_doc("fresh", cpu="1")  # not in the cache at all: no bound pods known
    items = [kube.nodes["n2"], changed, unknown]
    args = ExtenderArgs({"Pod": PODS[0], "Nodes": {"items": items}, "NodeNames": None})
    reply = extender.filter(args)
    assert [n["metadata"]["name"] for n in reply["Nodes"]["items"]] == ["n2", "fresh"]
    assert reply["FailedAndUnresolvableNodes"] == {"n1": "node(s) had untolerated taint {dedicated: ml}"}
    only_known = extender.filter(ExtenderArgs({"Pod": PODS[0], "Nodes": {"items": items[:2]}, "NodeNames": None}))
    assert list(only_known["FailedAndUnresolvableNodes"]) == ["n1"]  # every name known, one object changed
    by_names = extender.filter(ExtenderArgs({"Pod": PODS[0], "Nodes": None, "NodeNames": ["n2", "n1", "fresh"]}))
    assert by_names["NodeNames"] == ["n2", "n1", "fresh"]  # the cache's n1 has no taint; fresh passes unjudged


def test_nodes_are_parsed_once_per_name_and_version(monkeypatch):
    calls = []
    real = extender_module.parse_node
    monkeypatch.setattr(extender_module, "parse_node", lambda doc: calls.append(1) or real(doc))
    memo = NodeMemo(limit=3)
    versioned = {**node_doc("a"), "metadata": {"name": "a", "resourceVersion": "7"}}
    first = memo.parse(versioned)
    assert memo.parse(versioned) is first and len(calls) == 1
    assert memo.parse({**versioned, "metadata": {"name": "a", "resourceVersion": "8"}}) == first and len(calls) == 2
    unversioned = node_doc("b")
    memo.parse(unversioned)
    memo.parse(unversioned)
    assert len(calls) == 4  # no version: parsed every time
    bad = {"metadata": {"name": "c", "resourceVersion": "1"}, "status": {"allocatable": {"cpu": "lots"}}}
    with pytest.raises(InputError):
        memo.parse(bad)
    with pytest.raises(InputError):
        memo.parse(bad)  # a failed parse is not remembered
    for v in ("9", "10", "11"):
        memo.parse({**versioned, "metadata": {"name": "a", "resourceVersion": v}})
    assert len(memo._nodes) <= 3


def test_metric_columns_are_computed_once_per_node_list():
    snap = MetricsSnapshot(refreshed_at=100.0, values={"cpu_mean": {"a": 1.0, "b": 2.0}, "cpu_max": {"a": 0.5},
                                                       "mem_mean": {"b": 2**30}, "cpu_samples": {"a": 4.0}})
    names = ("a", "b", "c")
    full = snap.node_metrics(names, now=130.0)
    assert full.cpu_mean.tolist() == [1000.0, 2000.0, 0.0] and full.cpu_max.tolist() == [1000.0, 2000.0, 0.0]
    assert full.mem_mean.tolist() == [0.0, 1024.0, 0.0] and full.samples.tolist() == [4, 1, 0]
    assert full.age_s[:2].tolist() == [30.0, 30.0] and np.isinf(full.age_s[2])
    assert snap._columns(names)[0] is snap._columns(names)[0]  # memoised for the same tuple
    some = snap.node_metrics(names, now=160.0, rows=np.array([2, 0]))
    assert some.cpu_mean.tolist() == [0.0, 1000.0] and some.age_s[1] == 60.0
    assert snap.node_metrics(["c", "a"], now=160.0).cpu_mean.tolist() == [0.0, 1000.0]  # a list: not memoised


def test_neurokube_scheduler_configurations_send_node_names():
    assert schedconfig.Extender("http://127.0.0.1:1").to_config()["nodeCacheCapable"] is True
    plan = cluster_functions.Plan({"binder": 1, "extender": 2, "sweeper": 3})
    ours = cluster_functions.extender_config(plan, cluster_functions.FunctionsOptions(extender=True))
    assert ours.to_config()["nodeCacheCapable"] is True
    doc = yaml.safe_load((ROOT / "deploy" / "knative" / "kube-scheduler" / "extender-config.yaml").read_text())
    assert [e["nodeCacheCapable"] for e in doc["extenders"]] == [True]
    # the bench and `cluster up --functions-extender` call the verbs the deployment configures
    deployed = {key for key in doc["extenders"][0] if key.endswith("Verb")}
    assert deployed == {f"{verb}Verb" for verb in schedconfig.DEFAULT_VERBS} == {"prioritizeVerb"}
    assert {key for key in ours.to_config() if key.endswith("Verb")} == deployed
    assert schedconfig.Extender("http://127.0.0.1:1", node_cache_capable=False).to_config()["nodeCacheCapable"] is False
