"""Test doubles: stand-ins for the Kubernetes API, Prometheus and a trained model. Not production code.

* ``kube``: :class:`FakeKube`, an in-memory apiserver for the REST calls the live code makes,
  ``node_doc`` / ``pod_doc`` to fill it, and ``sync`` / ``fake_runtime`` to run the live runtime
  over it;
* ``prometheus``: :class:`FakePrometheus`, a loopback server answering Prometheus' query API;
* ``model``: ``write_packing_model``, a small LightGBM value model that prefers packing.

They live in a package of their own so that production code cannot reach them by accident: the
import-linter contract ``testing-not-in-production`` (pyproject.toml) forbids ``neurokube.live``,
``neurokube.k8s``, the adapters (``neurokube.adapters``, ``neurokube.registry``), the core,
``functions`` and ``pipelines`` from importing this package. Users are tests/, load/ and
benchmarks/, plus two deliberate ones inside the library, which run the real functions on a
KWOK cluster (no node exporter there, so no real node metrics): the synthetic scheduling bench
(``neurokube.bench.scheduling``) takes its node metrics from the Prometheus double and generates
the packing model when no trained model is given, and the local platform's live-function kit
(``neurokube.cluster.livekit``, for the e2e and chaos tests) sets the functions up with both.

The names are re-exported here, so ``from neurokube.testing import FakeKube, node_doc`` works.
"""

from neurokube.testing.kube import FakeKube, fake_runtime, node_doc, pod_doc, sync
from neurokube.testing.model import write_packing_model
from neurokube.testing.prometheus import FakePrometheus

__all__ = ["FakeKube", "FakePrometheus", "fake_runtime", "node_doc", "pod_doc", "sync", "write_packing_model"]
