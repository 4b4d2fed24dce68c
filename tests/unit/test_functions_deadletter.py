"""The dead-letter sink (functions/deadletter/main.py): a dead-lettered CloudEvent becomes one
warning log line with its attributes and Knative's error extensions (decoded), never its data;
anything that is not a CloudEvent is a 4xx; GET / is the health answer."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

import functions_framework
import pytest
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent

SOURCE = str(Path(__file__).resolve().parents[2] / "functions" / "deadletter" / "main.py")


@pytest.fixture(scope="module")
def client():
    return functions_framework.create_app("dead_letter", SOURCE).test_client()


def dead_letter_event() -> tuple[dict, bytes]:
    pod = {"kind": "Pod", "metadata": {"name": "p", "namespace": "nk"}, "spec": {"secret": "not-logged"}}
    ce = CloudEvent({"type": "dev.knative.apiserver.resource.add", "source": "https://10.0.0.1:443",
                     "subject": "/apis/v1/namespaces/nk/pods/p", "id": "ev-1",
                     "knativeerrordest": "http://neurokube-binder.neurokube.svc.cluster.local",
                     "knativeerrorcode": "503",
                     "knativeerrordata": base64.b64encode(b'{"error":"apiserver down"}\n').decode()}, pod)
    return to_binary(ce)


def test_a_dead_letter_is_logged_without_its_data(client, caplog):
    headers, body = dead_letter_event()
    with caplog.at_level(logging.WARNING, logger="neurokube.functions.deadletter"):
        response = client.post("/", headers=headers, data=body)
    assert response.status_code == 200 and response.json == {"logged": True, "id": "ev-1"}
    (entry,) = [r for r in caplog.records if r.getMessage() == "dead letter"]
    fields = entry.fields
    assert fields["type"] == "dev.knative.apiserver.resource.add" and fields["subject"].endswith("/pods/p")
    assert fields["error_code"] == "503" and fields["error_dest"].startswith("http://neurokube-binder")
    assert fields["error_data"] == '{"error":"apiserver down"} ' and fields["data_bytes"] == len(body)
    assert "not-logged" not in json.dumps(fields)


@pytest.mark.parametrize("method, headers, body, status", [
    ("POST", {"Content-Type": "application/json"}, b"{}", 400),      # no ce-* attributes
    ("POST", {"Content-Type": "text/plain"}, b"hello", 400),
    ("PUT", {}, b"", 405),
    ("POST", {"Content-Type": "application/json"}, b"x" * (1024 * 1024 + 1), 413),
])
def test_what_is_not_a_dead_letter(client, method, headers, body, status):
    response = client.open("/", method=method, headers=headers, data=body)
    assert response.status_code == status and "error" in response.json


def test_health(client):
    assert client.get("/").status_code == 200 and client.get("/healthz").json == {"ok": True}
