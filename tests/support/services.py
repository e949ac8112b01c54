"""Real PostgreSQL and Redis for tests: the shared ones, or private instances.

The machine's shared servers (127.0.0.1:5432 and :6379) are used through a
fresh database and a unique key prefix per test, and cleaned up after.
Tests that must stop a server start a private one on a free port instead:
the shared servers are never stopped or reconfigured.

Where a server is unreachable the test is skipped with the reason, except
under ``CI=true``, where it fails: CI must never pass by skipping.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
import redis

PG_HOST = os.environ.get("AMPLIFY_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("AMPLIFY_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("AMPLIFY_TEST_PG_USER", "postgres")
REDIS_HOST = os.environ.get("AMPLIFY_TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("AMPLIFY_TEST_REDIS_PORT", "6379"))
PG_BIN = Path(os.environ.get("AMPLIFY_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


def unavailable(reason: str) -> None:
    """Skip, or fail under CI, when a needed server cannot be reached."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: a missing service is a failure, not a skip)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- PostgreSQL ---------------------------------------------------------------


def pg_url(database: str, *, host: str = PG_HOST, port: int = PG_PORT, user: str = PG_USER) -> str:
    """A libpq-style URL, as users write DATABASE_URL (the server adds the driver)."""
    return f"postgresql://{user}@{host}:{port}/{database}"


async def _pg_admin(sql: str, *, host: str, port: int, user: str) -> None:
    connection = await asyncpg.connect(
        host=host, port=port, user=user, database="postgres", timeout=5
    )
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@contextmanager
def fresh_database(
    *, host: str = PG_HOST, port: int = PG_PORT, user: str = PG_USER
) -> Iterator[str]:
    """A new, empty database, dropped afterwards. Yields its URL."""
    name = f"amplify_test_{secrets.token_hex(6)}"
    try:
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"', host=host, port=port, user=user))
    except (OSError, asyncpg.PostgresError) as exc:
        unavailable(f"PostgreSQL at {host}:{port} is unreachable: {exc}")
    try:
        yield pg_url(name, host=host, port=port, user=user)
    finally:
        with suppress(OSError, asyncpg.PostgresError):
            asyncio.run(
                _pg_admin(
                    f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
                    host=host,
                    port=port,
                    user=user,
                )
            )


