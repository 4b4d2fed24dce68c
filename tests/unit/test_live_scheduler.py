"""Placing one pod end to end over the in-memory apiserver: the learned choice and its counted
fallbacks, the next best node when one vanishes or turns out full, FailedScheduling when nothing
fits, 409 as success, and a decision log in the replay's schema."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from neurokube.errors import ApiStatusError, TemporaryError
from neurokube.k8s.objects import parse_pod
from neurokube.live import ledger
from neurokube.live.binding import DECISION_ANNOTATION
from neurokube.live.decisions import frames
from neurokube.live.runtime import RefusalLog, bound_as_recorded
from neurokube.live.scheduler import ALREADY_BOUND, BOUND, GONE, UNSCHEDULABLE
from neurokube.live.settings import Settings
from neurokube.model.decision_log import CANDIDATE_COLUMNS, DECISION_COLUMNS
from neurokube.testing import FakeKube, FakePrometheus, fake_runtime, node_doc, pod_doc, write_packing_model


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return write_packing_model(tmp_path_factory.mktemp("model") / "champion")


@pytest.fixture
def prom():
    server = FakePrometheus({f"n{i}": (0.2, 2**30) for i in range(4)})
    yield server
    server.close()


def cluster(n=4, cpu="4", busy="n1"):
    nodes = [node_doc(f"n{i}", cpu=cpu) for i in range(n)]
    pods = [pod_doc("busy", "2", "1Gi", node=busy, uid="busy", scheduler="default-scheduler")] if busy else []
    return FakeKube(nodes, pods)


def submit(kube, name, cpu="500m", **kw):
    doc = pod_doc(name, cpu, "256Mi", uid=f"uid-{name}", **kw)
    kube.add_pod(doc)
    return parse_pod(doc)


def logging_runtime(kube, model, prom, tmp_path):
    """A runtime with the learned policy, fresh metrics and a decision log in ``tmp_path``."""
    runtime = fake_runtime(kube, Settings(model_dir=model, prometheus_url=prom.url, replica="r1",
                                          decision_log=str(tmp_path / "log"), decision_batch=1000,
                                          decision_spool_dir=tmp_path / "spool"))
    runtime.metrics.refresh()
    return runtime


def fallbacks(runtime, reason):
    return runtime.telemetry.fallbacks.labels(reason=reason)._value.get()


def test_learned_policy_places_and_logs_in_the_replay_schema(model, prom, tmp_path):
    kube = cluster()
    runtime = logging_runtime(kube, model, prom, tmp_path)
    outcome = runtime.scheduler.schedule(submit(kube, "p"), "req-1")
    assert (outcome.outcome, outcome.node, outcome.policy, outcome.fallback) == (BOUND, "n1", "neurokube", "")
    assert outcome.model_version == "packing-test" and kube.bindings == [("default/p", "n1")]
    assert runtime.decisions.flush() == 1
    files = sorted((tmp_path / "log" / "decisions").rglob("*.parquet"))
    assert [f.name.split(".", 1)[1] for f in files] == ["candidates.parquet", "decisions.parquet"]
    decisions = pd.read_parquet(files[1])
    candidates = pd.read_parquet(files[0])
    assert list(decisions.columns) == list(DECISION_COLUMNS) and list(candidates.columns) == list(CANDIDATE_COLUMNS)
    row = decisions.iloc[0]
    assert row["source"] == "live" and row["pod"] == "default/p" and row["pod_uid"] == "uid-p"
    assert row["node"] == "n1" and row["policy"] == "neurokube" and row["n_candidates"] == 4
    assert row["decision_id"].startswith("live:r1:") and row["propensity"] == 1.0
    assert set(candidates["decision_id"]) == {row["decision_id"]}
    assert candidates.loc[candidates["chosen"], "node"].tolist() == ["n1"]
    assert np.isclose(candidates["propensity"].sum(), 1.0)


def test_without_metrics_or_model_it_falls_back_and_counts(model, prom):
    kube = cluster()
    no_prom = fake_runtime(kube, Settings(model_dir=model, replica="r"))
    outcome = no_prom.scheduler.schedule(submit(kube, "a"))
    assert outcome.policy == "default" and outcome.fallback == "prometheus_disabled" and outcome.node != "n1"
    assert fallbacks(no_prom, "prometheus_disabled") == 1
    no_model = fake_runtime(kube, Settings(model_dir=model.parent / "missing", prometheus_url=prom.url, replica="r"))
    no_model.metrics.refresh()
    outcome = no_model.scheduler.schedule(submit(kube, "b"))
    assert outcome.fallback == "model_missing" and fallbacks(no_model, "model_missing") == 1


def test_a_vanished_node_means_the_next_best(model, prom):
    kube = cluster()
    runtime = fake_runtime(kube, Settings(model_dir=model, prometheus_url=prom.url, replica="r"))
    runtime.metrics.refresh()

    choose = runtime.decider.choose

    def vanish_after_the_decision(*args, **kw):  # the watch reports n1 deleted while the pod is placed
        choice = choose(*args, **kw)
        if "n1" in kube.nodes:
            node = kube.nodes["n1"]
            kube.delete_node("n1")
            runtime.cache.apply("nodes", "DELETED", node)
        return choice

    runtime.decider.choose = vanish_after_the_decision
    outcome = runtime.scheduler.schedule(submit(kube, "p"))
    assert outcome.outcome == BOUND and outcome.node != "n1" and outcome.attempts == 2
    assert runtime.cache.node("n1") is None
    assert runtime.telemetry.bind_conflicts.labels(kind=ledger.NODE_GONE)._value.get() == 1


def test_a_stale_cache_is_corrected_by_the_fresh_check(model, prom):
    kube = cluster(busy=None)
    runtime = fake_runtime(kube, Settings(model_dir=model, prometheus_url=prom.url, replica="r"))
    runtime.metrics.refresh()
    first = runtime.scheduler.schedule(submit(kube, "first"))
    # Another replica fills that node but for r's credit (1 CPU of 4); r's cache does not know yet,
    # its Lease does. The second pod is larger than the credit, so r writes, and finds no room.
    other = fake_runtime(kube, Settings(model_dir=model, prometheus_url=prom.url, replica="r2"))
    assert other.ledger.place(submit(kube, "filler", cpu="2500m"), first.node).outcome == BOUND
    second = runtime.scheduler.schedule(submit(kube, "second", cpu="1500m"))
    assert second.outcome == BOUND and second.node != first.node and second.attempts == 2
    assert runtime.telemetry.bind_conflicts.labels(kind=ledger.NO_ROOM)._value.get() == 1


def test_nothing_fits_leaves_the_pod_pending_with_a_failed_scheduling_event():
    kube = cluster(n=2, cpu="1", busy=None)
    runtime = fake_runtime(kube)
    runtime.events.start()
    outcome = runtime.scheduler.schedule(submit(kube, "huge", cpu="2"))
    runtime.events.flush()
    assert outcome.outcome == UNSCHEDULABLE and kube.bindings == []
    assert outcome.reason == "0/2 nodes are available: 2 Insufficient cpu."
    [evt] = kube.events
    assert evt["reason"] == "FailedScheduling" and evt["type"] == "Warning"
    assert evt["involvedObject"] == {"apiVersion": "v1", "kind": "Pod", "namespace": "default", "name": "huge",
                                     "uid": "uid-huge"}
    runtime.scheduler.schedule(submit(kube, "huge2", cpu="2"))
    runtime.scheduler.schedule(parse_pod(kube.pods[("default", "huge")]))  # again within the minute
    runtime.events.flush()
    assert [e["involvedObject"]["name"] for e in kube.events] == ["huge", "huge2"]


def test_a_second_delivery_is_a_success_without_a_second_binding():
    kube = cluster()
    runtime = fake_runtime(kube)
    runtime.events.start()
    pod = submit(kube, "p")
    assert runtime.scheduler.schedule(pod).outcome == BOUND
    fresh = fake_runtime(kube)  # another replica, whose cache is from before the binding
    fresh.cache.replace("pods", [pod_doc("p", "500m", "256Mi", uid="uid-p")])
    again = fresh.scheduler.schedule(pod)
    assert again.outcome == ALREADY_BOUND and len(kube.bindings) == 1
    runtime.cache.apply("pods", "MODIFIED", kube.pods[("default", "p")])
    assert runtime.scheduler.schedule(pod).outcome == ALREADY_BOUND  # from the cache, no API call
    runtime.events.flush()
    assert [e["reason"] for e in kube.events] == ["Scheduled"]


def test_the_cpu_of_deciding_and_placing_is_counted():
    kube = cluster()
    runtime = fake_runtime(kube)
    cpu = runtime.telemetry.cpu_seconds
    assert cpu.labels(part="decide")._value.get() == 0 and cpu.labels(part="place")._value.get() == 0
    for i in range(20):
        assert runtime.scheduler.schedule(submit(kube, f"p{i}", cpu="10m")).outcome == BOUND
    assert cpu.labels(part="decide")._value.get() > 0 and cpu.labels(part="place")._value.get() > 0


def test_how_the_ledger_reserved_each_pod_is_counted():
    """The default settings give the binder a credit: the first pod on a node writes its Lease and
    the next ones that fit the credit are placed without a write (and counted so)."""
    kube = cluster(n=1, busy=None)
    runtime = fake_runtime(kube)
    assert runtime.settings.ledger_credit_share > 0
    lease_writes = len([w for w in kube.writes() if w[0] == "PUT" and "/leases/" in w[1]])
    for i in range(4):
        assert runtime.scheduler.schedule(submit(kube, f"p{i}", cpu="100m")).outcome == BOUND
    how = runtime.telemetry.ledger_reservations
    assert how.labels(how="write")._value.get() == 1 and how.labels(how="credit")._value.get() == 3
    assert len([w for w in kube.writes() if w[0] == "PUT" and "/leases/" in w[1]]) == lease_writes + 1


def test_deleted_pod_is_gone():
    kube = cluster()
    runtime = fake_runtime(kube)
    pod = submit(kube, "p")
    kube.pods.pop(("default", "p"))
    assert runtime.scheduler.schedule(pod).outcome == GONE and kube.bindings == []


def test_contention_everywhere_is_temporary():
    kube = cluster(n=2, busy=None)
    runtime = fake_runtime(kube, Settings(replica="r", conflict_retries=1, bind_attempts=3))

    def contend(method, path, body):
        if method == "PUT" and "/leases/" in path:
            with kube._lock:
                lease = kube.leases[("neurokube", path.rsplit("/", 1)[1])]
                lease["metadata"]["resourceVersion"] = kube._next_rv()

    kube.before.append(contend)
    with pytest.raises(TemporaryError, match="could not place default/p"):
        runtime.scheduler.schedule(submit(kube, "p"))
    assert kube.bindings == []


def test_exploration_logs_exact_propensities(model, prom, tmp_path):
    kube = cluster()
    runtime = fake_runtime(kube, Settings(model_dir=model, prometheus_url=prom.url, replica="r", epsilon=0.5,
                                          decision_log="/unused", decision_spool_dir=tmp_path / "spool"))
    runtime.metrics.refresh()
    for i in range(6):
        runtime.scheduler.schedule(submit(kube, f"p{i}", cpu="100m"))
    batch = runtime.decisions.pending()  # spooled on disk, not shipped
    assert len(batch) == 6
    for d in batch:
        assert np.isclose(d.propensity.sum(), 1.0) and d.propensity.min() == pytest.approx(0.5 / d.propensity.size)
    decisions, candidates = frames(batch)
    assert len(decisions) == 6 and len(candidates) == sum(d.propensity.size for d in batch)


def test_the_decision_record_is_on_disk_before_the_binding_is_posted(model, prom, tmp_path):
    """Write-ahead: a binder killed between the Binding and its answer leaves its record; a Binding
    that failed without an answer is resolved against the apiserver before anything ships."""
    kube = cluster()
    runtime = logging_runtime(kube, model, prom, tmp_path)
    spooled_at_post = []

    def at_binding(method, path, body):
        if method == "POST" and path.endswith("/binding"):
            spooled_at_post.append([d.pod for d in runtime.decisions.pending()])
            if body["metadata"]["name"] == "lost":
                raise TemporaryError("the apiserver went away mid-request")

    kube.before.append(at_binding)
    assert runtime.scheduler.schedule(submit(kube, "p")).outcome == BOUND
    with pytest.raises(TemporaryError):
        runtime.scheduler.schedule(submit(kube, "lost"))
    assert spooled_at_post == [["default/p"], ["default/p", "default/lost"]]
    assert runtime.decisions.flush() == 1  # "lost" is not bound (asked the apiserver): voided, not shipped
    shipped = pd.concat(pd.read_parquet(f) for f in (tmp_path / "log").rglob("*.decisions.parquet"))
    assert shipped["pod"].tolist() == ["default/p"]
    assert runtime.telemetry.decision_log.labels(result="voided")._value.get() == 1


def test_the_pod_names_the_decision_that_placed_it_and_the_resolver_reads_it(model, prom, tmp_path):
    """The Binding's ``neurokube.io/decision-id`` lands on the pod, so an unsettled record is
    confirmed only by its own Binding: not by a later decision that put the pod on the same node."""
    kube = cluster()
    runtime = logging_runtime(kube, model, prom, tmp_path)
    posted = []
    kube.before.append(lambda method, path, body: posted.append(body) if path.endswith("/binding") else None)
    assert runtime.scheduler.schedule(submit(kube, "p")).outcome == BOUND
    [record] = runtime.decisions.pending()
    annotations = kube.pods[("default", "p")]["metadata"]["annotations"]
    assert annotations[DECISION_ANNOTATION] == record.decision_id == posted[0]["metadata"]["annotations"][
        DECISION_ANNOTATION]
    assert bound_as_recorded(kube, record) is True
    earlier = dataclasses.replace(record, decision_id="live:r1:an-earlier-attempt")  # same pod, same node
    assert bound_as_recorded(kube, earlier) is False
    assert bound_as_recorded(kube, dataclasses.replace(record, pod_uid="another-pod-same-name")) is False
    assert bound_as_recorded(kube, dataclasses.replace(record, pod="default/gone")) is False

    def apiserver_down(method, path, body):
        raise TemporaryError("apiserver unreachable")

    kube.before.append(apiserver_down)
    assert bound_as_recorded(kube, record) is None  # cannot say yet: asked again later


def test_a_resolver_refused_by_rbac_says_so_once_a_minute(model, prom, tmp_path, caplog):
    """A 403 on the pod read (a ServiceAccount without pods get: the sweeper's, once) is not "cannot
    say yet" to shrug at: the record waits on the spool until RBAC is fixed."""
    kube = cluster()
    runtime = logging_runtime(kube, model, prom, tmp_path)
    assert runtime.scheduler.schedule(submit(kube, "p")).outcome == BOUND
    [record] = runtime.decisions.pending()

    def forbidden(method, path, body):
        raise ApiStatusError(403, "Forbidden", 'pods "p" is forbidden', method, path)

    kube.before.append(forbidden)
    now = [0.0]
    refusals = RefusalLog(every_s=60.0, clock=lambda: now[0])
    heard = []
    for at in (0.0, 1.0, 59.0, 61.0):
        now[0] = at
        assert bound_as_recorded(kube, record, refused=lambda exc: (heard.append(exc.status), refusals(exc))) is None
    assert heard == [403, 403, 403, 403]
    said = [r for r in caplog.records if "grant this ServiceAccount pods get" in r.getMessage()]
    assert [r.levelname for r in said] == ["ERROR", "ERROR"]  # at 0 s and 61 s


def test_a_binding_whose_answer_was_lost_and_resent_is_recorded_as_bound(model, prom, tmp_path):
    """A Binding POST that takes effect while its answer is lost (etcd stalled past the client's
    read timeout) is re-sent by the client and answered 409 "already assigned" to the very node it
    asked for. The pod names the decision that placed it, so the outcome is BOUND and the record
    settles as bound, not as a conflict lost to another replica."""
    kube = cluster()
    runtime = logging_runtime(kube, model, prom, tmp_path)
    lost = []

    def first_answer_lost(method, path, body):
        if method == "POST" and path.endswith("/binding") and not lost:
            lost.append(body["target"]["name"])
            kube.request(method, path, body)  # takes effect; the caller never sees this answer

    kube.before.append(first_answer_lost)
    outcome = runtime.scheduler.schedule(submit(kube, "p"))
    assert lost and outcome.outcome == BOUND and outcome.node == lost[0] and outcome.attempts == 1
    assert kube.bindings == [("default/p", lost[0])]
    assert runtime.decisions.flush() == 1  # settled bound at once: shipped, not voided
    shipped = pd.concat(pd.read_parquet(f) for f in (tmp_path / "log").rglob("*.decisions.parquet"))
    assert shipped["pod"].tolist() == ["default/p"]
    assert runtime.telemetry.decision_log.labels(result="voided")._value.get() == 0


def test_a_conflict_on_the_same_node_from_another_replica_is_not_claimed(model, prom, tmp_path):
    """The other side of the rule above: when another replica's Binding put the pod on the node this
    one chose, the pod names that replica's decision, so this one's record is voided."""
    kube = cluster()
    runtime = logging_runtime(kube, model, prom, tmp_path)
    raced = []

    def other_replica_first(method, path, body):
        if method == "POST" and path.endswith("/binding") and not raced:
            raced.append(path)
            theirs = dict(body["metadata"], annotations={DECISION_ANNOTATION: "live:r2:theirs"})
            kube.request(method, path, dict(body, metadata=theirs))  # same node, the other replica's decision

    kube.before.append(other_replica_first)
    outcome = runtime.scheduler.schedule(submit(kube, "p"))
    assert outcome.outcome == ALREADY_BOUND and len(kube.bindings) == 1
    assert kube.pods[("default", "p")]["metadata"]["annotations"][DECISION_ANNOTATION] == "live:r2:theirs"
    assert runtime.decisions.flush() == 0
    assert runtime.telemetry.decision_log.labels(result="voided")._value.get() == 1


def test_the_failure_names_the_nodes_that_do_not_fit_and_the_node_that_refused(model, prom):
    """n0 is too small, and n1, which the stale cache shows free, refused at the ledger (another
    replica filled it): the FailedScheduling text counts both, n1 with the ledger's shortfall."""
    kube = FakeKube([node_doc("n0", cpu="1"), node_doc("n1", cpu="4")], [])
    runtime = fake_runtime(kube, Settings(model_dir=model, prometheus_url=prom.url, replica="r"))
    runtime.metrics.refresh()
    other = fake_runtime(kube, Settings(model_dir=model, prometheus_url=prom.url, replica="r2"))
    assert other.ledger.place(submit(kube, "filler", cpu="3"), "n1").outcome == BOUND
    outcome = runtime.scheduler.schedule(submit(kube, "late", cpu="2"))
    assert outcome.outcome == UNSCHEDULABLE and outcome.attempts == 2
    assert outcome.reason == "0/2 nodes are available: 2 Insufficient cpu."
    assert runtime.telemetry.bind_conflicts.labels(kind=ledger.NO_ROOM)._value.get() == 1


def test_the_reasons_are_computed_only_when_no_node_is_left(monkeypatch):
    """Why each node does not fit is a Python loop over the failing nodes; a decision that places
    the pod never needs it (on a cluster of full nodes it would cost every decision)."""
    from neurokube.k8s import feasibility
    from neurokube.live import scheduler as scheduler_module

    calls, explain = [], feasibility.explain

    def counting(*args, **kw):
        calls.append(args[-1].size)
        return explain(*args, **kw)

    monkeypatch.setattr(feasibility, "explain", counting)  # where filter_nodes looks it up
    monkeypatch.setattr(scheduler_module, "explain", counting, raising=False)
    kube = FakeKube([node_doc(f"full{i}", cpu="1") for i in range(5)] + [node_doc("roomy", cpu="8")], [])
    runtime = fake_runtime(kube)
    placed = runtime.scheduler.schedule(submit(kube, "fits", cpu="2"))
    assert placed.outcome == BOUND and placed.node == "roomy" and calls == []
    stuck = runtime.scheduler.schedule(submit(kube, "huge", cpu="16"))
    assert stuck.outcome == UNSCHEDULABLE and calls == [6]
    assert stuck.reason == "0/6 nodes are available: 6 Insufficient cpu."
