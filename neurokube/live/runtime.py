"""Wire the live adapters together, once per process.

:func:`current` builds the process's :class:`Runtime` on first use, *after* gunicorn has forked
its worker (threads started in the master would not survive the fork), and rebuilds it if the
pid changes. It starts the watch cache, the Prometheus refresher, the Event poster and the
decision-log shipper (building the runtime resumes the decision spool: segments a killed
predecessor left are shipped first); each request then waits (up to ``sync_timeout_s``) for
the first list. A runtime that cannot be built (no credentials, unreachable apiserver) is a
TemporaryError: the request gets a 503 and the next one tries again.

Tests install their own runtime with :func:`install`.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import threading
import time
import zlib
from collections.abc import Callable
from functools import partial

from neurokube.adapters.compiled_model import compile_model
from neurokube.adapters.kube import KubeClient
from neurokube.errors import ApiStatusError, NeuroKubeError, TemporaryError
from neurokube.live import binding, failpoints, heap
from neurokube.live.cache import ClusterCache
from neurokube.live.decide import Decider
from neurokube.live.decisions import DecisionLog, LiveDecision
from neurokube.live.events import EventRecorder
from neurokube.live.extender import Extender
from neurokube.live.ledger import Ledger
from neurokube.live.profile import profile_for
from neurokube.live.prometheus import PrometheusSource
from neurokube.live.retry import Retrier
from neurokube.live.scheduler import Scheduler
from neurokube.live.settings import Settings
from neurokube.live.sweeper import Sweeper
from neurokube.live.telemetry import Telemetry, process_telemetry
from neurokube.logs import event

log = logging.getLogger("neurokube.live.runtime")


class Runtime:
    def __init__(self, settings: Settings, kube: KubeClient, telemetry: Telemetry | None = None) -> None:
        self.settings = s = settings
        self.telemetry = telemetry = telemetry or process_telemetry()
        failpoints.configure(s.failpoint_exit_before_bind)
        self.kube = kube
        replica = s.replica_name
        self.cache = ClusterCache(kube, s.scheduler_name, s.resync_s, on_listed=heap.settle)
        self.metrics = PrometheusSource(s, self._node_names, pods=self.cache.workload_pods,
                                        telemetry=telemetry) if s.prometheus_url else None
        self.decider = Decider(s.model_dir, telemetry, seed=s.seed ^ zlib.crc32(replica.encode()), epsilon=s.epsilon,
                               reload_s=s.model_reload_s, metrics_configured=s.prometheus_url is not None,
                               spec=profile_for(s.profile, s.scheduler_name).policy if s.profile else None,
                               compiler=partial(compile_model, directory=s.compiled_model_dir)
                               if s.compiled_model_dir else None)
        self.ledger = Ledger(kube, self.cache, s.ledger_namespace, replica, ttl_s=s.reservation_ttl_s,
                             abort_s=s.bind_abort_s, retries=s.conflict_retries, credit_share=s.ledger_credit_share,
                             request_timeout_s=s.request_timeout_s)
        self.events = EventRecorder(kube, s.scheduler_name, replica, telemetry)
        if not s.scheduled_events:
            self.events.scheduled = lambda pod, node: None  # type: ignore[method-assign]
        self.decisions = DecisionLog(_open_store(s.decision_log), s.decision_prefix, replica, telemetry,
                                     spool_dir=s.decision_spool_dir, max_bytes=s.decision_spool_max_bytes,
                                     batch=s.decision_batch, flush_s=s.decision_flush_s,
                                     resolve=partial(bound_as_recorded, kube, refused=RefusalLog()))
        self.scheduler = Scheduler(self.cache, self.metrics, self.decider, self.ledger, self.events, self.decisions,
                                   telemetry, replica=replica, bind_attempts=s.bind_attempts,
                                   stale_after_s=s.prom_stale_after_s, recent_lag_s=s.recent_lag_s)
        self.extender = Extender(kube, self.cache, self.metrics, self.decider, self.ledger, telemetry,
                                 stale_after_s=s.prom_stale_after_s, recent_lag_s=s.recent_lag_s,
                                 bind_schedulers=s.extender_scheduler_names)
        self.retrier = Retrier(self.scheduler, self.cache.pending_pod, telemetry,
                               max_pods=s.retry_max_pods) if s.retry_on_release else None
        if self.retrier is not None:
            self.cache.on_release = self.retrier.released
            self.cache.on_ungated = self.retrier.ungated
        self.sweeper = Sweeper(kube, self.scheduler, self.ledger, self.cache, telemetry,
                               scheduler_name=s.scheduler_name, min_age_s=s.sweep_min_age_s,
                               max_pods=s.sweep_max_pods, budget_s=s.sweep_budget_s)
        self.champion = None
        if s.mlflow_uri:  # the MLflow champion, hot-swapped into the Decider (neurokube.live.champion)
            from neurokube.live.champion import from_settings

            self.champion = from_settings(s, self.decider, telemetry)
        metrics_age = (lambda: self.metrics.latest().age_s(self.cache.clock())) if self.metrics else None
        telemetry.watch(self.cache.pending_count, self.cache.age_s, metrics_age)

    def _node_names(self) -> dict[str, str]:
        names: dict[str, str] = {}
        for node in self.cache.snapshot().nodes:
            for address in node.addresses:
                names.setdefault(address, node.name)
            names[node.name] = node.name
        return names

    def start(self) -> None:
        atexit.register(self.close)  # ship what the decision spool holds when the worker exits (else: next start)
        self.cache.start()
        if self.metrics is not None:
            self.metrics.start()
        self.events.start()
        self.decisions.start()
        if self.retrier is not None:
            self.retrier.start()
        if self.champion is not None:
            self.champion.start()
        event(log, "live runtime started", replica=self.settings.replica_name, apiserver=self.kube.server,
              policy=self.decider.policy_name, model_version=self.decider.model_version,
              prometheus=self.settings.prometheus_url,
              decision_log=bool(self.settings.decision_log),
              decision_spool=str(self.decisions.spool.dir) if self.decisions.spool is not None else None,
              decision_spool_resumed=self.decisions.spool.resumed if self.decisions.spool is not None else 0)

    def ready(self) -> None:
        """Wait for the watch cache's first list; TemporaryError (503) if it does not come in time."""
        if not self.cache.wait_synced(self.settings.sync_timeout_s):
            raise TemporaryError(f"the watch cache has not listed nodes and pods from {self.kube.server} yet")

    def close(self) -> None:
        if self.retrier is not None:
            self.retrier.close()
        if self.champion is not None:
            self.champion.close()
        self.cache.close()
        if self.metrics is not None:
            self.metrics.close()
        self.decisions.close()


