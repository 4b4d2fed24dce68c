"""The Knative Eventing ApiServerSource receive adapter, run as a plain process.

In a cluster the ApiServerSource controller runs this adapter as a Deployment and passes its
configuration through the environment; here we set the same variables ourselves:

* ``K_SOURCE_CONFIG``: what to watch. Resource mode (the event data is the whole object) on pods
  in all namespaces, i.e. ``dev.knative.apiserver.resource.add|update|delete`` events.
* ``K_SINK``: where to POST the CloudEvents (binary content mode).
* ``NAME`` / ``NAMESPACE``: the (imaginary) ApiServerSource object, used in event extensions.
* ``KUBECONFIG``: read by knative.dev/pkg/injection when not in a cluster.
* ``PROFILING_PORT``: the pprof server always listens (on all interfaces, default 8008); we move
  it to a free port.
* ``K_OBSERVABILITY_CONFIG`` and ``K_LOGGING_CONFIG`` default to ``{}``: no metrics exporter,
  default logging.

``--disable-ha`` turns off leader election (a single replica). Its health-probe server is fixed
at :8080 upstream (knative.dev/pkg/injection.HealthCheckDefaultPort); if 8080 is taken the probe
server fails quietly and the adapter keeps working.
"""

from __future__ import annotations

import json
from pathlib import Path

from neurokube.cluster.build import Binaries
from neurokube.cluster.components import Launch

DEFAULT_SINK = "http://127.0.0.1:8090/"
SOURCE_NAME = "neurokube-pods"
SOURCE_NAMESPACE = "default"
PROBE_PORT = 8080  # hard-wired upstream
STARTED_MARKER = "STARTING --"


def source_config(namespaces: list[str] | None = None) -> str:
    """Resource-mode watch of pods; all namespaces unless ``namespaces`` is given."""
    return json.dumps({
        "namespaces": namespaces or [],
        "allNamespaces": not namespaces,
        "resources": [{"gvr": {"Group": "", "Version": "v1", "Resource": "pods"}}],
        "mode": "Resource",
    })


def launch(binaries: Binaries, kubeconfig: Path, sink: str, profiling_port: int, log_path: Path) -> Launch:
    env = {
        "NAME": SOURCE_NAME,
        "NAMESPACE": SOURCE_NAMESPACE,
        "K_SINK": sink,
        "K_SOURCE_CONFIG": source_config(),
        "KUBECONFIG": str(kubeconfig),
        "PROFILING_PORT": str(profiling_port),
        "K_OBSERVABILITY_CONFIG": "{}",
        "K_LOGGING_CONFIG": "{}",
    }
    argv = [str(binaries.path("apiserver_receive_adapter")), "--disable-ha"]

    def ready() -> bool:
        # No probe port we can rely on (see the module docstring): the adapter logs its
        # configuration once it has discovered the watched resources and starts the watches.
        try:
            return STARTED_MARKER in log_path.read_text(errors="replace")
        except OSError:
            return False

    return Launch("receive-adapter", argv, ready, 10.0, env=env)
