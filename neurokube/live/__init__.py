"""The live adapters: what the binder, extender and sweeper functions run on.

One module per concern, pure where it can be:

* ``settings``: every setting, typed, read from the environment in one place;
* ``quantity``, ``objects``, ``feasibility``: Kubernetes quantities, pods and nodes, and the
  scheduler's filters (pure);
* ``kube``: a raw REST client (kubeconfig or in-cluster credentials); ``cache``: the watch cache;
* ``prometheus``: node usage statistics refreshed in the background; ``view``: the policy's
  ClusterView built from both;
* ``decide``: the learned policy with counted fallbacks; ``ledger``: per-node reservations that
  keep replicas from over-committing; ``binding``: the Binding call; ``events``: Kubernetes Events;
* ``decisions``: the decision log; ``telemetry``: Prometheus metrics of the functions;
* ``scheduler``, ``sweeper``, ``extender``: the use cases; ``handlers``: their inputs;
  ``runtime``: the wiring; ``web``: the HTTP edge; ``testing``: test doubles.

docs/FUNCTIONS.md describes how they fit together.
"""
