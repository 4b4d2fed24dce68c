"""Scenario (c): pods created through the apiserver and timed until they are bound.

Each task creates one pod of ``schedulerName: neurokube`` in namespace ``load`` (created if
missing) and polls it every ``--poll-interval-s`` until ``spec.nodeName`` is set. The time from
the create request to the first read that shows a node is reported as request type ``BIND``
(name ``create -> bound``) through ``events.request.fire``; a pod not bound within
``--bind-timeout-s`` is a failure. The create itself is reported as ``POST pods``. The pod is
deleted right after (grace period 0) so a long run does not fill the cluster; leftovers are
deleted by label when the run stops. With ``--keep-pods`` every pod stays, so that the binder's
invariants (all bound, no node over-committed) can be checked afterwards; every pod carries the
label ``neurokube.io/load-run=<run>`` (logged at the start).

The apiserver and credentials come from ``--kubeconfig`` (default ``$KUBECONFIG``), read with
NeuroKube's own client (neurokube.adapters.kube); only a loopback apiserver is accepted.

Resolution: polling adds up to one poll interval (default 0.1 s) to each sample.

    export KUBECONFIG=~/.local/state/neurokube/cluster/admin.kubeconfig   # neurokube cluster up --functions
    locust -f load/end_to_end.py --config load/end_to_end.conf --headless
"""

from __future__ import annotations

import itertools
import logging
import time
import uuid

import gevent
import nkload
import nklocust
from locust import User, between, events, task
from locust.env import Environment

from neurokube.errors import NeuroKubeError

nklocust.register(loopback_only=False, kube=True)  # the host check is made on the kubeconfig's server

log = logging.getLogger("neurokube.load")
_run = uuid.uuid4().hex[:6]
_seq = itertools.count()


@events.init_command_line_parser.add_listener
def _arguments(parser) -> None:
    group = parser.add_argument_group("end_to_end")
    group.add_argument("--bind-timeout-s", type=float, default=30.0, help="a pod not bound by then is a failure")
    group.add_argument("--poll-interval-s", type=float, default=0.1, help="how often a pod is read back")
    group.add_argument("--keep-pods", action="store_true",
                       help="leave every pod in place (to check the bindings afterwards) instead of deleting it")


def bound_node(pod: dict) -> str | None:
    return (pod.get("spec") or {}).get("nodeName") or None


@events.test_start.add_listener
def _namespace(environment: Environment, **_kwargs) -> None:
    if environment.parsed_options is None:
        return
    nklocust.ensure_namespace(nklocust.kube_client(environment), environment.parsed_options.namespace)
    log.info("end_to_end: pods of this run are labelled %s=%s", nkload.RUN_LABEL, _run)


@events.test_stop.add_listener
def _cleanup(environment: Environment, **_kwargs) -> None:
    options = environment.parsed_options
    if options is None or options.keep_pods:
        return
    try:
        nklocust.kube_client(environment).request(
            "DELETE", f"/api/v1/namespaces/{options.namespace}/pods",
            query={"labelSelector": f"{nkload.RUN_LABEL}={_run}", "gracePeriodSeconds": "0"})
    except NeuroKubeError as exc:
        print(f"end_to_end: could not delete leftover pods: {exc}")


class PodCreator(User):
    """One client creating a pod, waiting for its binding, deleting it, and again."""

    host = "https://127.0.0.1:6443"  # informational: requests go to the kubeconfig's server
    wait_time = between(0.1, 0.5)

    def on_start(self) -> None:
        self.kube = nklocust.kube_client(self.environment)
        self.options = self.environment.parsed_options
        self.host = self.kube.server

    def _fire(self, request_type: str, name: str, started: float, exception: Exception | None) -> None:
        self.environment.events.request.fire(request_type=request_type, name=name,
                                             response_time=(time.perf_counter() - started) * 1000,
                                             response_length=0, exception=exception, context={})

    @task
    def create_and_wait(self) -> None:
        ns = self.options.namespace
        name = f"load-e2e-{_run}-{next(_seq):06d}"
        pod = nkload.pod_manifest(name, ns, _run)
        started = time.perf_counter()
        try:
            self.kube.request("POST", f"/api/v1/namespaces/{ns}/pods", pod)
        except NeuroKubeError as exc:
            self._fire("POST", "pods", started, exc)
            return
        self._fire("POST", "pods", started, None)
        deadline = started + self.options.bind_timeout_s
        failure: Exception | None = None
        while True:
            try:
                if bound_node(self.kube.get(f"/api/v1/namespaces/{ns}/pods/{name}")):
                    break
            except NeuroKubeError as exc:
                failure = exc
                break
            if time.perf_counter() >= deadline:
                failure = TimeoutError(f"not bound within {self.options.bind_timeout_s:g} s")
                break
            gevent.sleep(self.options.poll_interval_s)
        self._fire("BIND", "create -> bound", started, failure)
        if self.options.keep_pods:
            return
        try:
            self.kube.request("DELETE", f"/api/v1/namespaces/{ns}/pods/{name}", query={"gracePeriodSeconds": "0"})
        except NeuroKubeError:
            pass  # deleted by label at test_stop


class Stages(nklocust.StagedShape):
    """1, 4, then 10 concurrent creators."""

    stages = (nkload.Stage(1, 1), nkload.Stage(4, 2), nkload.Stage(10, 5))
