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
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

import orjson
from sqlalchemy import (
    ColumnElement,
    Select,
    Subquery,
    and_,
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
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.util import ClauseAdapter

from amplify_auth_server.errors import DatabaseUnavailable
from amplify_auth_server.models import Actor, AuditRecord, PendingWebhook, TokenRecord
from amplify_auth_server.pages import AuditFilter, AuditPosition, TokenFilter, TokenPosition
from amplify_auth_server.tables import (
    audit_log,
    cache_outbox,
    idempotency_keys,
    installation,
    token_usage,
    tokens,
    webhook_outbox,
)

# Built once: the miss path then only binds a value to a cached compilation.
_BY_HASH: Final = select(tokens).where(tokens.c.token_hash == bindparam("token_hash"))
_BY_ID: Final = select(tokens).where(tokens.c.id == bindparam("token_id"))
#: Built once, with their parameters apart: a statement built per call (or
#: with ``.values()``) is a new cache key to compute at each execution, and
#: the writer inserts two rows per create.
_INSERT_TOKENS: Final = insert(tokens)
_INSERT_AUDIT: Final = insert(audit_log)
_OUTBOX_DONE: Final = delete(cache_outbox).where(
    cache_outbox.c.token_hash == bindparam("hash"), cache_outbox.c.version <= bindparam("version")
)
#: Token ids per statement of a usage flush (SQLite's parameter limit is far above).
_USAGE_CHUNK: Final = 1000


#: How recently a token must have been used to be worth a ``token.expiring``.
EXPIRING_USED_WITHIN: Final = timedelta(days=7)

#: Tokens a filtered page on SQLite looks through in creation order before it
#: turns to the filter's own index (see TokenStore._windowed_page): a few
#: milliseconds' reading, and 1 in 50 matching fills a page of 100 within it.
SCAN_WINDOW: Final = 5_000


def _page(
    conditions: Sequence[ColumnElement[bool]], after: TokenPosition | None, limit: int
) -> Select[Any]:
    """Up to ``limit`` tokens meeting ``conditions``, newest first, strictly after ``after``."""
    query = select(tokens).where(*conditions)
    if after is not None:
        query = query.where(tuple_(tokens.c.created_at, tokens.c.id) < tuple_(*after))
    return query.order_by(tokens.c.created_at.desc(), tokens.c.id.desc()).limit(limit)


def _on(window: Subquery, conditions: Sequence[ColumnElement[bool]]) -> list[ColumnElement[bool]]:
    """``conditions`` (on the tokens table) as conditions on ``window``'s columns."""
    adapter = ClauseAdapter(window)
    return [adapter.traverse(condition) for condition in conditions]


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
        #: See :data:`SCAN_WINDOW` (a test makes it small, to reach the index with few rows).
        self.scan_window = SCAN_WINDOW
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
        conditions = self.token_conditions(filters, now)
        index = self._narrowing_index(filters)
        async with self._connect() as connection:
            if index is None:
                rows = (await connection.execute(_page(conditions, after, limit))).all()
            else:
                rows = await self._windowed_page(connection, conditions, index, after, limit)
        return [TokenRecord.from_row(row) for row in rows]

    def _narrowing_index(self, filters: TokenFilter) -> str | None:
        """On SQLite, the index of a filter that can narrow a page better than creation
        order can (see :meth:`_windowed_page`); None elsewhere, and on PostgreSQL,
        whose planner knows from its statistics which way is shorter."""
        if self.engine.dialect.name != "sqlite":
            return None
        if filters.name is not None:
            return "ix_tokens_lower_name"
        if filters.expires_within_days is not None:
            return "ix_tokens_expires_at"
        return None

    async def _windowed_page(
        self,
        connection: AsyncConnection,
        conditions: list[ColumnElement[bool]],
        index: str,
        after: TokenPosition | None,
        limit: int,
    ) -> Sequence[Any]:
        """A page through a window of creation order first, then the filter's own index.

        SQLite's planner has no statistics on how many rows a name prefix or
        an expiry range matches, and both of its plans are bad on one side: the
        creation index walks a million rows for a rare prefix, the filter's
        index sorts a million for a common one. So: the matches among the next
        :data:`SCAN_WINDOW` tokens in creation order (cheap, and the whole
        page when the filter is common); only if they fall short, the rest
        from the filter's index, past the window, where the filter has just
        shown itself rare (fewer than ``limit`` in the window), so that the
        sort is short.
        """
        order = (tokens.c.created_at.desc(), tokens.c.id.desc())
        position = [] if after is None else [tuple_(tokens.c.created_at, tokens.c.id) < after]
        window = select(tokens).where(*position).order_by(*order).limit(self.scan_window).subquery()
        rows = list(
            (
                await connection.execute(
                    select(window)
                    .where(*_on(window, conditions))
                    .order_by(window.c.created_at.desc(), window.c.id.desc())
                    .limit(limit)
                )
            ).all()
        )
        if len(rows) == limit:
            return rows
        edge = (
            await connection.execute(
                select(tokens.c.created_at, tokens.c.id)
                .where(*position)
                .order_by(*order)
                .offset(self.scan_window - 1)
                .limit(1)
            )
        ).first()
        if edge is None:  # the window held every token left
            return rows
        beyond = _page(conditions, (edge.created_at, edge.id), limit - len(rows))
        return rows + list(
            (await connection.execute(beyond.with_hint(tokens, f"INDEXED BY {index}"))).all()
        )

    def token_conditions(self, filters: TokenFilter, now: datetime) -> list[ColumnElement[bool]]:
        """The WHERE clause of ``filters``, in this database's dialect."""
        conditions: list[ColumnElement[bool]] = []
        live = tokens.c.revoked_at.is_(None)
        unexpired: ColumnElement[bool] = tokens.c.expires_at.is_(None) | (tokens.c.expires_at > now)
        if filters.expires_within_days is not None:
            # Only tokens with an expiry can match: an unexpired one is then
            # one range of the expiry index, not a union with the nulls.
            unexpired = tokens.c.expires_at > now
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
            name = func.lower(tokens.c.name)
            escaped = prefix
            for special in ("\\", "%", "_"):
                escaped = escaped.replace(special, "\\" + special)
            conditions.append(name.like(escaped + "%", escape="\\"))
            if self.engine.dialect.name == "sqlite":
                # A range is what SQLite's index on lower(name) can search (a
                # LIKE it cannot, being case-insensitive by default). Its text
                # compares as UTF-8 bytes, after which U+10FFFF sorts last.
                conditions += [name >= prefix, name < prefix + "\U0010ffff"]
        if filters.scope is not None:
            conditions.append(self._holds(filters.scope))
        if filters.expires_within_days is not None:
            horizon = now + timedelta(days=filters.expires_within_days)
            conditions.append(tokens.c.expires_at <= horizon)
        if filters.unused_for_days is not None:
            # Never used is unused: NULL is older than any horizon.
            since = now - timedelta(days=filters.unused_for_days)
            conditions.append(tokens.c.last_used_at.is_(None) | (tokens.c.last_used_at < since))
        if filters.used_within_days is not None:
            since = now - timedelta(days=filters.used_within_days)
            conditions.append(tokens.c.last_used_at >= since)
        return conditions

    def _holds(self, scope: str) -> ColumnElement[bool]:
        if self.engine.dialect.name == "postgresql":
            # jsonb containment, which the GIN index of migration 0003 serves.
            return tokens.c.scopes.op("@>")(cast(literal(orjson.dumps([scope]).decode()), JSONB))
        # The scope as JSON writes it, quotes included: the grammar allows no
        # quote or backslash in a scope, so finding it in the stored array's
        # text is finding the element (a substring test, with no JSON parsed
        # per row); json_each checks it exactly all the same.
        needle = orjson.dumps(scope).decode()
        held = func.json_each(tokens.c.scopes).table_valued("value")
        return and_(
            func.instr(tokens.c.scopes, needle) > 0,
            exists(select(literal(1)).select_from(held).where(held.c.value == scope)),
        )

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
        if not settled:
            return
        async with self.transaction() as connection:
            # One executemany, not a statement (and on PostgreSQL a round
            # trip) per token of the batch.
            await connection.execute(_OUTBOX_DONE, [{"hash": h, "version": v} for h, v in settled])

    # -- writes (command writer only) ----------------------------------------

    @staticmethod
    async def insert(connection: AsyncConnection, record: TokenRecord) -> TokenRecord:
        await connection.execute(_INSERT_TOKENS, _columns(record))
        return record

    @staticmethod
    async def insert_many(connection: AsyncConnection, records: Sequence[TokenRecord]) -> None:
        """:meth:`insert` for many records, in one statement (an executemany)."""
        if records:
            await connection.execute(_INSERT_TOKENS, [_columns(record) for record in records])

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
        await TokenStore.record_many(
            connection, at=at, action=action, entries=[(actor, token_id, details, owner)]
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
                _INSERT_AUDIT,
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

    async def usage_of(self, token_id: str, since: date) -> list[tuple[date, int]]:
        """A token's count per UTC day from ``since`` on, oldest first (days without
        a use have no row)."""
        query = (
            select(token_usage.c.day, token_usage.c["count"])
            .where(token_usage.c.token_id == token_id, token_usage.c.day >= since)
            .order_by(token_usage.c.day)
        )
        async with self._connect() as connection:
            return [(day, int(count)) for day, count in await connection.execute(query)]

    @staticmethod
    async def record_usage(
        connection: AsyncConnection,
        uses: Sequence[tuple[str, int]],
        at: datetime,
        keep_from: date,
    ) -> None:
        """Add ``uses`` (token id, count; sorted by id) to ``at``'s day, move each
        token's ``last_used_at`` up to ``at`` (never back), and drop the days
        before ``keep_from``.

        Neither the version nor any cache moves: usage is not validation state.
        Rows are touched in id order, as :meth:`lock_all` takes them, so that
        this never deadlocks with a batch of changes on another replica. An id
        that no longer exists updates nothing and inserts nothing.
        """
        for start in range(0, len(uses), _USAGE_CHUNK):
            chunk = uses[start : start + _USAGE_CHUNK]
            ids = [token_id for token_id, _ in chunk]
            query = select(tokens.c.id).where(tokens.c.id.in_(ids)).order_by(tokens.c.id)
            if connection.dialect.name == "postgresql":
                query = query.with_for_update()
            known = set((await connection.execute(query)).scalars())
            rows = [
                {"token_id": token_id, "day": at.date(), "count": count}
                for token_id, count in chunk
                if token_id in known
            ]
            if not rows:
                continue
            last_used = tokens.c.last_used_at
            await connection.execute(
                update(tokens)
                .where(tokens.c.id.in_(ids), last_used.is_(None) | (last_used < at))
                .values(last_used_at=at)
            )
            upsert = _dialect_insert(connection)(token_usage)
            await connection.execute(
                upsert.on_conflict_do_update(
                    index_elements=[token_usage.c.token_id, token_usage.c.day],
                    set_={"count": token_usage.c["count"] + upsert.excluded["count"]},
                ),
                rows,
            )
        await connection.execute(delete(token_usage).where(token_usage.c.day < keep_from))

    async def matching_ids(self, filters: TokenFilter, now: datetime) -> list[str]:
        """The ids of every token matching ``filters``: what a bulk revocation names."""
        query = select(tokens.c.id).where(*self.token_conditions(filters, now))
        async with self._connect() as connection:
            return list((await connection.execute(query)).scalars())

    # -- webhooks --------------------------------------------------------------
    # The outbox rows are written by the writer in a change's transaction
    # (webhook_add); the delivery loop's bookkeeping (claim, done, retry,
    # give up) changes no token, and runs in short transactions of its own.

    @staticmethod
    async def webhook_add(connection: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
        """Queue webhook deliveries, in the change's own transaction, in one statement."""
        if rows:
            await connection.execute(insert(webhook_outbox), list(rows))

    async def webhook_claim(
        self, now: datetime, lease_until: datetime, limit: int
    ) -> list[PendingWebhook]:
        """Take up to ``limit`` due deliveries until ``lease_until``, counting their attempt.

        The claim commits before anything is sent: a replica killed while
        sending leaves its rows due again when the lease ends, with their
        webhook-id. On PostgreSQL, ``SKIP LOCKED`` lets replicas claim side
        by side without waiting on, or taking, each other's rows.
        """
        due = (
            select(webhook_outbox.c.id, webhook_outbox.c.url)
            .where(webhook_outbox.c.failed_at.is_(None), webhook_outbox.c.next_attempt_at <= now)
            .order_by(webhook_outbox.c.next_attempt_at)
            .limit(limit)
        )
        async with self.transaction() as connection:
            if connection.dialect.name == "postgresql":
                due = due.with_for_update(skip_locked=True)
            keys = [tuple(row) for row in (await connection.execute(due)).all()]
            if not keys:
                return []
            result = await connection.execute(
                update(webhook_outbox)
                .where(tuple_(webhook_outbox.c.id, webhook_outbox.c.url).in_(keys))
                .values(next_attempt_at=lease_until, attempts=webhook_outbox.c.attempts + 1)
                .returning(
                    webhook_outbox.c.id,
                    webhook_outbox.c.url,
                    webhook_outbox.c.type,
                    webhook_outbox.c.body,
                    webhook_outbox.c.created_at,
                    webhook_outbox.c.attempts,
                )
            )
            return [
                PendingWebhook(
                    id=row.id,
                    url=row.url,
                    type=row.type,
                    body=row.body,
                    created_at=row.created_at,
                    attempts=row.attempts,
                )
                for row in result.all()
            ]

    async def webhook_done(self, message_id: str, url: str) -> None:
        """The receiver took it: nothing left to send."""
        async with self.transaction() as connection:
            await connection.execute(
                delete(webhook_outbox).where(
                    webhook_outbox.c.id == message_id, webhook_outbox.c.url == url
                )
            )

    async def webhook_retry(
        self, message_id: str, url: str, *, at: datetime, error: str, failed: bool
    ) -> None:
        """An attempt failed: due again ``at``, or (``failed``) given up ``at``."""
        values: dict[str, Any] = {"last_error": error[:200]}
        values.update({"failed_at": at} if failed else {"next_attempt_at": at})
        async with self.transaction() as connection:
            await connection.execute(
                update(webhook_outbox)
                .where(webhook_outbox.c.id == message_id, webhook_outbox.c.url == url)
                .values(**values)
            )

    async def webhook_backlog(self) -> tuple[int, datetime | None, int]:
        """Deliveries still to make, the oldest one's event time, and those given up."""
        pending = webhook_outbox.c.failed_at.is_(None)
        query = select(
            func.count().filter(pending),
            func.min(webhook_outbox.c.created_at).filter(pending),
            func.count().filter(webhook_outbox.c.failed_at.is_not(None)),
        )
        async with _mapped_errors(), self.write_engine.connect() as connection:
            row = (await connection.execute(query)).one()
        oldest = row[1]
        if isinstance(oldest, str):  # SQLite's aggregate loses the column's type
            oldest = datetime.fromisoformat(oldest)
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        return int(row[0]), oldest, int(row[2])

    @staticmethod
    def expiring_conditions(now: datetime, horizon: datetime) -> list[ColumnElement[bool]]:
        """Which tokens are owed ``token.expiring``: every condition, in this one place.

        Live (not revoked), expiring within the horizon and not yet, not
        warned of this expiry (an extended token is warned again of its new
        one), and used in the last :data:`EXPIRING_USED_WITHIN`: nobody needs
        to hear that a dead token is about to die. Not a rotated token: its
        successor carries on.
        """
        return [
            tokens.c.last_used_at >= now - EXPIRING_USED_WITHIN,
            # A rotated token's expiry is its grace's end, already announced
            # (token.rotated); its successor is the one to hear about.
            tokens.c.replaced_by.is_(None),
            tokens.c.revoked_at.is_(None),
            tokens.c.expires_at.is_not(None),
            tokens.c.expires_at > now,
            tokens.c.expires_at <= horizon,
            tokens.c.expiring_notified_for.is_(None)
            | (tokens.c.expiring_notified_for != tokens.c.expires_at),
        ]

    async def finishing(
        self, now: datetime, *, after: str | None, limit: int
    ) -> list[tuple[TokenRecord, datetime]]:
        """Up to ``limit`` rotated tokens still in a grace that ends once idle, by id,
        after ``after``, each with when it was rotated (its successor's creation):
        the rows of the partial index ``ix_tokens_finishing_id``."""
        successor = tokens.alias("successor")
        query = (
            select(tokens, successor.c.created_at.label("rotated_at"))
            .join(successor, successor.c.id == tokens.c.replaced_by)
            .where(
                tokens.c.finish_when_idle_seconds.is_not(None),
                tokens.c.revoked_at.is_(None),
                tokens.c.expires_at > now,
            )
            .order_by(tokens.c.id)
            .limit(limit)
        )
        if after is not None:
            query = query.where(tokens.c.id > after)
        async with self._connect() as connection:
            rows = (await connection.execute(query)).all()
        return [(TokenRecord.from_row(row), row.rotated_at) for row in rows]

    async def expiring_ids(self, now: datetime, horizon: datetime, limit: int) -> list[str]:
        """Up to ``limit`` ids of tokens owed ``token.expiring`` (soonest expiry first)."""
        query = (
            select(tokens.c.id)
            .where(*self.expiring_conditions(now, horizon))
            .order_by(tokens.c.expires_at)
            .limit(limit)
        )
        async with self._connect() as connection:
            return list((await connection.execute(query)).scalars())

    @classmethod
    async def mark_expiring(
        cls,
        connection: AsyncConnection,
        token_ids: Sequence[str],
        now: datetime,
        horizon: datetime,
    ) -> list[TokenRecord]:
        """Mark those of ``token_ids`` still owed ``token.expiring`` as warned of their
        expiry, and return them: each is warned once, however many replicas scan.

        The version stays: no answer about the token changes, so no cache
        needs to learn anything.
        """
        if not token_ids:
            return []
        result = await connection.execute(
            update(tokens)
            .where(tokens.c.id.in_(token_ids), *cls.expiring_conditions(now, horizon))
            .values(expiring_notified_for=tokens.c.expires_at)
            .returning(*tokens.c)
        )
        return [TokenRecord.from_row(row) for row in result.all()]


def _dialect_insert(connection: AsyncConnection) -> Any:
    """The ``INSERT … ON CONFLICT`` construct of ``connection``'s database."""
    return postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert


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
        "last_used_at": record.last_used_at,
        "replaced_by": record.replaced_by,
        "rotated_from": record.rotated_from,
        "finish_when_idle_seconds": record.finish_when_idle_seconds,
    }
