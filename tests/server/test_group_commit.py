"""Group commit: commands waiting together run in one transaction, each in a savepoint of
its own (a batch of one kind as one group, without one), so one failing command fails
alone; and a crash mid-batch loses no acknowledged change and leaves no half batch."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import event, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from amplify_auth_server.commands import (
    Batch,
    Command,
    CommandQueue,
    CreateToken,
    Done,
    ExtendToken,
    Idempotency,
    RevokeToken,
    Writer,
)
from amplify_auth_server.database import create_engine, migrate
from amplify_auth_server.errors import Conflict, IdempotencyKeyReused, NotFound
from amplify_auth_server.metrics import Metrics
from amplify_auth_server.models import SYSTEM, utcnow
from amplify_auth_server.store import TokenStore
from amplify_auth_server.tables import audit_log, tokens
from tests.support.server import Backend, running_server
from tests.support.services import fresh_database


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'batch.db'}"
        return
    with fresh_database() as url:
        yield url


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[TokenStore]:
    engine = create_engine(database_url)
    await migrate(engine)
    yield TokenStore(engine)
    await engine.dispose()


def batches(registry: CollectorRegistry) -> tuple[float, float]:
    """(batches run, commands in them) from the writer's histogram."""
    count = registry.get_sample_value("amplify_auth_writer_batch_size_count") or 0.0
    total = registry.get_sample_value("amplify_auth_writer_batch_size_sum") or 0.0
    return count, total


class Explode(Command[None]):
    """Writes a token, then fails: its savepoint must take the write back."""

    actor = SYSTEM

    async def run(self, batch: Batch) -> None:
        await CreateToken(actor=SYSTEM, name="half-done", scopes=("a",)).run(batch)
        raise RuntimeError("boom")


@pytest.mark.anyio
async def test_a_failing_command_fails_alone_and_the_others_commit(store: TokenStore) -> None:
    metrics = Metrics()
    queue = CommandQueue(Writer(store, propagation=None), metrics)
    queue.start()
    try:
        forever = await queue.submit(CreateToken(actor=SYSTEM, name="forever", scopes=("a",)))
        commands: list[Command[Any]] = []
        for i in range(20):
            commands.append(CreateToken(actor=SYSTEM, name=f"ok-{i}", scopes=("a",)))
            if i % 5 == 0:
                commands += [
                    RevokeToken(actor=SYSTEM, token_id="tok_0000000000000000"),
                    ExtendToken(actor=SYSTEM, token_id=forever.record.id, days=1),
                    Explode(),
                ]
        before = batches(metrics.registry)
        outcomes = await asyncio.gather(
            *(queue.submit(command) for command in commands), return_exceptions=True
        )
        count, total = (a - b for a, b in zip(batches(metrics.registry), before, strict=True))
    finally:
        await queue.stop()
    # They did run together: fewer transactions than commands.
    assert total == len(commands)
    assert count < len(commands)
    kinds = Counter(type(outcome).__name__ for outcome in outcomes)
    assert kinds == {"Minted": 20, "NotFound": 4, "Conflict": 4, "RuntimeError": 4}
    assert all(
        isinstance(o, NotFound | Conflict | RuntimeError) == (not isinstance(c, CreateToken))
        for c, o in zip(commands, outcomes, strict=True)
    )
    async with store.engine.connect() as connection:
        names = set((await connection.execute(select(tokens.c.name))).scalars())
        creates = await connection.scalar(
            select(func.count()).select_from(audit_log).where(audit_log.c.action == "create")
        )
    assert names == {"forever"} | {f"ok-{i}" for i in range(20)}  # no "half-done"
    assert creates == 21


@pytest.mark.anyio
async def test_a_lone_command_is_not_held_back(store: TokenStore) -> None:
    metrics = Metrics()
    queue = CommandQueue(Writer(store, propagation=None), metrics)
    queue.start()
    try:
        for i in range(3):
            await queue.submit(CreateToken(actor=SYSTEM, name=f"alone-{i}", scopes=("a",)))
    finally:
        await queue.stop()
    assert batches(metrics.registry) == (3.0, 3.0)


@contextmanager
def _crash_backend(name: str, directory: Path) -> Iterator[Backend]:
    if name == "embedded":
        yield Backend("embedded", directory)
        return
    with fresh_database() as url:
        yield Backend("postgres", directory, url)


