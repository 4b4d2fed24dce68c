"""A minimal Kubernetes REST client over the standard library (TLS client certificates only).

Enough for the cluster tooling and tests: JSON requests, typed errors with the apiserver's
``Status`` message, and construction from a kubeconfig file with embedded or referenced
certificates. Not a general client: no watch, no exec credential plugins, no token auth.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from neurokube.errors import ApiStatusError, InputError, TemporaryError

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"


ApiError = ApiStatusError  # the error status of an apiserver answer (neurokube.errors)


class Client:
    def __init__(self, server: str, ca_file: str, cert_file: str, key_file: str, timeout_s: float = 30.0) -> None:
        self.server = server.rstrip("/")
        self.timeout_s = timeout_s
        self._ssl = ssl.create_default_context(cafile=ca_file)
        self._ssl.load_cert_chain(cert_file, key_file)

    @classmethod
    def from_kubeconfig(cls, path: str | Path, timeout_s: float = 30.0) -> Client:
        """The current context of a kubeconfig that authenticates with a client certificate."""
        try:
            doc = yaml.safe_load(Path(path).read_text())
            context_name = doc["current-context"]
            context = _named(doc["contexts"], context_name)["context"]
            cluster = _named(doc["clusters"], context["cluster"])["cluster"]
            user = _named(doc["users"], context["user"])["user"]
        except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
            raise InputError("unreadable kubeconfig", where=str(path), why=str(exc)) from None
        with _material(cluster, "certificate-authority") as ca, _material(user, "client-certificate") as cert, \
                _material(user, "client-key") as key:
            if not (ca and cert and key):
                raise InputError("kubeconfig needs a CA and a client certificate and key", where=str(path))
            return cls(cluster["server"], ca, cert, key, timeout_s)

    # -- verbs -------------------------------------------------------------------------------

    def get(self, path: str, **query: str) -> Any:
        return self.request("GET", path, query=query)

    def create(self, path: str, body: dict) -> Any:
        return self.request("POST", path, body)

    def merge_patch(self, path: str, body: dict) -> Any:
        return self.request("PATCH", path, body, content_type=MERGE_PATCH)

    def delete(self, path: str, body: dict | None = None) -> Any:
        return self.request("DELETE", path, body)

    def request(self, method: str, path: str, body: Any = None, content_type: str = JSON,
                query: dict[str, str] | None = None, raw: bool = False) -> Any:
        url = self.server + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Accept", JSON)
        if data is not None:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, context=self._ssl, timeout=self.timeout_s) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            raise _api_error(exc, method, path) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TemporaryError(f"kube-apiserver at {self.server} unreachable: {reason}") from None
        if raw:
            return payload.decode()
        return json.loads(payload) if payload else None


def _api_error(exc: urllib.error.HTTPError, method: str, path: str) -> ApiError:
    try:
        status = json.loads(exc.read())
        return ApiError(exc.code, status.get("reason", ""), status.get("message", ""), method, path)
    except (ValueError, OSError):
        return ApiError(exc.code, exc.reason, "", method, path)


def _named(items: list[dict], name: str) -> dict:
    return next(item for item in items if item["name"] == name)


@contextmanager
def _material(section: dict, key: str) -> Iterator[str | None]:
    """A file path for ``key`` or ``key-data`` (the latter written to a private temporary file)."""
    if section.get(key):
        yield section[key]
        return
    data = section.get(f"{key}-data")
    if not data:
        yield None
        return
    fd, name = tempfile.mkstemp(prefix="neurokube-", suffix=".pem")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(base64.b64decode(data))
        yield name
    finally:
        os.unlink(name)
