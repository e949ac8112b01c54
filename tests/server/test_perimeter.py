"""A client connection is bounded: header size, time to send a request, how many at once.

Raw sockets against a real ``amplify-auth-server`` process, as the slow or
greedy clients of issue 16 behaved.
"""

from __future__ import annotations

import asyncio
import re
import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, closing, suppress
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send
from uvicorn.config import Config
from uvicorn.server import ServerState

from amplify_auth_client import generate_token
from amplify_auth_server.perimeter import HeadWithBody, Limits, protocol_class
from tests.support.events import EventStream
from tests.support.server import Backend, ServerProcess, running_server
from tests.support.waiting import wait_for

#: The most a test waits for the server to close a connection itself: a guard
#: against a hang, far above the timeouts configured below.
GUARD = 20.0


@pytest.fixture
def strict_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """The embedded server with one-second read deadlines."""
    env = {"HEADER_TIMEOUT": "1", "BODY_TIMEOUT": "1"}
    with running_server(Backend("embedded", tmp_path), env=env) as server:
        yield server


def connect(server: ServerProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=GUARD)


def read_until_closed(sock: socket.socket, timeout: float = GUARD) -> bytes:
    """Everything the server sends until it closes the connection (fails past ``timeout``)."""
    received = b""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"the server kept the connection open; it sent {received!r}")
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return received
        except TimeoutError:
            continue
        if not chunk:
            return received
        received += chunk


def closed_by_server(sock: socket.socket, pace: float) -> bool:
    """Wait ``pace`` seconds (the client's own slowness) for the server to speak;
    True if it closed the connection."""
    readable, _, _ = select.select([sock], [], [], pace)
    return bool(readable)


def resident_kib(server: ServerProcess) -> int:
    assert server.process is not None
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(line.split()[1])


