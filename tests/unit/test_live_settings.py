"""Settings: one typed dataclass read from the environment in one place, defaults that work,
every problem reported at once with the variable's name, and PromQL templates filled in."""

from pathlib import Path

import pytest

from neurokube.errors import InputError
from neurokube.live.settings import STATISTICS, Settings, from_env, table


def test_defaults_are_valid():
    s = from_env({})
    assert s.scheduler_name == "neurokube" and s.model_dir is None and s.prometheus_url is None
    assert s.max_event_bytes == 1024 * 1024 and s.max_body_bytes == 16 * 1024 * 1024
    assert s.token is None and s.event_token is None
    assert s.bind_abort_s + s.request_timeout_s < s.reservation_ttl_s


def test_types_are_converted():
    s = from_env({"NEUROKUBE_MODEL_DIR": "/m", "NEUROKUBE_PROM_REFRESH_S": "15", "NEUROKUBE_PROM_STRIP_PORT": "no",
                  "NEUROKUBE_DECISION_BATCH": "50", "NEUROKUBE_PROMETHEUS_URL": "http://prom:9090",
                  "NEUROKUBE_TOKEN": "x" * 20, "KUBECONFIG": "/k"})
    assert s.model_dir == Path("/m") and s.prom_refresh_s == 15.0 and s.prom_strip_port is False
    assert s.decision_batch == 50 and s.kubeconfig == Path("/k") and s.token == "x" * 20


def test_every_problem_is_reported_with_its_variable():
    with pytest.raises(InputError) as info:
        from_env({"NEUROKUBE_PROM_REFRESH_S": "soon", "NEUROKUBE_DECISION_BATCH": "1.5",
                  "NEUROKUBE_SCHEDULED_EVENTS": "maybe", "NEUROKUBE_PROM_QUERY_CPU_P99": "x"})
    message = str(info.value)
    for part in ("NEUROKUBE_PROM_REFRESH_S='soon': expected a number", "NEUROKUBE_DECISION_BATCH='1.5'",
                 "NEUROKUBE_SCHEDULED_EVENTS='maybe': expected true or false",
                 "NEUROKUBE_PROM_QUERY_CPU_P99: unknown statistic"):
        assert part in message


