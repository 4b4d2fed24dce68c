"""Serve the real binder or extender function on 127.0.0.1 without a cluster, for load runs and
the observability test.

The function module (functions/<target>/main.py) is loaded by functions-framework's own
``create_app`` and served by gunicorn (gthread, one worker, ``--threads``), as the container does.
Only its runtime differs: instead of a kube-apiserver it gets the in-memory API of
``neurokube.testing.FakeKube`` holding ``--nodes`` nodes and ``--pods`` pending pods (names
from ``load/nkload.py``), re-listed into the watch cache every ``--resync-s``; optionally a
loopback Prometheus double answering for every node (``--prometheus fake``), a model
(``--model-dir``, or ``--packing-model`` for the test model with a known preference) and a
decision-log directory (``--decision-log``). Everything
from the request to the Binding call is the production code path; the apiserver's latency is not
in the numbers.

    python load/local_functions.py extender --port 18081 --nodes 5000 --packing-model
    python load/local_functions.py binder --port 18080 --nodes 200 --pods 20000 --packing-model

Stop it with Ctrl-C or SIGTERM (gunicorn stops its worker).
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path

import gunicorn.app.base

sys.path.insert(0, str(Path(__file__).resolve().parent))
import nkload  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def build_app(options: argparse.Namespace):
    """Runs in the gunicorn worker: the runtime's threads must start after the fork."""
    import functions_framework

    from neurokube import testing
    from neurokube.live import runtime
    from neurokube.live.settings import from_env
    from neurokube.live.telemetry import process_telemetry

    env = {"NEUROKUBE_REPLICA": f"local-{options.target}", "NEUROKUBE_SCHEDULED_EVENTS": "true"}
    if not any(os.environ.get(k) for k in ("NEUROKUBE_EVENT_TOKEN", "NEUROKUBE_TOKEN", "NEUROKUBE_OIDC_AUDIENCE")):
        env["NEUROKUBE_INSECURE"] = "1"  # 127.0.0.1 only, no cluster: the load scenarios send no credential
    fake_prom = None
    if options.prometheus == "fake":
        usage = {nkload.node_name(i): (2.0 + (i % 7), float((8 + i % 5) << 30)) for i in range(options.nodes)}
        fake_prom = testing.FakePrometheus(usage, label="instance", suffix=":9100")
        env["NEUROKUBE_PROMETHEUS_URL"] = fake_prom.url
        env["NEUROKUBE_PROM_REFRESH_S"] = "5"
    model_dir = options.model_dir
    if options.packing_model:
        model_dir = Path(tempfile.mkdtemp(prefix="neurokube-load-model-"))
        atexit.register(shutil.rmtree, model_dir, ignore_errors=True)
        testing.write_packing_model(model_dir)
    if model_dir:
        env["NEUROKUBE_MODEL_DIR"] = str(model_dir)
    if options.model_reload_s is not None:
        env["NEUROKUBE_MODEL_RELOAD_S"] = str(options.model_reload_s)
    if options.decision_log:
        spool = tempfile.mkdtemp(prefix="neurokube-load-spool-")  # this run's own: no records of an earlier run
        env.update({"NEUROKUBE_DECISION_LOG": str(options.decision_log), "NEUROKUBE_DECISION_FLUSH_S": "1",
                    "NEUROKUBE_DECISION_SPOOL_DIR": spool})
    os.environ.update(env)

    kube = testing.FakeKube(nodes=[nkload.node_doc(i) for i in range(options.nodes)],
                            namespaces=("neurokube", nkload.POD_NAMESPACE))
    for i in range(options.pods):
        doc = nkload.pod_doc(i, uid=_uid(i))
        kube.add_pod(doc)
    settings = from_env()
    rt = testing.fake_runtime(kube, settings, process_telemetry())
    if rt.metrics is not None:
        rt.metrics.start()
    rt.events.start()
    rt.decisions.start()
    runtime.install(rt)

    def listed() -> None:  # what the watch cache runs after each full list (the runtime's heap.settle)
        if rt.cache.on_listed is not None:
            rt.cache.on_listed()

    def resync() -> None:  # stands in for the watch: bound pods and fresh list times
        while True:
            threading.Event().wait(options.resync_s)
            testing.sync(rt.cache, kube)
            listed()

    threading.Thread(target=resync, name="fake-watch", daemon=True).start()
    app = functions_framework.create_app(options.target, str(ROOT / "functions" / options.target / "main.py"), "http")
    listed()
    return app


def _uid(i: int) -> str:
    import uuid

    return str(uuid.uuid5(uuid.NAMESPACE_URL, nkload.pod_name(i)))


class _Gunicorn(gunicorn.app.base.BaseApplication):
    def __init__(self, options: argparse.Namespace) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in {"bind": f"127.0.0.1:{self.options.port}", "workers": 1, "threads": self.options.threads,
                           "worker_class": "gthread", "timeout": 0, "loglevel": "warning",
                           "accesslog": None}.items():
            self.cfg.set(key, value)

    def load(self):
        return build_app(self.options)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", choices=("binder", "extender"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--nodes", type=int, default=1000, help="nodes in the in-memory apiserver")
    parser.add_argument("--pods", type=int, default=0, help="pending pods load-pod-000000.. to create")
    parser.add_argument("--threads", type=int, default=8,
                        help="gunicorn threads (default 8, the extender container's THREADS; the binder's has 64)")
    parser.add_argument("--prometheus", choices=("fake", "none"), default="fake")
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--packing-model", action="store_true", help="write and use the test packing model")
    parser.add_argument("--model-reload-s", type=float, default=None, help="seconds between model checks")
    parser.add_argument("--decision-log", type=Path, default=None, help="directory for the decision log")
    parser.add_argument("--resync-s", type=float, default=5.0)
    options = parser.parse_args(argv)
    _Gunicorn(options).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