def send_forever(sock: socket.socket, head: bytes, total: int) -> None:
    """``head`` then ``total`` bytes of one header value, never ending it; stops when
    the server closes the connection."""
    with suppress(OSError):
        sock.sendall(head)
        chunk = b"a" * 65536
        for _ in range(total // len(chunk)):
            sock.sendall(chunk)


def test_a_huge_header_is_refused_431(strict_server: ServerProcess) -> None:
    with closing(connect(strict_server)) as sock:
        sender = threading.Thread(
            target=send_forever,
            args=(sock, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ", 10 * 1024 * 1024),
        )
        sender.start()
        answer = read_until_closed(sock)
        sender.join(GUARD)
    assert answer.startswith(b"HTTP/1.1 431 ")
    with strict_server.client(token=None) as client:
        assert client.get("/health").status_code == 200


def test_a_whole_header_over_the_limit_in_one_write_is_refused_431(
    strict_server: ServerProcess,
) -> None:
    # Its end arrives with it: counted exactly once parsed, not by the read.
    head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n"
    with closing(connect(strict_server)) as sock:
        sock.sendall(head)
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 431 ")


def test_unterminated_headers_do_not_grow_memory(tmp_path: Path) -> None:
    # Long deadlines: the header limit alone must hold memory down.
    env = {"HEADER_TIMEOUT": "60"}
    with running_server(Backend("embedded", tmp_path), env=env) as server, ExitStack() as stack:
        before = resident_kib(server)
        socks = [stack.enter_context(closing(connect(server))) for _ in range(8)]
        senders = [
            threading.Thread(
                target=send_forever,
                args=(s, b"GET /health HTTP/1.1\r\nX-Big: ", 8 * 1024 * 1024),
            )
            for s in socks
        ]
        for sender in senders:
            sender.start()
        answers = [read_until_closed(s) for s in socks]
        for sender in senders:
            sender.join(GUARD)
        grown = resident_kib(server) - before
    assert all(a.startswith(b"HTTP/1.1 431 ") for a in answers)
    # Unbounded, these 64 MiB of headers grew the server by 67 MiB.
    assert grown < 16 * 1024, f"the server grew by {grown} KiB"


def test_a_header_near_the_limit_is_served(strict_server: ServerProcess) -> None:
    with strict_server.client(token=None) as client:
        response = client.get("/health", headers={"X-Padding": "p" * 30_000})
    assert response.status_code == 200


def test_a_body_sent_with_its_header_in_one_write_is_served(
    strict_server: ServerProcess,
) -> None:
    # Past the header limit in one read, but the header itself is small.
    body = b'{"token": "' + b"x" * 60_000 + b'"}'
    head = (
        b"POST /auth/validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    with closing(connect(strict_server)) as sock:
        sock.sendall(head + body)
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 "), answer[:100]
    assert not answer.startswith((b"HTTP/1.1 431", b"HTTP/1.1 408", b"HTTP/1.1 400"))


def test_a_header_trickled_a_line_at_a_time_is_timed_out(strict_server: ServerProcess) -> None:
    with closing(connect(strict_server)) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\n")
        lines = 0
        deadline = time.monotonic() + GUARD
        while not closed_by_server(sock, pace=0.25):
            assert time.monotonic() < deadline, "still open: the header was never timed out"
            with suppress(OSError):
                sock.sendall(b"X-Line-%d: slow\r\n" % lines)
            lines += 1
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert lines >= 2  # it was a trickle: served lines came before the deadline


def test_a_silent_connection_is_timed_out(strict_server: ServerProcess) -> None:
    with closing(connect(strict_server)) as sock:
        assert read_until_closed(sock).startswith(b"HTTP/1.1 408 ")


def test_the_next_request_on_a_kept_alive_connection_is_timed_out_too(
    strict_server: ServerProcess,
) -> None:
    with closing(connect(strict_server)) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 ")
        sock.sendall(b"GET /health HTTP/1.1\r\n")
        deadline = time.monotonic() + GUARD
        while not closed_by_server(sock, pace=0.25):
            assert time.monotonic() < deadline
            with suppress(OSError):
                sock.sendall(b"X: y\r\n")
        rest = read_until_closed(sock)  # may hold the end of the first answer
    assert b"HTTP/1.1 408 " in rest
    assert rest.count(b"HTTP/1.1 ") == 1


def test_a_body_trickled_a_byte_at_a_time_is_timed_out(strict_server: ServerProcess) -> None:
    with closing(connect(strict_server)) as sock:
        sock.sendall(
            b"POST /auth/validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n"
        )
        sent = 0
        deadline = time.monotonic() + GUARD
        while not closed_by_server(sock, pace=0.25):
            assert time.monotonic() < deadline, "still open: the body was never timed out"
            with suppress(OSError):
                sock.sendall(b" ")
            sent += 1
        read_until_closed(sock)
    assert 2 <= sent < 1000
    assert "Traceback" not in strict_server.log()


def test_the_connection_cap_is_honoured_and_freed_slots_serve_again(tmp_path: Path) -> None:
    env = {"MAX_CONNECTIONS": "4", "EVENTS_MAX_SUBSCRIBERS": "1", "HEADER_TIMEOUT": "60"}
    with running_server(Backend("embedded", tmp_path), env=env) as server:
        with ExitStack() as held:
            for _ in range(4):
                sock = held.enter_context(closing(connect(server)))
                sock.sendall(b"GET /health HTTP/1.1\r\n")  # half a request, held open
            with server.client(token=None) as client:
                assert client.get("/health").status_code == 503
        # The held connections are gone: the next client is served.
        with server.client(token=None) as client:
            wait_for(lambda: client.get("/health").status_code == 200, timeout=GUARD)


def test_a_low_open_file_limit_lowers_the_subscriber_cap_below_the_connections(
    tmp_path: Path,
) -> None:
    # 84 files: 20 connections past the files a server keeps for itself, and
    # the default 1000 subscribers would take them all.
    with running_server(Backend("embedded", tmp_path), open_files=84) as server:
        log = server.log()
        assert "allows 20 connections, not MAX_CONNECTIONS=2048" in log
        assert "EVENTS_MAX_SUBSCRIBERS lowered from 1000 to 10" in log
        with ExitStack() as held:
            for _ in range(10):
                held.enter_context(EventStream(server.base_url)).until("ready")
            refused = httpx.get(server.base_url + "/auth/events", timeout=10)
            assert refused.status_code == 503
            assert refused.json()["error"] == "too_many_subscribers"
            # Ten connections held by subscribers, and validations still answer.
            with server.client(token=None) as client:
                answer = client.post("/auth/validate", json={"token": generate_token()})
                assert answer.status_code == 200


def test_events_subscribers_cannot_take_every_connection() -> None:
    from pydantic import ValidationError

    from amplify_auth_server.config import Settings

    with pytest.raises(ValidationError, match="EVENTS_MAX_SUBSCRIBERS"):
        Settings(max_connections=100, events_max_subscribers=100)


# -- a response's head and body in one write ------------------------------------------


class _Recording(asyncio.Transport):
    """A transport that keeps what is written to it, and whether it was closed."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self.closed, "written after close"
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default
        )

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def test_a_head_goes_out_with_the_first_body_bytes_in_one_write() -> None:
    async def scenario() -> list[bytes]:
        transport = _Recording()
        response = HeadWithBody(transport, asyncio.get_running_loop())
        response.write(b"HTTP/1.1 200 OK\r\n\r\n")
        response.write(b'{"valid":true}')
        response.write(b"more")
        await asyncio.sleep(0)  # the turn ends: nothing is left to send
        return transport.writes

    assert asyncio.run(scenario()) == [b'HTTP/1.1 200 OK\r\n\r\n{"valid":true}', b"more"]


def test_the_served_protocol_sends_each_answer_in_one_write() -> None:
    # uvicorn's own protocol writes the head and the body apart.
    async def scenario() -> list[bytes]:
        answered = asyncio.Event()

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            await receive()
            headers = [(b"content-length", b"2")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b"ok"})
            answered.set()

        limits = Limits(max_header_bytes=32768, header_timeout=10, body_timeout=10)
        config = Config(app, http=protocol_class(limits), lifespan="off", log_config=None)
        config.load()
        protocol = config.http_protocol_class(  # type: ignore[call-arg]
            config=config, server_state=ServerState(), app_state={}
        )
        transport = _Recording()
        protocol.connection_made(transport)
        protocol.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # type: ignore[attr-defined]
        await answered.wait()
        protocol.connection_lost(None)
        return transport.writes

    (write,) = asyncio.run(scenario())
    assert write.startswith(b"HTTP/1.1 200 OK\r\n")
    assert write.endswith(b"\r\n\r\nok")


def test_a_head_whose_body_is_not_ready_goes_out_at_the_end_of_the_turn() -> None:
    # A stream whose first event is not ready yet: its subscriber must see
    # the response's head now, not with the first event.
    async def scenario() -> tuple[list[bytes], list[bytes]]:
        transport = _Recording()
        response = HeadWithBody(transport, asyncio.get_running_loop())
        response.write(b"HTTP/1.1 200 OK\r\n\r\n")
        held = list(transport.writes)
        await asyncio.sleep(0)
        response.write(b"event: ready\n\n")
        return held, transport.writes

    held, written = asyncio.run(scenario())
    assert held == []
    assert written == [b"HTTP/1.1 200 OK\r\n\r\n", b"event: ready\n\n"]


def test_closing_writes_a_held_head_first_and_a_closed_transport_takes_nothing() -> None:
    async def scenario() -> tuple[_Recording, _Recording]:
        loop = asyncio.get_running_loop()
        closing = _Recording()
        response = HeadWithBody(closing, loop)
        response.write(b"HTTP/1.1 500 Internal Server Error\r\n\r\n")
        response.close()
        # The client went away with the head still held: dropped, no error.
        gone = _Recording()
        other = HeadWithBody(gone, loop)
        other.write(b"HTTP/1.1 200 OK\r\n\r\n")
        gone.close()
        await asyncio.sleep(0)
        return closing, gone

    closing, gone = asyncio.run(scenario())
    assert closing.writes == [b"HTTP/1.1 500 Internal Server Error\r\n\r\n"]
    assert closing.closed
    assert gone.writes == []


def test_pipelined_requests_are_answered_whole_and_in_order(strict_server: ServerProcess) -> None:
    request = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    last = b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    with closing(connect(strict_server)) as sock:
        sock.sendall(request * 3 + last)
        received = read_until_closed(sock)
    answers = []
    while received:
        head, _, rest = received.partition(b"\r\n\r\n")
        length = int(re.search(rb"content-length: (\d+)", head)[1])  # type: ignore[index]
        answers.append((head.split(b"\r\n")[0], rest[:length]))
        received = rest[length:]
    assert [status for status, _ in answers] == [b"HTTP/1.1 200 OK"] * 4
    assert [body.startswith(b'{"status":"healthy"') for _, body in answers] == [True] * 3 + [False]
    assert b"amplify_auth_" in answers[3][1]  # the metrics, last as asked


def test_an_upgrade_request_is_refused_as_uvicorn_refuses_it(strict_server: ServerProcess) -> None:
    # No response cycle is made for an upgrade: nothing to wrap, and no 400.
    request = (
        b"GET /auth/events HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    with closing(connect(strict_server)) as sock:
        sock.sendall(request)
        received = read_until_closed(sock)
    assert received.startswith(b"HTTP/1.1 403 ")
