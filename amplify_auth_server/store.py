"""Reads and writes of token records and the audit log: the only module that speaks SQL.

Reads are called from anywhere; the write methods are called only by the
command writer (see :mod:`amplify_auth_server.commands`). Writes are
conditional on the row's ``version`` so that several server processes on
one database stay consistent: the database, not the in-process queue, is
what serialises two replicas touching the same token.

Database failures become :class:`~amplify_auth_server.errors.DatabaseUnavailable`
here, at the boundary, so callers see one error type whatever the driver.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any, Final

import orjson
from sqlalchemy import (
    ColumnElement,
    any_,
    bindparam,
    cast,
    delete,
    exists,
    func,
    insert,
    literal,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from amplify_auth_server.errors import DatabaseUnavailable
from amplify_auth_server.models import Actor, AuditRecord, TokenRecord
from amplify_auth_server.pages import AuditFilter, AuditPosition, TokenFilter, TokenPosition
from amplify_auth_server.tables import (
    audit_log,
    cache_outbox,
    idempotency_keys,
    installation,
    tokens,
)

# Built once: the miss path then only binds a value to a cached compilation.
_BY_HASH: Final = select(tokens).where(tokens.c.token_hash == bindparam("token_hash"))
_BY_ID: Final = select(tokens).where(tokens.c.id == bindparam("token_id"))


@asynccontextmanager
async def _mapped_errors() -> AsyncIterator[None]:
    """Driver errors become DatabaseUnavailable; integrity errors stay themselves."""
    try:
        yield
    except IntegrityError:
        raise
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        raise DatabaseUnavailable() from exc


class ConcurrentUpdate(Exception):
    """The row moved on between read and write; the command retries."""


#: SQLSTATEs of a transaction PostgreSQL aborted to break a cycle of lock
#: waits (deadlock_detected) or a serialisation conflict: nothing of it
#: committed, so running its work again is safe.
_ABORTED_FOR_OTHERS: Final = frozenset({"40P01", "40001"})


def aborted_for_others(exc: BaseException) -> bool:
    """Whether ``exc`` is a transaction the database rolled back because of another one."""
    cause = exc.__cause__ if isinstance(exc, DatabaseUnavailable) else exc
    orig = getattr(cause, "orig", None)
    return getattr(orig, "sqlstate", None) in _ABORTED_FOR_OTHERS


class TokenStore:
    """Token records, the audit log and the cache outbox, in the database.

    Two pools: validation misses read from ``engine``; the writer, health
    checks and the outbox use ``write_engine``, so that a flood of misses
    (distinct garbage tokens, each a lookup) cannot starve a revocation.
    """

    def __init__(self, engine: AsyncEngine, write_engine: AsyncEngine | None = None) -> None:
        self.engine = engine
        self.write_engine = write_engine or engine
        # Marked, so that SQLite begins these with BEGIN IMMEDIATE (database.py).
        self._writing = self.write_engine.execution_options(amplify_writer=True)
        # Reads need no transaction. On PostgreSQL, autocommit saves the
        # BEGIN and the ROLLBACK around each lookup: a third of a miss.
        self._reader = (
            engine.execution_options(isolation_level="AUTOCOMMIT")
            if engine.dialect.name == "postgresql"
            else engine
        )

    @asynccontextmanager
    async def _connect(self) -> AsyncIterator[AsyncConnection]:
        async with _mapped_errors(), self._reader.connect() as connection:
            yield connection

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """One write transaction; committed when the block ends without error."""
        async with _mapped_errors(), self._writing.begin() as connection:
            yield connection

    # -- reads ---------------------------------------------------------------

    async def get_by_hash(self, token_hash: str) -> TokenRecord | None:
        """The validation miss path: one indexed lookup, retried once on a dead connection."""
        for attempt in (1, 2):
            try:
                async with self._connect() as connection:
                    result = await connection.execute(_BY_HASH, {"token_hash": token_hash})
                    row = result.first()
                    return None if row is None else TokenRecord.from_row(row)
            except DatabaseUnavailable as exc:
                # A connection the database closed (restart, failover) is
                # invalidated by SQLAlchemy; a second try gets a fresh one.
                cause = exc.__cause__
                if attempt == 1 and isinstance(cause, DBAPIError) and cause.connection_invalidated:
                    continue
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def get(self, token_id: str) -> TokenRecord | None:
        async with self._connect() as connection:
            row = (await connection.execute(_BY_ID, {"token_id": token_id})).first()
        return None if row is None else TokenRecord.from_row(row)

    async def token_page(
        self, filters: TokenFilter, *, after: TokenPosition | None, limit: int, now: datetime
    ) -> list[TokenRecord]:
        """Up to ``limit`` tokens matching ``filters``, newest first, strictly after ``after``."""
        query = (
            select(tokens)
            .where(*self.token_conditions(filters, now))
            .order_by(tokens.c.created_at.desc(), tokens.c.id.desc())
            .limit(limit)
        )
        if after is not None:
            query = query.where(tuple_(tokens.c.created_at, tokens.c.id) < tuple_(*after))
        async with self._connect() as connection:
            rows = (await connection.execute(query)).all()
        return [TokenRecord.from_row(row) for row in rows]

    def token_conditions(self, filters: TokenFilter, now: datetime) -> list[ColumnElement[bool]]:
        """The WHERE clause of ``filters``, in this database's dialect."""
        conditions: list[ColumnElement[bool]] = []
        live = tokens.c.revoked_at.is_(None)
        unexpired = tokens.c.expires_at.is_(None) | (tokens.c.expires_at > now)
        if filters.status == "active":
            conditions += [live, unexpired]
        elif filters.status == "revoked":
            conditions.append(tokens.c.revoked_at.is_not(None))
        elif filters.status == "expired":
            conditions += [live, tokens.c.expires_at <= now]
        if filters.owner is not None:
            conditions.append(tokens.c.owner == filters.owner)
        if filters.name is not None:
            prefix = filters.name.lower()
            for special in ("\\", "%", "_"):
                prefix = prefix.replace(special, "\\" + special)
            conditions.append(func.lower(tokens.c.name).like(prefix + "%", escape="\\"))
        if filters.scope is not None:
            conditions.append(self._holds(filters.scope))
        if filters.expires_within_days is not None:
            horizon = now + timedelta(days=filters.expires_within_days)
            conditions.append(tokens.c.expires_at <= horizon)
        return conditions

    def _holds(self, scope: str) -> ColumnElement[bool]:
        if self.engine.dialect.name == "postgresql":
            # jsonb containment, which the GIN index of migration 0003 serves.
            return tokens.c.scopes.op("@>")(cast(literal(orjson.dumps([scope]).decode()), JSONB))
        held = func.json_each(tokens.c.scopes).table_valued("value")
        return exists(select(literal(1)).select_from(held).where(held.c.value == scope))

    async def audit_page(
        self, filters: AuditFilter, *, after: AuditPosition | None, limit: int
    ) -> list[AuditRecord]:
        """Up to ``limit`` audit entries matching ``filters``, newest first, after ``after``."""
        query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
        if after is not None:
            query = query.where(audit_log.c.id < after)
        if filters.token_id is not None:
            query = query.where(audit_log.c.token_id == filters.token_id)
        if filters.owner is not None:
            query = query.where(audit_log.c.owner == filters.owner)
        if filters.action is not None:
            query = query.where(audit_log.c.action == filters.action)
        if filters.actor is not None:
            query = query.where(audit_log.c.actor_id == filters.actor)
        if filters.since is not None:
            query = query.where(audit_log.c.at >= filters.since)
        if filters.until is not None:
            query = query.where(audit_log.c.at < filters.until)
        async with self._connect() as connection:
            rows = (await connection.execute(query)).all()
        return [
            AuditRecord(
                id=row.id,
                at=row.at,
                actor_id=row.actor_id,
                actor_name=row.actor_name,
                action=row.action,
                token_id=row.token_id,
                details=row.details,
            )
            for row in rows
        ]

    async def ping(self) -> None:
        async with _mapped_errors(), self.write_engine.connect() as connection:
            await connection.exec_driver_sql("SELECT 1")

    async def instance_id(self) -> str:
        """This database's installation id (written by the migrations)."""
        async with self._connect() as connection:
            value = await connection.scalar(select(installation.c.instance_id))
        if value is None:
            raise DatabaseUnavailable("the database has no installation row; run the migrations")
        return str(value)

    # -- the cache outbox ------------------------------------------------------

    @staticmethod
    async def outbox_add(
        connection: AsyncConnection, token_hash: str, version: int, now: datetime
    ) -> None:
        """Record, in the change's own transaction, that Redis must learn ``version``."""
        await connection.execute(
            delete(cache_outbox).where(cache_outbox.c.token_hash == token_hash)
        )
        await connection.execute(
            insert(cache_outbox).values(token_hash=token_hash, version=version, created_at=now)
        )

    async def outbox_pending(self) -> dict[str, datetime]:
        """Token hashes whose new state Redis may not hold yet, with when they changed."""
        async with _mapped_errors(), self.write_engine.connect() as connection:
            rows = (await connection.execute(select(cache_outbox))).all()
        return {row.token_hash: row.created_at for row in rows}

    async def outbox_done(self, token_hash: str, version: int) -> None:
        """Redis holds ``version`` (or newer): nothing left to replay for it."""
        await self.outbox_done_many([(token_hash, version)])

    async def outbox_done_many(self, settled: Sequence[tuple[str, int]]) -> None:
        """:meth:`outbox_done` for a batch's tokens, in one transaction."""
        async with self.transaction() as connection:
            for token_hash, version in settled:
                await connection.execute(
                    delete(cache_outbox).where(
                        cache_outbox.c.token_hash == token_hash, cache_outbox.c.version <= version
                    )
                )

    # -- writes (command writer only) ----------------------------------------

    @staticmethod
    async def insert(connection: AsyncConnection, record: TokenRecord) -> TokenRecord:
        await connection.execute(insert(tokens).values(**_columns(record)))
        return record

    @staticmethod
    async def insert_many(connection: AsyncConnection, records: Sequence[TokenRecord]) -> None:
        """:meth:`insert` for many records, in one statement (an executemany)."""
        if records:
            await connection.execute(insert(tokens), [_columns(record) for record in records])

    @staticmethod
    async def lock(connection: AsyncConnection, token_id: str) -> TokenRecord | None:
        """Read a row for update (a row lock on PostgreSQL; SQLite locks the file)."""
        query = _BY_ID.with_for_update() if connection.dialect.name == "postgresql" else _BY_ID
        row = (await connection.execute(query, {"token_id": token_id})).first()
        return None if row is None else TokenRecord.from_row(row)

    @staticmethod
    async def lock_all(connection: AsyncConnection, token_ids: Sequence[str]) -> None:
        """Lock these rows in id order, in one statement.

        Two replicas' batches that lock the same rows, each in the order its
        requests arrived, would wait for each other (a deadlock PostgreSQL
        breaks by failing one). Taken in one order, the second waits for the
        first to commit, then goes on. SQLite's writer holds the whole file.
        """
        if connection.dialect.name != "postgresql" or not token_ids:
            return
        # One array parameter, not one per id: a batch may lock thousands.
        await connection.execute(
            select(tokens.c.id)
            .where(tokens.c.id == any_(bindparam("ids", type_=ARRAY(tokens.c.id.type))))
            .order_by(tokens.c.id)
            .with_for_update(),
            {"ids": sorted(set(token_ids))},
        )

    @staticmethod
    async def find_hash(connection: AsyncConnection, token_hash: str) -> TokenRecord | None:
        row = (await connection.execute(_BY_HASH, {"token_hash": token_hash})).first()
        return None if row is None else TokenRecord.from_row(row)

    @staticmethod
    async def update(
        connection: AsyncConnection, current: TokenRecord, **values: Any
    ) -> TokenRecord:
        """Write ``values`` if the row is still at ``current.version``, else conflict."""
        result = await connection.execute(
            update(tokens)
            .where(tokens.c.id == current.id, tokens.c.version == current.version)
            .values(version=current.version + 1, **values)
            .returning(*tokens.c)
        )
        row = result.first()
        if row is None:
            # Another replica changed the row between our read and write; the
            # row lock makes this impossible on PostgreSQL, so it means a
            # concurrent writer on SQLite. The caller retries from a fresh read.
            raise ConcurrentUpdate(current.id)
        return TokenRecord.from_row(row)

    @staticmethod
    async def record(
        connection: AsyncConnection,
        *,
        at: datetime,
        actor: Actor,
        action: str,
        token_id: str | None,
        details: dict[str, Any],
        owner: str | None = None,
    ) -> None:
        """One audit entry; ``owner``: the owner of the token it is about."""
        await connection.execute(
            insert(audit_log).values(
                at=at,
                actor_id=actor.id,
                actor_name=actor.name,
                action=action,
                token_id=token_id,
                details=details,
                owner=owner,
            )
        )

    # -- idempotency keys (command writer only) --------------------------------

    @staticmethod
    async def earlier_creates(
        connection: AsyncConnection, keys: Sequence[tuple[str, str]], since: datetime
    ) -> dict[tuple[str, str], tuple[str, TokenRecord]]:
        """For each ``(actor_id, key_hash)`` remembered since ``since``: the body hash
        it was sent with, and the token it created (as the token is now)."""
        if not keys:
            return {}
        query = (
            select(idempotency_keys.c.actor_id, idempotency_keys.c.key_hash)
            .add_columns(idempotency_keys.c.body_hash, *tokens.c)
            .join(tokens, tokens.c.id == idempotency_keys.c.token_id)
            .where(
                tuple_(idempotency_keys.c.actor_id, idempotency_keys.c.key_hash).in_(
                    sorted(set(keys))
                ),
                idempotency_keys.c.created_at >= since,
            )
        )
        rows = (await connection.execute(query)).all()
        return {
            (row.actor_id, row.key_hash): (row.body_hash, TokenRecord.from_row(row)) for row in rows
        }

    @staticmethod
    async def remember_creates(
        connection: AsyncConnection, entries: Sequence[tuple[str, str, str, str]], at: datetime
    ) -> None:
        """Remember ``(actor_id, key_hash, body_hash, token_id)`` entries, in one statement.

        Their primary key is the backstop against two replicas minting for one
        key: the second insert raises :class:`IntegrityError`.
        """
        if entries:
            await connection.execute(
                insert(idempotency_keys),
                [
                    {
                        "actor_id": actor_id,
                        "key_hash": key_hash,
                        "body_hash": body_hash,
                        "token_id": token_id,
                        "created_at": at,
                    }
                    for actor_id, key_hash, body_hash, token_id in entries
                ],
            )

    @staticmethod
    async def forget_creates_before(connection: AsyncConnection, before: datetime) -> None:
        """Drop the keys older than the window (an index range: usually nothing)."""
        await connection.execute(
            delete(idempotency_keys).where(idempotency_keys.c.created_at < before)
        )

    # -- bulk writes (command writer only) -------------------------------------

    @staticmethod
    async def revoke_many(
        connection: AsyncConnection,
        token_ids: Sequence[str],
        now: datetime,
        *,
        owner: str | None = None,
    ) -> tuple[list[TokenRecord], set[str]]:
        """Revoke the active tokens among ``token_ids``: the updated rows, and the ids
        that exist at all (the others are no token). With ``owner``, only that
        owner's tokens exist here: another's are no token, and stay as they are.

        The rows are locked first (``FOR UPDATE`` on PostgreSQL; SQLite's
        writer holds the database), so the update sees exactly what was read.
        """
        mine: list[ColumnElement[bool]] = [tokens.c.id.in_(token_ids)]
        if owner is not None:
            mine.append(tokens.c.owner == owner)
        query = select(tokens.c.id).where(*mine)
        if connection.dialect.name == "postgresql":
            # In id order, as lock_all takes them (see there).
            query = query.order_by(tokens.c.id).with_for_update()
        existing = set((await connection.execute(query)).scalars())
        result = await connection.execute(
            update(tokens)
            .where(*mine, tokens.c.revoked_at.is_(None))
            .values(revoked_at=now, version=tokens.c.version + 1)
            .returning(*tokens.c)
        )
        return [TokenRecord.from_row(row) for row in result.all()], existing

    @staticmethod
    async def record_many(
        connection: AsyncConnection,
        *,
        at: datetime,
        action: str,
        entries: Sequence[tuple[Actor, str | None, dict[str, Any], str | None]],
    ) -> None:
        """One audit row per ``(actor, token_id, details, owner)``, in one statement."""
        if entries:
            await connection.execute(
                insert(audit_log),
                [
                    {
                        "at": at,
                        "actor_id": actor.id,
                        "actor_name": actor.name,
                        "action": action,
                        "token_id": token_id,
                        "details": details,
                        "owner": owner,
                    }
                    for actor, token_id, details, owner in entries
                ],
            )

    @staticmethod
    async def outbox_add_many(
        connection: AsyncConnection, records: Sequence[TokenRecord], now: datetime
    ) -> None:
        """:meth:`outbox_add` for many tokens, in two statements."""
        if not records:
            return
        hashes = [record.token_hash for record in records]
        await connection.execute(delete(cache_outbox).where(cache_outbox.c.token_hash.in_(hashes)))
        await connection.execute(
            insert(cache_outbox),
            [
                {"token_hash": r.token_hash, "version": r.version, "created_at": now}
                for r in records
            ],
        )

    async def matching_ids(self, filters: TokenFilter, now: datetime) -> list[str]:
        """The ids of every token matching ``filters``: what a bulk revocation names."""
        query = select(tokens.c.id).where(*self.token_conditions(filters, now))
        async with self._connect() as connection:
            return list((await connection.execute(query)).scalars())


def _columns(record: TokenRecord) -> dict[str, Any]:
    """A record as the ``tokens`` table's columns."""
    return {
        "id": record.id,
        "token_hash": record.token_hash,
        "name": record.name,
        "scopes": list(record.scopes),
        "description": record.description,
        "metadata": record.metadata,
        "created_at": record.created_at,
        "expires_at": record.expires_at,
        "revoked_at": record.revoked_at,
        "version": record.version,
        "created_by": record.created_by,
        "owner": record.owner,
        "replaced_by": record.replaced_by,
        "rotated_from": record.rotated_from,
        "finish_when_idle_seconds": record.finish_when_idle_seconds,
    }
