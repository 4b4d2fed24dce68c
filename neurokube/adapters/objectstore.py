"""Object storage behind one small protocol: a local directory or an S3 bucket on MinIO.

Keys are '/'-separated relative paths (``models/v3/model.txt``); both stores accept and reject
the same keys, so code and tests move between them unchanged. Semantics follow S3: ``list`` is a
plain string-prefix match over whole keys, sorted; ``delete`` of a missing key is not an error;
``get_bytes`` of a missing key raises :class:`MissingObject`.

Errors: a malformed key or URL, wrong credentials or a missing bucket is an :class:`InputError`;
an unreachable or failing server is a :class:`TemporaryError` naming the endpoint. MinIO is
reached only through the ``minio`` SDK.

Credentials and TLS (:func:`open_store`): a ``minio://`` URL may carry ``ACCESS:SECRET@``; without
them the keys come from the environment (:data:`ACCESS_KEY_ENV`, :data:`SECRET_KEY_ENV`), so that
a URL on a command line, in a ConfigMap or in a log holds no secret. ``minios://`` (or
``?secure=true``) speaks HTTPS and always verifies the server's certificate, against the CA bundle
of ``?ca=/path`` or :data:`CA_BUNDLE_ENV` when given, else the usual trust store.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

import certifi
import urllib3
from minio import Minio
from minio.error import MinioException, S3Error

from neurokube.errors import InputError, TemporaryError

T = TypeVar("T")

_PARTIAL = re.compile(r"^\..*\.partial$")  # LocalDirStore's temporary files
_MISSING_CODES = ("NoSuchKey", "NoSuchObject")
_CREDENTIAL_CODES = ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch")

ACCESS_KEY_ENV = "NEUROKUBE_STORE_ACCESS_KEY"
"""The MinIO access key, when the ``minio://`` URL carries none."""
SECRET_KEY_ENV = "NEUROKUBE_STORE_SECRET_KEY"
"""The MinIO secret key, when the ``minio://`` URL carries none."""
CA_BUNDLE_ENV = "NEUROKUBE_STORE_CA_BUNDLE"
"""PEM file of the CAs that may sign MinIO's certificate (TLS only), when the URL has no ``?ca=``."""
_TRUE = ("1", "true", "yes")
_FALSE = ("0", "false", "no", "")


class MissingObject(InputError):
    """The key does not exist in the store."""


