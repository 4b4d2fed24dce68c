"""Generate the NeuroKube Grafana dashboard (dashboard as code; the JSON is checked in beside it).

    python deploy/observability/dashboard.py > deploy/observability/neurokube-dashboard.json

Grafana: Dashboards -> New -> Import -> upload the JSON -> choose the Prometheus data source
(the ``DS_PROMETHEUS`` input). Every panel's query is evaluated against a live Prometheus by
tests/integration/test_observability.py, which reads the JSON, not this module.
"""

from __future__ import annotations

import json
import sys

DS = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
RATE = "$__rate_interval"


def _target(expr: str, legend: str, ref: str, instant: bool = False, fmt: str = "time_series") -> dict:
    return {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref, "instant": instant,
            "range": not instant, "format": fmt}


def panel(title: str, kind: str, targets: list[tuple[str, str]], grid: tuple[int, int, int, int], *,
          unit: str = "short", description: str = "", stacked: bool = False, thresholds: tuple[float, ...] = (),
          table: bool = False, max_value: float | None = None) -> dict:
    x, y, w, h = grid
    steps = [{"color": "green", "value": None}]
    steps += [{"color": color, "value": value} for color, value in zip(("orange", "red"), thresholds)]
    defaults: dict = {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps}}
    if max_value is not None:
        defaults.update({"min": 0, "max": max_value})
    if kind == "timeseries":
        defaults["custom"] = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10 if stacked else 0,
                              "stacking": {"mode": "normal" if stacked else "none", "group": "A"},
                              "showPoints": "never", "spanNulls": False,
                              "thresholdsStyle": {"mode": "line" if thresholds else "off"}}
    refs = "ABCDEFGH"
    doc = {"type": kind, "title": title, "description": description, "datasource": DS,
           "gridPos": {"x": x, "y": y, "w": w, "h": h},
           "targets": [_target(expr, legend, refs[i], instant=table, fmt="table" if table else "time_series")
                       for i, (expr, legend) in enumerate(targets)],
           "fieldConfig": {"defaults": defaults, "overrides": []}}
    if kind == "timeseries":
        doc["options"] = {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull", "max"]},
                          "tooltip": {"mode": "multi", "sort": "desc"}}
    elif kind == "stat":
        doc["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                          "colorMode": "background", "graphMode": "area", "textMode": "auto"}
    elif kind == "table":
        doc["options"] = {"showHeader": True}
        doc["transformations"] = [{"id": "organize", "options": {"excludeByName": {"Time": True, "Value": True}}}]
    return doc


def row(title: str, y: int) -> dict:
    return {"type": "row", "title": title, "collapsed": False, "gridPos": {"x": 0, "y": y, "w": 24, "h": 1},
            "panels": []}


def dashboard() -> dict:
    p = []
    p.append(row("Scheduling", 0))
    p.append(panel("Placement decisions by policy and outcome", "timeseries",
                   [(f"sum by (policy, outcome) (rate(neurokube_decisions_total[{RATE}]))", "{{policy}} / {{outcome}}")],
                   (0, 1, 12, 8), unit="ops", stacked=True,
                   description="neurokube_decisions_total: policy neurokube = learned, default = fallback scoring; "
                               "outcome bound, already_bound, unschedulable, gone, failed."))
    p.append(panel("Placement latency p50 / p99 by stage", "timeseries",
                   [(f"histogram_quantile(0.99, sum by (le, stage) (rate(neurokube_decision_duration_seconds_bucket[{RATE}])))",
                     "p99 {{stage}}"),
                    (f"histogram_quantile(0.5, sum by (le, stage) (rate(neurokube_decision_duration_seconds_bucket[{RATE}])))",
                     "p50 {{stage}}")],
                   (12, 1, 12, 8), unit="s", thresholds=(0.5, 1.0),
                   description="decide = filter + view + policy; bind = reservation Lease + Binding; total. "
                               "Alert NeuroKubeDecisionLatencyHigh at p99 > 1 s."))
    p.append(panel("Learned-policy share of bindings", "stat",
                   [(f"sum(rate(neurokube_decisions_total{{outcome=\"bound\", policy=\"neurokube\"}}[{RATE}])) "
                     f"/ sum(rate(neurokube_decisions_total{{outcome=\"bound\"}}[{RATE}]))", "learned")],
                   (0, 9, 6, 6), unit="percentunit", max_value=1,
                   description="Share of bound pods placed by the learned policy (alert below 80 %)."))
    p.append(panel("Fallbacks by reason", "timeseries",
                   [(f"sum by (reason) (rate(neurokube_fallbacks_total[{RATE}]))", "{{reason}}")],
                   (6, 9, 9, 6), unit="ops", stacked=True,
                   description="neurokube_fallbacks_total: decisions and extender calls that did not use the model."))
    p.append(panel("Bind conflicts by kind", "timeseries",
                   [(f"sum by (kind) (rate(neurokube_bind_conflicts_total[{RATE}]))", "{{kind}}")],
                   (15, 9, 9, 6), unit="ops", stacked=True,
                   description="already_assigned is a success (409 on a bound pod); reservation/contended/too_slow "
                               "are Lease races between replicas; no_room a node that filled meanwhile."))
    p.append(panel("Extender latency p99 by verb", "timeseries",
                   [(f"histogram_quantile(0.99, sum by (le, verb) (rate(neurokube_extender_duration_seconds_bucket[{RATE}])))",
                     "p99 /{{verb}}")],
                   (0, 15, 12, 7), unit="s", thresholds=(1.0, 2.5),
                   description="kube-scheduler's httpTimeout is 5 s."))
    p.append(panel("CloudEvents by result", "timeseries",
                   [(f"sum by (result) (rate(neurokube_cloudevents_total[{RATE}]))", "{{result}}")],
                   (12, 15, 12, 7), unit="ops", stacked=True,
                   description="handled, ignored (other schedulers, updates of bound pods), rejected (bad input), "
                               "failed (503: redelivered)."))
    p.append(row("Inputs and state", 22))
    p.append(panel("Pending pods (schedulerName neurokube)", "stat",
                   [("max(neurokube_pending_pods)", "pending")], (0, 23, 6, 6), thresholds=(50, 100),
                   description="From the functions' watch cache; max over replicas (each sees the same pods)."))
    p.append(panel("Watch cache age", "timeseries",
                   [("max by (resource) (neurokube_cache_age_seconds)", "{{resource}}")],
                   (6, 23, 9, 6), unit="s", thresholds=(120, 300),
                   description="Seconds since the cache last proved fresh (event or bookmark)."))
    p.append(panel("Node metrics age", "timeseries",
                   [("max(neurokube_node_metrics_age_seconds)", "age")], (15, 23, 9, 6), unit="s",
                   thresholds=(60, 120),
                   description="Above NEUROKUBE_PROM_STALE_AFTER_S (120 s) the learned policy is not used."))
    p.append(panel("Model in use", "table",
                   [("count by (version, feature_version) (neurokube_model_info)", "")], (0, 29, 12, 6),
                   table=True, description="Model versions and how many replicas serve each (neurokube_model_info)."))
    p.append(panel("Model reloads", "timeseries",
                   [(f"sum by (result) (increase(neurokube_model_reloads_total[{RATE}]))", "{{result}}")],
                   (12, 29, 12, 6), description="Champion reload attempts (loaded, failed)."))
    p.append(row("Nodes", 35))
    p.append(panel("Node CPU utilisation", "timeseries",
                   [(f"1 - avg by (instance) (rate(node_cpu_seconds_total{{mode=\"idle\"}}[{RATE}]))", "{{instance}}")],
                   (0, 36, 12, 8), unit="percentunit", thresholds=(0.8, 0.9), max_value=1,
                   description="node-exporter; alert NeuroKubeHotNode above 90 % for 10 minutes."))
    p.append(panel("Node memory utilisation", "timeseries",
                   [("1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes", "{{instance}}")],
                   (12, 36, 12, 8), unit="percentunit", thresholds=(0.85, 0.95), max_value=1))
    p.append(panel("Requested CPU share of allocatable", "timeseries",
                   [("sum by (node) (kube_pod_container_resource_requests{resource=\"cpu\"}) "
                     "/ sum by (node) (kube_node_status_allocatable{resource=\"cpu\"})", "{{node}}")],
                   (0, 44, 12, 8), unit="percentunit", max_value=1.5,
                   description="kube-state-metrics: how full NeuroKube packs nodes by requests, to compare "
                               "with the utilisation above."))
    p.append(panel("Hottest nodes now", "table",
                   [("topk(10, 1 - avg by (instance) (rate(node_cpu_seconds_total{mode=\"idle\"}[5m])))", "")],
                   (12, 44, 12, 8), table=True))
    return {
        "__inputs": [{"name": "DS_PROMETHEUS", "label": "Prometheus", "type": "datasource",
                      "pluginId": "prometheus", "pluginName": "Prometheus"}],
        "__requires": [{"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.0.0"},
                       {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"}],
        "title": "NeuroKube", "uid": "neurokube-overview", "tags": ["neurokube", "scheduler"],
        "description": "NeuroKube learned scheduler: decisions, latency, fallbacks, conflicts, inputs and nodes.",
        "schemaVersion": 39, "version": 1, "editable": True, "graphTooltip": 1,
        "time": {"from": "now-3h", "to": "now"}, "refresh": "30s", "timezone": "utc",
        "templating": {"list": [{"name": "DS_PROMETHEUS", "label": "Prometheus", "type": "datasource",
                                 "query": "prometheus", "hide": 0, "current": {}}]},
        "annotations": {"list": []},
        "panels": p,
    }


if __name__ == "__main__":
    json.dump(dashboard(), sys.stdout, indent=2)
    sys.stdout.write("\n")
