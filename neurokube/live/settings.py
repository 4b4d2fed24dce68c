"""Every setting of the live functions: one typed dataclass, read from the environment here only.

Each field declares its environment variable and its meaning (units included) in ``metadata``;
:func:`from_env` converts by the field's type and validates everything at once, raising one
:class:`~neurokube.errors.InputError` that lists every bad variable. The functions call it at
import time, so a misconfigured function fails at start-up with that message instead of on the
first event. :func:`table` renders the reference in docs/FUNCTIONS.md. The mechanism (field
helper, conversion, collecting problems, the table) is :mod:`neurokube.envsettings`, shared with
the other functions' and the stack's settings; what is here is the live functions' own fields
and checks.

PromQL templates use ``$label`` (the node label, e.g. ``instance``), ``$expr`` (the usage
expression), ``$window`` and ``$step``; the defaults read node-exporter series.
"""

from __future__ import annotations

import os
import re
import socket
import string
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from urllib.parse import urlsplit

from neurokube import envsettings
from neurokube.envsettings import setting as _setting
from neurokube.errors import InputError

STATISTICS = ("cpu_mean", "cpu_max", "cpu_std", "cpu_trend", "cpu_samples",
              "mem_mean", "mem_max", "mem_std", "mem_trend")
_STAT_TEMPLATE = {"mean": "avg_over_time", "max": "max_over_time", "std": "stddev_over_time", "trend": "deriv",
                  "samples": "count_over_time"}