class ObjectStore(Protocol):
    def put_bytes(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``, replacing any previous object atomically."""
        ...

    def get_bytes(self, key: str) -> bytes:
        """The object under ``key``; :class:`MissingObject` if there is none."""
        ...

    def list(self, prefix: str = "") -> list[str]:
        """Every key that starts with ``prefix``, sorted."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key``; removing a missing key is not an error."""
        ...

    def exists(self, key: str) -> bool:
        ...


def check_key(key: str) -> str:
    """Return ``key`` if it is a clean relative '/'-separated path, else raise InputError."""
    if not isinstance(key, str) or not key:
        raise InputError("an object key must be a non-empty string", why=repr(key))
    if key.startswith("/") or "\\" in key or "\0" in key:
        raise InputError(f"object key {key!r} is not a relative '/'-separated path")
    parts = key.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise InputError(f"object key {key!r} has an empty, '.' or '..' segment")
    if _PARTIAL.match(parts[-1]):
        raise InputError(f"object key {key!r} looks like a temporary file ('.*.partial' is reserved)")
    return key


def _check_prefix(prefix: str) -> str:
    if prefix and (prefix.startswith("/") or "\\" in prefix or ".." in prefix.split("/")):
        raise InputError(f"list prefix {prefix!r} is not a relative '/'-separated path")
    return prefix


# -- local directory -----------------------------------------------------------------------------


class LocalDirStore:
    """Objects as files under ``root``; writes go to a temporary file renamed into place."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser().absolute()

    def __repr__(self) -> str:
        return f"LocalDirStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def put_bytes(self, key: str, data: bytes) -> None:
        target = self._path(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, partial = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(partial, target)
            except BaseException:
                Path(partial).unlink(missing_ok=True)
                raise
        except (IsADirectoryError, NotADirectoryError, FileExistsError) as exc:
            raise InputError(f"key {key!r} collides with another key's directory", where=str(self.root),
                             why=str(exc)) from None

    def get_bytes(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise MissingObject(f"no object {key!r}", where=str(self.root)) from None

    def list(self, prefix: str = "") -> list[str]:
        _check_prefix(prefix)
        # Walk only below the deepest directory the prefix names.
        directory = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = self.root.joinpath(*directory.split("/")) if directory else self.root
        keys = []
        for dirpath, _, filenames in os.walk(start):
            for name in filenames:
                if _PARTIAL.match(name):
                    continue
                key = Path(dirpath, name).relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except (FileNotFoundError, IsADirectoryError):
            return
        # S3 has no directories: drop the ones this delete left empty.
        parent = path.parent
        while parent != self.root:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()


# -- MinIO -----------------------------------------------------------------------------------------


class MinioStore:
    """Objects in ``bucket`` of an S3 server, through the ``minio`` SDK.

    ``endpoint`` is ``host:port`` or a URL (``http://host:port``; ``https`` implies ``secure``).
    With ``secure`` the server's certificate is always verified: against ``ca_bundle`` (a PEM
    file) when given, else ``$SSL_CERT_FILE`` or certifi's bundle, as the ``minio`` SDK does.
    """

    CONNECT_TIMEOUT_S = 5.0
    READ_TIMEOUT_S = 120.0

    def __init__(self, endpoint: str, access_key: str, secret_key: str, bucket: str, secure: bool = False,
                 ca_bundle: str | None = None) -> None:
        self.endpoint, self.secure = _split_endpoint(endpoint, secure)
        self.bucket = bucket
        self.ca_bundle = ca_bundle or None
        tls: dict[str, Any] = {}
        if self.secure:
            if self.ca_bundle and not Path(self.ca_bundle).is_file():
                raise InputError(f"MinIO CA bundle {self.ca_bundle!r} is not a readable file",
                                 why=f"set ?ca= or {CA_BUNDLE_ENV} to a PEM file of the CAs that sign MinIO's certificate")
            tls = {"cert_reqs": "CERT_REQUIRED",
                   "ca_certs": self.ca_bundle or os.environ.get("SSL_CERT_FILE") or certifi.where()}
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=self.CONNECT_TIMEOUT_S, read=self.READ_TIMEOUT_S),
            retries=urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=(500, 502, 503, 504)),
            **tls,
        )
        try:
            self._client = Minio(self.endpoint, access_key=access_key, secret_key=secret_key, secure=self.secure,
                                 http_client=http)
        except ValueError as exc:
            raise InputError(f"bad MinIO endpoint {endpoint!r}", why=str(exc)) from None

    def __repr__(self) -> str:
        return f"MinioStore({self.url!r}, bucket={self.bucket!r})"

    @property
    def url(self) -> str:
        return f"{'https' if self.secure else 'http'}://{self.endpoint}"

    def ensure_bucket(self) -> bool:
        """Create the bucket if it does not exist; return whether it was created."""
        def make() -> bool:
            if self._client.bucket_exists(self.bucket):
                return False
            self._client.make_bucket(self.bucket)
            return True

        return self._call("create bucket", None, make)

    def put_bytes(self, key: str, data: bytes) -> None:
        self._call("put", key, lambda: self._client.put_object(self.bucket, key, io.BytesIO(data), len(data)))

    def get_bytes(self, key: str) -> bytes:
        def get() -> bytes:
            response = self._client.get_object(self.bucket, key)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

        return self._call("get", key, get)

    def list(self, prefix: str = "") -> list[str]:
        _check_prefix(prefix)

        def listing() -> list[str]:
            objects = self._client.list_objects(self.bucket, prefix=prefix or None, recursive=True)
            return sorted(str(o.object_name) for o in objects if not o.is_dir)

        return self._call("list", prefix or None, listing)

    def delete(self, key: str) -> None:
        self._call("delete", key, lambda: self._client.remove_object(self.bucket, key))

    def exists(self, key: str) -> bool:
        def stat() -> bool:
            try:
                self._client.stat_object(self.bucket, key)
            except S3Error as exc:
                if exc.code in _MISSING_CODES:
                    return False
                raise
            return True

        return self._call("stat", key, stat)

    def _call(self, action: str, key: str | None, fn: Callable[[], T]) -> T:
        if key is not None and action != "list":
            check_key(key)
        where = f"{self.url}/{self.bucket}" + (f"/{key}" if key else "")
        try:
            return fn()
        except S3Error as exc:
            if exc.code in _MISSING_CODES:
                raise MissingObject(f"no object {key!r}", where=f"{self.url}/{self.bucket}") from None
            if exc.code == "NoSuchBucket":
                raise InputError(f"bucket {self.bucket!r} does not exist", where=self.url,
                                 why="create it (neurokube stack up does) or fix the bucket name") from None
            if exc.code in _CREDENTIAL_CODES:
                raise InputError(f"{action} refused: {exc.code}", where=where, why="check the access and secret keys") \
                    from None
            raise TemporaryError(f"MinIO at {self.url}: {action} failed: {exc.code}: {exc.message}") from None
        except (urllib3.exceptions.HTTPError, MinioException, OSError) as exc:
            raise TemporaryError(f"MinIO at {self.url} is unreachable ({action} {where}): "
                                 f"{_reason(exc)}") from None


def _split_endpoint(endpoint: str, secure: bool) -> tuple[str, bool]:
    if "://" in endpoint:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path.strip("/"):
            raise InputError(f"bad MinIO endpoint {endpoint!r}", why="expected host:port or http(s)://host:port")
        return parts.netloc, parts.scheme == "https"
    return endpoint, secure


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)  # MaxRetryError wraps the connection error
    return str(reason or exc)


# -- factory ---------------------------------------------------------------------------------------


def open_store(target: str | Path | Mapping[str, Any], env: Mapping[str, str] = os.environ) -> ObjectStore:
    """A store from a path, a URL or the JSON of ``neurokube stack status --json``.

    * ``/some/dir``, ``./dir`` or ``file:///some/dir``: a :class:`LocalDirStore`;
    * ``minio://[ACCESS:SECRET@]host:port/bucket[?secure=true][&ca=/path/ca.pem]``: a
      :class:`MinioStore`; ``minios://`` is the same with ``secure=true`` (HTTPS, certificate
      verified). Without ``ACCESS:SECRET@`` the keys come from ``env`` (``NEUROKUBE_STORE_ACCESS_KEY``,
      ``NEUROKUBE_STORE_SECRET_KEY``); without ``ca=``, the CA bundle from
      ``NEUROKUBE_STORE_CA_BUNDLE`` (if set);
    * ``{"minio": {"endpoint", "access_key", "secret_key", "bucket"}, ...}`` or the inner mapping
      (optionally ``secure``, ``ca_bundle``): a :class:`MinioStore`.
    """
    if isinstance(target, Mapping):
        doc = target.get("minio", target)
        try:
            return MinioStore(doc["endpoint"], doc["access_key"], doc["secret_key"], doc["bucket"],
                              bool(doc.get("secure", False)), doc.get("ca_bundle"))
        except (KeyError, TypeError) as exc:
            raise InputError("object store settings need endpoint, access_key, secret_key and bucket",
                             why=f"missing {exc}") from None
    text = str(target)
    if "://" not in text:
        return LocalDirStore(text)
    parts = urlsplit(text)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise InputError(f"file URL {text!r} names a remote host")
        return LocalDirStore(unquote(parts.path))
    if parts.scheme in ("minio", "minios"):
        return _minio_from_url(text, env)
    raise InputError(f"unknown object store URL scheme {parts.scheme!r}",
                     why="use a path, file://, minio:// or minios://")


def minio_url_settings(url: str, env: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """The parts of a ``minio://`` / ``minios://`` URL, credentials filled in from ``env``:
    ``endpoint``, ``access_key``, ``secret_key``, ``bucket``, ``secure``, ``ca_bundle``."""
    parts = urlsplit(url)
    shown = _redact(url)
    usage = "expected minio[s]://[ACCESS:SECRET@]host:port/bucket[?secure=true&ca=/path/ca.pem]"
    bucket = parts.path.strip("/")
    try:
        port = parts.port
    except ValueError:
        raise InputError(f"bad MinIO URL {shown!r}", why=f"the port is not a number; {usage}") from None
    if not (parts.hostname and bucket) or "/" in bucket:
        raise InputError(f"bad MinIO URL {shown!r}", why=usage)
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - {"secure", "ca"})
    if unknown:
        raise InputError(f"bad MinIO URL {shown!r}", why=f"unknown option {', '.join(unknown)}; {usage}")
    secure_text = query.get("secure", ["true" if parts.scheme == "minios" else "false"])[-1].lower()
    if secure_text not in _TRUE + _FALSE:
        raise InputError(f"bad MinIO URL {shown!r}", why=f"secure={secure_text!r}: use true or false")
    secure = secure_text in _TRUE
    if parts.scheme == "minios" and not secure:
        raise InputError(f"bad MinIO URL {shown!r}", why="minios:// always uses TLS; use minio:// for plain HTTP")
    ca_bundle = query.get("ca", [""])[-1] or env.get(CA_BUNDLE_ENV, "") or None
    if parts.username is not None or parts.password is not None:
        if not (parts.username and parts.password):
            raise InputError(f"bad MinIO URL {shown!r}", why="give both ACCESS:SECRET@ or neither")
        access, secret = unquote(parts.username), unquote(parts.password)
    else:
        access, secret = env.get(ACCESS_KEY_ENV, ""), env.get(SECRET_KEY_ENV, "")
        if not (access and secret):
            missing = [name for name, value in ((ACCESS_KEY_ENV, access), (SECRET_KEY_ENV, secret)) if not value]
            raise InputError(f"no credentials for MinIO URL {shown!r}",
                             why=f"{' and '.join(missing)} unset; set both, or put ACCESS:SECRET@ in the URL")
    host = parts.hostname + (f":{port}" if port else "")
    return {"endpoint": host, "access_key": access, "secret_key": secret, "bucket": bucket, "secure": secure,
            "ca_bundle": ca_bundle}


def _minio_from_url(url: str, env: Mapping[str, str]) -> MinioStore:
    doc = minio_url_settings(url, env)
    return MinioStore(doc["endpoint"], doc["access_key"], doc["secret_key"], doc["bucket"], doc["secure"],
                      doc["ca_bundle"])


def has_credentials(url: str) -> bool:
    """Whether ``url`` carries a password (``user:password@``): such a URL is a secret itself."""
    try:
        return urlsplit(str(url)).password is not None
    except ValueError:
        return False


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url
