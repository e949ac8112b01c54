"""The embedded database's WAL: the writer's commits leave it to the rounds beside them,
which copy it into the database; the writer, between batches, makes a long one start
over; no write waits for a reader or a round (amplify_auth_server.checkpoints)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from amplify_auth_server.checkpoints import WalCheckpoints
from amplify_auth_server.commands import CommandQueue, CreateToken, Writer
from amplify_auth_server.database import create_engine, migrate
from amplify_auth_server.metrics import Metrics
from amplify_auth_server.models import SYSTEM
from amplify_auth_server.store import TokenStore
from tests.server.conftest import in_process
from tests.support.server import Backend
from tests.support.services import fresh_database


class Embedded:
    """An embedded database as the served process opens it: a read pool of one (so
    that a test sees the connection the checkpoints used) and a writer that does not
    checkpoint."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = f"sqlite:///{path}"
        self.reads = create_engine(self.url, pool_size=1)
        self.writes = create_engine(self.url, pool_size=2, autocheckpoint=False)
        self.writer = Writer(TokenStore(self.reads, self.writes), propagation=None)

    async def create(self, count: int) -> None:
        """``count`` creates, in batches of 50."""
        for start in range(0, count, 50):
            await self.writer.run(
                [
                    CreateToken(actor=SYSTEM, name=f"wal-{i}", scopes=("a",))
                    for i in range(start, min(count, start + 50))
                ]
            )

    def log_bytes(self) -> int:
        wal = self.path.with_name(self.path.name + "-wal")
        return wal.stat().st_size if wal.exists() else 0


@pytest.fixture
async def embedded(tmp_path: Path) -> AsyncIterator[Embedded]:
    database = Embedded(tmp_path / "wal.db")
    await migrate(database.writes)
    yield database
    await database.writes.dispose()
    await database.reads.dispose()


async def _pragma(engine: AsyncEngine, name: str) -> int:
    async with engine.connect() as connection:
        return int((await connection.exec_driver_sql(f"PRAGMA {name}")).scalar_one())


@pytest.mark.anyio
async def test_the_writer_leaves_the_log_whole_and_a_round_copies_all_of_it(
    embedded: Embedded,
) -> None:
    assert await _pragma(embedded.writes, "wal_autocheckpoint") == 0
    # Every other engine keeps SQLite's own checkpoints (the CLI, migrations).
    assert await _pragma(embedded.reads, "wal_autocheckpoint") == 1000
    # Past SQLite's 1,000 pages: a commit of a default connection would
    # have copied the log back and started it over.
    # (The writer's part, with the log past its 100 pages, would copy it.)
    await embedded.create(1500)
    checkpoints = WalCheckpoints(embedded.reads, embedded.writes, restart_pages=10**9)
    assert await checkpoints.once() is None  # nothing written, as far as it knows
    assert await checkpoints.between_batches() is None  # short enough for the writer
    done = await checkpoints.once()
    assert done is not None
    assert done.log_pages > 1000
    assert done.checkpointed_pages == done.log_pages
    assert not done.busy


@pytest.mark.parametrize("writer_checkpoints", [False, True])
@pytest.mark.anyio
async def test_the_writers_checkpoint_between_batches_makes_a_long_log_start_over(
    embedded: Embedded, writer_checkpoints: bool
) -> None:
    # A round beside a busy writer copies, but the writer has always
    # written more by the time it is done, so the log never starts over
    # (benchmarks/README.md saw it reach 250 MB in 8 s of creates). Here a
    # reader's snapshot plays the busy writer: the round cannot copy the
    # pages after it.
    restart_pages = 100 if writer_checkpoints else 10**9
    checkpoints = WalCheckpoints(embedded.reads, embedded.writes, restart_pages=restart_pages)
    await embedded.create(100)
    reader = sqlite3.connect(embedded.path, isolation_level=None)
    try:
        reader.execute("BEGIN")
        before = reader.execute("SELECT count(*) FROM tokens").fetchone()[0]
        # No write waits for the reader, nor for the round.
        await embedded.create(200)
        # (No round has measured the log yet: the writer copies nothing.)
        assert await checkpoints.between_batches() is None
        beside = await checkpoints.once()
        assert beside is not None
        assert beside.checkpointed_pages < beside.log_pages
        assert reader.execute("SELECT count(*) FROM tokens").fetchone()[0] == before
    finally:
        reader.close()
    done = await checkpoints.between_batches()
    if writer_checkpoints:
        assert done is not None
        assert done.checkpointed_pages == done.log_pages
    else:
        assert done is None
    await embedded.create(10)
    await checkpoints.between_batches()
    after = await checkpoints.once()
    assert after is not None
    if writer_checkpoints:
        # Started over: the log holds the last ten creates only.
        assert after.log_pages < beside.log_pages / 4
    else:
        assert after.log_pages > beside.log_pages


