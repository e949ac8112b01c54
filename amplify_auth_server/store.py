"""Reads and writes of token records and the audit log.

Reads are called from anywhere; the write methods are called only by the
command writer (see :mod:`amplify_auth_server.commands`). Writes are
conditional on the row's ``version`` so that several server processes on
one database stay consistent: the database, not the in-process queue, is
what serialises two replicas touching the same token.

Database failures become :class:`~amplify_auth_server.errors.DatabaseUnavailable`
here, at the boundary, so callers see one error type whatever the driver.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from amplify_auth_server.errors import DatabaseUnavailable
from amplify_auth_server.models import audit_log, cache_outbox, installation, tokens

TOKEN_ID_PREFIX: Final = "tok_"
_TOKEN_ID_ALPHABET: Final = string.ascii_lowercase + string.digits
_TOKEN_ID_LENGTH: Final = 16
SYSTEM_ACTOR: Final = "system"
#: No token expires further away than this (and ``datetime`` has a ceiling).
MAX_TTL_DAYS: Final = 36_500


def new_token_id() -> str:
    """A printable, non-secret id: what people paste into ``auth-cli revoke``."""
    return TOKEN_ID_PREFIX + "".join(
        secrets.choice(_TOKEN_ID_ALPHABET) for _ in range(_TOKEN_ID_LENGTH)
    )


def is_token_id(value: str) -> bool:
    """Whether ``value`` could be a token id; anything else is a 404 without a query."""
    return (
        len(value) == len(TOKEN_ID_PREFIX) + _TOKEN_ID_LENGTH
        and value.startswith(TOKEN_ID_PREFIX)
        and all(c in _TOKEN_ID_ALPHABET for c in value[len(TOKEN_ID_PREFIX) :])
    )


class ConcurrentUpdate(Exception):
    """The row moved on between read and write; the command retries."""


class TokenStatus(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A token as stored: everything but the secret, which is never stored."""

    id: str
    token_hash: str
    name: str
    scopes: tuple[str, ...]
    description: str | None
    metadata: dict[str, str] | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    version: int
    created_by: str | None

    @classmethod
    def new(
        cls,
        *,
        token_hash: str,
        name: str,
        scopes: tuple[str, ...],
        created_by: str,
        now: datetime,
        expires_at: datetime | None = None,
        description: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> TokenRecord:
        """A token about to be inserted: a fresh id, version 1, not revoked."""
        return cls(
            id=new_token_id(),
            token_hash=token_hash,
            name=name,
            scopes=scopes,
            description=description,
            metadata=metadata,
            created_at=now,
            expires_at=expires_at,
            revoked_at=None,
            version=1,
            created_by=created_by,
        )

    def status(self, now: datetime) -> TokenStatus:
        if self.revoked_at is not None:
            return TokenStatus.REVOKED
        if self.expires_at is not None and self.expires_at <= now:
            return TokenStatus.EXPIRED
        return TokenStatus.ACTIVE

    @classmethod
    def from_row(cls, row: Any) -> TokenRecord:
        return cls(
            id=row.id,
            token_hash=row.token_hash,
            name=row.name,
            scopes=tuple(row.scopes),
            description=row.description,
            metadata=row.metadata,
            created_at=row.created_at,
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
            version=row.version,
            created_by=row.created_by,
        )


@dataclass(frozen=True, slots=True)
class AuditRecord:
    id: int
    at: datetime
    actor_id: str
    actor_name: str | None
    action: str
    token_id: str | None
    details: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Actor:
    """Who asked for a change: an admin token, or the server itself."""

    id: str
    name: str | None = None


SYSTEM = Actor(SYSTEM_ACTOR, "amplify-auth-server")


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


class TokenStore:
    """The only module that speaks SQL.

    Two pools: validation misses read from ``engine``; the writer, health
    checks and the outbox use ``write_engine``, so that a flood of misses
    (distinct garbage tokens, each a lookup) cannot starve a revocation.
    """

    def __init__(self, engine: AsyncEngine, write_engine: AsyncEngine | None = None) -> None:
        self.engine = engine
        self.write_engine = write_engine or engine
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
        async with _mapped_errors(), self.write_engine.begin() as connection:
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

    async def list_records(self, *, include_inactive: bool, now: datetime) -> list[TokenRecord]:
        query = select(tokens).order_by(tokens.c.created_at, tokens.c.id)
        if not include_inactive:
            query = query.where(
                tokens.c.revoked_at.is_(None),
                (tokens.c.expires_at.is_(None)) | (tokens.c.expires_at > now),
            )
        async with self._connect() as connection:
            rows = (await connection.execute(query)).all()
        return [TokenRecord.from_row(row) for row in rows]

    async def audit(self, *, token_id: str | None, limit: int) -> list[AuditRecord]:
        query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
        if token_id is not None:
            query = query.where(audit_log.c.token_id == token_id)
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
        async with self.transaction() as connection:
            await connection.execute(
                delete(cache_outbox).where(
                    cache_outbox.c.token_hash == token_hash, cache_outbox.c.version <= version
                )
            )

    # -- writes (command writer only) ----------------------------------------

    @staticmethod
    async def insert(connection: AsyncConnection, record: TokenRecord) -> TokenRecord:
        await connection.execute(
            insert(tokens).values(
                id=record.id,
                token_hash=record.token_hash,
                name=record.name,
                scopes=list(record.scopes),
                description=record.description,
                metadata=record.metadata,
                created_at=record.created_at,
                expires_at=record.expires_at,
                revoked_at=record.revoked_at,
                version=record.version,
                created_by=record.created_by,
            )
        )
        return record

    @staticmethod
    async def lock(connection: AsyncConnection, token_id: str) -> TokenRecord | None:
        """Read a row for update (a row lock on PostgreSQL; SQLite locks the file)."""
        query = _BY_ID.with_for_update() if connection.dialect.name == "postgresql" else _BY_ID
        row = (await connection.execute(query, {"token_id": token_id})).first()
        return None if row is None else TokenRecord.from_row(row)

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
    ) -> None:
        await connection.execute(
            insert(audit_log).values(
                at=at,
                actor_id=actor.id,
                actor_name=actor.name,
                action=action,
                token_id=token_id,
                details=details,
            )
        )
