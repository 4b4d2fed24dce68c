"""How ``open_store`` reads a ``minio://`` / ``minios://`` URL, without a server (building a
MinioStore does not connect):

* credentials in the URL, or else from NEUROKUBE_STORE_ACCESS_KEY / NEUROKUBE_STORE_SECRET_KEY
  (a URL without a secret can go on a command line); neither is an InputError naming both ways;
* ``minios://`` and ``?secure=true`` speak HTTPS with the certificate verified (CERT_REQUIRED),
  against ``?ca=`` or NEUROKUBE_STORE_CA_BUNDLE when given; a missing CA file is refused;
* malformed URLs and unknown options are refused, and no message shows the secret;
* against a real HTTPS server with a certificate from a private CA: refused (TemporaryError, no
  request served) without that CA, read with it.
"""

from __future__ import annotations

import pytest

from neurokube.adapters.objectstore import MinioStore, has_credentials, minio_url_settings, open_store
from neurokube.errors import InputError, TemporaryError

ENV = {"NEUROKUBE_STORE_ACCESS_KEY": "env-access", "NEUROKUBE_STORE_SECRET_KEY": "env-secret"}


def pool_tls(store: MinioStore) -> dict:
    return store._client._http.connection_pool_kw  # the urllib3 PoolManager the SDK was given


def test_credentials_in_the_url():
    doc = minio_url_settings("minio://KEY:S%40CRET@minio:9000/bucket", {})
    assert doc == {"endpoint": "minio:9000", "access_key": "KEY", "secret_key": "S@CRET", "bucket": "bucket",
                   "secure": False, "ca_bundle": None}


def test_credentials_from_the_environment():
    doc = minio_url_settings("minio://minio.neurokube.svc:9000/neurokube", ENV)
    assert (doc["access_key"], doc["secret_key"]) == ("env-access", "env-secret")
    store = open_store("minio://minio.neurokube.svc:9000/neurokube", ENV)
    assert isinstance(store, MinioStore) and store.bucket == "neurokube" and not store.secure


def test_the_url_wins_over_the_environment():
    assert minio_url_settings("minio://url-key:url-secret@h:1/b", ENV)["access_key"] == "url-key"


@pytest.mark.parametrize("env, missing", [({}, "NEUROKUBE_STORE_ACCESS_KEY and NEUROKUBE_STORE_SECRET_KEY"),
                                          ({"NEUROKUBE_STORE_ACCESS_KEY": "a"}, "NEUROKUBE_STORE_SECRET_KEY")])
def test_no_credentials_names_the_variables(env, missing):
    with pytest.raises(InputError, match="no credentials") as info:
        open_store("minio://h:9000/b", env)
    assert missing in str(info.value) and "ACCESS:SECRET@" in str(info.value)


def test_plain_http_by_default():
    store = open_store("minio://h:9000/b", ENV)
    assert store.url == "http://h:9000" and "cert_reqs" not in pool_tls(store)


@pytest.mark.parametrize("url", ["minios://h:9000/b", "minio://h:9000/b?secure=true", "minio://h:9000/b?secure=1"])
def test_tls_verifies_the_certificate(url):
    store = open_store(url, ENV)
    assert store.secure and store.url == "https://h:9000"
    kw = pool_tls(store)
    assert kw["cert_reqs"] == "CERT_REQUIRED" and kw["ca_certs"]
    pool = store._client._http.connection_from_host("h", 9000, scheme="https")  # what a request would use
    assert pool.cert_reqs == "CERT_REQUIRED" and pool.ca_certs == kw["ca_certs"]


def test_ca_bundle_from_the_url_or_the_environment(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    assert pool_tls(open_store(f"minios://h:9000/b?ca={ca}", ENV))["ca_certs"] == str(ca)
    from_env = open_store("minios://h:9000/b", {**ENV, "NEUROKUBE_STORE_CA_BUNDLE": str(ca)})
    assert pool_tls(from_env)["ca_certs"] == str(ca) and from_env.ca_bundle == str(ca)


def test_a_missing_ca_bundle_is_refused(tmp_path):
    with pytest.raises(InputError, match="CA bundle .* is not a readable file"):
        open_store(f"minios://h:9000/b?ca={tmp_path / 'absent.pem'}", ENV)


@pytest.mark.parametrize("url, why", [
    ("minio://h:9000/", "expected minio"),
    ("minio://h:9000/a/b", "expected minio"),
    ("minio://KEY@h:9000/b", "both ACCESS:SECRET@ or neither"),
    ("minio://h:9000/b?verify=false", "unknown option verify"),
    ("minio://h:9000/b?secure=maybe", "secure='maybe'"),
    ("minios://h:9000/b?secure=false", "always uses TLS"),
    ("minio://h:port/b", "port is not a number"),
])
def test_malformed_urls_are_refused(url, why):
    with pytest.raises(InputError, match="bad MinIO URL") as info:
        open_store(url, ENV)
    assert why in str(info.value)


def test_messages_never_show_the_secret():
    with pytest.raises(InputError) as info:
        open_store("minio://KEY:TOPSECRET@h:9000/a/b", {})
    assert "TOPSECRET" not in str(info.value) and "***" in str(info.value)


def test_has_credentials():
    assert has_credentials("minio://a:b@h:9000/x")
    assert not has_credentials("minios://h:9000/x") and not has_credentials("/some/dir")


def s3(path: str) -> tuple[int, str, bytes]:
    if "location" in path:
        return 200, "application/xml", (b'<?xml version="1.0" encoding="UTF-8"?><LocationConstraint '
                                        b'xmlns="http://s3.amazonaws.com/doc/2006-03-01/">us-east-1</LocationConstraint>')
    return 200, "application/octet-stream", b"object bytes"


@pytest.fixture()
def https_minio(tmp_path):
    from tests.unit.tls_server import TlsServer

    server = TlsServer(tmp_path / "pki", s3)
    yield server
    server.close()


def test_tls_refuses_an_unknown_ca_and_trusts_the_given_one(https_minio):
    """Against a real HTTPS server (certificate from a private CA): without the CA bundle the
    handshake fails (TemporaryError naming the endpoint, no request served); with it, the object
    is read."""
    url = f"minios://127.0.0.1:{https_minio.port}/bucket"
    with pytest.raises(TemporaryError, match=rf"https://127.0.0.1:{https_minio.port}.*(CERTIFICATE_VERIFY_FAILED|certificate)"):
        open_store(url, ENV).get_bytes("k")
    assert https_minio.paths == []
    assert open_store(f"{url}?ca={https_minio.ca_bundle}", ENV).get_bytes("dir/k") == b"object bytes"
    assert https_minio.paths[-1] == "/bucket/dir/k"
