"""A client used before fork() gives the child its own connections, lock and flights."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import respx

from amplify_auth_client import AsyncAuthClient, AuthClient, generate_token
from tests.client.support import BASE_URL, in_child, valid

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() on this platform"),
    # Python 3.12+ warns on fork() in a process with threads; these tests fork
    # on purpose, from the main thread, and their children only use the client.
    pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning"),
]

# A real server over real sockets, in a process of its own (so that this one
# forks without threads): it answers every validation "valid", named after the
# client port the request came from, so each answer says which connection
# carried it.
SERVER = r"""
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: what makes a shared socket possible

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        body = json.dumps({"valid": True, "scopes": ["read"], "token_id": "tok_0123456789abcdef",
                           "name": str(self.client_address[1]), "reason": None,
                           "missing_scopes": [], "expires_at": None}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE) as process:
        try:
            assert process.stdout is not None
            port = int(process.stdout.readline())
            yield f"http://127.0.0.1:{port}"
        finally:
            process.kill()


def connection_of(client: AuthClient) -> str:
    """The client port of the connection that carried a fresh validation."""
    name = client.validate(generate_token()).name
    assert name is not None
    return name


def test_the_child_never_uses_the_parents_connections(url: str) -> None:
    # They once shared a keep-alive socket, and read each other's answers.
    with AuthClient(url, cache_size=0) as client:
        parent = connection_of(client)
        child = in_child(lambda: connection_of(client))
        assert child.isdigit(), child
        assert child != parent
        # The child left the parent's connection alone: it still carries.
        assert connection_of(client) == parent


def test_a_lock_held_at_the_fork_does_not_hang_the_child(url: str) -> None:
    with AuthClient(url) as client:
        token = generate_token()
        client.validate(token)
        client._cache._lock.acquire()  # as another thread of the parent might
        try:
            # The entries it guarded may be half-changed: the child asks again.
            child = in_child(lambda: str(client.validate(token).cached))
        finally:
            client._cache._lock.release()
        assert child == "False"
        assert client.validate(token).cached  # the parent's cache is as it was


def test_a_flight_in_progress_at_the_fork_is_not_joined_in_the_child(
    api: respx.MockRouter,
) -> None:
    # Its fetcher stayed in the parent: joined in the child, it would never end.
    parent = os.getpid()
    release = threading.Event()

    def answer(request: httpx.Request) -> httpx.Response:
        if os.getpid() == parent:
            assert release.wait(timeout=10)
        return valid()

    api.post("/auth/validate").mock(side_effect=answer)
    client = AuthClient(BASE_URL, retry_deadline=30)
    token = generate_token()
    fetcher = threading.Thread(target=client.validate, args=(token,))
    fetcher.start()
    try:
        deadline = time.monotonic() + 10
        while client.cache_stats().misses == 0:  # until the fetcher's request is in flight
            assert time.monotonic() < deadline
            time.sleep(0.001)
        child = in_child(lambda: str(client.validate(token).valid))
    finally:
        release.set()
        fetcher.join()
    assert child == "True"


def test_an_async_client_gets_new_connections_and_a_new_loop_in_the_child(url: str) -> None:
    client = AsyncAuthClient(url, cache_size=0)

    async def connection() -> str:
        return str((await client.validate(generate_token())).name)

    loop = asyncio.new_event_loop()
    try:
        parent = loop.run_until_complete(connection())  # a warm-up in the parent's loop
        # The child runs a loop of its own; the client is new to it.
        child = in_child(lambda: asyncio.run(connection()))
        assert child.isdigit(), child
        assert child != parent
        assert loop.run_until_complete(connection()) == parent
    finally:
        loop.run_until_complete(client.aclose())
        loop.close()
