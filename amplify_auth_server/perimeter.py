"""What one client connection may hold: header bytes, and time to send a request.

uvicorn (httptools) bounds neither the size of a request's header nor the
time a client takes to send it: a 10 MiB header is buffered whole, and a
client sending one header line (or one body byte) a second holds its
connection forever. uvicorn's own options cover the rest (``limit_concurrency``
for the connection cap, ``timeout_keep_alive`` for idle connections), so
this module adds only what they cannot do, in the one place that sees the
bytes arrive: a subclass of uvicorn's httptools protocol.

- **Header size.** The bytes received while a request's header is not yet
  complete are counted; past :attr:`Limits.max_header_bytes` the request is
  answered ``431`` and the connection closed, before the parser has buffered
  more than one read of the excess.
- **Read deadlines.** A request's header must arrive whole within
  :attr:`Limits.header_timeout` of its first byte (or of the connection, for
  a client that sends nothing), and its body within :attr:`Limits.body_timeout`
  of the header's end. A deadline is one number per connection, set when a
  phase begins; one sweep per server (:func:`sweep`) closes the connections
  past theirs. No timer per request: the hot path pays one clock read.

Responses are not limited here: a slow *reader* of a response is flow
control's business, and an event stream is a response that is meant to last.
What the protocol does for responses is send each one's head and body in
one write (:class:`HeadWithBody`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

logger = logging.getLogger("amplify_auth_server.perimeter")

_TOO_LARGE: Final = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\n"
    b"content-length: 31\r\n\r\n"
    b"Request header fields too large"
)
_TIMED_OUT: Final = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\n"
    b"content-length: 15\r\n\r\n"
    b"Request timeout"
)


@dataclass(frozen=True, slots=True)
class Limits:
    """The per-connection limits (see the module's docstring); their defaults are
    the settings' (:mod:`amplify_auth_server.config`)."""

    max_header_bytes: int
    header_timeout: float
    body_timeout: float

    @property
    def sweep_interval(self) -> float:
        """How often :func:`sweep` looks: a connection lives at most this much past
        its deadline."""
        return min(1.0, max(0.05, min(self.header_timeout, self.body_timeout) / 4))


class _HeaderTooLarge(Exception):
    """Raised inside the parser's callback: httptools turns it into a parser error."""


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with a bounded header and read deadlines.

    Built by uvicorn for each connection (``Config(http=protocol_class(limits))``).
    """

    #: Set by :func:`protocol_class`: uvicorn builds the protocol, not us.
    limits: Limits

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        #: When the phase under way must end (loop time), or None between requests.
        self.deadline: float | None = None
        #: Whether the phase under way is a header (else a body, or nothing).
        self.in_header = False
        self._header_bytes = 0
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._begin_header()

    def _begin_header(self) -> None:
        self.in_header = True
        self._header_bytes = 0
        self.deadline = self.loop.time() + self.limits.header_timeout

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self.deadline is None:
            self._begin_header()  # the first bytes of the next request
        if self.in_header:
            self._header_bytes += len(data)
            # A read holding the header's end may be long for its body's sake;
            # on_headers_complete counts such a header exactly.
            if self._header_bytes > self.limits.max_header_bytes and b"\r\n\r\n" not in data:
                self._refuse(_TOO_LARGE)
                return
        super().data_received(data)

    def on_headers_complete(self) -> None:
        if self._header_bytes > self.limits.max_header_bytes:
            size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
            if size > self.limits.max_header_bytes:
                self._refused = True
                raise _HeaderTooLarge()
        self.in_header = False
        self.deadline = self.loop.time() + self.limits.body_timeout
        super().on_headers_complete()
        cycle = self.cycle
        # Not for an upgrade (no cycle of this request: a WebSocket's answer is
        # its own), nor for HEAD (no body write would take the head along).
        if cycle is not None and cycle.scope is self.scope and self.scope["method"] != "HEAD":
            cycle.transport = HeadWithBody(self.transport, self.loop)  # type: ignore[assignment]

    def on_message_complete(self) -> None:
        self.deadline = None
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        if self._refused:  # our _HeaderTooLarge, as httptools reports it
            self._refuse(_TOO_LARGE)
        else:
            super().send_400_response(msg)

    def expire(self) -> None:
        """The deadline passed: answer 408 if nothing of the request was answered, close."""
        self.deadline = None
        answered = self.cycle is not None and self.cycle.response_started and not self.in_header
        self._refuse(None if answered else _TIMED_OUT)

    def _refuse(self, response: bytes | None) -> None:
        self._refused = True
        self.deadline = None
        if self.transport.is_closing():
            return
        if response is not None:
            self.transport.write(response)
        self.transport.close()


class HeadWithBody:
    """A response's transport, as uvicorn's response cycle writes to it: the status
    line and headers go out with the body's first bytes, in one write.

    uvicorn writes a response's head when the app sends ``http.response.start``
    and its body when the app sends the body: two system calls and two TCP
    segments for every answer, where one does (a validation is about 60 us
    of the server's time, and a write a good part of it). The head waits for
    the next write of the same response, or for the end of this turn of the
    event loop if none comes in it (a stream whose first event is not ready
    yet): never longer. Closing writes what is held first.
    """

    __slots__ = ("_first", "_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        #: The head, until the body's first write (or the loop's next turn) takes it.
        self._held: bytes | None = None
        #: Whether the first write (the head) is still to come.
        self._first = True

    def write(self, data: bytes) -> None:
        if self._held is not None:
            data, self._held = self._held + data, None
        elif self._first:
            self._first = False
            self._held = data
            self._loop.call_soon(self._flush)
            return
        self._transport.write(data)

    def _flush(self) -> None:
        if self._held is not None:
            data, self._held = self._held, None
            if not self._transport.is_closing():
                self._transport.write(data)

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def close(self) -> None:
        self._flush()
        self._transport.close()


def protocol_class(limits: Limits) -> type[GuardedProtocol]:
    """:class:`GuardedProtocol` bound to ``limits``, for uvicorn's ``http=`` option."""
    return type("GuardedProtocol", (GuardedProtocol,), {"limits": limits})


def expire_overdue(connections: Iterable[object], now: float) -> int:
    """Close every guarded connection past its deadline; how many were."""
    overdue = [
        c
        for c in connections
        if isinstance(c, GuardedProtocol) and c.deadline is not None and c.deadline <= now
    ]
    for connection in overdue:
        connection.expire()
    return len(overdue)


#: File descriptors kept for everything but client connections: the database
#: pool, Redis, the log, the SQLite file.
RESERVED_FILES: Final = 64


def open_file_cap(connections: int) -> int:
    """Raise this process's open-file limit for ``connections`` clients if it can;
    the connections it can then hold.

    The usual soft limit (1024) is below the default cap: past it, ``accept``
    fails and every new client is locked out, which is what the cap is there
    to prevent. The hard limit is the most an unprivileged process may ask.
    """
    try:
        import resource
    except ImportError:  # not POSIX: nothing to raise, trust the cap
        return connections
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + RESERVED_FILES
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return connections
    return max(1, soft - RESERVED_FILES)


async def sweep(state: ServerState, limits: Limits) -> None:
    """Until cancelled: close the connections of ``state`` past their deadline."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(limits.sweep_interval)
        try:
            expired = expire_overdue(list(state.connections), loop.time())
        except Exception:  # a bug of ours must not end the sweep, and with it the limits
            logger.exception("the connection sweep failed")
            continue
        if expired:
            logger.info("closed %d connection(s) too slow to send their request", expired)


__all__ = [
    "GuardedProtocol",
    "HeadWithBody",
    "Limits",
    "expire_overdue",
    "open_file_cap",
    "protocol_class",
    "sweep",
]
