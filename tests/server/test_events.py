"""``GET /auth/events`` streams every revoke and extend, resumes by Last-Event-ID, and
refuses clearly; on both backends, and across replicas sharing Redis."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from amplify_auth_client import AuthClient, hash_token
from amplify_auth_server.errors import ShuttingDown
from amplify_auth_server.events import MemoryEventFeed, TooManySubscribers
from amplify_auth_server.routes.events import CHUNK, stream
from tests.server.conftest import create, validate
from tests.support.events import EventStream, stream_status
from tests.support.server import Backend, ServerProcess, running_server
from tests.support.services import PrivateRedis
from tests.support.waiting import wait_for

# -- the feed's log, without a server -------------------------------------------


def feed_with(events: int, *, backlog: int = 100, max_subscribers: int = 10) -> MemoryEventFeed:
    feed = MemoryEventFeed(max_subscribers=max_subscribers, backlog=backlog)
    for number in range(events):
        feed.append("revoked", f"{number:064x}", 2)
    return feed


def test_a_subscriber_without_an_id_is_told_to_reset() -> None:
    async def scenario() -> None:
        feed = feed_with(3)
        subscription = await feed.subscribe(None)
        assert subscription.reset is True
        assert subscription.head == feed.head
        assert subscription.backlog == []

    asyncio.run(scenario())


def test_a_subscriber_resumes_after_the_last_event_it_saw() -> None:
    async def scenario() -> None:
        feed = feed_with(5)
        seen = f"{feed.epoch}:2"
        subscription = await feed.subscribe(seen)
        assert subscription.reset is False
        assert [e.id for e in subscription.backlog] == [f"{feed.epoch}:{n}" for n in (3, 4, 5)]
        # Up to date: nothing missed, and no reset either.
        current = await feed.subscribe(feed.head)
        assert (current.reset, current.backlog) == (False, [])

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "last_event_id",
    [
        pytest.param("other", id="garbage"),
        pytest.param("0123456789abcdef:1", id="another-epoch"),
        pytest.param("{epoch}:1", id="trimmed"),
        pytest.param("{epoch}:99", id="from-the-future"),
        pytest.param("1795888637651-0", id="a-redis-id"),
    ],
)
def test_an_id_the_log_cannot_lead_on_from_means_reset(last_event_id: str) -> None:
    async def scenario() -> None:
        feed = feed_with(10, backlog=5)  # events 1..5 are trimmed
        subscription = await feed.subscribe(last_event_id.format(epoch=feed.epoch))
        assert subscription.reset is True
        assert subscription.backlog == []

    asyncio.run(scenario())


def test_a_subscriber_that_missed_more_than_a_replay_holds_is_reset() -> None:
    async def scenario() -> None:
        from amplify_auth_server.events import MAX_REPLAY

        feed = feed_with(MAX_REPLAY + 2, backlog=MAX_REPLAY + 10)
        assert (await feed.subscribe(f"{feed.epoch}:2")).reset is False
        assert len((await feed.subscribe(f"{feed.epoch}:2")).backlog) == MAX_REPLAY
        assert (await feed.subscribe(f"{feed.epoch}:1")).reset is True

    asyncio.run(scenario())


def test_the_oldest_kept_event_still_resumes_from_just_before_it() -> None:
    async def scenario() -> None:
        feed = feed_with(10, backlog=5)  # 6..10 kept: resuming after 5 misses nothing
        subscription = await feed.subscribe(f"{feed.epoch}:5")
        assert subscription.reset is False
        assert len(subscription.backlog) == 5

    asyncio.run(scenario())


def test_live_events_reach_the_queue_after_the_backlog_without_overlap() -> None:
    async def scenario() -> None:
        feed = feed_with(2)
        subscription = await feed.subscribe(f"{feed.epoch}:1")
        feed.append("extended", "f" * 64, 3)
        assert [e.id for e in subscription.backlog] == [f"{feed.epoch}:2"]
        live = subscription.queue.get_nowait()
        assert live is not None
        assert (live.id, live.change) == (f"{feed.epoch}:3", "extended")

    asyncio.run(scenario())


def test_a_subscriber_too_far_behind_is_cut_off_not_buffered_forever() -> None:
    async def scenario() -> None:
        from amplify_auth_server.events import SUBSCRIBER_QUEUE

        feed = feed_with(0)
        slow = await feed.subscribe(None)
        for number in range(SUBSCRIBER_QUEUE + 5):
            feed.append("revoked", f"{number:064x}", 2)
        assert feed.subscribers == 0
        drained = [slow.queue.get_nowait() for _ in range(slow.queue.qsize())]
        assert len(drained) == SUBSCRIBER_QUEUE + 1
        assert drained[-1] is None  # the end of its stream: it reconnects and replays

    asyncio.run(scenario())


def test_subscribers_are_capped_and_a_stopping_feed_refuses_more() -> None:
    async def scenario() -> None:
        feed = feed_with(0, max_subscribers=2)
        first = await feed.subscribe(None)
        await feed.subscribe(None)
        with pytest.raises(TooManySubscribers) as refused:
            await feed.subscribe(None)
        assert refused.value.status_code == 503
        assert "EVENTS_MAX_SUBSCRIBERS" in refused.value.detail
        feed.unsubscribe(first)
        await feed.subscribe(None)
        feed.close()
        assert feed.subscribers == 0
        with pytest.raises(ShuttingDown):
            await feed.subscribe(None)

    asyncio.run(scenario())


# -- the stream's bytes, without a server ---------------------------------------


def _parsed(chunk: bytes) -> list[tuple[str, str]]:
    """The ``(event, id)`` of each event in ``chunk``, which must hold whole events."""
    assert chunk.endswith(b"\n\n")
    events = []
    for block in chunk.decode().split("\n\n")[:-1]:
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append((fields.get("event", ""), fields.get("id", "")))
    return events


def test_a_burst_goes_out_a_chunk_at_a_time_in_order_and_the_end_ends_it() -> None:
    async def scenario() -> list[list[tuple[str, str]]]:
        feed = feed_with(0)
        subscribed = await feed.subscribe(None)
        for number in range(2 * CHUNK + 88):
            feed.append("revoked", f"{number:064x}", 2)
        feed.close()
        return [_parsed(chunk) async for chunk in stream(subscribed, keepalive=60)]

    chunks = asyncio.run(scenario())
    assert [len(chunk) for chunk in chunks] == [1, 1, CHUNK, CHUNK, 88]
    assert chunks[0][0][0] == "reset"
    assert chunks[1] == [("ready", "")]
    events = [event for chunk in chunks[2:] for event in chunk]
    assert {kind for kind, _ in events} == {"revoked"}
    sequences = [int(event_id.rpartition(":")[2]) for _, event_id in events]
    assert sequences == list(range(1, 2 * CHUNK + 89))


def test_a_lone_event_is_written_at_once_not_held_for_company() -> None:
    async def scenario() -> None:
        feed = feed_with(0)
        chunks = stream(await feed.subscribe(None), keepalive=60)
        assert [(await anext(chunks))[:12] for _ in range(2)] == [b"event: reset", b"event: ready"]
        feed.append("extended", "ab" * 32, 3)
        # Nothing else is coming: a stream waiting for more would time out here.
        lone = _parsed(await asyncio.wait_for(anext(chunks), timeout=10))
        assert lone == [("extended", feed.head)]
        await chunks.aclose()

    asyncio.run(scenario())


# -- the HTTP stream, on each backend -------------------------------------------


def test_the_stream_opens_with_a_reset_then_ready(server: ServerProcess) -> None:
    with EventStream(server.base_url) as stream:
        assert stream.response.status_code == 200
        assert stream.response.headers["content-type"].startswith("text/event-stream")
        assert stream.response.headers["cache-control"] == "no-cache"
        reset = stream.next()
        assert reset.kind == "reset"
        assert reset.id
        ready = stream.next()
        assert ready.kind == "ready"
        assert ready.data == {"keepalive": 15.0}


def test_a_revoke_and_an_extend_are_announced_with_the_hash_only(
    server: ServerProcess, admin: httpx.Client
) -> None:
    created = create(admin, name="announced-name", scopes=["read", "announced-scope"], ttl_days=1)
    with EventStream(server.base_url) as stream:
        stream.until("ready")
        admin.post(f"/auth/tokens/{created['token_id']}/extend", json={"days": 2})
        extended = stream.until("extended")
        admin.post(f"/auth/tokens/{created['token_id']}/revoke").raise_for_status()
        revoked = stream.until("revoked")
    key = hash_token(created["token"])
    assert extended.data == {"token_hash": key, "version": 2}
    assert revoked.data == {"token_hash": key, "version": 3}
    assert revoked.id != extended.id
    for event in (extended, revoked):
        for secret in (created["token"], created["token_id"], "announced-name", "announced-scope"):
            assert secret not in event.raw


def test_a_subscriber_that_reconnects_gets_what_it_missed(
    server: ServerProcess, admin: httpx.Client
) -> None:
    first, second = create(admin), create(admin)
    with EventStream(server.base_url) as stream:
        stream.until("ready")
        last_seen = stream.last_id
    admin.post(f"/auth/tokens/{first['token_id']}/revoke").raise_for_status()
    admin.post(f"/auth/tokens/{second['token_id']}/revoke").raise_for_status()
    with EventStream(server.base_url, last_event_id=last_seen) as resumed:
        missed = [resumed.next(), resumed.next()]
        assert resumed.next().kind == "ready"
    # No reset: the missed events, in order, then live.
    assert [(e.kind, e.data["token_hash"]) for e in missed] == [
        ("revoked", hash_token(first["token"])),
        ("revoked", hash_token(second["token"])),
    ]


@pytest.mark.parametrize(
    "last_event_id",
    [
        "not-an-id",
        "0-0",
        "ffffffffffffffff:1",
        "99999999999999-0",
        "é",
        # The shape of a Redis id, past what one can hold (two unsigned 64-bit
        # numbers): Redis refuses them with an error, which must not be a 503.
        "99999999999999999999-0",
        "1-18446744073709551616",
    ],
)
def test_an_unknown_last_event_id_gets_a_reset_not_an_error(
    server: ServerProcess, last_event_id: str
) -> None:
    with EventStream(server.base_url, last_event_id=last_event_id) as stream:
        assert stream.response.status_code == 200
        assert stream.next().kind == "reset"


def test_an_overlong_last_event_id_is_a_422(anonymous: httpx.Client) -> None:
    response = anonymous.get("/auth/events", headers={"Last-Event-ID": "1" * 500})
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"


def test_the_stream_is_in_the_openapi_schema(anonymous: httpx.Client) -> None:
    operation = anonymous.get("/openapi.json").json()["paths"]["/auth/events"]["get"]
    assert set(operation["responses"]) >= {"200", "404", "503"}
    assert "text/event-stream" in operation["responses"]["200"]["content"]


@pytest.fixture
def tuned(backend: Backend, tmp_path: Path) -> Iterator[ServerProcess]:
    """A server with a short keepalive and room for one subscriber only."""
    env = {"EVENTS_KEEPALIVE": "0.2", "EVENTS_MAX_SUBSCRIBERS": "1"}
    with running_server(backend, env=env) as process:
        yield process


def test_a_quiet_stream_sends_keepalive_comments(tuned: ServerProcess) -> None:
    # A 1 s read timeout: a stream without keepalives would fail the read.
    with EventStream(tuned.base_url, timeout=1.0) as stream:
        assert stream.until("ready").data == {"keepalive": 0.2}
        assert [stream.comment() for _ in range(3)] == ["keepalive"] * 3


def test_a_subscribed_sdk_keeps_its_cache_across_keepalives(backend: Backend) -> None:
    with (
        running_server(backend, env={"EVENTS_KEEPALIVE": "0.05"}) as process,
        process.client() as admin,
        AuthClient(process.base_url, cache_ttl=600) as sdk,
    ):
        kept, revoked = create(admin, name="kept"), create(admin, name="revoked")
        assert sdk.validate(kept["token"]).valid
        wait_for(lambda: sdk.cache_stats().subscribed)
        sdk.validate(kept["token"])
        sdk.validate(revoked["token"])
        # A stream opened after the SDK's: once it has had three keepalives,
        # the SDK's stream has been sent its three, and the revoke's event
        # comes after them on that stream.
        with EventStream(process.base_url, timeout=5) as stream:
            stream.until("ready")
            assert [stream.comment() for _ in range(3)] == ["keepalive"] * 3
        assert admin.post(f"/auth/tokens/{revoked['token_id']}/revoke").status_code == 200
        wait_for(lambda: sdk.cache_stats().events == 1)
        assert sdk.validate(kept["token"]).cached is True
        assert sdk.validate(revoked["token"]).valid is False
        assert sdk.cache_stats().resets == 1  # the stream's opening reset only


def test_one_subscriber_too_many_gets_a_clear_503(tuned: ServerProcess) -> None:
    with EventStream(tuned.base_url) as stream:
        stream.until("ready")
        refused = httpx.get(tuned.base_url + "/auth/events", timeout=10)
        assert refused.status_code == 503
        assert refused.json()["error"] == "too_many_subscribers"
        assert "EVENTS_MAX_SUBSCRIBERS" in refused.json()["detail"]
        assert refused.headers["retry-after"] == "1"
    # The slot is given back when the subscriber leaves.
    with EventStream(tuned.base_url) as again:
        assert again.until("ready").kind == "ready"


def test_the_stream_can_be_turned_off(backend: Backend) -> None:
    with running_server(backend, env={"EVENTS_MAX_SUBSCRIBERS": "0"}) as process:
        response = httpx.get(process.base_url + "/auth/events", timeout=10)
    assert response.status_code == 404
    assert "EVENTS_MAX_SUBSCRIBERS=0" in response.json()["detail"]


def test_a_stopping_server_ends_its_streams_and_exits(backend: Backend) -> None:
    with running_server(backend) as process:
        with EventStream(process.base_url, timeout=30) as stream:
            stream.until("ready")
            assert process.process is not None
            process.process.terminate()
            # Without ending the streams, uvicorn would wait for this one forever.
            assert stream.ended()
        # uvicorn re-raises the SIGTERM it handled once it is done.
        assert process.process.wait(timeout=20) in (0, -signal.SIGTERM)
        log = process.log()
        assert "Application shutdown complete" in log
        assert "graceful shutdown exceeded" not in log
        assert "Traceback" not in log
        process.process = None


# -- several replicas on one Redis ----------------------------------------------


@pytest.mark.postgres
@pytest.mark.redis
def test_a_change_through_one_replica_reaches_the_subscribers_of_another(
    replicas: tuple[ServerProcess, ServerProcess],
) -> None:
    one, two = replicas
    with two.client() as admin:
        created = create(admin)
        with EventStream(one.base_url) as stream:
            stream.until("ready")
            admin.post(f"/auth/tokens/{created['token_id']}/revoke").raise_for_status()
            event = stream.until("revoked")
        assert event.data["token_hash"] == hash_token(created["token"])
        # One log for all: the id from replica one resumes on replica two.
        extended = create(admin, ttl_days=1)
        admin.post(f"/auth/tokens/{extended['token_id']}/extend", json={"days": 1})
    with EventStream(two.base_url, last_event_id=event.id) as resumed:
        missed = resumed.next()
        assert (missed.kind, missed.data["token_hash"]) == (
            "extended",
            hash_token(extended["token"]),
        )


@pytest.mark.postgres
@pytest.mark.redis
def test_redis_stopping_ends_the_streams_and_a_restart_means_reset(
    replicas: tuple[ServerProcess, ServerProcess], own_redis: PrivateRedis
) -> None:
    one, two = replicas
    with two.client() as admin:
        created = create(admin)
        with EventStream(one.base_url, timeout=30) as stream:
            stream.until("ready")
            own_redis.stop()
            try:
                # The server can no longer promise every change: it says so by ending.
                assert stream.ended()
                assert stream_status(one.base_url) == 503
                # A revoke still works (the database), and waits in the outbox.
                admin.post(f"/auth/tokens/{created['token_id']}/revoke").raise_for_status()
            finally:
                own_redis.start()
        # Redis came back empty: the id this subscriber last saw is gone, so
        # it must reset; and the revoke it missed is in the new log anyway.
        wait_for(lambda: stream_status(one.base_url) == 200)
        with EventStream(one.base_url, last_event_id=stream.last_id, timeout=30) as again:
            assert again.next().kind == "reset"
            assert again.next().kind == "ready"
        assert validate(admin, created["token"])["reason"] == "revoked"


@pytest.mark.postgres
@pytest.mark.redis
def test_a_revoke_redis_missed_is_announced_when_the_outbox_replays_it(
    replicas: tuple[ServerProcess, ServerProcess], own_redis: PrivateRedis
) -> None:
    one, two = replicas
    probe = redis.Redis(port=own_redis.port)
    with two.client() as admin:
        created = create(admin)
        with EventStream(one.base_url, timeout=30) as stream:
            stream.until("ready")
            probe.execute_command("CLIENT", "PAUSE", "30000", "WRITE")
            try:
                admin.post(f"/auth/tokens/{created['token_id']}/revoke").raise_for_status()
            finally:
                probe.execute_command("CLIENT", "UNPAUSE")
            event = stream.until("revoked")
        assert event.data["token_hash"] == hash_token(created["token"])
    probe.close()


# -- review findings ------------------------------------------------------------


def test_other_replicas_hear_a_change_before_its_event_is_in_the_stream() -> None:
    """A subscriber told of a revoke may validate at once on another replica: that
    replica must have been handed the new state already, or it answers from its
    local cache "valid", which the subscriber then caches for its whole TTL."""
    import redis.asyncio as aioredis

    from amplify_auth_server.cache import LocalCache, RedisCache, TokenState
    from amplify_auth_server.metrics import Metrics
    from amplify_auth_server.propagation import Propagation
    from tests.support.services import redis_namespace

    async def scenario(url: str, prefix: str) -> None:
        client = aioredis.Redis.from_url(url)
        shared = RedisCache(client, prefix=prefix, ttl=60, negative_ttl=5, metrics=Metrics())
        in_stream_at_publish: list[int] = []

        class Publisher:
            async def publish(self, key: str, state: TokenState) -> asyncio.Future[None]:
                return await self.publish_many([(key, state)])

            async def publish_many(
                self, changes: list[tuple[str, TokenState]]
            ) -> asyncio.Future[None]:
                in_stream_at_publish.append(int(await client.xlen(shared.stream)))
                done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                done.set_result(None)
                return done

        propagation = Propagation(
            LocalCache(maxsize=10, ttl=1, negative_ttl=1), shared=shared, bus=Publisher()
        )
        try:
            state = TokenState(version=2, token_id="t", revoked=True)
            applied = await propagation.apply("ab" * 32, state, "revoked")
            assert applied.stored
            assert await client.xlen(shared.stream) == 1
            assert in_stream_at_publish == [0]
        finally:
            await client.aclose()

    with redis_namespace() as namespace:
        asyncio.run(scenario(namespace.url, namespace.prefix))


def test_a_revoke_whose_commit_reply_was_lost_is_still_announced_embedded(
    tmp_path: Path,
) -> None:
    """Embedded, there is no outbox to replay a change later: when the writer cannot
    tell whether the commit happened, subscribers must still be told to evict."""
    from contextlib import asynccontextmanager

    from sqlalchemy.ext.asyncio import AsyncConnection

    from amplify_auth_server.cache import LocalCache
    from amplify_auth_server.commands import CommandQueue, CreateToken, RevokeToken, Writer
    from amplify_auth_server.database import create_engine, migrate
    from amplify_auth_server.errors import DatabaseUnavailable
    from amplify_auth_server.metrics import Metrics
    from amplify_auth_server.models import SYSTEM
    from amplify_auth_server.propagation import Propagation
    from amplify_auth_server.store import TokenStore

    class LostReply(TokenStore):
        """Commits, then (once armed) fails as if the commit's reply was lost."""

        lose = False

        @asynccontextmanager
        async def transaction(self) -> AsyncIterator[AsyncConnection]:
            async with super().transaction() as connection:
                yield connection
            if self.lose:
                self.lose = False
                raise DatabaseUnavailable()

    async def scenario() -> None:
        engine = create_engine(f"sqlite:///{tmp_path / 'lost.db'}")
        await migrate(engine)
        store = LostReply(engine)
        feed = MemoryEventFeed(max_subscribers=10)
        local = LocalCache(maxsize=10, ttl=60, negative_ttl=5)
        queue = CommandQueue(Writer(store, Propagation(local, feed=feed)), Metrics())
        queue.start()
        try:
            created = await queue.submit(CreateToken(actor=SYSTEM, name="n", scopes=("read",)))
            subscription = await feed.subscribe(feed.head)
            store.lose = True
            with pytest.raises(DatabaseUnavailable):
                await queue.submit(RevokeToken(actor=SYSTEM, token_id=created.record.id))
            revoked = await store.get_by_hash(created.record.token_hash)
            assert revoked is not None
            assert revoked.revoked_at is not None  # it did commit
            event = subscription.queue.get_nowait()
            assert event is not None
            assert event.token_hash == created.record.token_hash
        finally:
            await queue.stop()
            await engine.dispose()

    asyncio.run(scenario())


