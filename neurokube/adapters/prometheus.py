"""A Prometheus client (prometheus-api-client's ``PrometheusConnect``) with TLS checked by default
and an optional bearer token read from a file.

Used by the live metrics refresher (neurokube/live/prometheus.py) and the snapshot step's usage
reader (pipelines/usage.py), so both treat certificates and tokens alike:

* ``verify=True`` (the default): the certificate is checked against the system trust store; a
  path: against that PEM CA bundle (refused at once if it is not a file); ``False``: not checked,
  an explicit choice that is logged as a warning.
* ``token_file``: its contents go out as ``Authorization: Bearer <token>`` and are re-read every
  ``TOKEN_REREAD_S``, as client-go does with projected service-account tokens, which the kubelet
  rotates. A failed re-read keeps the previous token (logged); a token never read is a
  :class:`~neurokube.errors.TemporaryError` naming the file, raised by the query.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import requests
from prometheus_api_client import PrometheusConnect

from neurokube.errors import InputError, TemporaryError
from neurokube.logs import event

log = logging.getLogger("neurokube.adapters.prometheus")
TOKEN_REREAD_S = 60.0


class TokenFile:
    """A requests auth hook that sets ``Authorization: Bearer <contents of path>``."""

    def __init__(self, path: Path, reread_s: float = TOKEN_REREAD_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(path)
        self.reread_s = reread_s
        self.clock = clock
        self._token: str | None = None
        self._read_at = -float("inf")
        self._lock = threading.Lock()

    def token(self) -> str:
        with self._lock:
            now = self.clock()
            if self._token is None or now - self._read_at >= self.reread_s:
                try:
                    token = self.path.read_text().strip()
                    if not token:
                        raise ValueError("the file is empty")
                except (OSError, ValueError) as exc:
                    why = getattr(exc, "strerror", None) or str(exc)
                    if self._token is None:
                        raise TemporaryError(f"cannot read the Prometheus bearer token file {self.path}: {why}") \
                            from None
                    event(log, "re-reading the Prometheus bearer token failed; the previous token stays",
                          logging.WARNING, path=str(self.path), error=why)
                else:
                    self._token = token
                self._read_at = now
            return self._token

    def __call__(self, request):
        request.headers["Authorization"] = f"Bearer {self.token()}"
        return request


def connect(url: str, timeout_s: float, verify: bool | str | Path = True, token_file: Path | None = None,
            retry: int | None = None) -> PrometheusConnect:
    """A client of the Prometheus at ``url``; ``retry``: retries of a failed request (None: the
    library's default, 3 with backoff on 408/429/5xx; 0: none)."""
    if verify is False and url.lower().startswith("https://"):
        event(log, "TLS certificate checks of Prometheus are off", level=logging.WARNING, url=url)
    if isinstance(verify, Path):
        verify = str(verify)
    if isinstance(verify, str) and not Path(verify).is_file():
        raise InputError(f"Prometheus CA bundle {verify!r} is not a readable file", where=url,
                         why="give a PEM file of the CAs that sign Prometheus' certificate, or verify=True")
    session = requests.Session()
    session.verify = verify
    return PrometheusConnect(url=url, timeout=timeout_s, session=session, retry=retry,
                             auth=TokenFile(token_file) if token_file is not None else None)
