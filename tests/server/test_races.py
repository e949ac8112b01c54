"""No interleaving lets a validation that starts after a revoke returned see "valid".

In-process, on a real SQLite database, with the database read of one lookup
held open at the worst moment: after it read the token, before it returned.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from amplify_auth_server.cache import LocalCache, RedisCache, TokenCache
from amplify_auth_server.commands import CommandQueue, CreateToken, RevokeToken, Writer
from amplify_auth_server.database import create_engine, migrate
from amplify_auth_server.invalidation import InvalidationBus, Lease
from amplify_auth_server.metrics import Metrics
from amplify_auth_server.models import SYSTEM, TokenRecord
from amplify_auth_server.propagation import Propagation
from amplify_auth_server.store import TokenStore
from amplify_auth_server.validation import Validator
from tests.support.services import free_port

pytestmark = pytest.mark.anyio


class HeldStore(TokenStore):
    """A real store whose next lookup, once armed, stops after reading the row."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.armed = False
        self.has_read = asyncio.Event()
        self.release = asyncio.Event()

    async def get_by_hash(self, token_hash: str) -> TokenRecord | None:
        record = await super().get_by_hash(token_hash)
        if self.armed:
            self.armed = False
            self.has_read.set()
            await self.release.wait()
        return record


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[HeldStore]:
    engine = create_engine(f"sqlite:///{tmp_path / 'races.db'}")
    await migrate(engine)
    yield HeldStore(engine)
    await engine.dispose()


Tiers = tuple[TokenCache, Propagation]


async def _without_local_cache(store: TokenStore) -> AsyncIterator[Tiers]:
    local = LocalCache(maxsize=0, ttl=1800, negative_ttl=30)
    yield TokenCache(local), Propagation(local)


async def _with_redis_unreachable(store: TokenStore) -> AsyncIterator[Tiers]:
    # Nothing listens on this port: the bus is never live, so the local cache
    # is bypassed, exactly as while a replica is deaf to the others.
    import redis.asyncio as redis

    url = f"redis://127.0.0.1:{free_port()}/0"
    client = redis.Redis.from_url(url, socket_connect_timeout=0.2)
    listener = redis.Redis.from_url(url, socket_connect_timeout=0.2)
    local = LocalCache(maxsize=100, ttl=5, negative_ttl=5)
    shared = RedisCache(client, prefix="races", ttl=60, negative_ttl=5, metrics=Metrics())
    lease = Lease()
    suspects: set[str] = set()
    cache = TokenCache(local, shared, suspects=suspects, hearing=lease)
    bus = InvalidationBus(
        client, listener, prefix="races", local=local, lease=lease, ack_timeout=0.5
    )
    bus.start()
    yield cache, Propagation(local, suspects=suspects, shared=shared, bus=bus)
    await bus.stop()
    await client.aclose()
    await listener.aclose()


@pytest.mark.parametrize("tiers", [_without_local_cache, _with_redis_unreachable])
async def test_a_validation_after_the_revoke_does_not_join_an_older_lookup(
    store: HeldStore, tiers: object
) -> None:
    async for cache, propagation in tiers(store):  # type: ignore[operator]
        queue = CommandQueue(Writer(store, propagation), Metrics())
        queue.start()
        validator = Validator(store, cache, Metrics())
        created = await queue.submit(CreateToken(actor=SYSTEM, name="n", scopes=("read",)))

        store.armed = True
        early = asyncio.create_task(validator.validate(created.token))
        await store.has_read.wait()  # its lookup read the token, still active
        await queue.submit(RevokeToken(actor=SYSTEM, token_id=created.record.id))
        # The revoke has returned. A validation starting now...
        late = asyncio.create_task(validator.validate(created.token))
        store.release.set()
        # ...is answered from the revoked row, not from the older lookup,
        assert (await late).result == "revoked"
        # while the one that overlapped the revoke may see either state.
        assert (await early).result in ("valid", "revoked")
        # And the older lookup left nothing stale behind in any tier.
        assert (await validator.validate(created.token)).result == "revoked"
        await queue.stop()