@pytest.mark.redis
def test_the_shared_log_replays_at_most_max_replay_events() -> None:
    import redis.asyncio as aioredis

    from amplify_auth_server.events import MAX_REPLAY, RedisEventFeed
    from tests.support.services import redis_namespace

    async def scenario(url: str, prefix: str) -> None:
        client, reader = aioredis.Redis.from_url(url), aioredis.Redis.from_url(url)
        feed = RedisEventFeed(client, reader, stream=f"{prefix}:events", max_subscribers=10)
        feed.start()
        try:
            assert await feed.wait_live(10)
            marker = feed.head
            watcher = await feed.subscribe(None)
            async with client.pipeline(transaction=False) as pipe:
                for number in range(MAX_REPLAY + 1):
                    fields = {"change": "revoked", "hash": f"{number:064x}", "version": 2}
                    pipe.xadd(feed.stream, fields)  # type: ignore[arg-type]
                ids = [entry_id.decode() for entry_id in await pipe.execute()]
            async with asyncio.timeout(10):  # until the reader has dispatched them all
                seen = None
                while seen != ids[-1]:
                    event = await watcher.queue.get()
                    assert event is not None
                    seen = event.id
            resumed = await feed.subscribe(ids[0])
            assert (resumed.reset, len(resumed.backlog)) == (False, MAX_REPLAY)
            assert resumed.backlog[-1].id == ids[-1]
            assert (await feed.subscribe(marker)).reset is True  # one event too many
        finally:
            await feed.stop()
            await client.aclose()
            await reader.aclose()

    with redis_namespace() as namespace:
        asyncio.run(scenario(namespace.url, namespace.prefix))
