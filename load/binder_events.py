"""Scenario (a): ApiServerSource pod-create CloudEvents straight at the binder.

Each request is a binary-mode CloudEvent (``ce-*`` headers) of type
``dev.knative.apiserver.resource.add`` whose data is the whole Pod (Resource mode), as the
receive adapter sends it: the locustfile plays the adapter. The binder can only bind pods that
exist in its apiserver. Two targets:

* **the local cluster** (``--create-pods N``, with ``--kubeconfig`` or ``$KUBECONFIG``): before the
  first user starts, the scenario creates N pending pods (``schedulerName: neurokube``, label
  ``neurokube.io/load-run=<run>``) in ``--namespace`` through the apiserver, and each event carries
  one of them exactly as the apiserver returned it (real UID). Each pod is announced once; when
  all N were sent the run ends early (logged). Run it against a binder no receive adapter feeds
  and no sweep disturbs (``neurokube cluster up --functions --no-adapter`` with
  ``NEUROKUBE_SWEEP_MIN_AGE_S`` raised), otherwise the adapter's own event binds each pod first
  and Locust only sees ``already_bound``;
* **the loopback launcher** (``--create-pods 0``, the default): pods named ``load-pod-NNNNNN`` in
  namespace ``load``; ``load/local_functions.py binder --pods N`` pre-creates the first N in its
  in-memory apiserver, events beyond them answer ``gone``.

Success: HTTP 200 with a JSON outcome in ``--ok-outcomes`` (default ``bound, already_bound,
unschedulable, gone``: the binder did its job and answered; use ``bound`` alone against the
cluster). 4xx, 5xx (a 503 is the binder asking Knative to redeliver), another outcome or a
non-JSON body is a failure with the reason; the outcome is also the request name's suffix, so the
summary shows the split.

    locust -f load/binder_events.py --config load/binder_events.conf --headless
    locust -f load/binder_events.py --config load/binder_events.conf --headless \
        --host <binder URL from `neurokube cluster status`> --create-pods 3000 --ok-outcomes bound
"""

from __future__ import annotations

import itertools
import logging
import os
import time
import uuid

import gevent.pool
import nkload
import nklocust
from locust import FastHttpUser, between, events, task
from locust.env import Environment
from locust.exception import StopUser

from neurokube.errors import NeuroKubeError

nklocust.register(kube=True)

EVENT_TYPE = "dev.knative.apiserver.resource.add"
CREATE_CONCURRENCY = 16
log = logging.getLogger("neurokube.load")
_pods = itertools.count()
_backlog: list[dict] = []  # --create-pods: the pending pods as the apiserver returned them, in order
_ended: list[bool] = []


@events.init_command_line_parser.add_listener
def _arguments(parser) -> None:
    group = parser.add_argument_group("binder_events")
    group.add_argument("--ok-outcomes", default="bound,already_bound,unschedulable,gone",
                       help="binder outcomes counted as success (comma-separated)")
    group.add_argument("--pod-offset", type=int, default=0, help="first pod index (load-pod-NNNNNN)")
    group.add_argument("--event-token", default=os.environ.get("NEUROKUBE_EVENT_TOKEN", ""),
                       help="the binder's NEUROKUBE_EVENT_TOKEN (`neurokube cluster up --functions` keeps it in "
                            "<state>/functions-event-token; default $NEUROKUBE_EVENT_TOKEN)")
    group.add_argument("--create-pods", type=int, default=0,
                       help="create this many pending pods in the --kubeconfig cluster first and announce those "
                            "(0: synthetic pods for load/local_functions.py)")


@events.init.add_listener
def _create_backlog(environment: Environment, **_kwargs) -> None:
    """--create-pods: runs before the first user starts, so creating pods is not part of the run."""
    options = environment.parsed_options
    if options is None or not options.create_pods:
        return
    kube = nklocust.kube_client(environment)
    namespace, run = options.namespace, uuid.uuid4().hex[:6]
    started = time.perf_counter()
    try:
        nklocust.ensure_namespace(kube, namespace)
        manifests = [nkload.pod_manifest(f"load-a-{run}-{i:06d}", namespace, run) for i in range(options.create_pods)]
        pool = gevent.pool.Pool(CREATE_CONCURRENCY)
        _backlog.extend(pool.imap(lambda m: kube.request("POST", f"/api/v1/namespaces/{namespace}/pods", m),
                                  manifests))
    except NeuroKubeError as exc:
        raise SystemExit(f"binder_events: creating the pending pods failed: {exc}") from None
    log.info("binder_events: created %d pending pods (%s=%s) in %s in %.1f s", len(_backlog), nkload.RUN_LABEL,
             run, namespace, time.perf_counter() - started)


def next_pod(i: int) -> dict | None:
    """The event data for the i-th request: a backlog pod, a synthetic one, or None when the backlog is spent."""
    if not _backlog:
        return nkload.pod_doc(i, uid=str(uuid.uuid5(uuid.NAMESPACE_URL, nkload.pod_name(i))))
    return _backlog[i] if i < len(_backlog) else None


def _end_run(environment: Environment) -> None:
    if not _ended:
        _ended.append(True)
        log.warning("binder_events: all %d pods were sent; ending the run early", len(_backlog))
        gevent.spawn(environment.runner.quit)


def judge(status: int, doc: object, ok: set[str]) -> tuple[str | None, str]:
    """(failure reason or None, outcome) of one binder reply."""
    if status != 200:
        message = doc.get("error", "") if isinstance(doc, dict) else ""
        return f"HTTP {status}: {str(message)[:200]}", f"http_{status}"
    if not isinstance(doc, dict) or not isinstance(doc.get("outcome"), str):
        return "reply has no outcome", "invalid"
    outcome = doc["outcome"]
    return (None if outcome in ok else f"outcome {outcome}: {str(doc.get('reason', ''))[:160]}"), outcome


class ReceiveAdapter(FastHttpUser):
    """One ApiServerSource receive adapter forwarding pod ADDED events."""

    host = "http://127.0.0.1:18080"
    wait_time = between(0.0, 0.02)
    network_timeout = 10.0
    connection_timeout = 2.0

    @task
    def pod_added(self) -> None:
        options = self.environment.parsed_options
        ok = set((options.ok_outcomes if options else "bound").split(","))
        pod = next_pod(next(_pods) + (options.pod_offset if options else 0))
        if pod is None:
            _end_run(self.environment)
            raise StopUser()
        headers = nkload.cloudevent_headers(str(uuid.uuid4()), EVENT_TYPE, pod["metadata"]["namespace"],
                                            pod["metadata"]["name"])
        if options is not None and options.event_token:
            headers["Authorization"] = f"Bearer {options.event_token}"
        with self.client.post("/", json=pod, headers=headers, name="CloudEvent pod add",
                              catch_response=True) as resp:
            try:
                doc = resp.json()
            except ValueError:
                doc = None
            why, outcome = judge(resp.status_code, doc, ok)
            resp.request_meta["name"] = f"CloudEvent pod add -> {outcome}"
            if why:
                resp.failure(why)
            else:
                resp.success()


class Stages(nklocust.StagedShape):
    """A burst as a Deployment scale-up produces it: 2, then 8, then 16 adapters' worth of events."""

    stages = (nkload.Stage(2, 2), nkload.Stage(8, 4), nkload.Stage(16, 8))
