"""Locust wiring shared by the NeuroKube locustfiles: the staged shape, the stop-on-threshold
guard, the apiserver client of the scenarios that talk to a real cluster, and their command-line
options (which the config files set)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import gevent
from locust import LoadTestShape, events
from locust.env import Environment
from locust.runners import WorkerRunner
from nkload import POD_NAMESPACE, Limits, Stage, breach, require_loopback, stage_at

from neurokube.adapters.kube import KubeClient, KubeError

log = logging.getLogger("neurokube.load")


class StagedShape(LoadTestShape):
    """Equal-length stages of ``stages``; the length comes from ``--stage-seconds`` (config file).

    Subclasses set ``stages``. ``--run-time`` is not needed: the shape ends the run after the
    last stage."""

    abstract = True
    stages: Sequence[Stage] = ()
    default_stage_seconds = 10.0

    def stage_seconds(self) -> float:
        options = getattr(getattr(getattr(self, "runner", None), "environment", None), "parsed_options", None)
        return float(getattr(options, "stage_seconds", None) or self.default_stage_seconds)

    def tick(self) -> tuple[int, float] | None:
        return stage_at(self.stages, self.stage_seconds(), self.get_run_time())


def add_guard_arguments(parser) -> None:
    group = parser.add_argument_group("NeuroKube guard rails and stages")
    group.add_argument("--max-fail-ratio", type=float, default=Limits.max_fail_ratio,
                       help="stop the run when the failure ratio exceeds this (0.01 = 1%%)")
    group.add_argument("--max-p99-ms", type=float, default=Limits.max_p99_ms,
                       help="stop the run when the current p99 exceeds this many milliseconds")
    group.add_argument("--guard-min-requests", type=int, default=Limits.min_requests,
                       help="requests before the guard judges")
    group.add_argument("--stage-seconds", type=float, default=StagedShape.default_stage_seconds,
                       help="length of each stage of the load shape")


def limits_from(options) -> Limits:
    return Limits(max_fail_ratio=options.max_fail_ratio, max_p99_ms=options.max_p99_ms,
                  min_requests=options.guard_min_requests)


def install_guard(environment: Environment, interval_s: float = 1.0) -> None:
    """On the master or a local runner: check every ``interval_s``; on a breach, log it, make the
    process exit 1 and quit the run (``environment.runner.quit()``)."""
    if isinstance(environment.runner, WorkerRunner) or environment.parsed_options is None:
        return
    limits = limits_from(environment.parsed_options)

    def watch() -> None:
        while True:
            gevent.sleep(interval_s)
            total = environment.runner.stats.total
            p99 = total.get_current_response_time_percentile(0.99) if total.num_requests else None
            why = breach(limits, total.num_requests, total.num_failures, p99)
            if why:
                log.error("guard: stopping the run: %s", why)
                environment.process_exit_code = 1
                environment.runner.quit()
                return

    gevent.spawn(watch)


def add_kube_arguments(parser) -> None:
    group = parser.add_argument_group("NeuroKube cluster")
    group.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG", ""),
                       help="kubeconfig of the local cluster (default $KUBECONFIG)")
    group.add_argument("--namespace", default=POD_NAMESPACE, help="namespace of the load pods (created if missing)")


def ensure_namespace(kube: KubeClient, namespace: str) -> None:
    try:
        kube.request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                     "metadata": {"name": namespace}})
    except KubeError as exc:
        if not exc.conflict:
            raise


def kube_client(environment: Environment) -> KubeClient:
    """A client for the cluster of ``--kubeconfig``; only a loopback apiserver is accepted."""
    options = environment.parsed_options
    if not options or not options.kubeconfig:
        raise SystemExit("set --kubeconfig or $KUBECONFIG (the cluster of `neurokube cluster up --functions`)")
    kube = KubeClient.from_kubeconfig(options.kubeconfig, timeout_s=10.0)
    require_loopback(kube.server)
    return kube


_state = {"loopback_only": True, "registered": False, "kube": False}


def register(loopback_only: bool = True, kube: bool = False) -> None:
    """Wire the guard's options and the guard into Locust's events; with ``kube``, also the
    ``--kubeconfig``/``--namespace`` options. Each locustfile calls it; every listener is added
    once per process (a test may import every locustfile)."""
    _state["loopback_only"] = loopback_only
    if kube and not _state["kube"]:
        _state["kube"] = True
        events.init_command_line_parser.add_listener(add_kube_arguments)
    if _state["registered"]:
        return
    _state["registered"] = True

    @events.init_command_line_parser.add_listener
    def _arguments(parser) -> None:
        add_guard_arguments(parser)

    @events.init.add_listener
    def _guard(environment: Environment, **_kwargs) -> None:
        if _state["loopback_only"]:
            targets = [environment.host] if environment.host else [u.host for u in environment.user_classes]
            for target in targets:
                require_loopback(target)
        install_guard(environment)
