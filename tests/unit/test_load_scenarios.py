"""The locustfiles under load/, imported without a network: shapes, guard rails, payloads, configs.

Locust monkey-patches the interpreter with gevent when imported; LOCUST_SKIP_MONKEY_PATCH keeps
this test process (and the other tests in it) on real threads and sockets.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

os.environ.setdefault("LOCUST_SKIP_MONKEY_PATCH", "1")
LOAD = Path(__file__).resolve().parents[2] / "load"
sys.path.insert(0, str(LOAD))

import gevent  # noqa: E402
import nkload  # noqa: E402
import nklocust  # noqa: E402
from cloudevents.http import from_http  # noqa: E402
from locust import LoadTestShape, User  # noqa: E402
from locust.argument_parser import parse_options  # noqa: E402
from locust.env import Environment  # noqa: E402

from benchmarks import load_runs  # noqa: E402
from neurokube.errors import InputError  # noqa: E402
from neurokube.live.extender import ExtenderArgs  # noqa: E402
from neurokube.live.handlers import pod_from_event  # noqa: E402

SCENARIOS = ("binder_events", "extender_prioritize", "end_to_end")


def _load(name: str):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, LOAD / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module", params=SCENARIOS)
def scenario(request):
    return _load(request.param)


def _classes(module, base):
    return [v for v in vars(module).values()
            if isinstance(v, type) and issubclass(v, base) and v.__module__ == module.__name__
            and not getattr(v, "abstract", False)]


def _options(name: str, *extra: str):
    for other in SCENARIOS:  # every locustfile's options are registered, as in one process
        _load(other)
    return parse_options(["-f", str(LOAD / f"{name}.py"), "--config", str(LOAD / f"{name}.conf"), *extra])


def test_each_locustfile_has_one_user_with_explicit_host_and_wait_time_and_a_staged_shape(scenario) -> None:
    users = _classes(scenario, User)
    assert len(users) == 1
    user = users[0]
    assert user.host.startswith(("http://127.0.0.1:", "https://127.0.0.1:"))
    assert "wait_time" in vars(user)
    shapes = _classes(scenario, LoadTestShape)
    assert len(shapes) == 1 and issubclass(shapes[0], nklocust.StagedShape)
    users_by_stage = [stage.users for stage in shapes[0].stages]
    assert users_by_stage == sorted(users_by_stage) and users_by_stage[0] >= 1
    assert len(users_by_stage) == load_runs.STAGE_COUNT  # benchmarks/load_runs.py cuts the history so


@pytest.mark.parametrize(("t", "expected"), [(0, (1, 1)), (9.99, (1, 1)), (10, (2, 1)), (25, (4, 2)), (30, None)])
def test_extender_shape_walks_its_stages_then_stops(t: float, expected) -> None:
    shape = _load("extender_prioritize").Stages()
    shape.get_run_time = lambda: t
    assert shape.tick() == expected


def test_shape_takes_the_stage_length_from_the_options() -> None:
    shape = _load("binder_events").Stages()
    shape.runner = SimpleNamespace(environment=SimpleNamespace(parsed_options=SimpleNamespace(stage_seconds=2.0)))
    shape.get_run_time = lambda: 4.5
    assert shape.tick() == (16, 8)
    shape.get_run_time = lambda: 6.0
    assert shape.tick() is None
    with pytest.raises(ValueError):
        nkload.stage_at(shape.stages, 0, 1.0)


@pytest.mark.parametrize(("requests", "failures", "p99", "stops"), [
    (10, 10, 99999, False),   # too few requests to judge
    (1000, 10, 100, False),   # exactly 1 %: allowed
    (1000, 11, 100, True),    # above 1 %
    (1000, 0, 1500, False),   # at the bound
    (1000, 0, 1501, True),    # above the p99 bound
    (1000, 0, None, False),   # no percentile yet
])
def test_breach(requests: int, failures: int, p99, stops: bool) -> None:
    limits = nkload.Limits(max_fail_ratio=0.01, max_p99_ms=1500, min_requests=50)
    why = nkload.breach(limits, requests, failures, p99)
    assert bool(why) is stops


def test_the_guard_quits_the_runner_and_sets_exit_code_1() -> None:
    options = _options("extender_prioritize", "--guard-min-requests", "5")
    assert (options.max_fail_ratio, options.max_p99_ms) == (0.01, 1500)
    user = _load("extender_prioritize").Scheduler
    env = Environment(user_classes=[user], parsed_options=options)
    runner = env.create_local_runner()
    for i in range(10):
        env.events.request.fire(request_type="POST", name="/prioritize", response_time=5, response_length=0,
                                exception=RuntimeError("boom") if i % 2 else None, context={})
    nklocust.install_guard(env, interval_s=0.01)
    gevent.sleep(0.2)
    assert env.process_exit_code == 1
    assert runner.state in ("stopped", "stopping", "quitting")


def test_the_guard_leaves_a_healthy_run_alone() -> None:
    options = _options("extender_prioritize", "--guard-min-requests", "5")
    env = Environment(user_classes=[_load("extender_prioritize").Scheduler], parsed_options=options)
    env.create_local_runner()
    for _ in range(20):
        env.events.request.fire(request_type="POST", name="/prioritize", response_time=5, response_length=0,
                                exception=None, context={})
    nklocust.install_guard(env, interval_s=0.01)
    gevent.sleep(0.1)
    assert env.process_exit_code is None


def test_config_files_set_the_scenarios_options() -> None:
    ext = _options("extender_prioritize")
    assert (ext.nodes, ext.node_mode, ext.stage_seconds, ext.headless) == ("1000", "list", 10.0, True)
    binder = _options("binder_events")
    assert binder.ok_outcomes.split(",") == ["bound", "already_bound", "unschedulable", "gone"]
    e2e = _options("end_to_end")
    assert (e2e.bind_timeout_s, e2e.max_p99_ms) == (30.0, 10000.0)


@pytest.mark.parametrize("capable", [False, True])
@pytest.mark.parametrize("size", [100, 1000, 5000])
def test_extender_args_use_go_field_names_and_parse_in_the_extender(size: int, capable: bool) -> None:
    nodes = nkload.node_names_json(size) if capable else nkload.node_list_json(size)
    doc = json.loads(nkload.extender_args(nkload.pod_doc(1), nodes, capable))
    assert set(doc) == {"Pod", "Nodes", "NodeNames"}
    assert (doc["Nodes"] is None) is capable and (doc["NodeNames"] is None) is not capable
    args = ExtenderArgs(doc)
    assert args.cache_capable is capable
    assert args.names == [nkload.node_name(i) for i in range(size)]


def test_extender_reply_check() -> None:
    check = _load("extender_prioritize").check_reply
    names = ["a", "b"]
    assert check([{"Host": "a", "Score": 10}, {"Host": "b", "Score": 1}], names) is None
    assert check([{"Host": "b", "Score": 3}], names) is None  # a left out: it scored 0
    assert check([], names) is None  # every node 0 (a fallback)
    assert "3 priorities for 2 nodes" in check([{"Host": "a", "Score": 1}] * 3, names)
    assert "outside" in check([{"Host": "a", "Score": 11}], names)
    assert "outside" in check([{"Host": "a", "Score": 0}], names)  # a 0 is left out, never listed
    assert "not a request node" in check([{"Host": "a", "Score": 1}, {"Host": "c", "Score": 1}], names)
    assert "not a request node" in check([{"Host": "b", "Score": 1}, {"Host": "a", "Score": 1}], names)
    assert "not a request node" in check([{"Host": "a", "Score": 1}, {"Host": "a", "Score": 1}], names)
    assert "not a HostPriorityList" in check({"Error": "x"}, names)
    assert _load("extender_prioritize").parse_sizes("100, 1000,5000") == (100, 1000, 5000)
    with pytest.raises(ValueError):
        _load("extender_prioritize").parse_sizes("0")


def test_binder_event_is_what_the_binder_accepts() -> None:
    """The scenario's binary-mode CloudEvent, parsed by the cloudevents SDK and the binder's own code."""
    module = _load("binder_events")
    pod = nkload.pod_doc(7, uid="u-7")
    headers = nkload.cloudevent_headers("id-7", module.EVENT_TYPE, "load", pod["metadata"]["name"])
    ce = from_http(headers, json.dumps(pod).encode())
    assert ce["type"] == "dev.knative.apiserver.resource.add"
    placed, why = pod_from_event(ce, "neurokube")
    assert why == "" and placed.key == f"load/{nkload.pod_name(7)}"
    bad = from_http({**headers, "ce-type": "dev.knative.apiserver.ref.add"}, json.dumps(pod).encode())
    with pytest.raises(InputError):
        pod_from_event(bad, "neurokube")


@pytest.mark.parametrize(("status", "doc", "failed", "outcome"), [
    (200, {"outcome": "bound", "node": "n"}, False, "bound"),
    (200, {"outcome": "gone"}, False, "gone"),
    (200, {"outcome": "failed"}, True, "failed"),
    (200, {"nothing": 1}, True, "invalid"),
    (503, {"error": "apiserver down"}, True, "http_503"),
    (400, None, True, "http_400"),
])
def test_binder_judge(status: int, doc, failed: bool, outcome: str) -> None:
    ok = {"bound", "already_bound", "unschedulable", "gone"}
    why, got = _load("binder_events").judge(status, doc, ok)
    assert (why is not None) is failed and got == outcome


def test_end_to_end_reads_binding_from_the_pod() -> None:
    module = _load("end_to_end")
    assert module.bound_node({"spec": {"nodeName": "n1"}}) == "n1"
    assert module.bound_node({"spec": {}}) is None


@pytest.mark.parametrize("host", ["http://10.0.0.1:8080", "https://example.com", "", None])
def test_only_loopback_targets(host) -> None:
    with pytest.raises(SystemExit):
        nkload.require_loopback(host)
    nkload.require_loopback("http://127.0.0.1:18081")


def test_kube_options_are_registered_once_and_the_new_options_parse() -> None:
    """Both cluster scenarios ask for --kubeconfig/--namespace; parsing with every locustfile loaded
    would fail on a duplicate option."""
    binder = _options("binder_events", "--kubeconfig", "/k", "--create-pods", "300")
    assert (binder.kubeconfig, binder.namespace, binder.create_pods) == ("/k", "load", 300)
    assert _options("binder_events").create_pods == 0
    e2e = _options("end_to_end")
    assert e2e.keep_pods is False and _options("end_to_end", "--keep-pods").keep_pods is True


def test_kube_client_refuses_a_missing_kubeconfig_and_a_remote_apiserver(tmp_path: Path) -> None:
    env = SimpleNamespace(parsed_options=SimpleNamespace(kubeconfig=""))
    with pytest.raises(SystemExit):
        nklocust.kube_client(env)
    config = tmp_path / "kubeconfig"
    config.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "https://10.1.2.3:6443", "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    with pytest.raises(SystemExit, match="127.0.0.1 only"):
        nklocust.kube_client(SimpleNamespace(parsed_options=SimpleNamespace(kubeconfig=str(config))))


def test_pod_manifest_is_a_pending_neurokube_pod_of_the_run() -> None:
    pod = nkload.pod_manifest("load-a-x-000001", "ns1", "x")
    assert pod["metadata"]["name"] == "load-a-x-000001" and pod["metadata"]["namespace"] == "ns1"
    assert pod["metadata"]["labels"] == {"app": "neurokube-load", nkload.RUN_LABEL: "x"}
    assert "status" not in pod and "creationTimestamp" not in pod["metadata"]
    assert pod["spec"]["schedulerName"] == "neurokube" and "nodeName" not in pod["spec"]
    assert nkload.pod_doc(1)["metadata"]["name"] == nkload.pod_name(1)  # the launcher's pods are unchanged


def test_binder_events_announce_the_backlog_once_then_end() -> None:
    module = _load("binder_events")
    synthetic = module.next_pod(3)
    assert synthetic["metadata"]["name"] == nkload.pod_name(3) and synthetic["metadata"]["uid"]
    real = [{"metadata": {"name": "p0", "uid": "u0"}}, {"metadata": {"name": "p1", "uid": "u1"}}]
    module._backlog.extend(real)
    try:
        assert [module.next_pod(i) for i in range(3)] == [real[0], real[1], None]
    finally:
        module._backlog.clear()
