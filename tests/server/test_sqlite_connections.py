"""SQLite connections go back to the pool with no transaction open, however their
transaction ended, a failed commit included.

A connection left inside a transaction would hold the database's write lock
(the writer begins with ``BEGIN IMMEDIATE``): every other writer, the CLI
and a migration included, would wait on it and then fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from amplify_auth_server.database import create_engine


async def _in_transaction(engine: AsyncEngine) -> bool:
    """Whether the pool's one connection is inside a transaction, as SQLite sees it."""
    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()
        return bool(raw.driver_connection.in_transaction)  # type: ignore[union-attr]


def _another_writer_can_begin(path: Path) -> bool:
    """Whether a second connection takes the write lock at once (no busy wait)."""
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        other.close()


class _Refused(Exception):
    pass


def test_every_way_a_transaction_ends_leaves_the_connection_outside_one(
    tmp_path: Path,
) -> None:
    path = tmp_path / "auth.db"

    async def run() -> list[tuple[str, bool, bool]]:
        engine = create_engine(f"sqlite:///{path}", pool_size=1)
        writer = engine.execution_options(amplify_writer=True)
        seen: list[tuple[str, bool, bool]] = []

        async def look(case: str) -> None:
            seen.append((case, await _in_transaction(engine), _another_writer_can_begin(path)))

        try:
            async with writer.begin() as connection:
                await connection.execute(text("CREATE TABLE t (x INTEGER)"))
            async with writer.begin() as connection:
                await connection.execute(text("INSERT INTO t VALUES (1)"))
            await look("committed")
            with contextlib.suppress(_Refused):
                async with writer.begin() as connection:
                    await connection.execute(text("INSERT INTO t VALUES (2)"))
                    raise _Refused()
            await look("rolled back")
            async with writer.connect() as connection:
                # Begun by the insert, never committed: closed mid-transaction.
                await connection.execute(text("INSERT INTO t VALUES (3)"))
            await look("closed inside a write")
            async with engine.connect() as connection:
                await connection.execute(text("SELECT x FROM t"))
            await look("read")
            async with engine.connect() as connection:
                rows = (await connection.execute(text("SELECT x FROM t"))).scalars().all()
            seen.append((f"rows {list(rows)}", False, True))  # only the committed write
        finally:
            await engine.dispose()
        return seen

    assert asyncio.run(run()) == [
        ("committed", False, True),
        ("rolled back", False, True),
        ("closed inside a write", False, True),
        ("read", False, True),
        ("rows [1]", False, True),
    ]


def test_a_commit_that_fails_leaves_no_transaction_behind(tmp_path: Path) -> None:
    # SQLite keeps the transaction open when COMMIT fails (a deferred foreign
    # key here), while SQLAlchemy stops tracking it: the pool's rollback on
    # return is what ends it, so the next writer can begin.
    path = tmp_path / "auth.db"

    async def run() -> tuple[bool, int]:
        engine = create_engine(f"sqlite:///{path}", pool_size=1)
        writer = engine.execution_options(amplify_writer=True)
        try:
            async with writer.begin() as connection:
                await connection.execute(text("CREATE TABLE p (id INTEGER PRIMARY KEY)"))
                await connection.execute(
                    text(
                        "CREATE TABLE c (id INTEGER PRIMARY KEY, "
                        "p INTEGER REFERENCES p (id) DEFERRABLE INITIALLY DEFERRED)"
                    )
                )
            failed = False
            try:
                async with writer.begin() as connection:
                    await connection.execute(text("INSERT INTO c VALUES (1, 99)"))
            except IntegrityError:
                failed = True
            async with writer.begin() as connection:
                rows = (await connection.execute(text("SELECT count(*) FROM c"))).scalar_one()
        finally:
            await engine.dispose()
        return failed, int(rows)

    assert asyncio.run(run()) == (True, 0)
    assert _another_writer_can_begin(path)
