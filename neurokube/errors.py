"""The error taxonomy shared by every layer.

Two kinds drive behaviour, as in kopf: a *permanent* error (the input is wrong, retrying is
useless; the CLI exits 2 and HTTP answers 4xx) and a *temporary* one (a dependency is down; the
CLI exits 1 and HTTP answers 503). Edges map them; the core only raises them.
"""

from __future__ import annotations

from dataclasses import dataclass


class NeuroKubeError(Exception):
    """Base of every error NeuroKube raises on purpose."""


class PermanentError(NeuroKubeError):
    """Bad input or configuration: retrying the same call cannot succeed."""


class InputError(PermanentError):
    """A file, argument or request is malformed; the message says what, where and why."""

    def __init__(self, what: str, where: str | None = None, why: str | None = None) -> None:
        self.what, self.where, self.why = what, where, why
        parts = [p for p in (where, what) if p]
        message = ": ".join(parts)
        if why:
            message = f"{message} ({why})"
        super().__init__(message)


class NotFoundError(InputError):
    """The input names an object that does not exist (HTTP 404), e.g. a pod in an unknown namespace."""


class RefusedError(InputError):
    """A request that the apiserver's own objects contradict or that this function may not act on
    (an event about another scheduler's pod, a UID that does not match, a pod that is gone): HTTP
    ``status`` (403, 409 or 410, none of which Knative retries but 409) with ``reason``, a short
    fixed word that is also the metric label."""

    def __init__(self, what: str, *, reason: str, status: int = 403, where: str | None = None,
                 why: str | None = None) -> None:
        super().__init__(what, where, why)
        self.reason, self.status = reason, status


class TemporaryError(NeuroKubeError):
    """A dependency is unavailable; the same call may succeed later."""

    def __init__(self, message: str, delay_s: float = 1.0) -> None:
        super().__init__(message)
        self.delay_s = delay_s


@dataclass(frozen=True)
class StatusDetails:
    """The ``details`` of an apiserver Status: which object the answer is about, as the apiserver
    names it (``kind`` is the resource, e.g. ``pods`` or ``namespaces``; ``group`` is empty for the
    core group). A 404 for a create in a namespace that does not exist says ``namespaces`` and the
    namespace's name, whatever the request's path: code reads this, never the message text."""

    kind: str = ""
    name: str = ""
    group: str = ""


class ApiStatusError(TemporaryError):
    """A Kubernetes apiserver answered with an error status (``status``, ``reason``, ``message``
    and ``details`` of its Status object). Shared by the local-cluster client and the live binder's."""

    def __init__(self, status: int, reason: str, message: str, method: str, path: str,
                 details: StatusDetails | None = None) -> None:
        super().__init__(f"{method} {path}: {status} {reason}: {message}".rstrip(": "))
        self.status, self.reason, self.message = status, reason, message
        self.details = details if details is not None else StatusDetails()

    @property
    def permanent(self) -> bool:
        """A refusal that the same request would meet again (a 4xx other than 408 Request Timeout
        and 429 Too Many Requests). It stays a TemporaryError for the retry loops of the watch
        cache and the tooling, but the HTTP edge answers it 4xx, never a 503 that Knative would
        redeliver forever; the CLI exits 2 on it."""
        return 400 <= self.status < 500 and self.status not in (408, 429)

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def not_found(self) -> bool:
        return self.status == 404