@dataclass
class PrivatePostgres:
    """A PostgreSQL instance of the test's own, which it may stop and start."""

    directory: Path
    port: int
    run_as: list[str]

    @property
    def ctl(self) -> list[str]:
        data = str(self.directory / "data")
        return [*self.run_as, str(PG_BIN / "pg_ctl"), "-D", data, "-w", "-t", "30"]

    def start(self) -> None:
        subprocess.run(
            [
                *self.ctl,
                "-l",
                str(self.directory / "log"),
                "-o",
                f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off",
                "start",
            ],
            check=True,
            capture_output=True,
        )

    def stop(self) -> None:
        subprocess.run([*self.ctl, "-m", "fast", "stop"], check=True, capture_output=True)

    def url(self, database: str = "postgres") -> str:
        return pg_url(database, host="127.0.0.1", port=self.port, user="postgres")


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    if not (PG_BIN / "initdb").exists():
        unavailable(f"PostgreSQL binaries not found in {PG_BIN}")
    directory = Path(tempfile.mkdtemp(prefix="amplify-pg-"))
    if os.geteuid() == 0:
        # initdb refuses to run as root; the data directory must belong to
        # the account the server runs as.
        shutil.chown(directory, "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    else:
        run_as = []
    subprocess.run(
        [
            *run_as,
            str(PG_BIN / "initdb"),
            "-D",
            str(directory / "data"),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
    )
    instance = PrivatePostgres(directory, free_port(), run_as)
    instance.start()
    try:
        yield instance
    finally:
        with suppress(subprocess.CalledProcessError):
            instance.stop()
        shutil.rmtree(directory, ignore_errors=True)


# -- Redis --------------------------------------------------------------------


@dataclass
class RedisNamespace:
    """A Redis DB number and a key prefix that no other test uses."""

    url: str
    prefix: str

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    def keys(self) -> list[bytes]:
        with self.client() as client:
            return list(client.scan_iter(match=f"{self.prefix}*"))

    def values(self) -> list[bytes]:
        with self.client() as client:
            keys = list(client.scan_iter(match=f"{self.prefix}*"))
            return [v for v in client.mget(keys) if v is not None] if keys else []


# One DB number for this test session, so that concurrent runs (CI beside a
# developer) mostly use different ones; the unique prefix is what isolates.
_SESSION_DB = 1 + secrets.randbelow(15)


@contextmanager
def redis_namespace(*, host: str = REDIS_HOST, port: int = REDIS_PORT) -> Iterator[RedisNamespace]:
    url = f"redis://{host}:{port}/{_SESSION_DB}"
    namespace = RedisNamespace(url=url, prefix=f"amplify-test-{secrets.token_hex(6)}")
    try:
        with namespace.client() as client:
            client.ping()
    except (redis.RedisError, OSError) as exc:
        unavailable(f"Redis at {host}:{port} is unreachable: {exc}")
    try:
        yield namespace
    finally:
        with suppress(redis.RedisError, OSError), namespace.client() as client:
            for key in client.scan_iter(match=f"{namespace.prefix}*"):
                client.delete(key)


@dataclass
class PrivateRedis:
    """A redis-server of the test's own, which it may kill and restart."""

    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                "--enable-debug-command",
                "yes",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        for _ in range(200):
            with suppress(redis.ConnectionError):
                if client.ping():
                    client.close()
                    return
            if self.process.poll() is not None:
                break
            # Polling a fresh process for readiness: there is no event to wait on.
            time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        unavailable("redis-server is not installed")
    directory = Path(tempfile.mkdtemp(prefix="amplify-redis-"))
    instance = PrivateRedis(free_port(), directory)
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()
        shutil.rmtree(directory, ignore_errors=True)


class TcpProxy:
    """A TCP forwarder to ``127.0.0.1:upstream`` that a test can cut (a partition
    between one client and a server that everyone else still reaches), or slow
    down: :attr:`delay` seconds are added to every chunk it forwards, either way,
    so a round trip takes twice that longer (a slow link, not a dead one). With
    ``drop_answers=n``, the first ``n`` answers never reach the client: the
    connection is closed when the upstream's first byte arrives (a request
    that happened, whose answer was lost)."""

    def __init__(self, upstream: int, *, delay: float = 0.0, drop_answers: int = 0) -> None:
        import socketserver
        import threading

        self.upstream = upstream
        self.delay = delay
        self.drop_answers = drop_answers
        self.dropped = 0
        self.severed = threading.Event()
        self._open: list[socket.socket] = []
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                if proxy.severed.is_set():
                    return  # accepted, then closed: the far side is unreachable
                far = socket.create_connection(("127.0.0.1", proxy.upstream))
                proxy._open += [self.request, far]
                proxy._pump(self.request, far, proxy)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port: int = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @staticmethod
    def _pump(near: socket.socket, far: socket.socket, proxy: TcpProxy) -> None:
        import selectors

        with selectors.DefaultSelector() as selector:
            selector.register(near, selectors.EVENT_READ, far)
            selector.register(far, selectors.EVENT_READ, near)
            while True:
                for key, _ in selector.select():
                    try:
                        data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                        if not data:
                            return
                        if key.fileobj is far and proxy.dropped < proxy.drop_answers:
                            proxy.dropped += 1
                            far.close()
                            return  # and socketserver closes ``near``
                        if proxy.delay:
                            # The latency being simulated, not a wait for something.
                            time.sleep(proxy.delay)
                        key.data.sendall(data)
                    except OSError:
                        return

    def cut(self) -> None:
        self.severed.set()
        for sock in self._open:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self._open.clear()

    def heal(self) -> None:
        self.severed.clear()

    def close(self) -> None:
        self.cut()
        self.server.shutdown()
        self.server.server_close()
