"""The metrics emulator: node-exporter, cAdvisor and kube-state-metrics series from a usage source.

* the usage it serves: :class:`~neurokube.adapters.usage.UsageSource` and its row types (in adapters:
  the pipelines read the same types);
* ``filesource.py``: a source read from a JSON snapshot file;
* ``series.py``: the metric families and the counters that integrate usage over time;
* ``exporter.py``: the HTTP exporter process that Prometheus scrapes (``python -m neurokube.emulator``);
* ``openmetrics.py``: the same series over a past window, with timestamps, for backfilling.
"""
