"""Generate the NeuroKube Grafana dashboard with grafana-foundation-sdk's typed builders (dashboard
as code; the JSON is checked in beside it).

    python deploy/observability/dashboard.py > deploy/observability/neurokube-dashboard.json

Grafana: Dashboards -> New -> Import -> upload the JSON -> choose the Prometheus data source
(the ``DS_PROMETHEUS`` input). Provisioned instead (the ConfigMap of deploy/observability's
kustomization, picked up by Grafana's dashboard sidecar), the same ``${DS_PROMETHEUS}`` resolves
through the dashboard's data-source variable. tests/unit/test_observability_manifests.py checks
that the JSON is this module's output; tests/integration/test_observability.py evaluates every
panel's query against a live Prometheus.

The SDK lays the panels out: each row starts a new line, and panels fill it left to right with
the width (``span``) and height given here, wrapping at Grafana's 24 columns.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboards
from grafana_foundation_sdk.builders import prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

DS = model.DataSourceRef(type_val="prometheus", uid="${DS_PROMETHEUS}")
RATE = "$__rate_interval"
#: What Grafana's import dialog asks for (``DS_PROMETHEUS``); the SDK's dashboard model has no
#: ``__inputs``/``__requires``, so they are added to its JSON.
IMPORT_HEADER = {
    "__inputs": [{"name": "DS_PROMETHEUS", "label": "Prometheus", "type": "datasource",
                  "pluginId": "prometheus", "pluginName": "Prometheus"}],
    "__requires": [{"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.0.0"},
                   {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"}],
}
Query = tuple[str, str]  # (PromQL, legend)


def _query(expr: str, legend: str, ref: str, table_query: bool) -> prometheus.Dataquery:
    query = prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DS)
    if table_query:
        return query.instant().format(PromQueryFormat.TABLE)
    return query.range().format(PromQueryFormat.TIME_SERIES)


def _thresholds(values: Sequence[float]) -> dashboards.ThresholdsConfig:
    steps = [model.Threshold(color="green", value=None)]
    steps += [model.Threshold(color=color, value=value) for color, value in zip(("orange", "red"), values)]
    return dashboards.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE).steps(steps)


def _common(panel, title: str, queries: Sequence[Query], size: tuple[int, int], *, unit: str, description: str,
            thresholds: Sequence[float], max_value: float | None, table_query: bool = False):
    """Title, size, queries, unit, thresholds and range: what every panel kind here shares."""
    width, height = size
    panel = (panel.title(title).datasource(DS).span(width).height(height).unit(unit)
             .thresholds(_thresholds(thresholds)))
    if description:
        panel = panel.description(description)
    if max_value is not None:
        panel = panel.min(0).max(max_value)
    for i, (expr, legend) in enumerate(queries):
        panel = panel.with_target(_query(expr, legend, "ABCDEFGH"[i], table_query))
    return panel


def graph(title: str, queries: Sequence[Query], size: tuple[int, int], *, unit: str = "short",
          description: str = "", stacked: bool = False, thresholds: Sequence[float] = (),
          max_value: float | None = None) -> timeseries.Panel:
    """A time series: lines (stacked and lightly filled when ``stacked``), a table legend with the
    last and maximum values, threshold lines when thresholds are given."""
    stacking = common_builders.StackingConfig().mode(
        common.StackingMode.NORMAL if stacked else common.StackingMode.NONE).group("A")
    thresholds_style = common_builders.GraphThresholdsStyleConfig().mode(
        common.GraphTresholdsStyleMode.LINE if thresholds else common.GraphTresholdsStyleMode.OFF)
    panel = (timeseries.Panel().draw_style(common.GraphDrawStyle.LINE).line_width(1)
             .fill_opacity(10 if stacked else 0).stacking(stacking).show_points(common.VisibilityMode.NEVER)
             .span_nulls(False).thresholds_style(thresholds_style)
             .legend(common_builders.VizLegendOptions().show_legend(True)
                     .display_mode(common.LegendDisplayMode.TABLE).placement(common.LegendPlacement.BOTTOM)
                     .calcs(["lastNotNull", "max"]))
             .tooltip(common_builders.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI)
                      .sort(common.SortOrder.DESCENDING)))
    return _common(panel, title, queries, size, unit=unit, description=description, thresholds=thresholds,
                   max_value=max_value)


def single(title: str, query: Query, size: tuple[int, int], *, unit: str = "short", description: str = "",
           thresholds: Sequence[float] = (), max_value: float | None = None) -> stat.Panel:
    """A stat: the last value on a background coloured by the thresholds, with a sparkline."""
    panel = (stat.Panel()
             .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).fields("").values(False))
             .color_mode(common.BigValueColorMode.BACKGROUND).graph_mode(common.BigValueGraphMode.AREA)
             .text_mode(common.BigValueTextMode.AUTO))
    return _common(panel, title, [query], size, unit=unit, description=description, thresholds=thresholds,
                   max_value=max_value)


def labels_table(title: str, expr: str, size: tuple[int, int], *, description: str = "") -> table.Panel:
    """A table of an instant query's label sets (the Time and Value columns hidden)."""
    panel = table.Panel().show_header(True).with_transformation(
        model.DataTransformerConfig(id_val="organize", options={"excludeByName": {"Time": True, "Value": True}}))
    return _common(panel, title, [(expr, "")], size, unit="short", description=description, thresholds=(),
                   max_value=None, table_query=True)


