"""Scoring functions, on plain arrays (tested on hand-made series)."""

from __future__ import annotations

import numpy as np


def rmse(pred: np.ndarray, actual: np.ndarray) -> float:
    """Root mean squared error over the pairs where both are finite (NaN when none)."""
    ok = np.isfinite(pred) & np.isfinite(actual)
    return float(np.sqrt(np.mean((pred[ok] - actual[ok]) ** 2))) if ok.any() else float("nan")


def mape(pred: np.ndarray, actual: np.ndarray, reference: np.ndarray, min_share: float = 0.05) -> float:
    """Mean absolute percentage error, only where ``actual >= min_share x reference`` (> 0).

    ``reference`` is the capacity the utilisation is measured against (the pod's request), so
    near-idle points, where a percentage error explodes, are left out. NaN when no point qualifies.
    """
    ok = np.isfinite(pred) & np.isfinite(actual) & (reference > 0) & (actual >= min_share * reference) & (actual > 0)
    return float(np.mean(np.abs(pred[ok] - actual[ok]) / actual[ok])) if ok.any() else float("nan")


def coverage(upper: np.ndarray, actual: np.ndarray) -> float:
    """Share of finite pairs with ``actual <= upper`` (a q95 forecast should give about 0.95)."""
    ok = np.isfinite(upper) & np.isfinite(actual)
    return float(np.mean(actual[ok] <= upper[ok])) if ok.any() else float("nan")


def precision_recall(warned: np.ndarray, happened: np.ndarray) -> tuple[float, float]:
    """Precision and recall of boolean warnings; precision is 1.0 with no warning, recall 1.0 with no event."""
    warned, happened = np.asarray(warned, bool), np.asarray(happened, bool)
    tp = float((warned & happened).sum())
    precision = tp / warned.sum() if warned.sum() else 1.0
    recall = tp / happened.sum() if happened.sum() else 1.0
    return float(precision), float(recall)
