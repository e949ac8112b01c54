"""A real local HTTP receiver of webhooks, with answers a test chooses per event."""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook

#: A fixed-length, random secret per test session.
SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()


@dataclass(frozen=True)
class Received:
    """One request the receiver got, and the status it answered."""

    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    def verified(self, secret: str = SECRET) -> dict[str, Any]:
        """The event, as a receiver takes it: only if its signature verifies."""
        event: dict[str, Any] = Webhook(secret).verify(self.body, self.headers)
        return event


@dataclass
class Receiver:
    """``ThreadingHTTPServer`` on a free port. A request whose body contains a key of
    :attr:`fail` is answered the statuses listed there, in turn; one containing a
    key of :attr:`block` waits for that event before its answer; any other: 200."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    fail: dict[str, list[int]] = field(default_factory=dict)
    block: dict[str, threading.Event] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, headers: dict[str, str], body: bytes) -> int | None:
        """The status to answer; None: none (held until released, then hung up)."""
        text = body.decode()
        for marker, released in list(self.block.items()):
            if marker in text:
                with self.lock:
                    self.received.append(Received(headers, body, 0))  # seen, not answered
                released.wait(30)
                return None
        with self.lock:
            for marker, statuses in self.fail.items():
                if marker in text and statuses:
                    return statuses.pop(0)
        return 200

    def about(self, marker: str) -> list[Received]:
        """The requests answered so far whose body contains ``marker`` (a token id)."""
        with self.lock:
            return [r for r in self.received if r.status and marker.encode() in r.body]

    def delivered(self, marker: str) -> list[Received]:
        return [r for r in self.about(marker) if 200 <= r.status < 300]

    def seen(self, marker: str) -> bool:
        """Whether a request about ``marker`` arrived, answered or not."""
        with self.lock:
            return any(marker.encode() in r.body for r in self.received)

    def held(self, marker: str) -> list[Received]:
        """The requests about ``marker`` held unanswered (see :attr:`block`)."""
        with self.lock:
            return [r for r in self.received if not r.status and marker.encode() in r.body]


@contextmanager
def receiver() -> Iterator[Receiver]:
    """A started :class:`Receiver`; shut down on exit."""
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            status = state.answer(headers, body)
            if status is None:
                self.close_connection = True
                return
            with state.lock:
                state.received.append(Received(headers, body, status))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the test reads what it needs from Receiver.received

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        for released in state.block.values():
            released.set()
        server.shutdown()
        server.server_close()