def rows() -> list[tuple[str, list]]:
    """The dashboard's rows and their panels, in order."""
    scheduling = [
        graph("Placement decisions by policy and outcome",
              [(f"sum by (policy, outcome) (rate(neurokube_decisions_total[{RATE}]))", "{{policy}} / {{outcome}}")],
              (12, 8), unit="ops", stacked=True,
              description="neurokube_decisions_total: policy neurokube = learned, default = fallback scoring; "
                          "outcome bound, already_bound, unschedulable, gone, failed."),
        graph("Placement latency p50 / p99 by stage",
              [(f"histogram_quantile(0.99, sum by (le, stage) (rate(neurokube_decision_duration_seconds_bucket[{RATE}])))",
                "p99 {{stage}}"),
               (f"histogram_quantile(0.5, sum by (le, stage) (rate(neurokube_decision_duration_seconds_bucket[{RATE}])))",
                "p50 {{stage}}")],
              (12, 8), unit="s", thresholds=(0.5, 1.0),
              description="decide = filter + view + policy; bind = reservation Lease + Binding; total. "
                          "Alert NeuroKubeDecisionLatencyHigh at p99 > 1 s."),
        single("Learned-policy share of bindings",
               (f"sum(rate(neurokube_decisions_total{{outcome=\"bound\", policy=\"neurokube\"}}[{RATE}])) "
                f"/ sum(rate(neurokube_decisions_total{{outcome=\"bound\"}}[{RATE}]))", "learned"),
               (6, 6), unit="percentunit", max_value=1,
               description="Share of bound pods placed by the learned policy (alert below 80 %)."),
        graph("Fallbacks by reason", [(f"sum by (reason) (rate(neurokube_fallbacks_total[{RATE}]))", "{{reason}}")],
              (9, 6), unit="ops", stacked=True,
              description="neurokube_fallbacks_total: decisions and extender calls that did not use the model."),
        graph("Bind conflicts by kind", [(f"sum by (kind) (rate(neurokube_bind_conflicts_total[{RATE}]))", "{{kind}}")],
              (9, 6), unit="ops", stacked=True,
              description="already_assigned is a success (409 on a bound pod); reservation/contended/too_slow "
                          "are Lease races between replicas; no_room a node that filled meanwhile."),
        graph("Extender latency p99 by verb",
              [(f"histogram_quantile(0.99, sum by (le, verb) (rate(neurokube_extender_duration_seconds_bucket[{RATE}])))",
                "p99 /{{verb}}")],
              (12, 7), unit="s", thresholds=(1.0, 2.5), description="kube-scheduler's httpTimeout is 5 s."),
        graph("CloudEvents by result", [(f"sum by (result) (rate(neurokube_cloudevents_total[{RATE}]))", "{{result}}")],
              (12, 7), unit="ops", stacked=True,
              description="handled, ignored (other schedulers, updates of bound pods), rejected (bad input), "
                          "failed (503: redelivered)."),
    ]
    inputs = [
        single("Pending pods (schedulerName neurokube)", ("max(neurokube_pending_pods)", "pending"), (6, 6),
               thresholds=(50, 100),
               description="From the functions' watch cache; max over replicas (each sees the same pods)."),
        graph("Watch cache age", [("max by (resource) (neurokube_cache_age_seconds)", "{{resource}}")], (9, 6),
              unit="s", thresholds=(120, 300), description="Seconds since the cache last proved fresh (event or bookmark)."),
        graph("Node metrics age", [("max(neurokube_node_metrics_age_seconds)", "age")], (9, 6), unit="s",
              thresholds=(60, 120),
              description="Above NEUROKUBE_PROM_STALE_AFTER_S (120 s) the learned policy is not used."),
        labels_table("Model in use", "count by (version, feature_version) (neurokube_model_info)", (12, 6),
                     description="Model versions and how many replicas serve each (neurokube_model_info)."),
        graph("Model reloads", [(f"sum by (result) (increase(neurokube_model_reloads_total[{RATE}]))", "{{result}}")],
              (12, 6), description="Champion reload attempts (loaded, failed)."),
    ]
    nodes = [
        graph("Node CPU utilisation",
              [(f"1 - avg by (instance) (rate(node_cpu_seconds_total{{mode=\"idle\"}}[{RATE}]))", "{{instance}}")],
              (12, 8), unit="percentunit", thresholds=(0.8, 0.9), max_value=1,
              description="node-exporter; alert NeuroKubeHotNode above 90 % for 10 minutes."),
        graph("Node memory utilisation",
              [("1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes", "{{instance}}")],
              (12, 8), unit="percentunit", thresholds=(0.85, 0.95), max_value=1),
        graph("Requested CPU share of allocatable",
              [("sum by (node) (kube_pod_container_resource_requests{resource=\"cpu\"}) "
                "/ sum by (node) (kube_node_status_allocatable{resource=\"cpu\"})", "{{node}}")],
              (12, 8), unit="percentunit", max_value=1.5,
              description="kube-state-metrics: how full NeuroKube packs nodes by requests, to compare "
                          "with the utilisation above."),
        labels_table("Hottest nodes now",
                     "topk(10, 1 - avg by (instance) (rate(node_cpu_seconds_total{mode=\"idle\"}[5m])))", (12, 8)),
    ]
    return [("Scheduling", scheduling), ("Inputs and state", inputs), ("Nodes", nodes)]


def builder() -> dashboards.Dashboard:
    """The dashboard as the SDK's builder; panel ids are 1, 2, ... in order, rows included."""
    board = (dashboards.Dashboard("NeuroKube").uid("neurokube-overview").tags(["neurokube", "scheduler"])
             .description("NeuroKube learned scheduler: decisions, latency, fallbacks, conflicts, inputs and nodes.")
             .editable().tooltip(model.DashboardCursorSync.CROSSHAIR).time("now-3h", "now").refresh("30s")
             .timezone("utc").version(1)
             .with_variable(dashboards.DatasourceVariable("DS_PROMETHEUS").label("Prometheus").type("prometheus")))
    ids = iter(range(1, 1000))
    for title, panels in rows():
        board = board.with_row(dashboards.Row(title).id(next(ids)))
        for panel in panels:
            board = board.with_panel(panel.id(next(ids)))
    return board


def dashboard() -> dict:
    """The dashboard's JSON document: the SDK's encoding, with the import header in front."""
    return {**IMPORT_HEADER, **json.loads(json.dumps(builder().build(), cls=JSONEncoder))}


def render() -> str:
    """The text of neurokube-dashboard.json."""
    return json.dumps(dashboard(), indent=2) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