@pytest.mark.parametrize(
    "backend_name", ["embedded", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_a_crash_mid_batch_loses_no_acknowledged_change(tmp_path: Path, backend_name: str) -> None:
    """SIGKILL during a storm of creates: every create answered 201 is in the database
    after a restart, with its audit row, and nothing is half there. Embedded, the
    acknowledged creates are in the WAL, which the writer's commits do not
    checkpoint (amplify_auth_server.checkpoints): SQLite finds them there."""
    with _crash_backend(backend_name, tmp_path) as backend:
        url = backend.store_url
        with running_server(backend) as server:
            acknowledged: list[str] = []

            async def storm() -> None:
                headers = {"Authorization": f"Bearer {server.admin_token}"}
                limits = httpx.Limits(max_connections=32)
                async with httpx.AsyncClient(
                    base_url=server.base_url, headers=headers, limits=limits, timeout=30
                ) as client:
                    slots = asyncio.Semaphore(32)

                    async def one(i: int) -> None:
                        body = {"name": f"storm-{i}", "scopes": ["a"]}
                        async with slots:
                            try:
                                response = await client.post("/auth/tokens", json=body)
                            except httpx.HTTPError:
                                return  # the server died first: not acknowledged
                        if response.status_code == 201:
                            acknowledged.append(response.json()["token_id"])
                            if len(acknowledged) == 150:
                                assert server.process is not None
                                server.process.send_signal(signal.SIGKILL)

                    await asyncio.gather(*(one(i) for i in range(600)))

            asyncio.run(storm())
            assert server.process is not None
            server.process.wait()
            server.process = None
            assert len(acknowledged) >= 150
            server.start()

            async def check() -> tuple[set[str], set[str]]:
                engine = create_engine(url)
                try:
                    async with engine.connect() as connection:
                        stormed = select(tokens.c.id).where(tokens.c.name.like("storm-%"))
                        rows = set((await connection.execute(stormed)).scalars())
                        created = select(audit_log.c.token_id).where(audit_log.c.action == "create")
                        audited = set((await connection.execute(created)).scalars())
                finally:
                    await engine.dispose()
                return rows, audited

            rows, audited = asyncio.run(check())
    assert set(acknowledged) <= rows
    # All or nothing: every token written has its audit row, and every audit row its token.
    assert rows == audited


class Grouped(Command[str]):
    """Groupable, but its group always fails: each must then run alone, and succeed."""

    actor = SYSTEM
    groupable = True

    def __init__(self, name: str) -> None:
        self.name = name

    async def run(self, batch: Batch) -> str:
        minted = await CreateToken(actor=SYSTEM, name=self.name, scopes=("a",)).run(batch)
        return minted.record.name

    @classmethod
    async def run_group(cls, batches: Sequence[Batch], commands: Sequence[Any]) -> list[str]:
        for command, batch in zip(commands, batches, strict=True):
            await command.run(batch)  # written, then taken back with the group's savepoint
        raise RuntimeError("the group fails")


@pytest.mark.anyio
async def test_a_group_that_fails_runs_again_one_command_at_a_time(store: TokenStore) -> None:
    writer = Writer(store, propagation=None)
    outcomes = await writer.run([Grouped(f"g-{i}") for i in range(5)])
    assert [o.value for o in outcomes if isinstance(o, Done)] == [f"g-{i}" for i in range(5)]
    async with store.engine.connect() as connection:
        names = list((await connection.execute(select(tokens.c.name))).scalars())
    assert sorted(names) == [f"g-{i}" for i in range(5)]  # once each, not twice


@pytest.mark.anyio
async def test_creates_waiting_together_are_one_group_with_an_audit_row_each(
    store: TokenStore,
) -> None:
    writer = Writer(store, propagation=None)
    commands = [CreateToken(actor=SYSTEM, name=f"c-{i}", scopes=("a",)) for i in range(30)]
    outcomes = await writer.run(commands)
    minted = [o.value for o in outcomes if isinstance(o, Done)]
    assert [m.record.name for m in minted] == [f"c-{i}" for i in range(30)]
    assert len({m.record.id for m in minted}) == 30
    async with store.engine.connect() as connection:
        audited = set(
            (
                await connection.execute(
                    select(audit_log.c.token_id).where(audit_log.c.action == "create")
                )
            ).scalars()
        )
    assert audited == {m.record.id for m in minted}


@pytest.mark.anyio
async def test_a_batch_of_creates_takes_no_savepoint_and_one_refused_fails_alone(
    store: TokenStore,
) -> None:
    # The whole batch one group: no savepoint (two statements fewer per
    # batch). A create that fails there rolls the batch back whole, and it
    # runs again the usual way, so that the others still commit, once each.
    writer = Writer(store, propagation=None)
    key = Idempotency(key_hash="k" * 64, body_hash="first")
    await writer.run([CreateToken(actor=SYSTEM, name="first", scopes=("a",), idempotency=key)])
    statements: list[str] = []

    def seen(*args: Any) -> None:
        statements.append(args[2])

    event.listen(store.engine.sync_engine, "before_cursor_execute", seen)
    try:
        fine = await writer.run(
            [CreateToken(actor=SYSTEM, name=f"ok-{i}", scopes=("a",)) for i in range(3)]
        )
        assert all(isinstance(o, Done) for o in fine)
        assert not any("SAVEPOINT" in s for s in statements)
        mixed = await writer.run(
            [
                CreateToken(actor=SYSTEM, name="b-0", scopes=("a",)),
                CreateToken(
                    actor=SYSTEM,
                    name="reused",
                    scopes=("a",),
                    idempotency=Idempotency(key_hash=key.key_hash, body_hash="another"),
                ),
                CreateToken(actor=SYSTEM, name="b-2", scopes=("a",)),
            ]
        )
    finally:
        event.remove(store.engine.sync_engine, "before_cursor_execute", seen)
    assert isinstance(mixed[0], Done)
    assert isinstance(mixed[1], IdempotencyKeyReused)
    assert isinstance(mixed[2], Done)
    async with store.engine.connect() as connection:
        names = Counter((await connection.execute(select(tokens.c.name))).scalars())
        audited = await connection.scalar(
            select(func.count()).select_from(audit_log).where(audit_log.c.action == "create")
        )
    assert names == Counter(["first", "ok-0", "ok-1", "ok-2", "b-0", "b-2"])
    assert audited == 6


#: Only on PostgreSQL, the database with row locks.
on_postgres = pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


async def _waiting_for_a_lock(connection: AsyncConnection) -> None:
    """Until another session of this database waits on a row lock (what the test
    synchronises on: the writer has reached the row the test holds)."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
    )
    async with asyncio.timeout(10):
        # Polled: the database is the only one that knows; there is no event.
        while not await connection.scalar(query):  # noqa: ASYNC110
            await asyncio.sleep(0.01)


DEADLOCKS = text("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")


async def _two_tokens(store: TokenStore) -> tuple[str, str]:
    writer = Writer(store, propagation=None)
    outcomes = await writer.run(
        [CreateToken(actor=SYSTEM, name=n, scopes=("a",)) for n in ("x", "y")]
    )
    low, high = sorted(o.value.record.id for o in outcomes if isinstance(o, Done))
    return low, high


async def _crossing(
    store: TokenStore, database_url: str, low: str, high: str, batch: list[Command[Any]]
) -> tuple[list[Done[Any] | BaseException], int]:
    """Another replica holds ``low`` and will want ``high``, while we run ``batch``, which
    asks for ``high`` first: its outcomes, and the deadlocks PostgreSQL had to break."""
    other = create_engine(database_url)
    try:
        async with other.connect() as replica, other.connect() as watcher:
            await replica.begin()
            # PostgreSQL breaks a deadlock in the session whose wait first
            # outlasts its deadlock_timeout; the replica's is long, so that
            # this is ours however late the replica's request comes (on a
            # loaded machine it once came after ours had checked, and the
            # replica was the one failed).
            await replica.execute(text("SET LOCAL deadlock_timeout = '60s'"))
            await store.lock(replica, low)
            ours = asyncio.ensure_future(Writer(store, propagation=None).run(batch))
            await _waiting_for_a_lock(watcher)
            before = await watcher.scalar(DEADLOCKS)
            await store.lock(replica, high)
            await replica.commit()
            outcomes = await ours
            await watcher.execute(text("SELECT pg_stat_clear_snapshot()"))
            return outcomes, await watcher.scalar(DEADLOCKS) - before
    finally:
        await other.dispose()


@on_postgres
@pytest.mark.anyio
async def test_batches_take_row_locks_in_one_order_so_replicas_never_deadlock(
    store: TokenStore, database_url: str
) -> None:
    # Locked in arrival order this is a deadlock; in id order ours waits.
    low, high = await _two_tokens(store)
    batch: list[Command[Any]] = [
        RevokeToken(actor=SYSTEM, token_id=high),
        RevokeToken(actor=SYSTEM, token_id=low),
    ]
    outcomes, deadlocks = await _crossing(store, database_url, low, high, batch)
    assert deadlocks == 0
    assert [o.value.id for o in outcomes if isinstance(o, Done)] == [high, low]
    assert all(o.value.revoked_at is not None for o in outcomes if isinstance(o, Done))


class LockRow(Command[str]):
    """Locks a row without declaring it (``locks``): a batch of these can deadlock."""

    actor = SYSTEM

    def __init__(self, token_id: str) -> None:
        self.token_id = token_id

    async def run(self, batch: Batch) -> str:
        record = await batch.store.lock(batch.connection, self.token_id)
        assert record is not None
        return record.id


@on_postgres
@pytest.mark.anyio
async def test_a_batch_aborted_by_a_deadlock_runs_again_one_command_at_a_time(
    store: TokenStore, database_url: str
) -> None:
    low, high = await _two_tokens(store)
    batch: list[Command[Any]] = [LockRow(high), LockRow(low)]
    outcomes, deadlocks = await _crossing(store, database_url, low, high, batch)
    # PostgreSQL failed the session that waited first, ours; it ran again.
    assert deadlocks == 1
    assert [o.value for o in outcomes if isinstance(o, Done)] == [high, low]


@pytest.mark.anyio
async def test_a_batch_settles_its_outbox_rows_in_one_go_each_up_to_its_version(
    store: TokenStore,
) -> None:
    # After a batch's propagation, its tokens' outbox rows go in one
    # statement; a row of a newer version (a later batch's change, not yet
    # applied) stays to be replayed.
    now = utcnow()
    hashes = [f"{i:064x}" for i in range(4)]
    async with store.transaction() as connection:
        for token_hash, version in zip(hashes, (1, 1, 3, 1), strict=True):
            await store.outbox_add(connection, token_hash, version, now)
    await store.outbox_done_many([(hashes[0], 1), (hashes[1], 2), (hashes[2], 2)])
    assert set(await store.outbox_pending()) == {hashes[2], hashes[3]}
