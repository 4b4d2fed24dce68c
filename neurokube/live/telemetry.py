"""The functions' Prometheus metrics (prometheus_client), one registry per process.

A private :class:`~prometheus_client.CollectorRegistry` rather than the global one: a test can
build several function apps in one interpreter, and each function exposes only its own series.
Gauges whose value lives elsewhere (cache age, pending pods, metrics age) read it at scrape time.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Telemetry:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.decisions = Counter("neurokube_decisions_total", "Placement decisions by deciding policy and outcome "
                                 "(bound, already_bound, unschedulable, gone, failed).", ["policy", "outcome"],
                                 registry=r)
        self.decision_seconds = Histogram("neurokube_decision_duration_seconds",
                                          "Latency of one pod's placement by stage: decide (filter, view, policy), "
                                          "bind (reservation and Binding), reserve (the reservation part of bind, "
                                          "waiting for the node's Lease round included), total.", ["stage"],
                                          buckets=LATENCY_BUCKETS, registry=r)
        self.cpu_seconds = Counter("neurokube_cpu_seconds_total",
                                   "CPU time of the threads that handle pod events, by part: event_handled, "
                                   "event_ignored and event_failed (the whole handler of one pod event, by what "
                                   "became of it), decide and place (the parts of event_handled that decide and that "
                                   "reserve and bind; a node's Lease write is counted by the thread that leads "
                                   "its round). Read per placed pod, it says where the binder's CPU goes.",
                                   ["part"], registry=r)
        self.bind_conflicts = Counter("neurokube_bind_conflicts_total",
                                      "Bind-time conflicts by kind: already_assigned (409, counted as success), "
                                      "reservation (another replica wrote the node's Lease first), no_room (a "
                                      "fresh check found the node full), node_gone, node_rejected.", ["kind"],
                                      registry=r)
        self.fallbacks = Counter("neurokube_fallbacks_total",
                                 "Decisions where the learned policy was not used, by reason.", ["reason"],
                                 registry=r)
        self.model = Info("neurokube_model", "The model in use (version, feature version, directory or models:/ URI "
                          "of the champion).", registry=r)
        self.model_reloads = Counter("neurokube_model_reloads_total", "Attempts to load a new champion.",
                                     ["result"], registry=r)
        self.model_compiles = Counter("neurokube_model_compiles_total",
                                      "Background compilations of the served model's trees "
                                      "(NEUROKUBE_COMPILED_MODEL_DIR) by result: compiled (predicting through "
                                      "them now), failed (LightGBM keeps predicting), superseded (another model "
                                      "was served by the time it finished).", ["result"], registry=r)
        for result in ("compiled", "failed", "superseded"):  # exported at 0 from the start, so rules see them
            self.model_compiles.labels(result=result)
        self.champion_checks = Counter("neurokube_champion_checks_total",
                                       "Checks of the MLflow champion alias by result (unchanged, installed, "
                                       "failed: the registry was unreachable and the current model kept serving, "
                                       "feature_mismatch / invalid: the champion declares other features or its "
                                       "files are corrupt, refused and the current model kept serving).",
                                       ["result"], registry=r)
        self.events = Counter("neurokube_cloudevents_total", "CloudEvents received, by type and result "
                              "(handled, ignored, rejected, failed).", ["type", "result"], registry=r)
        self.requests = Counter("neurokube_http_requests_total", "HTTP requests by path and status code.",
                                ["path", "code"], registry=r)
        self.extender_seconds = Histogram("neurokube_extender_duration_seconds", "Extender request latency by verb.",
                                          ["verb"], buckets=LATENCY_BUCKETS, registry=r)
        self.decision_log = Counter("neurokube_decision_log_records_total",
                                    "Decision-log records by result: spooled (on local disk before the Binding), "
                                    "written (accepted by the object store), voided (its Binding did not happen; "
                                    "not shipped), dropped (the spool was full or "
                                    "unwritable), rejected (a spooled segment that could not be decoded, kept in "
                                    "the spool's rejected/ directory).", ["result"], registry=r)
        self.decision_ship_failures = Counter("neurokube_decision_log_ship_failures_total",
                                              "Shipments of spooled decision segments the object store refused "
                                              "(the segments stay on disk and are retried).", registry=r)
        self._spool_bytes = Gauge("neurokube_decision_spool_bytes",
                                  "Bytes of decision records spooled on local disk and not yet shipped.", registry=r)
        self._spool_segments = Gauge("neurokube_decision_spool_segments",
                                     "Spool segments (files) waiting to be shipped, the open one included.",
                                     registry=r)
        self.snapshot_partitions = Counter("neurokube_snapshot_partitions_total",
                                           "Usage snapshot partitions by result: written to the store, spooled "
                                           "(the store was down; the fallback), delivered from the spool.",
                                           ["result"], registry=r)
        self.snapshot_rows = Counter("neurokube_snapshot_rows_total", "Rows of usage snapshot partitions written.",
                                     registry=r)
        self.sweeps = Counter("neurokube_sweep_pods_total", "Pods handled by the sweeper, by outcome.", ["outcome"],
                              registry=r)
        self.ledger_reservations = Counter("neurokube_ledger_reservations_total",
                                           "Pods whose room the ledger reserved, by how: write (their batch's "
                                           "conditional Lease write) or credit (under this replica's credit on "
                                           "the node, no request).", ["how"], registry=r)
        self.release_retries = Counter("neurokube_release_retries_total",
                                       "Pods left unschedulable by the binder and placed again when room was freed, "
                                       "by outcome (bound, unschedulable, not_pending, failed, deferred, ...).",
                                       ["outcome"], registry=r)
        self.k8s_events = Counter("neurokube_k8s_events_total", "Kubernetes Events posted, by reason and result.",
                                  ["reason", "result"], registry=r)
        self.auth_failures = Counter("neurokube_auth_failures_total",
                                     "Requests refused as unauthenticated (401), by reason (missing, scheme, "
                                     "wrong_token, malformed_jwt, unknown_key, bad_signature, expired, "
                                     "wrong_audience, wrong_issuer, wrong_subject, keys_unavailable).",
                                     ["reason"], registry=r)
        self.refused = Counter("neurokube_refused_total",
                               "Requests refused because the apiserver's objects contradict them or the function "
                               "may not act on them, by reason (no_uid, uid_mismatch, other_scheduler, "
                               "spec_mismatch, pod_gone, not_pending, unknown_node, other_pod).",
                               ["reason"], registry=r)
        self.pod_lookups = Counter("neurokube_pod_lookups_total",
                                   "Pods an event names, read before placing them, by source (cache: the watch "
                                   "cache had them; apiserver: a GET, the cache had not caught up).",
                                   ["source"], registry=r)
        self.workload_history = Counter("neurokube_workload_history_refreshes_total",
                                        "Refreshes of the per-workload usage history from Prometheus by result "
                                        "(refreshed; failed: no history, every workload unseen).", ["result"],
                                        registry=r)
        self.actuator_actions = Counter("neurokube_actuator_actions_total",
                                        "Actions of the actuator function by action (resize, evict) and the "
                                        "apiserver's answer (applied, dry_run, refused_budget, refused_invalid, "
                                        "multiple_budgets, not_found, conflict, error; skipped: not sent, the "
                                        "pod cannot take it as asked).", ["action", "result"], registry=r)
        self.actuator_fallbacks = Counter("neurokube_actuator_fallbacks_total",
                                          "Actuator ticks or forecasts that did not use the models, by reason "
                                          "(no_model, model_unreadable: ticks run on usage now; no_forecast: "
                                          "workloads without enough history; prometheus_unavailable: a tick "
                                          "without usage, nothing done; error: the actuator raised, nothing "
                                          "done).", ["reason"], registry=r)
        self.insecure = Gauge("neurokube_insecure",
                              "1 when this function accepts unauthenticated requests (NEUROKUBE_INSECURE=1).",
                              registry=r)
        self._pending = Gauge("neurokube_pending_pods", "Pods for this scheduler that are not bound (watch cache).",
                              registry=r)
        self._cache_age = Gauge("neurokube_cache_age_seconds",
                                "Seconds since the watch cache last proved fresh, by resource.", ["resource"],
                                registry=r)
        self._metrics_age = Gauge("neurokube_node_metrics_age_seconds",
                                  "Age of the newest successful Prometheus refresh (+Inf before the first).",
                                  registry=r)

    def model_loaded(self, version: str, feature_version: int, directory: str) -> None:
        self.model.info({"version": version, "feature_version": str(feature_version), "directory": directory})

    def watch(self, pending: Callable[[], float], cache_age: Callable[[str], float],
              metrics_age: Callable[[], float] | None) -> None:
        """Bind the scrape-time gauges to their sources."""
        self._pending.set_function(pending)
        for resource in ("nodes", "pods"):
            self._cache_age.labels(resource=resource).set_function(lambda r=resource: cache_age(r))
        if metrics_age is not None:
            self._metrics_age.set_function(metrics_age)

    def watch_spool(self, used_bytes: Callable[[], float], segments: Callable[[], float]) -> None:
        """Bind the decision spool's gauges to it."""
        self._spool_bytes.set_function(used_bytes)
        self._spool_segments.set_function(segments)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


_process: Telemetry | None = None


def process_telemetry() -> Telemetry:
    """The process's one Telemetry (function modules may be loaded several times in a test run)."""
    global _process
    if _process is None:
        _process = Telemetry()
    return _process
