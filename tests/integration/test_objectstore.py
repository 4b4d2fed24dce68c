"""Object stores, the same behaviour checked on a local directory and on the stack's MinIO.

* put/get/exists/list/delete round trip, overwrite, S3-style prefix listing;
* a missing key raises MissingObject; deleting it is not an error;
* malformed keys ('..', absolute, empty segments) are rejected with InputError by both stores;
* open_store builds each store from a path, a file:// URL, a minio:// URL or `stack status --json`;
* an unreachable MinIO is a TemporaryError naming the endpoint; wrong credentials an InputError.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from neurokube.adapters.objectstore import LocalDirStore, MinioStore, MissingObject, ObjectStore, open_store
from neurokube.cluster.components import free_ports
from neurokube.errors import InputError, TemporaryError

pytestmark = pytest.mark.integration


@pytest.fixture(params=["local", "minio"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return LocalDirStore(tmp_path / "objects")
    stack = request.getfixturevalue("stack")
    return open_store(stack.endpoints)


@pytest.fixture
def prefix() -> str:
    """A fresh key prefix, so tests sharing the session bucket never see each other's objects."""
    return f"it-{uuid.uuid4().hex[:8]}/"


def test_round_trip(store: ObjectStore, prefix: str) -> None:
    key = f"{prefix}models/v1/model.txt"
    assert not store.exists(key)
    store.put_bytes(key, b"weights v1")
    assert store.exists(key)
    assert store.get_bytes(key) == b"weights v1"

    store.put_bytes(key, b"weights v2")  # overwrite
    assert store.get_bytes(key) == b"weights v2"

    store.put_bytes(f"{prefix}models/v10/model.txt", b"")
    store.put_bytes(f"{prefix}runs/1.json", b'{"auc": 0.9}')
    assert store.list(prefix) == [f"{prefix}models/v1/model.txt", f"{prefix}models/v10/model.txt",
                                  f"{prefix}runs/1.json"]
    # A prefix is a string prefix, not a directory: "models/v1" also matches "models/v10/...".
    assert store.list(f"{prefix}models/v1") == [f"{prefix}models/v1/model.txt", f"{prefix}models/v10/model.txt"]
    assert store.list(f"{prefix}models/v1/") == [f"{prefix}models/v1/model.txt"]
    assert store.get_bytes(f"{prefix}models/v10/model.txt") == b""

    store.delete(key)
    assert not store.exists(key)
    assert store.list(f"{prefix}models/") == [f"{prefix}models/v10/model.txt"]
    with pytest.raises(MissingObject):
        store.get_bytes(key)
    store.delete(key)  # deleting a missing key is not an error

    for leftover in store.list(prefix):
        store.delete(leftover)
    assert store.list(prefix) == []


def test_binary_payload(store: ObjectStore, prefix: str) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB, every byte value
    store.put_bytes(f"{prefix}blob.bin", payload)
    assert store.get_bytes(f"{prefix}blob.bin") == payload
    store.delete(f"{prefix}blob.bin")


@pytest.mark.parametrize("key", ["../escape", "a/../b", "/abs/key", "a//b", "a/./b", "", "trailing/", "win\\path"])
def test_malformed_keys_are_rejected(store: ObjectStore, key: str) -> None:
    with pytest.raises(InputError):
        store.put_bytes(key, b"x")
    with pytest.raises(InputError):
        store.get_bytes(key)


def test_local_store_writes_atomically_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    store = LocalDirStore(tmp_path)
    store.put_bytes("a/b.txt", b"1")
    store.put_bytes("a/b.txt", b"2")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b.txt"]
    store.delete("a/b.txt")
    assert list(tmp_path.iterdir()) == []  # the emptied directory is removed too


def test_open_store_forms(tmp_path: Path, stack) -> None:
    assert isinstance(open_store(tmp_path), LocalDirStore)
    assert open_store(f"file://{tmp_path}").root == tmp_path
    minio = stack.endpoints["minio"]
    from_doc = open_store({**stack.endpoints, "running": True})
    assert isinstance(from_doc, MinioStore) and from_doc.bucket == minio["bucket"]
    host = minio["endpoint"].removeprefix("http://")
    url = f"minio://{minio['access_key']}:{minio['secret_key']}@{host}/{minio['bucket']}"
    from_url = open_store(url)
    from_url.put_bytes("it-open-store/k", b"v")
    assert from_doc.get_bytes("it-open-store/k") == b"v"
    from_doc.delete("it-open-store/k")
    with pytest.raises(InputError):
        open_store("s3://bucket/key")
    with pytest.raises(InputError):
        open_store(f"minio://{host}/{minio['bucket']}")  # no credentials


def test_unreachable_minio_is_temporary_and_names_the_endpoint() -> None:
    port = free_ports(("closed",))["closed"]  # nothing listens there
    store = MinioStore(f"127.0.0.1:{port}", "user", "password", "bucket")
    with pytest.raises(TemporaryError, match=f"127.0.0.1:{port}"):
        store.get_bytes("anything")


def test_wrong_credentials_are_an_input_error(stack) -> None:
    minio = stack.endpoints["minio"]
    store = MinioStore(minio["endpoint"], minio["access_key"], "not-the-secret", minio["bucket"])
    with pytest.raises(InputError, match="access and secret keys"):
        store.put_bytes("it-denied/x", b"x")


def test_missing_bucket_is_an_input_error(stack) -> None:
    minio = stack.endpoints["minio"]
    store = MinioStore(minio["endpoint"], minio["access_key"], minio["secret_key"], "no-such-bucket")
    with pytest.raises(InputError, match="no-such-bucket"):
        store.put_bytes("x", b"x")
