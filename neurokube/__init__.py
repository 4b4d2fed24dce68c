"""NeuroKube: a learned, load-aware placement layer for Kubernetes.

The package is layered (see docs/ARCHITECTURE.md):

* pure core  -- ``trace`` (format + builders' pure parts), ``sim`` (replay engine, metrics),
  ``policies`` (one module per scheduler), ``features``, ``model``;
* adapters   -- everything that touches files, processes, clocks or the network;
* ``cli``    -- the command line, the only place that reads argv and prints.
"""

__version__ = "0.1.0"