@pytest.mark.parametrize("env, problem", [
    ({"NEUROKUBE_EPSILON": "1.5"}, "NEUROKUBE_EPSILON: must be in [0, 1]"),
    ({"NEUROKUBE_PROMETHEUS_URL": "prom:9090"}, "is not an http(s) URL"),
    ({"NEUROKUBE_PROM_WINDOW": "five minutes"}, "is not a Prometheus duration"),
    ({"NEUROKUBE_PROM_NODE_LABEL": "not a label"}, "is not a Prometheus label name"),
    ({"NEUROKUBE_RESYNC_S": "-5"}, "NEUROKUBE_RESYNC_S: must be positive"),
    ({"NEUROKUBE_BIND_ABORT_S": "200"}, "must stay below the reservation TTL"),
    ({"NEUROKUBE_TOKEN": "short"}, "at least 16 characters"),
    ({"NEUROKUBE_EVENT_TOKEN": "short"}, "NEUROKUBE_EVENT_TOKEN: use at least 16 characters"),
    ({"NEUROKUBE_EVENT_TOKEN": "with a space in the token"}, "printable ASCII without spaces"),
    ({"NEUROKUBE_MAX_EVENT_BYTES": "0"}, "NEUROKUBE_MAX_EVENT_BYTES: must be positive"),
    ({"NEUROKUBE_LEDGER_NAMESPACE": "Bad_NS"}, "is not a namespace name"),
    ({"NEUROKUBE_PROM_STALE_AFTER_S": "10"}, "longer than the refresh period"),
    ({"NEUROKUBE_SCHEDULER_NAME": "Not Valid"}, "not a valid scheduler name"),
])
def test_validation(env, problem):
    with pytest.raises(InputError, match=problem.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        from_env(env)


def test_queries_fill_the_templates():
    s = from_env({"NEUROKUBE_PROM_NODE_LABEL": "node", "NEUROKUBE_PROM_WINDOW": "15m"})
    assert s.query("cpu_mean") == ('avg_over_time((sum by (node) (rate(node_cpu_seconds_total{mode!="idle"}[1m])))'
                                   '[15m:30s])')
    assert s.query("mem_std").startswith("stddev_over_time((sum by (node) (node_memory_MemTotal_bytes")
    custom = from_env({"NEUROKUBE_PROM_QUERY_CPU_MAX": "max_over_time(instance:node_cpu:sum[$window])"})
    assert custom.query("cpu_max") == "max_over_time(instance:node_cpu:sum[5m])"
    assert {s.split("_")[0] for s in STATISTICS} == {"cpu", "mem"}


def test_reference_table_lists_every_variable():
    rendered = table()
    for name in ("NEUROKUBE_MODEL_DIR", "NEUROKUBE_PROMETHEUS_URL", "NEUROKUBE_TOKEN", "KUBECONFIG",
                 "NEUROKUBE_DECISION_LOG", "NEUROKUBE_RESYNC_S", "NEUROKUBE_MAX_BODY_BYTES",
                 "NEUROKUBE_EVENT_TOKEN", "NEUROKUBE_MAX_EVENT_BYTES"):
        assert f"`{name}`" in rendered
    assert Settings().replica_name


@pytest.mark.parametrize("function, environ, ok", [
    ("binder", {}, False),
    ("binder", {"NEUROKUBE_EVENT_TOKEN": "e" * 20}, True),
    ("binder", {"NEUROKUBE_OIDC_AUDIENCE": "serving.knative.dev/service/neurokube/neurokube-binder"}, True),
    ("binder", {"NEUROKUBE_INSECURE": "1"}, True),
    ("binder", {"NEUROKUBE_TOKEN": "t" * 20}, False),  # the extender's token does not open the binder
    ("sweeper", {"NEUROKUBE_EVENT_TOKEN": "e" * 20}, True),
    ("extender", {"NEUROKUBE_EVENT_TOKEN": "e" * 20}, False),
    ("extender", {"NEUROKUBE_TOKEN": "t" * 20}, True),
    ("extender", {"NEUROKUBE_INSECURE": "true"}, True),
])
def test_every_function_needs_auth_or_an_explicit_insecure_flag(function, environ, ok):
    problem = from_env(environ).auth_problem(function)
    assert (problem is None) == ok, problem
    if not ok:
        assert "NEUROKUBE_INSECURE=1" in problem


@pytest.mark.parametrize("environ, message", [
    ({"NEUROKUBE_OIDC_ISSUER": "http://plain"}, "NEUROKUBE_OIDC_ISSUER"),
    ({"NEUROKUBE_OIDC_SUBJECTS": "system:serviceaccount:a:b"}, "needs NEUROKUBE_OIDC_AUDIENCE"),
    ({"NEUROKUBE_OIDC_AUDIENCE": "has space"}, "NEUROKUBE_OIDC_AUDIENCE"),
    ({"NEUROKUBE_EXTENDER_SCHEDULERS": " , "}, "NEUROKUBE_EXTENDER_SCHEDULERS"),
    ({"NEUROKUBE_INSECURE": "maybe"}, "NEUROKUBE_INSECURE='maybe': expected true or false"),
])
def test_bad_auth_settings_are_refused(environ, message):
    with pytest.raises(InputError, match=message):
        from_env(environ)


def test_the_documented_table_is_the_code_s():
    """docs/FUNCTIONS.md carries the table as rendered from the code (regenerate it when a setting changes)."""
    docs = (Path(__file__).resolve().parents[2] / "docs" / "FUNCTIONS.md").read_text()
    assert table() in docs
