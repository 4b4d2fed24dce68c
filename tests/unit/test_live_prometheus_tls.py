"""The live metrics refresher over HTTPS with a bearer token, against a real TLS server whose
certificate comes from a private CA: certificates are checked by default (the system trust store
refuses it, reported as Prometheus unavailable, nothing asked), a configured CA bundle is used, an
explicit NEUROKUBE_PROM_INSECURE_SKIP_VERIFY reads without checking (warned), the token file's
contents go out as ``Authorization: Bearer`` and are re-read as the token rotates, an unreadable
token file is an error naming it, and contradictory or missing TLS settings are refused at start-up."""

from __future__ import annotations

import json
import logging
import urllib.parse

import pytest

from neurokube.adapters.prometheus import TokenFile
from neurokube.errors import InputError, TemporaryError
from neurokube.live.prometheus import PrometheusSource
from neurokube.live.settings import Settings, from_env
from tests.unit.tls_server import TlsServer

NODES = {"n0": "n0", "n1": "n1"}
TOKEN = "s3cret-token-0123456789"


def vector(path: str) -> tuple[int, str, bytes]:
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query).get("query", [""])[0]
    value = "2147483648" if "memory" in query else "1.5"
    result = [{"metric": {"instance": f"{n}:9100"}, "value": [0, value]} for n in ("n0", "n1")]
    return 200, "application/json", json.dumps({"status": "success",
                                                "data": {"resultType": "vector", "result": result}}).encode()


@pytest.fixture()
def prometheus(tmp_path):
    server = TlsServer(tmp_path / "pki", vector)
    yield server
    server.close()


@pytest.fixture()
def token_file(tmp_path):
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    return path


def source(server: TlsServer, **settings) -> PrometheusSource:
    return PrometheusSource(Settings(prometheus_url=f"https://127.0.0.1:{server.port}", prom_timeout_s=5, **settings),
                            lambda: NODES, clock=lambda: 100.0)


def test_the_certificate_is_checked_by_default(prometheus):
    snap = source(prometheus).refresh()
    assert not snap.fresh(100.0, 120.0)
    assert "unreachable" in snap.error and "CERTIFICATE_VERIFY_FAILED" in snap.error
    assert f"127.0.0.1:{prometheus.port}" in snap.error
    assert not any("/api/v1/query" in p for p in prometheus.paths)  # nothing was asked over the bad channel


def test_another_ca_fails_verification(prometheus, tmp_path):
    other = TlsServer(tmp_path / "other-pki", vector)  # a second private CA, not the one that signed
    try:
        snap = source(prometheus, prom_ca_file=other.pki.ca_cert).refresh()
    finally:
        other.close()
    assert "CERTIFICATE_VERIFY_FAILED" in snap.error and not snap.values


def test_the_right_ca_bundle_passes_and_the_token_is_sent(prometheus, token_file):
    snap = source(prometheus, prom_ca_file=prometheus.pki.ca_cert, prom_token_file=token_file).refresh()
    assert not snap.error and snap.values["cpu_mean"] == {"n0": 1.5, "n1": 1.5}
    assert snap.values["mem_mean"]["n1"] == 2.0 * 2**30
    assert prometheus.authorization and set(prometheus.authorization) == {f"Bearer {TOKEN}"}


def test_without_a_token_file_no_authorization_is_sent(prometheus):
    snap = source(prometheus, prom_ca_file=prometheus.pki.ca_cert).refresh()
    assert not snap.error and set(prometheus.authorization) == {None}


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")  # what skip-verify means
def test_skipping_verification_is_explicit_and_warned(prometheus, caplog):
    with caplog.at_level(logging.WARNING):
        metrics = source(prometheus, prom_insecure_skip_verify=True)
    assert "TLS certificate checks of Prometheus are off" in caplog.text
    assert metrics.refresh().values["cpu_mean"]["n0"] == 1.5


def test_an_unreadable_token_file_is_unavailability_naming_the_file(prometheus, tmp_path):
    missing = tmp_path / "absent-token"
    snap = source(prometheus, prom_ca_file=prometheus.pki.ca_cert, prom_token_file=missing).refresh()
    assert "bearer token file" in snap.error and str(missing) in snap.error and not snap.values
    assert not prometheus.paths  # no request went out without the token


def test_the_token_is_re_read_as_it_rotates(token_file, caplog):
    clock = [0.0]
    auth = TokenFile(token_file, reread_s=60.0, clock=lambda: clock[0])
    assert auth.token() == TOKEN
    token_file.write_text("rotated-token-abcdefghij")
    clock[0] = 59.0
    assert auth.token() == TOKEN  # cached within the period
    clock[0] = 60.0
    assert auth.token() == "rotated-token-abcdefghij"
    token_file.unlink()
    clock[0] = 200.0
    with caplog.at_level(logging.WARNING):
        assert auth.token() == "rotated-token-abcdefghij"  # a failed re-read keeps the previous token
    assert "re-reading the Prometheus bearer token failed" in caplog.text


def test_an_empty_token_file_is_refused(tmp_path):
    empty = tmp_path / "token"
    empty.write_text("\n")
    with pytest.raises(TemporaryError, match="bearer token file .*: the file is empty"):
        TokenFile(empty).token()


def test_tls_settings_are_validated_at_start_up(tmp_path, prometheus):
    base = {"NEUROKUBE_PROMETHEUS_URL": "https://prometheus:9090"}
    s = from_env(base | {"NEUROKUBE_PROM_CA_FILE": prometheus.ca_bundle, "NEUROKUBE_PROM_TOKEN_FILE": "/var/run/t"})
    assert str(s.prom_ca_file) == prometheus.ca_bundle and not s.prom_insecure_skip_verify
    assert str(s.prom_token_file) == "/var/run/t"
    with pytest.raises(InputError, match="NEUROKUBE_PROM_CA_FILE: .*absent.pem is not a readable file"):
        from_env(base | {"NEUROKUBE_PROM_CA_FILE": str(tmp_path / "absent.pem")})
    with pytest.raises(InputError, match="NEUROKUBE_PROM_INSECURE_SKIP_VERIFY: contradicts NEUROKUBE_PROM_CA_FILE"):
        from_env(base | {"NEUROKUBE_PROM_CA_FILE": prometheus.ca_bundle, "NEUROKUBE_PROM_INSECURE_SKIP_VERIFY": "1"})
    with pytest.raises(InputError, match="NEUROKUBE_PROM_INSECURE_SKIP_VERIFY=.*expected true or false"):
        from_env(base | {"NEUROKUBE_PROM_INSECURE_SKIP_VERIFY": "maybe"})
