"""Trace format v1: the contract between trace producers and the replay simulator.

A trace directory holds ``nodes.csv``, ``pods.csv`` and ``profiles.csv`` (or ``.csv.gz``); see
docs/TRACE_FORMAT.md. :mod:`.model` holds the in-memory form, :mod:`.usage` the usage function,
:mod:`.format` the checks and limits of the format (the files are read and written by
:mod:`neurokube.adapters.trace_files`); :mod:`.build` and :mod:`.synth` produce traces.
"""

from neurokube.trace.model import QOS_CLASSES, NodeTable, PodTable, ProfileTable, Trace

__all__ = ["QOS_CLASSES", "NodeTable", "PodTable", "ProfileTable", "Trace"]
