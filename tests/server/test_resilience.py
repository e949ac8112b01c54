"""When Redis or PostgreSQL goes away: answers stay correct, failure is closed.

These tests stop servers, so they start private instances on free ports; the
machine's shared PostgreSQL and Redis are never touched.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from amplify_auth_client import generate_token, hash_token
from tests.server.conftest import create, validate
from tests.support.server import Backend, ServerProcess, running_server
from tests.support.services import (
    PrivatePostgres,
    PrivateRedis,
    TcpProxy,
    fresh_database,
    private_postgres,
    private_redis,
)
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture
def own_redis() -> Iterator[PrivateRedis]:
    """Per test here, not per module: these tests leave Redis paused or full."""
    with private_redis() as instance:
        yield instance


@pytest.fixture
def redis_backed(tmp_path: Path, own_redis: PrivateRedis) -> Iterator[ServerProcess]:
    with fresh_database() as url:
        backend = Backend("postgres", tmp_path, url)
        with running_server(backend, env={"REDIS_URL": own_redis.url}) as server:
            yield server


def health(server: ServerProcess) -> tuple[int, dict[str, object]]:
    response = httpx.get(server.base_url + "/health", timeout=10)
    return response.status_code, response.json()


def test_with_redis_down_validation_answers_from_the_database(
    redis_backed: ServerProcess, own_redis: PrivateRedis
) -> None:
    with redis_backed.client() as admin:
        alive = create(admin)
        doomed = create(admin)
        assert validate(admin, alive["token"])["valid"] is True
        assert validate(admin, doomed["token"])["valid"] is True

        own_redis.stop()
        assert validate(admin, alive["token"])["valid"] is True
        assert validate(admin, generate_token())["reason"] == "unknown"
        admin.post(f"/auth/tokens/{doomed['token_id']}/revoke").raise_for_status()
        assert validate(admin, doomed["token"])["reason"] == "revoked"
        fresh = create(admin)
        assert validate(admin, fresh["token"])["valid"] is True
        status, body = health(redis_backed)
        assert status == 200
        assert body["status"] == "degraded"
        assert body["components"] == {
            "database": "healthy",
            "redis": "unhealthy",
            "command_processor": "running",
        }

        own_redis.start()
        wait_for(lambda: health(redis_backed)[1]["status"] == "healthy")
        assert validate(admin, doomed["token"])["reason"] == "revoked"
        assert validate(admin, alive["token"])["valid"] is True


def test_a_revoke_that_redis_missed_is_written_back_once_redis_answers(
    redis_backed: ServerProcess, own_redis: PrivateRedis
) -> None:
    """Redis refuses writes (but still serves reads, as a partitioned or paused
    primary may) while a revoke commits: it must not keep the old "valid" entry
    for other replicas to read once it takes writes again."""
    probe = redis.Redis(port=own_redis.port)

    def shared_entry() -> bytes:
        # This token's entry: the admin token has one too.
        key = next(probe.scan_iter(f"*:tok:{hash_token(created['token'])}"))
        value = probe.get(key)
        assert value is not None
        return value

    with redis_backed.client() as admin:
        created = create(admin)
        assert validate(admin, created["token"])["valid"] is True
        assert b'"r":false' in shared_entry()

        probe.execute_command("CLIENT", "PAUSE", "30000", "WRITE")
        try:
            admin.post(f"/auth/tokens/{created['token_id']}/revoke").raise_for_status()
            assert validate(admin, created["token"])["reason"] == "revoked"
            assert b'"r":false' in shared_entry()  # what Redis missed
        finally:
            probe.execute_command("CLIENT", "UNPAUSE")
        wait_for(lambda: b'"r":true' in shared_entry())
        assert validate(admin, created["token"])["reason"] == "revoked"
    probe.close()


def test_redis_down_at_start_up_does_not_stop_the_server(tmp_path: Path) -> None:
    with fresh_database() as url, private_redis() as own:
        own.stop()
        backend = Backend("postgres", tmp_path, url)
        with running_server(backend, env={"REDIS_URL": own.url}) as server:
            with server.client() as admin:
                created = create(admin)
                assert validate(admin, created["token"])["valid"] is True
            assert health(server)[1]["status"] == "degraded"
            own.start()
            wait_for(lambda: health(server)[1]["status"] == "healthy")


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[PrivatePostgres]:
    with private_postgres() as instance:
        yield instance


@pytest.mark.parametrize("with_redis", [False, True], ids=["memory-cache", "redis-cache"])
def test_with_the_database_down_cached_answers_serve_and_misses_are_503(
    tmp_path: Path, own_postgres: PrivatePostgres, with_redis: bool
) -> None:
    with contextlib.ExitStack() as stack:
        env = {}
        if with_redis:
            env["REDIS_URL"] = stack.enter_context(private_redis()).url
        backend = Backend("postgres", tmp_path, own_postgres.url())
        with running_server(backend, env=env) as server, server.client() as admin:
            known = create(admin, scopes=["read"])
            revoked = create(admin)
            admin.post(f"/auth/tokens/{revoked['token_id']}/revoke").raise_for_status()
            assert validate(admin, known["token"])["valid"] is True
            assert validate(admin, revoked["token"])["reason"] == "revoked"

            own_postgres.stop()
            try:
                # Cached answers still serve, positive and negative alike.
                assert validate(admin, known["token"], "read")["valid"] is True
                assert validate(admin, known["token"], "write")["reason"] == "insufficient_scope"
                assert validate(admin, revoked["token"])["reason"] == "revoked"
                # A miss cannot be answered: 503, never "valid", never a 500.
                response = admin.post("/auth/validate", json={"token": generate_token()})
                assert response.status_code == 503
                assert response.json()["error"] == "unavailable"
                assert response.headers["retry-after"] == "1"
                # Writes fail clearly too, and nothing half-happens.
                refused = admin.post("/auth/tokens", json={"name": "x", "scopes": ["read"]})
                assert refused.status_code == 503
                status, body = health(server)
                assert status == 503
                assert body["status"] == "unhealthy"
                assert body["components"]["database"] == "unhealthy"
            finally:
                own_postgres.start()
            # Back: the pool drops its dead connections and answers again.
            assert validate(admin, generate_token())["reason"] == "unknown"
            assert health(server)[0] == 200
            assert create(admin)["token_id"]
            assert "Traceback" not in server.log()


def test_a_revoke_that_only_its_replica_could_not_write_reaches_the_others(
    tmp_path: Path, own_redis: PrivateRedis
) -> None:
    """A partition: replica one cannot reach Redis (so it can neither write the
    revocation there nor publish it), replica two still can, and still reads the
    old "valid" entry there. The outbox must make two stop accepting the token."""
    proxy = TcpProxy(own_redis.port)
    probe = redis.Redis(port=own_redis.port)
    try:
        with fresh_database() as url:
            backend = Backend("postgres", tmp_path, url)
            admin = generate_token()
            behind_proxy = {"REDIS_URL": f"redis://127.0.0.1:{proxy.port}/0"}
            with (
                running_server(backend, env=behind_proxy, admin_token=admin) as one,
                running_server(backend, env={"REDIS_URL": own_redis.url}, admin_token=admin) as two,
                one.client() as first,
                two.client() as second,
            ):
                created = create(first)
                assert validate(second, created["token"])["valid"] is True
                proxy.cut()
                first.post(f"/auth/tokens/{created['token_id']}/revoke").raise_for_status()
                assert validate(first, created["token"])["reason"] == "revoked"
                # Two hears nothing from one; it learns from the database's outbox.
                wait_for(lambda: validate(second, created["token"])["reason"] == "revoked")
                for _ in range(10):
                    assert validate(second, created["token"])["reason"] == "revoked"
                # A replica that reaches Redis replays the change into it.
                wait_for(
                    lambda: any(b'"r":true' in (probe.get(k) or b"") for k in probe.keys("*:tok:*"))
                )
                proxy.heal()
                wait_for(lambda: health(one)[1]["status"] == "healthy")
                assert validate(first, created["token"])["reason"] == "revoked"
                assert validate(second, created["token"])["reason"] == "revoked"
    finally:
        proxy.close()
        probe.close()


def test_a_dropped_subscription_is_noticed_and_the_local_cache_forgotten(
    replicas: tuple[ServerProcess, ServerProcess], own_redis: PrivateRedis
) -> None:
    one, two = replicas
    probe = redis.Redis(port=own_redis.port)
    with one.client() as first, two.client() as second:
        created = create(first)
        assert validate(second, created["token"])["valid"] is True  # in two's local cache
        killed = probe.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        assert killed >= 2
        # Neither replica may go on as if it still heard the other.
        wait_for(lambda: "lost the invalidation channel" in two.log())
        first.post(f"/auth/tokens/{created['token_id']}/revoke").raise_for_status()
        assert validate(second, created["token"])["reason"] == "revoked"
        # Back on the channel, with a cleared local cache.
        wait_for(lambda: two.log().count("invalidation channel live") >= 2)
        assert validate(second, created["token"])["reason"] == "revoked"
    probe.close()


def test_an_undecodable_redis_entry_is_a_miss_not_an_error(
    redis_backed: ServerProcess, own_redis: PrivateRedis
) -> None:
    probe = redis.Redis(port=own_redis.port)
    with redis_backed.client() as admin:
        created = create(admin)
        assert validate(admin, created["token"])["valid"] is True
        key = next(iter(probe.keys("*:tok:*")))
        probe.set(key, b"7|{not json from another version")
        # The local cache holds the token for a few seconds; an unknown token
        # goes to Redis at once.
        unknown = generate_token()
        from amplify_auth_client import hash_token

        probe.set(key.rsplit(b":", 1)[0] + b":" + hash_token(unknown).encode(), b"garbage")
        assert validate(admin, unknown)["reason"] == "unknown"
    assert "Traceback" not in redis_backed.log()
    probe.close()


class Blackhole:
    """A TCP port that accepts connections and never answers: a hung Redis."""

    def __init__(self) -> None:
        import socket
        import threading

        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.connections: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        try:
            while True:
                connection, _ = self.server.accept()
                self.connections.append(connection)
        except OSError:
            return

    def close(self) -> None:
        self.server.close()
        for connection in self.connections:
            connection.close()


def test_a_hung_redis_is_left_alone_after_it_fails(tmp_path: Path) -> None:
    hole = Blackhole()
    try:
        with fresh_database() as url:
            backend = Backend("postgres", tmp_path, url)
            env = {"REDIS_URL": f"redis://127.0.0.1:{hole.port}/0"}
            with running_server(backend, env=env) as server, server.client() as admin:
                created = create(admin)
                for _ in range(20):
                    assert validate(admin, created["token"])["valid"] is True
                    assert validate(admin, generate_token())["reason"] == "unknown"
                admin.post(f"/auth/tokens/{created['token_id']}/revoke").raise_for_status()
                assert validate(admin, created["token"])["reason"] == "revoked"
                text = admin.get("/metrics").text
    finally:
        hole.close()
    # Each failure costs a timeout; after one, Redis is skipped for a while
    # rather than tried (and waited for) on every request.
    skipped = float(re.search(r'tier="redis"} (\S+)', _line(text, "skipped")).group(1))  # type: ignore[union-attr]
    failed = float(re.search(r'tier="redis"} (\S+)', _line(text, "error")).group(1))  # type: ignore[union-attr]
    assert skipped > failed


def _line(text: str, outcome: str) -> str:
    return next(
        line
        for line in text.splitlines()
        if line.startswith("amplify_auth_cache_requests_total") and f'outcome="{outcome}"' in line
    )


def test_the_outbox_replays_rows_left_behind_not_changes_still_being_applied() -> None:
    """A row its writer is still applying is not replayed (it would only duplicate
    the event, and make the token a database lookup for nothing); one left behind is."""
    import asyncio
    from datetime import timedelta

    import redis.asyncio as aioredis

    from amplify_auth_server.cache import LocalCache, RedisCache
    from amplify_auth_server.database import create_engine, migrate
    from amplify_auth_server.metrics import Metrics
    from amplify_auth_server.models import TokenRecord, utcnow
    from amplify_auth_server.outbox import OUTBOX_GRACE, OutboxReplay
    from amplify_auth_server.propagation import Propagation
    from amplify_auth_server.store import TokenStore
    from tests.support.services import redis_namespace

    async def scenario(database: str, url: str, prefix: str) -> None:
        engine = create_engine(database)
        client = aioredis.Redis.from_url(url)
        try:
            await migrate(engine)
            store = TokenStore(engine)
            shared = RedisCache(client, prefix=prefix, ttl=60, negative_ttl=5, metrics=Metrics())
            local = LocalCache(maxsize=10, ttl=5, negative_ttl=5)
            propagation = Propagation(local, shared=shared)
            replay = OutboxReplay(store, propagation)
            now = utcnow()
            young, old = (
                TokenRecord.new(
                    token_hash=hash_token(generate_token()),
                    name=name,
                    scopes=("read",),
                    created_by="test",
                    now=now,
                )
                for name in ("young", "old")
            )
            async with store.transaction() as connection:
                for record, age in ((young, 0.0), (old, 2 * OUTBOX_GRACE)):
                    await store.insert(connection, record)
                    changed_at = now - timedelta(seconds=age)
                    await store.outbox_add(connection, record.token_hash, 1, changed_at)

            await replay.replay_once()

            assert set(await store.outbox_pending()) == {young.token_hash}
            assert propagation.suspects == set()
            events = await client.xrange(shared.stream)
            assert [fields[b"hash"].decode() for _, fields in events] == [old.token_hash]
        finally:
            await client.aclose()
            await engine.dispose()

    with fresh_database() as database, redis_namespace() as namespace:
        asyncio.run(scenario(database, namespace.url, namespace.prefix))
