"""Kubernetes semantics without I/O: what the live functions and the tools share.

The live binder, extender and sweeper, the local platform's live kit and the benchmarks all need
to read pods and nodes the way the apiserver and kube-scheduler do. Those rules are pure
functions of the objects, so they live here, apart from the adapters that fetch the objects:

* ``quantity``: resource quantities ("100m", "2Gi") as exact integers, in the apiserver's grammar;
* ``objects``: pods and nodes parsed and validated from the apiserver's JSON, with requests and
  limits summed as kube-scheduler sums them;
* ``feasibility``: kube-scheduler's filter rules (unschedulable, taints, node affinity, resources),
  with its reasons;
* ``nodetable``: a node set as columns, built once per node set and indexed per request.

No network, files, processes or threads; ``quantity`` imports the official client's
``kubernetes.utils.parse_quantity`` (a pure function) and nothing else of that package. The
import-linter contracts in pyproject.toml hold this package to the core's rules: it never imports
the live code, the adapters, the CLI or the local platform.
"""