def bound_as_recorded(kube: KubeClient, decision: LiveDecision,
                      refused: Callable[[ApiStatusError], None] | None = None) -> bool | None:
    """Whether the Binding of a decision record nobody settled happened: the pod carries the
    record's id (None while the apiserver cannot say). The decision log's resolver.

    ``refused`` hears of a 401 or 403: asking again will not help (the ServiceAccount lacks
    ``pods get``), and the record's segment waits on the spool until that is fixed."""
    namespace, name = decision.pod.split("/", 1)
    try:
        return binding.placing_decision(kube, namespace, name, decision.pod_uid) == decision.decision_id
    except ApiStatusError as exc:
        if refused is not None and exc.status in (401, 403):
            refused(exc)
        return None
    except NeuroKubeError:
        return None


class RefusalLog:
    """Logs a resolver's refusals as errors, at most once per ``every_s`` (the shipper asks every second)."""

    def __init__(self, every_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.every_s, self.clock = every_s, clock
        self._last = -math.inf
        self._lock = threading.Lock()

    def __call__(self, exc: ApiStatusError) -> None:
        with self._lock:
            now = self.clock()
            if now - self._last < self.every_s:
                return
            self._last = now
        event(log, "the decision log cannot ask the apiserver which decision placed a pod; the record waits "
                   "on the spool (grant this ServiceAccount pods get, deploy/knative/rbac.yaml)", logging.ERROR,
              status=exc.status, error=exc.message)


def _open_store(target: str | None):
    if not target:
        return None
    from neurokube.adapters.objectstore import open_store

    return open_store(target)


_lock = threading.Lock()
_runtime: Runtime | None = None
_pid: int | None = None


def current(settings: Settings, wait: bool = True) -> Runtime:
    """The process's runtime, built and started on first use (after any fork).

    ``wait``: block until the watch cache has listed once (503 after ``sync_timeout_s``); the
    extender does not wait, kube-scheduler's call would time out first (it degrades instead).
    """
    global _runtime, _pid
    with _lock:
        if _runtime is None or _pid != os.getpid():
            try:
                kube = KubeClient.from_settings(settings.kubeconfig, settings.request_timeout_s,
                                                user_agent="neurokube-live", qps=settings.kube_qps,
                                                burst=settings.kube_burst, lean=settings.kube_transport == "lean")
                runtime = Runtime(settings, kube)
            except NeuroKubeError as exc:
                raise TemporaryError(f"cannot start the live runtime: {exc}") from None
            runtime.start()
            _runtime, _pid = runtime, os.getpid()
        runtime = _runtime
    if wait:
        runtime.ready()
    return runtime


def install(runtime: Runtime | None) -> None:
    """Use ``runtime`` in this process (tests); None forgets it."""
    global _runtime, _pid
    with _lock:
        _runtime, _pid = runtime, (os.getpid() if runtime is not None else None)


def installed() -> Runtime | None:
    return _runtime
