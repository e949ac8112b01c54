"""The single writer: one command at a time, errors answered, the queue drained."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from amplify_auth_server.commands import (
    Batch,
    Command,
    CommandQueue,
    CreateToken,
    RevokeToken,
    Writer,
)
from amplify_auth_server.database import create_engine, migrate
from amplify_auth_server.errors import NotFound, ShuttingDown
from amplify_auth_server.metrics import Metrics
from amplify_auth_server.models import SYSTEM, utcnow
from amplify_auth_server.pages import TokenFilter
from amplify_auth_server.store import TokenStore

pytestmark = pytest.mark.anyio


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[TokenStore]:
    engine = create_engine(f"sqlite:///{tmp_path / 'writer.db'}")
    await migrate(engine)
    yield TokenStore(engine)
    await engine.dispose()


@pytest.fixture
async def queue(store: TokenStore) -> AsyncIterator[CommandQueue]:
    queue = CommandQueue(Writer(store, propagation=None), Metrics())
    queue.start()
    yield queue
    await queue.stop()


@dataclass(frozen=True)
class Explode(Command[None]):
    actor = SYSTEM

    async def run(self, batch: Batch) -> None:
        raise RuntimeError("boom")


@dataclass(frozen=True)
class Track(Command[int]):
    """Records how many commands run at once, to prove there is only ever one."""

    log: list[int]
    running: list[int]
    actor = SYSTEM

    async def run(self, batch: Batch) -> int:
        self.running.append(1)
        self.log.append(len(self.running))
        await asyncio.sleep(0)  # yield, so that a second writer would interleave here
        self.running.pop()
        return len(self.log)


async def test_one_command_runs_at_a_time(queue: CommandQueue) -> None:
    log: list[int] = []
    running: list[int] = []
    results = await asyncio.gather(*(queue.submit(Track(log, running)) for _ in range(50)))
    assert log == [1] * 50
    assert sorted(results) == list(range(1, 51))


async def test_the_writer_survives_a_failing_command(
    queue: CommandQueue, store: TokenStore
) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        await queue.submit(Explode())
    with pytest.raises(NotFound):
        await queue.submit(RevokeToken(actor=SYSTEM, token_id="tok_0000000000000000"))
    created = await queue.submit(CreateToken(actor=SYSTEM, name="after", scopes=("read",)))
    assert (await store.get(created.record.id)) is not None
    assert queue.running


async def test_stop_drains_every_queued_command_then_refuses(
    store: TokenStore,
) -> None:
    queue = CommandQueue(Writer(store, propagation=None), Metrics())
    queue.start()
    pending = [
        asyncio.create_task(queue.submit(CreateToken(actor=SYSTEM, name=f"t{i}", scopes=("a",))))
        for i in range(30)
    ]
    await asyncio.sleep(0)  # let every task enqueue its command
    await queue.stop()
    # Everything queued before stop() was written by the time it returned...
    stored = await store.token_page(TokenFilter(status="all"), after=None, limit=1000, now=utcnow())
    assert len(stored) == 30
    # ...and every caller got its answer.
    results = await asyncio.gather(*pending)
    assert {r.record.id for r in results} == {record.id for record in stored}
    with pytest.raises(ShuttingDown):
        await queue.submit(CreateToken(actor=SYSTEM, name="late", scopes=("a",)))
    assert not queue.running


async def test_a_caller_that_gives_up_does_not_cancel_the_change(
    queue: CommandQueue, store: TokenStore
) -> None:
    log: list[int] = []
    blocker = asyncio.create_task(queue.submit(Track(log, [])))
    waiter = asyncio.create_task(
        queue.submit(CreateToken(actor=SYSTEM, name="abandoned", scopes=("a",)))
    )
    await asyncio.sleep(0)
    waiter.cancel()
    await blocker
    # A command the writer takes after its caller left still runs to the end.
    follow = await queue.submit(CreateToken(actor=SYSTEM, name="follow", scopes=("a",)))
    names = {
        r.name
        for r in await store.token_page(
            TokenFilter(status="all"), after=None, limit=1000, now=utcnow()
        )
    }
    assert names == {"abandoned", "follow"}
    assert follow.record.name == "follow"


async def test_no_command_or_result_shows_a_secret_in_its_repr(queue: CommandQueue) -> None:
    from amplify_auth_client import hash_token
    from amplify_auth_server.commands import RegisterToken

    created = await queue.submit(CreateToken(actor=SYSTEM, name="n", scopes=("a",)))
    assert created.token not in repr(created)
    assert created.token not in str(created)
    digest = hash_token(created.token)
    register = RegisterToken(actor=SYSTEM, token_hash=digest, name="n", scopes=("a",))
    assert digest not in repr(register)
