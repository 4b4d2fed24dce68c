"""A throwaway HTTPS server on 127.0.0.1 with a certificate from a fresh local CA, for the TLS
tests of the object store and the Prometheus reader (is the certificate checked, and is a given
CA bundle used?)."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from neurokube.cluster import certs

Answer = Callable[[str], tuple[int, str, bytes]]
"""path -> (status, content type, body)."""


class TlsServer:
    def __init__(self, pki_dir: Path, answer: Answer) -> None:
        self.pki = certs.generate(pki_dir, "10.0.0.1")  # serving cert for 127.0.0.1 / localhost
        self.paths: list[str] = []
        self.authorization: list[str | None] = []  # the Authorization header of each request
        paths, authorization = self.paths, self.authorization

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                paths.append(self.path)
                authorization.append(self.headers.get("Authorization"))
                status, kind, body = answer(self.path)
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_HEAD = do_GET

            def log_message(self, *args) -> None:
                pass

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.pki.serving_cert, self.pki.serving_key)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._server.handle_error = lambda *args: None  # refused handshakes are the point of the tests
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def ca_bundle(self) -> str:
        return str(self.pki.ca_cert)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
