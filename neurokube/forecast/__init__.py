"""Proactive resource management (docs/FORECASTS.md): usage series from a replay, LightGBM
quantile forecasts, right-sizing against VPA's recommender, and node bottleneck warnings.

A pure core: arrays in, arrays and text (LightGBM models, JSON manifests) out; no file I/O, no
clock, no simulator import. Modules, one concern each: ``series``, ``features``, ``models``,
``vpa``, ``rightsizing``, ``bottleneck``, ``metrics`` and ``evaluation`` (the train/score protocol).
"""