@pytest.mark.anyio
async def test_a_short_log_costs_the_writer_nothing_and_an_idle_server_no_round(
    embedded: Embedded,
) -> None:
    checkpoints = WalCheckpoints(embedded.reads, embedded.writes, restart_pages=10**9)
    await embedded.create(50)
    assert await checkpoints.between_batches() is None
    first = await checkpoints.once()
    assert first is not None
    assert first.log_pages > 0
    # Nothing written since: no round.
    assert await checkpoints.once() is None
    # The log as the round measured it is short: the writer copies nothing.
    assert await checkpoints.between_batches() is None


@pytest.mark.anyio
async def test_the_served_app_checkpoints_beside_its_writer_only_when_embedded(
    tmp_path: Path,
) -> None:
    async with in_process(Backend("embedded", tmp_path)) as (_, services):
        assert await _pragma(services.store.write_engine, "wal_autocheckpoint") == 0
        assert await _pragma(services.store.engine, "wal_autocheckpoint") == 1000
        names = {t.get_name() for t in asyncio.all_tasks()}
    assert "amplify-auth-wal-checkpoints" in names


@pytest.mark.postgres
def test_on_postgresql_there_is_no_checkpoint_task(tmp_path: Path) -> None:
    async def tasks(url: str) -> set[str]:
        async with in_process(Backend("postgres", tmp_path, url)):
            return {t.get_name() for t in asyncio.all_tasks()}

    with fresh_database() as url:
        names = asyncio.run(tasks(url))
    assert "amplify-auth-wal-checkpoints" not in names
    assert "amplify-auth-writer" in names  # the app did start


@pytest.mark.anyio
async def test_the_queue_runs_the_writers_part_after_each_batch_and_survives_its_failure(
    embedded: Embedded,
) -> None:
    calls = []

    async def between() -> None:
        calls.append(len(calls))
        raise RuntimeError("the checkpoint failed")

    queue = CommandQueue(embedded.writer, Metrics(), between_batches=between)
    queue.start()
    try:
        for i in range(3):
            minted = await queue.submit(CreateToken(actor=SYSTEM, name=f"after-{i}", scopes=("a",)))
            assert minted.record.name == f"after-{i}"
    finally:
        await queue.stop()
    assert calls == [0, 1, 2]


@pytest.mark.anyio
async def test_a_failing_checkpoint_is_logged_once_and_its_recovery_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A database SQLite cannot open (its directory does not exist yet).
    path = tmp_path / "later" / "wal.db"
    engine = create_engine(f"sqlite:///{path}", pool_size=1)
    try:
        checkpoints = WalCheckpoints(engine, engine, restart_pages=1)
        with caplog.at_level("INFO", logger="amplify_auth_server.checkpoints"):
            for _ in range(3):
                # Each round fails; the first says so.
                assert await checkpoints.between_batches() is None
                assert await checkpoints.once() is None
            assert [r.getMessage() for r in caplog.records] == [
                "the WAL checkpoint failed (OperationalError); retrying"
            ]
            path.parent.mkdir()
            await checkpoints.between_batches()
            assert await checkpoints.once() is not None
        assert [r.getMessage() for r in caplog.records][1:] == ["the WAL checkpoint works again"]
    finally:
        await engine.dispose()
