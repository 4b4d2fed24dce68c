"""Placement features: one definition shared by the replay and the live binder."""

from neurokube.features.placement import FEATURE_NAMES, FEATURE_VERSION, candidate_features, pod_usage_estimate

__all__ = ["FEATURE_NAMES", "FEATURE_VERSION", "candidate_features", "pod_usage_estimate"]
