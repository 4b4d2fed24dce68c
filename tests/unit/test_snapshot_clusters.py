"""Snapshots hold only this cluster's data (pipelines/settings.py, pipelines/usage.py, the emulator's labels).

* the series selector is parsed and validated: a malformed one, a bad regular expression, or a
  custom query that would ignore it is an InputError naming it; the rendered queries carry its
  matchers in every vector selector and keep the source labels apart (``sum by (node, cluster, job)``);
* a selector of equality matchers gives the labels a writer attaches; another kind cannot;
* two result series for one node at one time (two clusters, two scrapes) are refused, naming both
  series; the same node from two series at different times is not a duplicate;
* the emulator attaches a cluster label to every series (OpenMetrics backfill and live exporter),
  and refuses a label the series already carry;
* ``neurokube nightly --cluster`` needs ``--stack``.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from prometheus_client import generate_latest

from neurokube.adapters.usage import NodeUsage, PodUsage, Snapshot
from neurokube.emulator.exporter import registry_for
from neurokube.emulator.openmetrics import write_window
from neurokube.errors import InputError
from pipelines.settings import PrometheusQueries, parse_selector, selector_labels
from pipelines.usage import PrometheusUsage

T0 = 1_700_006_400  # 2023-11-15T00:00:00Z


@pytest.mark.parametrize("text, why", [
    ("cluster=prod", "expected label"),  # unquoted value
    ('cluster=="prod"', "expected label"),
    ('="prod"', "expected label"),
    ('cluster="prod",', "ends with a comma"),
    ('cluster="prod" env="x"', "expected label"),  # no comma between matchers
    ('cluster=~"prod-("', "regular expression"),
    ('__name__="up"', "names the metric"),
    ('cluster="unterminated', "expected label"),
])
def test_a_malformed_selector_is_an_input_error(text, why):
    with pytest.raises(InputError, match="selector") as info:
        PrometheusQueries(selector=text)
    assert why in str(info.value) and repr(text) in str(info.value)


def test_selectors_that_parse():
    assert parse_selector("") == ()
    [m] = parse_selector('  cluster = "prod-eu-1" ')
    assert (m.name, m.op, m.value) == ("cluster", "=", "prod-eu-1")
    ms = parse_selector(r'cluster=~"prod-.*", env!="te\"st",tier!~"a|b"')
    assert [(m.name, m.op, m.value) for m in ms] == [("cluster", "=~", "prod-.*"), ("env", "!=", 'te"st'),
                                                     ("tier", "!~", "a|b")]
    assert ms[1].render() == r'env!="te\"st"'


def test_rendered_queries_select_the_cluster_and_keep_sources_apart():
    queries = PrometheusQueries(selector='cluster="prod-eu-1"').rendered()
    assert set(queries) == {"cpu_used_milli", "cpu_alloc_milli", "mem_used_mib"}
    assert queries["cpu_used_milli"] == ('sum by (node, cluster, job) (rate(container_cpu_usage_seconds_total'
                                         '{cluster="prod-eu-1",}[3m])) * 1000')
    assert 'kube_node_status_allocatable{cluster="prod-eu-1",resource="cpu"}' in queries["cpu_alloc_milli"]
    assert 'container_memory_working_set_bytes{cluster="prod-eu-1",}' in queries["mem_used_mib"]
    unselected = PrometheusQueries().rendered()
    assert "container_cpu_usage_seconds_total{}" in unselected["cpu_used_milli"]


def test_a_custom_query_must_take_the_selector():
    with pytest.raises(InputError, match="cpu_used_milli query would ignore the series selector"):
        PrometheusQueries(selector='cluster="a"', cpu_used_milli="sum by (node) (rate(x[{rate_window}]))")
    PrometheusQueries(cpu_used_milli="sum by (node) (rate(x[{rate_window}]))")  # no selector: fine
    with pytest.raises(InputError, match="duration"):
        PrometheusQueries(rate_window="3 minutes")


def test_selector_labels_are_its_equality_matchers():
    assert selector_labels('cluster="a", env="prod"') == {"cluster": "a", "env": "prod"}
    assert selector_labels("") == {}
    with pytest.raises(InputError, match="not an equality"):
        selector_labels('cluster=~"a|b"')


class TwoClusters:
    """A Prometheus holding clusters a and b with the same node name; ``overlap``: at the same times."""

    def __init__(self, overlap: bool = True) -> None:
        self.overlap = overlap
        self.queries: list[str] = []

    def custom_query_range(self, query, start_time, end_time, step):
        self.queries.append(query)
        ts = np.arange(start_time.timestamp(), end_time.timestamp() + 1, 60)
        half = len(ts) // 2
        series = []
        for cluster, value in (("a", "1000"), ("b", "3000")):
            if f'cluster="{"b" if cluster == "a" else "a"}"' in query:
                continue  # the selector excludes this cluster
            times = ts if self.overlap else (ts[:half] if cluster == "a" else ts[half:])
            series.append({"metric": {"node": "node-1", "cluster": cluster, "job": "kubelet"},
                           "values": [[t, value] for t in times]})
        return series


def test_two_series_for_one_node_are_refused_naming_both():
    reader = PrometheusUsage("http://prom", PrometheusQueries(), client=TwoClusters())
    with pytest.raises(InputError) as info:
        reader.read(T0, T0 + 3600, 60)
    message = str(info.value)
    assert "two series for node 'node-1' at 2023-11-15T00:00:00Z" in message
    assert '{cluster="a", job="kubelet", node="node-1"}' in message
    assert '{cluster="b", job="kubelet", node="node-1"}' in message
    assert "set the series selector" in message


def test_the_selector_reads_one_cluster():
    prom = TwoClusters()
    frame = PrometheusUsage("http://prom", PrometheusQueries(selector='cluster="a"'), client=prom).read(
        T0, T0 + 3600, 60)
    assert len(frame) == 60 and set(frame["node"]) == {"node-1"}
    assert frame["cpu_used_milli"].eq(1000).all() and frame["cpu_alloc_milli"].eq(1000).all()
    assert all('cluster="a"' in q for q in prom.queries)


def test_one_node_from_two_series_at_different_times_is_not_a_duplicate():
    reader = PrometheusUsage("http://prom", PrometheusQueries(), client=TwoClusters(overlap=False))
    frame = reader.read(T0, T0 + 3600, 60)
    assert len(frame) == 60 and frame["cpu_used_milli"].tolist() == [1000.0] * 30 + [3000.0] * 30


class OneNode:
    def snapshot(self, now_s: float) -> Snapshot:
        return Snapshot([NodeUsage("node-1", 2000, 4096, 500.0, 100.0)],
                        [PodUsage("default", "web", "node-1", 100, 128, 500.0, 100.0)])


def test_the_backfill_text_carries_the_cluster_label():
    out = io.StringIO()
    write_window(OneNode(), T0, T0 + 120, 60, out, {"cluster": "a", "job": "emulator"})
    samples = [line for line in out.getvalue().splitlines() if line and not line.startswith("#")]
    assert samples and all('cluster="a"' in line and 'job="emulator"' in line for line in samples)
    with pytest.raises(InputError, match="carry a label 'node'"):
        write_window(OneNode(), T0, T0 + 120, 60, io.StringIO(), {"node": "x"})
    with pytest.raises(InputError, match="not a label name"):
        write_window(OneNode(), T0, T0 + 120, 60, io.StringIO(), {"__cluster": "x"})


def test_the_live_exporter_carries_the_cluster_label():
    text = generate_latest(registry_for(OneNode(), clock=lambda: float(T0), labels={"cluster": "a"})).decode()
    samples = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert samples and all('cluster="a"' in line for line in samples)


def test_nightly_cluster_needs_the_stack(tmp_path):
    import argparse

    from neurokube.cli import nightly_cmd

    parser = argparse.ArgumentParser()
    nightly_cmd.register(parser.add_subparsers())
    args = parser.parse_args(["nightly", "--cluster", "x", "--out", str(tmp_path / "out")])
    with pytest.raises(InputError, match="--cluster needs --stack"):
        args.func(args)
    args = parser.parse_args(["nightly", "--stack", "--cluster", 'x"y', "--out", str(tmp_path / "out")])
    with pytest.raises(InputError, match="malformed series selector"):
        args.func(args)
