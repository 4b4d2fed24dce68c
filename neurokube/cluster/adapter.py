"""The Knative Eventing ApiServerSource receive adapter, run as a plain process.

In a cluster the ApiServerSource controller runs this adapter as a Deployment and passes its
configuration through the environment; here we set the same variables ourselves:

* ``K_SOURCE_CONFIG``: what to watch. Resource mode (the event data is the whole object) on pods
  in all namespaces, i.e. ``dev.knative.apiserver.resource.add|update|delete`` events.
* ``K_SINK``: where to POST the CloudEvents (binary content mode).
* ``NAME`` / ``NAMESPACE``: the (imaginary) ApiServerSource object, used in event extensions.
* ``K_AUDIENCE`` and ``K_OIDC_SERVICE_ACCOUNT``: what the ApiServerSource controller sets when
  Knative's ``authentication-oidc`` feature is on. The adapter then asks the TokenRequest API for
  a JWT of that ServiceAccount (in ``NAMESPACE``) for the sink's audience and sends it as
  ``Authorization: Bearer`` with every event; the binder verifies it (neurokube.live.auth).
  :mod:`neurokube.cluster.rbac` creates the ServiceAccount and lets the adapter request its tokens.
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
#: Knative's name for the source's OIDC identity: ``<source>-oidc-<group>-<kind>``.
OIDC_SERVICE_ACCOUNT = f"{SOURCE_NAME}-oidc-sources.knative.dev-apiserversource"
#: The binder's audience (neurokube.cluster.functions.AUDIENCES; repeated here, since the
#: cluster's own layer must not import the functions' wiring).
BINDER_AUDIENCE = "serving.knative.dev/service/neurokube/neurokube-binder"
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


def launch(binaries: Binaries, kubeconfig: Path, sink: str, profiling_port: int, log_path: Path,
           audience: str = BINDER_AUDIENCE) -> Launch:
    env = {
        "K_AUDIENCE": audience,
        "K_OIDC_SERVICE_ACCOUNT": OIDC_SERVICE_ACCOUNT,
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
