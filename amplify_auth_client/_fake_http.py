"""A :class:`~amplify_auth_client.testing.FakeAuthServer` on a real loopback socket.

For code that builds its own client from ``AUTH_SERVICE_URL`` (the
integrations, ``StatelessService``, a service started in a subprocess): the
fake's in-memory transport cannot reach it, an address can. Each request is
handed to :meth:`FakeAuthServer.handle`, as the transport hands it, so both
ways in answer alike. Standard library only; one thread per connection.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from amplify_auth_client.testing import FakeAuthServer


@contextmanager
def serving(fake: FakeAuthServer, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve ``fake`` on a free port of ``host`` until the block ends; yields its base URL."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            request = httpx.Request(
                self.command,
                base + self.path,
                headers=list(self.headers.items()),
                content=self.rfile.read(length) if length else b"",
            )
            response = fake.handle(request)
            body = response.content
            self.send_response(response.status_code)
            for name, value in response.headers.items():
                if name.lower() not in ("content-length", "connection"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _answer

        def log_message(self, format: str, *args: object) -> None:
            pass  # a request line may carry nothing secret, but a test log needs none

    server = ThreadingHTTPServer((host, 0), Handler)
    server.daemon_threads = True
    base = f"http://{host}:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield base
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
