"""The live adapters: what the binder, extender and sweeper functions run on.

One module per concern, pure where it can be:

* ``settings``: every setting, typed, read from the environment in one place;
* ``cache``: the watch cache, over the one Kubernetes client (:mod:`neurokube.adapters.kube`);
* ``prometheus``: node usage statistics refreshed in the background; ``view``: the policy's
  ClusterView built from both;
* ``decide``: the learned policy with counted fallbacks; ``ledger``: per-node reservations that
  keep replicas from over-committing; ``binding``: the Binding call; ``events``: Kubernetes Events;
* ``decisions``: the decision log; ``telemetry``: Prometheus metrics of the functions;
* ``scheduler``, ``sweeper``, ``extender``: the use cases; ``handlers``: their inputs;
  ``runtime``: the wiring; ``web``: the HTTP edge.

The pure Kubernetes rules they share (quantities, pods and nodes, the scheduler's filters, the node
table) are in :mod:`neurokube.k8s`; the test doubles (an in-memory apiserver, a Prometheus double,
a packing model) in :mod:`neurokube.testing`. docs/FUNCTIONS.md describes how they fit together.
"""