_DURATION = re.compile(r"^\d+(ms|s|m|h|d)$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_PROM_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def _prom_queries(environ: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The ``NEUROKUBE_PROM_QUERY_<STAT>`` overrides that are set, in the order of STATISTICS."""
    found = []
    for stat in STATISTICS:
        text = environ.get(f"NEUROKUBE_PROM_QUERY_{stat.upper()}", "").strip()
        if text:
            found.append((stat, text))
    return tuple(found)


@dataclass(frozen=True)
class Settings:
    # -- scheduling ------------------------------------------------------------------------------
    scheduler_name: str = _setting("NEUROKUBE_SCHEDULER_NAME", "neurokube",
                                   "spec.schedulerName of the pods the binder and sweeper place")
    profile: Path | None = _setting("NEUROKUBE_PROFILE", None,
                                    "scheduling profile file (YAML, one document per profile: schedulerName, "
                                    "policy); the profile of NEUROKUBE_SCHEDULER_NAME chooses the policy, e.g. "
                                    "tlp:target_utilization=60; unset: the learned policy with its trained "
                                    "settings (docs/FUNCTIONS.md, Profiles)")
    model_dir: Path | None = _setting("NEUROKUBE_MODEL_DIR", None,
                                      "local model directory (manifest.json + LightGBM text), the option without "
                                      "a tracking server; with NEUROKUBE_MLFLOW_URI too, the model served until "
                                      "the first champion arrives; unset or missing (and no champion): default "
                                      "scoring, counted as fallback reason no_model/model_missing")
    model_reload_s: float = _setting("NEUROKUBE_MODEL_RELOAD_S", 60.0,
                                     "seconds between checks of NEUROKUBE_MODEL_DIR's manifest.json for a new "
                                     "version")
    mlflow_uri: str | None = _setting("NEUROKUBE_MLFLOW_URI", None,
                                      "MLflow tracking URI (http(s)://; CA bundle in MLFLOW_TRACKING_SERVER_CERT_PATH); "
                                      "when set, the functions serve models:/<NEUROKUBE_MODEL_NAME>@champion, "
                                      "loaded in memory (downloaded through TMPDIR) and hot-swapped when the alias "
                                      "moves; no model directory is needed")
    compiled_model_dir: Path | None = _setting(
        "NEUROKUBE_COMPILED_MODEL_DIR", None,
        "directory where the served model's trees are compiled to machine code (lleaves, LLVM) and cached by "
        "checksum: about 7x faster predictions; each model is compiled in the background after it is loaded "
        "(about 12 s of one core per 200-tree booster, cached) while LightGBM predicts, and LightGBM stays if "
        "compiling fails (neurokube_model_compiles_total); unset: LightGBM only")
    model_name: str = _setting("NEUROKUBE_MODEL_NAME", "neurokube-placement", "registered model to follow")
    champion_poll_s: float = _setting("NEUROKUBE_CHAMPION_POLL_S", 60.0,
                                      "seconds between checks of the champion alias in MLflow")
    epsilon: float = _setting("NEUROKUBE_EPSILON", 0.0,
                              "exploration rate: share of decisions sent to a uniformly random feasible node "
                              "(logged with exact propensities)")
    seed: int = _setting("NEUROKUBE_SEED", 0, "random seed of tie-breaks and exploration (mixed with the replica id)")
    # -- Kubernetes API ---------------------------------------------------------------------------
    kubeconfig: Path | None = _setting("KUBECONFIG", None,
                                       "kubeconfig file; unset: the in-cluster service-account credentials")
    request_timeout_s: float = _setting("NEUROKUBE_REQUEST_TIMEOUT_S", 10.0, "timeout of one API request, seconds")
    kube_qps: float = _setting("NEUROKUBE_KUBE_QPS", 0.0,
                               "client-side limit of Kubernetes API requests per second (token bucket); 0: none "
                               "(the apiserver's Priority and Fairness still applies; a 429 is retried after its "
                               "Retry-After)")
    kube_burst: int = _setting("NEUROKUBE_KUBE_BURST", 100, "requests allowed at once above NEUROKUBE_KUBE_QPS")
    kube_transport: str = _setting("NEUROKUBE_KUBE_TRANSPORT", "lean",
                                   "how the binder's, sweeper's and extender's API requests (not watches) travel: lean "
                                   "(a kept http.client connection per thread, about half the CPU per request; a "
                                   "kubeconfig with a proxy keeps the official one) or official (the kubernetes "
                                   "client's ApiClient and urllib3; the actuator always uses it)")
    resync_s: float = _setting("NEUROKUBE_RESYNC_S", 300.0,
                               "seconds between full re-lists of nodes and pods by the watch cache")
    sync_timeout_s: float = _setting("NEUROKUBE_SYNC_TIMEOUT_S", 20.0,
                                     "how long a request waits for the first list of the cache before a 503")
    pod_watch_wait_s: float = _setting("NEUROKUBE_POD_WATCH_WAIT_S", 0.25,
                                       "how long an event about a pod the watch cache has not seen yet waits for "
                                       "the watch before the pod is read with a GET, seconds; 0: GET at once")
    # -- scale-out safety -------------------------------------------------------------------------
    ledger_namespace: str = _setting("NEUROKUBE_LEDGER_NAMESPACE", "neurokube",
                                     "namespace of the per-node reservation Leases (must exist)")
    reservation_ttl_s: float = _setting("NEUROKUBE_RESERVATION_TTL_S", 120.0,
                                        "a reservation older than this is ignored by other replicas, seconds")
    bind_abort_s: float = _setting("NEUROKUBE_BIND_ABORT_S", 20.0,
                                   "a replica never binds later than this after its reservation, seconds "
                                   "(must leave TTL - abort - request timeout for clock skew)")
    ledger_credit_share: float = _setting("NEUROKUBE_LEDGER_CREDIT_SHARE", 0.25,
                                          "share of a node's allocatable a replica reserves ahead in the node's "
                                          "Lease, so that most pods need no Lease write of their own (the binder's and "
                                          "the extender's; the sweeper takes none); 0: none")
    conflict_retries: int = _setting("NEUROKUBE_CONFLICT_RETRIES", 12,
                                     "optimistic-concurrency retries on one node's Lease before moving on")
    bind_attempts: int = _setting("NEUROKUBE_BIND_ATTEMPTS", 6,
                                  "nodes tried for one pod (next best after a vanished or full node)")
    # -- Prometheus -------------------------------------------------------------------------------
    prometheus_url: str | None = _setting("NEUROKUBE_PROMETHEUS_URL", None,
                                          "Prometheus base URL; unset: no metrics, default scoring "
                                          "(fallback reason prometheus_disabled)")
    prom_node_label: str = _setting("NEUROKUBE_PROM_NODE_LABEL", "instance",
                                    "series label naming the node (e.g. instance or node)")
    prom_strip_port: bool = _setting("NEUROKUBE_PROM_STRIP_PORT", True,
                                     "strip ':port' from that label; the value may also be a node address")
    prom_window: str = _setting("NEUROKUBE_PROM_WINDOW", "5m", "statistics window ($window)")
    prom_step: str = _setting("NEUROKUBE_PROM_STEP", "30s", "subquery resolution ($step)")
    prom_cpu_usage: str = _setting("NEUROKUBE_PROM_CPU_USAGE",
                                   'sum by ($label) (rate(node_cpu_seconds_total{mode!="idle"}[1m]))',
                                   "PromQL of a node's CPU usage in cores, one series per node")
    prom_memory_usage: str = _setting("NEUROKUBE_PROM_MEMORY_USAGE",
                                      "sum by ($label) (node_memory_MemTotal_bytes - node_memory_MemAvailable_bytes)",
                                      "PromQL of a node's memory usage in bytes, one series per node")
    prom_queries: tuple[tuple[str, str], ...] = _setting(
        "NEUROKUBE_PROM_QUERY_<STAT>", (),
        "override one statistic's whole query; STAT in " + ", ".join(s.upper() for s in STATISTICS),
        read=_prom_queries)
    prom_refresh_s: float = _setting("NEUROKUBE_PROM_REFRESH_S", 30.0, "seconds between metric refreshes")
    prom_stale_after_s: float = _setting("NEUROKUBE_PROM_STALE_AFTER_S", 120.0,
                                         "metrics older than this are stale: default scoring, fallback reason "
                                         "prometheus_unavailable")
    prom_timeout_s: float = _setting("NEUROKUBE_PROM_TIMEOUT_S", 5.0, "timeout of one Prometheus query, seconds")
    prom_token_file: Path | None = _setting("NEUROKUBE_PROM_TOKEN_FILE", None,
                                            "file holding a bearer token sent to Prometheus (Authorization: Bearer), "
                                            "re-read every minute as projected service-account tokens rotate; unset: "
                                            "no Authorization header")
    prom_ca_file: Path | None = _setting("NEUROKUBE_PROM_CA_FILE", None,
                                         "PEM bundle of the CAs that sign Prometheus' certificate (https URLs); "
                                         "unset: the system trust store")
    prom_insecure_skip_verify: bool = _setting("NEUROKUBE_PROM_INSECURE_SKIP_VERIFY", False,
                                               "do not check Prometheus' TLS certificate (warned at start-up); "
                                               "certificates are checked by default")
    recent_lag_s: float = _setting("NEUROKUBE_RECENT_LAG_S", 60.0,
                                   "pods bound less than this before the newest refresh count as recent "
                                   "(their usage is not in the metrics yet)")
    # -- HTTP edge ------------------------------------------------------------------------------
    token: str | None = _setting("NEUROKUBE_TOKEN", None,
                                 "bearer token the extender requires on POST (constant-time compare; 401 "
                                 "without it); the extender needs it, an OIDC audience or NEUROKUBE_INSECURE=1")
    event_token: str | None = _setting("NEUROKUBE_EVENT_TOKEN", None,
                                       "bearer token the binder and sweeper accept on POST (401 without it or an "
                                       "OIDC token); they need it, NEUROKUBE_OIDC_AUDIENCE or NEUROKUBE_INSECURE=1")
    oidc_audience: str | None = _setting("NEUROKUBE_OIDC_AUDIENCE", None,
                                         "accept Knative Eventing OIDC tokens (JWTs from the cluster's service-account "
                                         "issuer) for this audience, e.g. serving.knative.dev/service/neurokube/"
                                         "neurokube-binder; unset: none")
    oidc_issuer: str | None = _setting("NEUROKUBE_OIDC_ISSUER", None,
                                       "the issuer OIDC tokens must name; unset: the apiserver's "
                                       "/.well-known/openid-configuration")
    oidc_subjects: str = _setting("NEUROKUBE_OIDC_SUBJECTS", "",
                                  "comma-separated JWT subjects allowed to call (e.g. "
                                  "system:serviceaccount:neurokube:neurokube-pods-oidc-sources.knative.dev-"
                                  "apiserversource); empty: any subject the issuer signed for the audience")
    insecure: bool = _setting("NEUROKUBE_INSECURE", False,
                              "accept unauthenticated requests when no token and no OIDC audience is set "
                              "(warned at start-up, neurokube_insecure 1 in /metrics); without it such a "
                              "function refuses to start")
    extender_schedulers: str = _setting("NEUROKUBE_EXTENDER_SCHEDULERS", "default-scheduler",
                                        "comma-separated spec.schedulerName values whose pods the extender's "
                                        "/bind may bind (the kube-scheduler profiles that use the extender)")
    max_body_bytes: int = _setting("NEUROKUBE_MAX_BODY_BYTES", 16 * 1024 * 1024,
                                   "largest extender request accepted, bytes (413 above; ExtenderArgs with "
                                   "thousands of full Node objects reach megabytes)")
    max_event_bytes: int = _setting("NEUROKUBE_MAX_EVENT_BYTES", 1024 * 1024,
                                    "largest CloudEvent the binder and sweeper accept, bytes (413 above)")
    # -- decision log -------------------------------------------------------------------------------
    decision_log: str | None = _setting("NEUROKUBE_DECISION_LOG", None,
                                        "object store for decision logs: a directory, file://, "
                                        "minio://host:port/bucket or minios:// (TLS), keys from "
                                        "NEUROKUBE_STORE_ACCESS_KEY/_SECRET_KEY; unset: not written")
    decision_prefix: str = _setting("NEUROKUBE_DECISION_PREFIX", "decisions",
                                    "key prefix of the logs: parts go to <prefix>/date=YYYY-MM-DD/ (the nightly "
                                    "ingest reads decisions/; a prefix under decisions/ would be quarantined)")
    decision_batch: int = _setting("NEUROKUBE_DECISION_BATCH", 200,
                                   "decisions per spool segment (one segment = one Parquet part in the store)")
    decision_flush_s: float = _setting("NEUROKUBE_DECISION_FLUSH_S", 30.0,
                                       "a segment with records is sealed and shipped after this many seconds; also "
                                       "the longest wait between retries while the store is down")
    decision_spool_dir: Path | None = _setting("NEUROKUBE_DECISION_SPOOL_DIR", None,
                                               "local directory where decisions are spooled before the Binding "
                                               "(one <replica>/<slot>/ per process; keep it across container "
                                               "restarts, e.g. an emptyDir); unset: "
                                               "$TMPDIR/neurokube-decision-spool")
    decision_spool_max_bytes: int = _setting("NEUROKUBE_DECISION_SPOOL_MAX_BYTES", 256 * 1024 * 1024,
                                             "bound of one process's spool, bytes; when full the oldest segments "
                                             "are dropped (counted as dropped)")
    # -- sweeper ---------------------------------------------------------------------------------
    sweep_min_age_s: float = _setting("NEUROKUBE_SWEEP_MIN_AGE_S", 5.0,
                                      "the sweeper leaves pods younger than this to the binder, seconds")
    sweep_max_pods: int = _setting("NEUROKUBE_SWEEP_MAX_PODS", 2000, "pods placed per sweep at most")
    sweep_budget_s: float = _setting("NEUROKUBE_SWEEP_BUDGET_S", 50.0, "a sweep stops after this many seconds")
    # -- retry on release (neurokube.live.retry) ---------------------------------------------------
    retry_on_release: bool = _setting("NEUROKUBE_RETRY_ON_RELEASE", True,
                                      "place a pod the binder found unschedulable again as soon as the watch sees "
                                      "room freed (a pod deleted or finished, a node added), as kube-scheduler "
                                      "does; off: it waits for the sweeper")
    retry_max_pods: int = _setting("NEUROKUBE_RETRY_MAX_PODS", 100,
                                   "held pods placed again per release pass at most (oldest first)")
    # -- fault injection (tests/chaos) -------------------------------------------------------------
    failpoint_exit_before_bind: str | None = _setting(
        "NEUROKUBE_FAILPOINT_EXIT_BEFORE_BIND", None,
        "chaos testing only: while this file exists, the next placement deletes it and the process exits "
        "(status 137) between its reservation and its Binding; unset: never")
    # -- misc -----------------------------------------------------------------------------------
    scheduled_events: bool = _setting("NEUROKUBE_SCHEDULED_EVENTS", True,
                                      "post a Normal/Scheduled Event per binding, as kube-scheduler does")
    replica: str = _setting("NEUROKUBE_REPLICA", "",
                            "this replica's name in leases, events and logs; default the host name")
    debug: bool = _setting("NEUROKUBE_DEBUG", False, "debug logs (ignored events are logged at debug)")
    # -- per-workload usage history (issue 12: the replay's WorkloadUsage, read from Prometheus) -----
    prom_pod_cpu_usage: str = _setting(
        "NEUROKUBE_PROM_POD_CPU_USAGE",
        'sum by (namespace, pod) (irate(container_cpu_usage_seconds_total{container!="",container!="POD"}[2m]))',
        "PromQL of each pod's CPU usage in cores, one series per pod with `namespace` and `pod` labels "
        "(cAdvisor; irate: the usage over the last scrape interval, as the replay samples it)")
    prom_pod_memory_usage: str = _setting(
        "NEUROKUBE_PROM_POD_MEMORY_USAGE",
        'sum by (namespace, pod) (container_memory_working_set_bytes{container!="",container!="POD"})',
        "PromQL of each pod's memory usage in bytes, one series per pod with `namespace` and `pod` labels "
        "(cAdvisor's working set)")
    prom_history_window: str = _setting("NEUROKUBE_PROM_HISTORY_WINDOW", "6h",
                                        "how far back the per-workload usage history reaches (Prometheus "
                                        "duration); pods that ended earlier are forgotten")
    prom_history_step: str = _setting("NEUROKUBE_PROM_HISTORY_STEP", "1m",
                                      "one history sample per pod and step (Prometheus duration); the replay "
                                      "takes one per scrape, 60 s, so counts agree at the default")
    prom_history_refresh_s: float = _setting("NEUROKUBE_PROM_HISTORY_REFRESH_S", 300.0,
                                             "seconds between refreshes of the per-workload usage history "
                                             "(in the metrics thread)")
    # -- actuator (functions/actuator: resize and evict running pods, docs/ACTING.md) ---------------
    actuator_dry_run: bool = _setting("NEUROKUBE_ACTUATOR_DRY_RUN", True,
                                      "the actuator only asks the apiserver (dryRun=All) and changes nothing; "
                                      "set false to resize and evict for real")
    actuator_model_dir: Path | None = _setting("NEUROKUBE_ACTUATOR_MODEL_DIR", None,
                                               "forecast models of `neurokube recommend --model-dir`; unset: "
                                               "every workload's level is its usage now (counted as fallback "
                                               "reason no_model); unreadable: the same, reason model_unreadable")
    actuator_args: str = _setting("NEUROKUBE_ACTUATOR_ARGS", "",
                                  "key=value,... of NeuroKube's actuator (docs/ACTING.md: margin, hot_threshold, "
                                  "tolerance, pod_cooldown_s, node_cooldown_s, resizes_per_node, max_evictions, "
                                  "downsize, ...; not model); empty: its defaults")
    actuator_skip_namespaces: str = _setting("NEUROKUBE_ACTUATOR_SKIP_NAMESPACES", "kube-system",
                                             "comma-separated namespaces whose pods the actuator never resizes or "
                                             "evicts (their requests still count on their nodes)")

    def query(self, statistic: str) -> str:
        """The PromQL of one statistic (``cpu_mean``, ...), with the templates filled in."""
        overrides = dict(self.prom_queries)
        resource, stat = statistic.split("_", 1)
        if statistic in overrides:
            template = overrides[statistic]
        else:
            template = f"{_STAT_TEMPLATE[stat]}(($expr)[$window:$step])"
        expr = self.prom_cpu_usage if resource == "cpu" else self.prom_memory_usage
        values = {"label": self.prom_node_label, "window": self.prom_window, "step": self.prom_step}
        expr = string.Template(expr).safe_substitute(values)
        return string.Template(template).safe_substitute(values, expr=expr)

    @property
    def oidc_subject_list(self) -> tuple[str, ...]:
        return tuple(s.strip() for s in self.oidc_subjects.split(",") if s.strip())

    @property
    def extender_scheduler_names(self) -> frozenset[str]:
        return frozenset(s.strip() for s in self.extender_schedulers.split(",") if s.strip())

    def static_token(self, function: str) -> str | None:
        """The bearer token ``function`` accepts: the extender's, or the event token of the others."""
        return self.token if function == "extender" else self.event_token

    def auth_problem(self, function: str) -> str | None:
        """Why ``function`` must not start with these settings (no way to authenticate callers and
        no explicit NEUROKUBE_INSECURE=1), or None."""
        if self.static_token(function) is not None or self.oidc_audience is not None or self.insecure:
            return None
        token_env = "NEUROKUBE_TOKEN" if function == "extender" else "NEUROKUBE_EVENT_TOKEN"
        return (f"the {function} would accept requests from anyone: set {token_env} or NEUROKUBE_OIDC_AUDIENCE, "
                f"or NEUROKUBE_INSECURE=1 to allow unauthenticated calls on purpose")

    @property
    def replica_name(self) -> str:
        return self.replica or os.environ.get("HOSTNAME") or socket.gethostname()


def from_env(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from ``environ`` (default ``os.environ``); one InputError lists every problem."""
    return envsettings.from_env(Settings, environ, extra=_unknown_statistics,
                                check=lambda s: validate(s) + _profile_problems(s))


def _unknown_statistics(environ: Mapping[str, str]) -> list[str]:
    unknown = sorted(k for k in environ if k.startswith("NEUROKUBE_PROM_QUERY_")
                     and k.removeprefix("NEUROKUBE_PROM_QUERY_").lower() not in STATISTICS)
    return [f"{k}: unknown statistic (choose from {', '.join(s.upper() for s in STATISTICS)})" for k in unknown]


def _profile_problems(s: Settings) -> list[str]:
    if s.profile is None:
        return []
    from neurokube.live.profile import profile_for  # reads and checks the file: start-up refuses a bad one

    try:
        profile_for(s.profile, s.scheduler_name)
    except InputError as exc:
        return [f"NEUROKUBE_PROFILE: {exc}"]
    return []


def validate(s: Settings) -> list[str]:
    problems = []

    def check(ok: bool, env: str, message: str) -> None:
        if not ok:
            problems.append(f"{env}: {message}")

    for f in fields(Settings):
        value = getattr(s, f.name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and f.name not in (
                "seed", "epsilon", "kube_qps", "pod_watch_wait_s"):
            check(value > 0, f.metadata["env"], f"must be positive, got {value}")
    check(bool(_DNS_LABEL.match(s.scheduler_name)) or "/" in s.scheduler_name, "NEUROKUBE_SCHEDULER_NAME",
          f"{s.scheduler_name!r} is not a valid scheduler name")
    check(bool(_DNS_LABEL.match(s.ledger_namespace)), "NEUROKUBE_LEDGER_NAMESPACE",
          f"{s.ledger_namespace!r} is not a namespace name")
    check(0.0 <= s.epsilon <= 1.0, "NEUROKUBE_EPSILON", f"must be in [0, 1], got {s.epsilon}")
    check(s.kube_qps >= 0.0, "NEUROKUBE_KUBE_QPS", f"must be 0 (no limit) or positive, got {s.kube_qps}")
    check(s.kube_transport in ("lean", "official"), "NEUROKUBE_KUBE_TRANSPORT",
          f"must be lean or official, got {s.kube_transport!r}")
    check(0.0 <= s.pod_watch_wait_s <= 5.0, "NEUROKUBE_POD_WATCH_WAIT_S",
          f"must be in [0, 5] seconds, got {s.pod_watch_wait_s}")
    if s.mlflow_uri is not None:
        parts = urlsplit(s.mlflow_uri)
        check((parts.scheme in ("http", "https") and bool(parts.netloc)) or parts.scheme in ("sqlite", "file"),
              "NEUROKUBE_MLFLOW_URI", f"{s.mlflow_uri!r} is not an MLflow tracking URI (http(s)://host:port, or "
                                      "sqlite:/// for an embedded store)")
    check(0.0 <= s.ledger_credit_share <= 1.0, "NEUROKUBE_LEDGER_CREDIT_SHARE",
          f"must be in [0, 1] (a share of a node's allocatable), got {s.ledger_credit_share}")
    check(s.bind_abort_s + s.request_timeout_s < s.reservation_ttl_s, "NEUROKUBE_BIND_ABORT_S",
          f"abort ({s.bind_abort_s}s) + request timeout ({s.request_timeout_s}s) must stay below the "
          f"reservation TTL ({s.reservation_ttl_s}s)")
    if s.prometheus_url is not None:
        parts = urlsplit(s.prometheus_url)
        check(parts.scheme in ("http", "https") and bool(parts.netloc), "NEUROKUBE_PROMETHEUS_URL",
              f"{s.prometheus_url!r} is not an http(s) URL")
    check(bool(_PROM_LABEL.match(s.prom_node_label)), "NEUROKUBE_PROM_NODE_LABEL",
          f"{s.prom_node_label!r} is not a Prometheus label name")
    for env, value in (("NEUROKUBE_PROM_WINDOW", s.prom_window), ("NEUROKUBE_PROM_STEP", s.prom_step),
                       ("NEUROKUBE_PROM_HISTORY_WINDOW", s.prom_history_window),
                       ("NEUROKUBE_PROM_HISTORY_STEP", s.prom_history_step)):
        check(bool(_DURATION.match(value)), env, f"{value!r} is not a Prometheus duration like 5m")
    check(s.prom_stale_after_s > s.prom_refresh_s, "NEUROKUBE_PROM_STALE_AFTER_S",
          "must be longer than the refresh period")
    check(s.prom_ca_file is None or not s.prom_insecure_skip_verify, "NEUROKUBE_PROM_INSECURE_SKIP_VERIFY",
          "contradicts NEUROKUBE_PROM_CA_FILE (a CA bundle is for checking the certificate); set one of them")
    check(s.prom_ca_file is None or s.prom_ca_file.is_file(), "NEUROKUBE_PROM_CA_FILE",
          f"{s.prom_ca_file} is not a readable file")
    for env, token in (("NEUROKUBE_TOKEN", s.token), ("NEUROKUBE_EVENT_TOKEN", s.event_token)):
        if token is not None:
            check(len(token) >= 16, env, "use at least 16 characters")
            check(token.isascii() and token.isprintable() and " " not in token, env,
                  "use printable ASCII without spaces (it travels in an HTTP header)")
    if s.oidc_audience is not None:
        check(s.oidc_audience.isprintable() and " " not in s.oidc_audience, "NEUROKUBE_OIDC_AUDIENCE",
              "must be printable without spaces")
    if s.oidc_issuer is not None:
        check(urlsplit(s.oidc_issuer).scheme == "https", "NEUROKUBE_OIDC_ISSUER",
              f"{s.oidc_issuer!r} is not an https URL (service-account issuers are)")
    check(not s.oidc_subjects or s.oidc_audience is not None, "NEUROKUBE_OIDC_SUBJECTS",
          "needs NEUROKUBE_OIDC_AUDIENCE")
    check(bool(s.extender_scheduler_names) and all(_DNS_LABEL.match(n) or "/" in n for n in s.extender_scheduler_names),
          "NEUROKUBE_EXTENDER_SCHEDULERS", f"{s.extender_schedulers!r} is not a list of scheduler names")
    if s.decision_prefix:
        check(not s.decision_prefix.startswith("/") and ".." not in s.decision_prefix.split("/"),
              "NEUROKUBE_DECISION_PREFIX", "must be a relative key prefix")
        check(s.decision_prefix.strip("/") == "decisions" or not s.decision_prefix.startswith("decisions/"),
              "NEUROKUBE_DECISION_PREFIX", f"{s.decision_prefix!r} is under decisions/, where the nightly ingest "
              "reads only decisions/date=YYYY-MM-DD/ and quarantines other keys; use decisions")
    check(s.decision_spool_max_bytes >= 1024 * 1024, "NEUROKUBE_DECISION_SPOOL_MAX_BYTES",
          f"must be at least 1 MiB (1048576), got {s.decision_spool_max_bytes}")
    problems += _actuator_problems(s)
    return problems


def actuator_args(s: Settings):
    """NEUROKUBE_ACTUATOR_ARGS as :class:`~neurokube.acting.neurokube_actuator.NeuroKubeActuatorArgs`
    (InputError naming the variable)."""
    from neurokube.acting.neurokube_actuator import NeuroKubeActuatorArgs
    from neurokube.policies.spec import parse_spec, typed_args

    env = "NEUROKUBE_ACTUATOR_ARGS"
    text = s.actuator_args.strip()
    if not text:
        return NeuroKubeActuatorArgs()
    spec = parse_spec(f"neurokube:{text}", env)
    if any(key == "model" for key, _ in spec.pairs):
        raise InputError("model is not an argument here", env, "set NEUROKUBE_ACTUATOR_MODEL_DIR")
    return typed_args(NeuroKubeActuatorArgs, spec, env)


def _actuator_problems(s: Settings) -> list[str]:
    if not s.actuator_args.strip():  # the defaults; the other functions do not import the actuator
        return []
    try:
        actuator_args(s)
    except InputError as exc:
        return [str(exc)]  # names the variable
    return []


def table() -> str:
    """The settings as a Markdown table (docs/FUNCTIONS.md)."""
    return envsettings.table(Settings)
