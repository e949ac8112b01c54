"""A subscribed client drops a revoked token's entry as soon as the server announces it,
on each backend and across replicas; it recovers from replica and Redis restarts
without keeping a stale "valid"; and it leaves no thread behind."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from amplify_auth_client import (
    AsyncAuthClient,
    AuthClient,
    AuthServiceUnavailable,
    ValidationResult,
    generate_token,
)
from tests.client.support import in_child
from tests.support.server import Backend, ServerProcess, running_server
from tests.support.services import PrivateRedis
from tests.support.waiting import wait_for

THREAD = "amplify-auth-revocations"
#: Long enough that only an event can explain an entry's disappearance.
LONG_TTL = 600.0


def create(server: ServerProcess, **body: object) -> dict[str, str]:
    with server.client() as admin:
        response = admin.post("/auth/tokens", json={"name": "t", "scopes": ["read"], **body})
        response.raise_for_status()
        created: dict[str, str] = response.json()
        return created


def revoke(server: ServerProcess, token_id: str) -> float:
    """Revoke through ``server``; the moment the call returned."""
    with server.client() as admin:
        admin.post(f"/auth/tokens/{token_id}/revoke").raise_for_status()
    return time.perf_counter()


def live(client: AuthClient | AsyncAuthClient, timeout: float = 30.0) -> None:
    wait_for(lambda: client.cache_stats().subscription == "live", timeout)


@contextmanager
def subscribed(server: ServerProcess) -> Iterator[AuthClient]:
    """A client whose subscription is live, and whose cache is still empty.

    Live first, cache after: the first connection's reset drops whatever
    was cached before it.
    """
    with AuthClient(server.base_url, cache_ttl=LONG_TTL, subscribe_revocations=True) as client:
        client.validate(generate_token())  # the first request starts the subscription
        live(client)
        yield client


def threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == THREAD]


def evicted_after_revoke(client: AuthClient, source: ServerProcess, via: ServerProcess) -> float:
    """Cache a token through ``client``, revoke it through ``via``; seconds to eviction.

    The client's next validation after the event must be "revoked", fetched.
    """
    created = create(source)
    assert client.validate(created["token"]).valid
    assert client.validate(created["token"]).cached  # held, for LONG_TTL
    before = client.cache_stats().events
    returned = revoke(via, created["token_id"])
    results: list[ValidationResult] = []

    def refetched() -> bool:
        # Cache hits, until the event drops the entry: then the server answers.
        results.append(client.validate(created["token"]))
        return not results[-1].cached

    wait_for(refetched)
    delay = time.perf_counter() - returned
    result = results[-1]
    assert (result.valid, result.reason, result.cached) == (False, "revoked", False)
    assert all(r.valid for r in results[:-1])
    assert client.cache_stats().events > before
    return delay


# -- one server, each backend ---------------------------------------------------


def test_a_revoked_token_is_evicted_at_once(server: ServerProcess) -> None:
    with AuthClient(server.base_url, cache_ttl=LONG_TTL, subscribe_revocations=True) as client:
        assert client.cache_stats().subscription == "idle"
        client.validate(generate_token())  # the first request starts it
        live(client)
        stats = client.cache_stats()
        assert stats.subscribed
        assert stats.resets == 1  # its first connection: a reset, on an empty cache
        delay = evicted_after_revoke(client, server, server)
        stats = client.cache_stats()
        assert stats.last_event_at is not None
        assert stats.resets == 1
    print(f"evicted {delay * 1000:.1f} ms after the revoke returned")


def test_an_extended_token_is_refetched_with_its_new_expiry(server: ServerProcess) -> None:
    with subscribed(server) as client:
        created = create(server, ttl_days=1)
        first = client.validate(created["token"])
        assert client.validate(created["token"]).cached
        before = client.cache_stats().events
        with server.client() as admin:
            admin.post(f"/auth/tokens/{created['token_id']}/extend", json={"days": 5})
        wait_for(lambda: client.cache_stats().events > before)
        second = client.validate(created["token"])
        assert second.cached is False
        assert first.expires_at is not None
        assert second.expires_at is not None
        assert (second.expires_at - first.expires_at).days == 5


def test_the_async_client_is_evicted_too_and_closes_its_thread(server: ServerProcess) -> None:
    async def scenario() -> None:
        async with AsyncAuthClient(
            server.base_url, cache_ttl=LONG_TTL, subscribe_revocations=True
        ) as client:
            created = create(server)
            assert (await client.validate(created["token"])).valid
            await asyncio.to_thread(live, client)
            before = client.cache_stats().events
            await asyncio.to_thread(revoke, server, created["token_id"])
            await asyncio.to_thread(wait_for, lambda: client.cache_stats().events > before)
            assert (await client.validate(created["token"])).reason == "revoked"
            assert len(threads()) == 1
        assert client.cache_stats().subscription == "off"
        assert threads() == []

    asyncio.run(scenario())


def test_closing_ends_the_subscription_thread(server: ServerProcess) -> None:
    client = AuthClient(server.base_url, subscribe_revocations=True)
    client.validate(generate_token())
    live(client)
    assert len(threads()) == 1
    client.close()
    assert threads() == []
    assert client.cache_stats().subscription == "off"
    # A closed client starts no new one.
    with pytest.raises(AuthServiceUnavailable):
        client.validate(generate_token())
    assert threads() == []


# Dropped unclosed on purpose: its own connection pool's socket is reported.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_a_client_dropped_without_close_stops_its_thread(server: ServerProcess) -> None:
    client = AuthClient(server.base_url, subscribe_revocations=True)
    client.validate(generate_token())
    live(client)
    (thread,) = threads()
    del client
    # Now, not during some later test: the pool's socket may sit in a cycle,
    # and its warning must be this test's.
    gc.collect()
    thread.join(10)
    assert not thread.is_alive()


def test_no_subscription_when_turned_off(server: ServerProcess) -> None:
    with AuthClient(server.base_url, subscribe_revocations=False) as client:
        client.validate(generate_token())
        assert client.cache_stats().subscription == "off"
        assert threads() == []


@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")
def test_a_forked_child_subscribes_on_its_own(server: ServerProcess) -> None:
    with subscribed(server) as client:
        created = create(server)
        assert client.validate(created["token"]).valid

        def child() -> str:
            # The parent's thread did not come along; the first miss starts one.
            assert threads() == []
            assert client.cache_stats().subscription == "idle"
            client.validate(generate_token())
            live(client, timeout=8)
            # Resumed from the parent's last event: no reset, the cache stays.
            assert client.cache_stats().resets == 1
            assert client.validate(created["token"]).cached
            before = client.cache_stats().events
            revoke(server, created["token_id"])
            wait_for(lambda: client.cache_stats().events > before, timeout=8)
            return str(client.validate(created["token"]).reason)

        assert in_child(child, timeout=30) == "revoked"
        # The parent heard it too, on its own stream.
        wait_for(lambda: client.validate(created["token"]).reason == "revoked")
        assert len(threads()) == 1


def test_an_embedded_server_restart_means_a_reset(tmp_path: Path) -> None:
    with (
        running_server(Backend("embedded", tmp_path)) as embedded,
        subscribed(embedded) as client,
    ):
        created = create(embedded)
        assert client.validate(created["token"]).valid
        assert client.validate(created["token"]).cached
        embedded.kill()
        wait_for(lambda: client.cache_stats().subscription != "live")
        # Revoked while nobody streams: the restarted server's log is new,
        # so the client cannot learn what it missed, and drops everything.
        embedded.start()
        revoke(embedded, created["token_id"])
        wait_for(lambda: client.cache_stats().resets == 2)
        live(client)
        assert client.validate(created["token"]).reason == "revoked"


def test_a_server_without_the_stream_leaves_the_client_on_ttls(tmp_path: Path) -> None:
    env = {"EVENTS_MAX_SUBSCRIBERS": "0"}
    with (
        running_server(Backend("embedded", tmp_path), env=env) as plain,
        AuthClient(plain.base_url, subscribe_revocations=True) as client,
    ):
        assert client.validate(generate_token()).reason == "unknown"
        wait_for(lambda: client.cache_stats().subscription == "unavailable")
        assert not client.cache_stats().subscribed


# -- replicas sharing PostgreSQL and Redis --------------------------------------


@pytest.mark.postgres
@pytest.mark.redis
def test_a_revoke_through_another_replica_evicts_at_once(
    replicas: tuple[ServerProcess, ServerProcess],
) -> None:
    one, two = replicas
    with subscribed(one) as client:
        delays = [evicted_after_revoke(client, one, two) for _ in range(5)]
        assert client.cache_stats().resets == 1
    print("evicted after " + ", ".join(f"{d * 1000:.1f}" for d in delays) + " ms")


@pytest.mark.postgres
@pytest.mark.redis
def test_a_replica_restart_resumes_without_a_reset(
    replicas: tuple[ServerProcess, ServerProcess],
) -> None:
    one, two = replicas
    with subscribed(one) as client:
        created, kept = create(two), create(two)
        assert client.validate(created["token"]).valid
        assert client.validate(kept["token"]).valid
        one.kill()
        wait_for(lambda: client.cache_stats().subscription != "live")
        # While it cannot hear: the entry lives on (the cache TTL bounds that).
        revoke(two, created["token_id"])
        assert client.validate(created["token"]).cached
        one.start()
        # The log is in Redis: the missed event is replayed, the rest kept.
        wait_for(lambda: not client.validate(created["token"]).valid)
        live(client)
        assert client.validate(created["token"]).reason == "revoked"
        assert client.validate(kept["token"]).cached
        assert client.cache_stats().resets == 1


@pytest.mark.postgres
@pytest.mark.redis
def test_a_redis_restart_resets_and_keeps_no_stale_valid(
    replicas: tuple[ServerProcess, ServerProcess], own_redis: PrivateRedis
) -> None:
    one, two = replicas
    with subscribed(one) as client:
        created = create(two)
        assert client.validate(created["token"]).valid
        own_redis.stop()
        try:
            wait_for(lambda: client.cache_stats().subscription != "live")
            revoke(two, created["token_id"])  # to the database, and the outbox
        finally:
            own_redis.start()
        # Redis came back empty: the client's last event is gone from the log,
        # so it cannot replay and must drop everything it cached.
        wait_for(lambda: client.cache_stats().resets == 2, timeout=60)
        live(client)
        assert client.validate(created["token"]).reason == "revoked"
        # And the stream works again: the next revoke arrives as an event.
        evicted_after_revoke(client, one, two)


def test_the_subscription_sends_no_admin_token(server: ServerProcess) -> None:
    admin_token = server.admin_token
    assert admin_token is not None
    seen: list[httpx.Request] = []

    async def spy(request: httpx.Request) -> None:
        if request.url.path == "/auth/events":
            seen.append(request)

    with AuthClient(server.base_url, admin_token=admin_token, subscribe_revocations=True) as client:
        subscription = client._subscription
        assert subscription is not None
        subscription._options["event_hooks"] = {"request": [spy]}
        client.validate(generate_token())
        live(client)
    assert seen
    assert all("authorization" not in r.headers for r in seen)


@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")
def test_a_forked_child_that_only_hits_its_inherited_cache_still_hears_revokes(
    server: ServerProcess,
) -> None:
    """The child inherits entries the parent's subscription vouched for; answering
    them (cache hits, never a miss) must not go on without a subscription."""
    with subscribed(server) as client:
        created = create(server)
        assert client.validate(created["token"]).valid

        def child() -> str:
            assert client.validate(created["token"]).cached
            live(client, timeout=8)
            revoke(server, created["token_id"])
            wait_for(lambda: not client.validate(created["token"]).valid, timeout=8)
            return str(client.validate(created["token"]).reason)

        assert in_child(child, timeout=30) == "revoked"
