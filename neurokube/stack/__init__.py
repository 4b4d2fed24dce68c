"""The local data stack: MinIO, Prometheus, MLflow and the metrics emulator on 127.0.0.1 (docs/STACK.md).

* ``settings.py``: :class:`StackSettings`, the validated settings and their defaults;
* ``state.py``: the state directory, ``stack.json`` and the generated credentials;
* ``build.py``: MinIO built from its pinned Go module into the binary cache;
* ``install.py``: Prometheus and promtool from the Debian package;
* ``services.py`` and ``promconfig.py``: each process' command line, health check and config;
* ``procgroup.py``: stopping a recorded process together with its children;
* ``control.py``: `up`, `status`, `down`; ``backfill.py``: past windows into Prometheus;
* ``testing.py``: a stack for a ``with`` block (the ``neurokube stack`` commands are neurokube/cli/stack_cmd.py).

Process start, pid identity and free ports come from :mod:`neurokube.cluster`.
"""
