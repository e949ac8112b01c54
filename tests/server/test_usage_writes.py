"""RecordUsage, run by the writer on each backend: counts add per day, last use never moves
back, old days are pruned, no version moves, and unknown ids are ignored."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from amplify_auth_server.commands import CommandQueue, CreateToken, RecordUsage, RevokeMany, Writer
from amplify_auth_server.database import create_engine, migrate
from amplify_auth_server.metrics import Metrics
from amplify_auth_server.models import SYSTEM
from amplify_auth_server.store import TokenStore
from amplify_auth_server.tables import token_usage
from amplify_auth_server.usage import UsageCounter, UsageFlush
from tests.support.server import Backend

pytestmark = pytest.mark.anyio

NOON: datetime = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[TokenStore]:
    engine = create_engine(backend.store_url)
    await migrate(engine)
    yield TokenStore(engine)
    await engine.dispose()


@pytest.fixture
async def queue(store: TokenStore) -> AsyncIterator[CommandQueue]:
    queue = CommandQueue(Writer(store, propagation=None), Metrics())
    queue.start()
    yield queue
    await queue.stop()


async def _token(queue: CommandQueue, name: str = "used") -> str:
    minted = await queue.submit(CreateToken(actor=SYSTEM, name=name, scopes=("read",)))
    return minted.record.id


async def test_counts_add_up_per_day_and_last_use_only_moves_forward(
    queue: CommandQueue, store: TokenStore
) -> None:
    token_id = await _token(queue)
    before = await store.get(token_id)
    assert before is not None
    await queue.submit(RecordUsage(uses=((token_id, 3),), at=NOON))
    await queue.submit(RecordUsage(uses=((token_id, 4),), at=NOON + timedelta(hours=1)))
    await queue.submit(RecordUsage(uses=((token_id, 5),), at=NOON + timedelta(days=1)))
    # A replica whose flush is late (or whose clock is behind): counted, not moved back.
    await queue.submit(RecordUsage(uses=((token_id, 1),), at=NOON - timedelta(hours=2)))
    after = await store.get(token_id)
    assert after is not None
    assert after.last_used_at == NOON + timedelta(days=1)
    assert after.version == before.version  # usage is not validation state
    days = await store.usage_of(token_id, date(2026, 11, 1))
    assert days == [(date(2026, 12, 2), 8), (date(2026, 12, 3), 5)]


async def test_days_past_the_window_are_pruned(queue: CommandQueue, store: TokenStore) -> None:
    token_id = await _token(queue)
    old = NOON - timedelta(days=45)
    await queue.submit(RecordUsage(uses=((token_id, 9),), at=old))
    await queue.submit(RecordUsage(uses=((token_id, 2),), at=NOON - timedelta(days=29)))
    await queue.submit(RecordUsage(uses=((token_id, 1),), at=NOON))
    async with store.engine.connect() as connection:
        rows = (
            await connection.execute(
                select(token_usage.c.day).where(token_usage.c.token_id == token_id)
            )
        ).all()
    assert sorted(day for (day,) in rows) == [date(2026, 11, 3), date(2026, 12, 2)]


async def test_an_unknown_id_is_ignored_and_the_rest_written(
    queue: CommandQueue, store: TokenStore
) -> None:
    token_id = await _token(queue)
    uses = tuple(sorted([(token_id, 2), ("tok_0000000000000000", 7)]))
    await queue.submit(RecordUsage(uses=uses, at=NOON))
    assert await store.usage_of(token_id, date(2026, 12, 1)) == [(date(2026, 12, 2), 2)]
    assert await store.usage_of("tok_0000000000000000", date(2026, 12, 1)) == []


async def test_usage_and_revocations_of_the_same_rows_batched_together(
    queue: CommandQueue, store: TokenStore
) -> None:
    ids = sorted([await _token(queue, f"t{n}") for n in range(20)])
    # Queued at once: the writer takes them as one batch, locking rows in id order.
    await asyncio.gather(
        queue.submit(RecordUsage(uses=tuple((i, 1) for i in ids), at=NOON)),
        queue.submit(RevokeMany(actor=SYSTEM, token_ids=tuple(reversed(ids[:10])))),
        queue.submit(RecordUsage(uses=tuple((i, 2) for i in ids), at=NOON)),
    )
    for token_id in ids:
        assert await store.usage_of(token_id, date(2026, 12, 1)) == [(date(2026, 12, 2), 3)]
    revoked = [await store.get(i) for i in ids[:10]]
    assert all(r is not None and r.revoked_at is not None for r in revoked)


async def test_a_flush_that_cannot_be_written_keeps_its_counts(
    queue: CommandQueue, store: TokenStore
) -> None:
    token_id = await _token(queue)
    counter = UsageCounter()
    flush = UsageFlush(counter, queue, interval=3600)
    counter.add(token_id, 3)
    await queue.stop()  # the writer refuses: ShuttingDown
    await flush.flush()
    assert counter.uses == {token_id: 3}
    fresh = CommandQueue(Writer(store, propagation=None), Metrics())
    fresh.start()
    try:
        again = UsageFlush(counter, fresh, interval=3600)
        counter.add(token_id, 1)
        await again.flush()
        assert counter.uses == {}
    finally:
        await fresh.stop()
    days = await store.usage_of(token_id, date(2000, 1, 1))
    assert sum(count for _, count in days) == 4
