"""pipelines/usage.py checks Prometheus' certificate by default: against a real HTTPS server whose
certificate comes from a private CA, the default reader refuses it (TemporaryError naming the
server), a reader given that CA bundle reads the series, and ``verify=False`` (explicit, logged)
reads them without checking; a bearer token file is sent as ``Authorization: Bearer``."""

from __future__ import annotations

import json
import logging

import pytest

from neurokube.errors import InputError, TemporaryError
from pipelines.usage import PrometheusUsage
from tests.unit.tls_server import TlsServer

T0 = 1_710_000_000


def matrix(path: str) -> tuple[int, str, bytes]:
    series = [{"metric": {"node": "n1"}, "values": [[T0, "2000"], [T0 + 60, "2000"]]}]
    return 200, "application/json", json.dumps({"status": "success",
                                                "data": {"resultType": "matrix", "result": series}}).encode()


@pytest.fixture()
def prometheus(tmp_path):
    server = TlsServer(tmp_path / "pki", matrix)
    yield server
    server.close()


def test_verification_is_on_by_default(prometheus):
    reader = PrometheusUsage(f"https://127.0.0.1:{prometheus.port}", timeout_s=5)
    assert reader.verify is True and reader.client._session.verify is True
    with pytest.raises(TemporaryError, match=f"127.0.0.1:{prometheus.port}.*(CERTIFICATE_VERIFY_FAILED|certificate)"):
        reader.read(T0, T0 + 120, 60)
    assert not any("query_range" in p for p in prometheus.paths)  # nothing was asked over the bad channel


def test_a_ca_bundle_is_used(prometheus):
    reader = PrometheusUsage(f"https://127.0.0.1:{prometheus.port}", timeout_s=5, verify=prometheus.ca_bundle)
    frame = reader.read(T0, T0 + 120, 60)
    assert list(frame["node"].unique()) == ["n1"] and (frame["cpu_alloc_milli"] == 2000).all()
    assert any(p.startswith("/api/v1/query_range") for p in prometheus.paths)


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")  # what verify=False means
def test_turning_it_off_is_explicit_and_logged(prometheus, caplog):
    with caplog.at_level(logging.WARNING, logger="neurokube.pipelines.usage"):
        reader = PrometheusUsage(f"https://127.0.0.1:{prometheus.port}", timeout_s=5, verify=False)
    assert "TLS certificate checks of Prometheus are off" in caplog.text
    assert len(reader.read(T0, T0 + 120, 60)) == 2


def test_a_missing_ca_bundle_is_refused(tmp_path):
    with pytest.raises(InputError, match="CA bundle .* is not a readable file"):
        PrometheusUsage("https://prometheus:9090", verify=str(tmp_path / "absent.pem"))


def test_a_bearer_token_file_is_sent(prometheus, tmp_path):
    token = tmp_path / "token"
    token.write_text("pipeline-token-0123456789\n")
    reader = PrometheusUsage(f"https://127.0.0.1:{prometheus.port}", timeout_s=5, verify=prometheus.ca_bundle,
                             token_file=token)
    assert len(reader.read(T0, T0 + 120, 60)) == 2
    assert set(prometheus.authorization) == {"Bearer pipeline-token-0123456789"}
