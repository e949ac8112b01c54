"""Engine creation for both backends, and the migrations that shape them.

``DATABASE_URL`` is accepted in the forms people paste: ``postgresql://``
and ``postgres://`` (libpq style, as in the seed's docker-compose) become
the asyncpg driver; ``sqlite:///file`` becomes aiosqlite. Unset means the
embedded default, a SQLite file in the working directory.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlencode

import orjson
from sqlalchemy import Connection, event, inspect, text
from sqlalchemy.dialects.sqlite.base import SQLiteCompiler
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from amplify_auth_client.contract import DEFAULT_SQLITE_FILE

if TYPE_CHECKING:
    from alembic.config import Config

logger = logging.getLogger("amplify_auth_server.database")

_MIGRATIONS = Path(__file__).with_name("migrations")
# Any constant will do: it only has to be the same for every replica, so
# that two servers starting at once do not both run the same migration.
_MIGRATION_LOCK_KEY = 0x616D705F6D6967
#: The newest migration's revision (tests/server/test_operations.py holds it to
#: Alembic's head). A database already there is left alone without importing
#: Alembic, which with the Mako and Pygments it brings is a sixth of a server's
#: start: a restart, and every replica after the first, skip it.
HEAD_REVISION: Final = "0009"
POOL_SIZE = 10
# The writer's pool: one connection for the writer, one for health checks
# and the outbox, whatever the validation misses are doing.
WRITE_POOL_SIZE = 2
#: How long a SQLite connection waits for another one's lock before it fails.
BUSY_TIMEOUT_MS = 5000


def async_url(database_url: str | None) -> URL:
    """The SQLAlchemy async URL for a ``DATABASE_URL`` as users write it.

    >>> async_url("postgresql://u:p@db:5432/auth").drivername
    'postgresql+asyncpg'
    """
    if database_url is None:
        return make_url(f"sqlite+aiosqlite:///{DEFAULT_SQLITE_FILE}")
    url = make_url(database_url)
    backend = url.get_backend_name()
    if backend in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+asyncpg")
        _asyncpg_arguments(url)  # a bad connect_timeout: refused here, in one line
    elif backend == "sqlite":
        url = url.set(drivername="sqlite+aiosqlite")
    else:
        raise ValueError(
            f"DATABASE_URL uses {backend!r}; AMPLIfy Auth supports postgresql:// and sqlite:///"
        )
    return url


#: The query option SQLAlchemy's asyncpg dialect reads itself (0 is how
#: PgBouncer's transaction mode is served): kept on the URL for it.
_DIALECT_OPTIONS: Final = frozenset({"prepared_statement_cache_size"})


def _asyncpg_arguments(url: URL) -> tuple[URL, dict[str, Any]]:
    """``url`` with only the dialect's own options left in its query, and the
    arguments that give asyncpg the rest.

    A ``DATABASE_URL`` copied from a libpq tool carries libpq's parameters
    (``sslmode``, ``sslrootcert``, ``application_name``, ``connect_timeout``...).
    SQLAlchemy hands a URL's query to asyncpg as keyword arguments, which
    asyncpg refuses (a TypeError); but asyncpg reads libpq's names from a DSN,
    its own SSL ones included, and sends any other as a server setting, as
    libpq does. So the query goes to it as a DSN of its own, with repeated
    ``host`` and ``port`` keys (SQLAlchemy's form for several hosts) as
    libpq's comma lists, and ``ssl`` (SQLAlchemy's and asyncpg's name) as
    ``sslmode``; ``connect_timeout`` becomes asyncpg's ``timeout`` (0 or
    less: none, as in libpq), and the dialect's own options stay on the URL.
    """
    query = {k: (v,) if isinstance(v, str) else tuple(v) for k, v in url.query.items()}
    dialect = {k: query.pop(k)[-1] for k in _DIALECT_OPTIONS & set(query)}
    if "ssl" in query and "sslmode" not in query:
        query["sslmode"] = query.pop("ssl")
    arguments: dict[str, Any] = {"timeout": 5, "command_timeout": 10}
    if "connect_timeout" in query:
        value = query.pop("connect_timeout")[-1]
        try:
            seconds = float(value)
        except ValueError:
            seconds = math.nan
        if not math.isfinite(seconds):
            raise ValueError(
                f"its connect_timeout is {value!r}: a number of seconds, as libpq reads it"
            )
        arguments["timeout"] = seconds if seconds > 0 else None
    if query:
        libpq = {k: ",".join(v) if k in ("host", "port") else v[-1] for k, v in query.items()}
        arguments["dsn"] = "postgresql://?" + urlencode(libpq)
    return url.set(query=dialect), arguments


def create_engine(
    database_url: str | None, *, pool_size: int = POOL_SIZE, autocheckpoint: bool = True
) -> AsyncEngine:
    """An engine for ``database_url``. ``autocheckpoint=False`` (SQLite; the served
    process's writer): its commits never copy the WAL back into the database, which
    :class:`~amplify_auth_server.checkpoints.WalCheckpoints` does beside it."""
    url = async_url(database_url)
    # A fixed pool, no overflow: under a burst, requests queue for a
    # connection instead of opening (and then closing) one each, which costs
    # more than the queries. pool_timeout turns a dead database into a fast
    # 503 rather than a hung request.
    kwargs: dict[str, Any] = {
        "pool_size": pool_size,
        "max_overflow": 0,
        "pool_timeout": 5,
        "json_serializer": _json_text,
    }
    if url.get_backend_name() == "postgresql":
        url, kwargs["connect_args"] = _asyncpg_arguments(url)
    engine = create_async_engine(url, **kwargs)
    if url.get_backend_name() == "sqlite":
        pragmas = _sqlite_pragmas if autocheckpoint else _sqlite_writer_pragmas
        event.listen(engine.sync_engine, "connect", pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        engine.dialect.statement_compiler = _SQLiteCompiler
    return engine


def _json_text(value: Any) -> str:
    """A JSON column's text (scopes, metadata, audit details): orjson's, compact.

    The standard library's ``json.dumps`` was a third of what binding a
    create's rows cost the writer. Nothing reads the text but a JSON
    parser, and the scope filter, which looks for ``"scope"`` with its
    quotes (:meth:`~amplify_auth_server.store.TokenStore.token_conditions`),
    whatever the separators.
    """
    return orjson.dumps(value).decode()


class _SQLiteCompiler(SQLiteCompiler):
    """SQLite's compiler, rendering a table hint (``Select.with_hint``) after the table's
    name, where SQLite reads ``INDEXED BY``: SQLAlchemy's own drops table hints on
    SQLite. For the one query whose index SQLite's planner cannot choose without
    statistics (``TokenStore._windowed_page``)."""

    def get_from_hint_text(self, table: Any, text: str | None) -> str | None:
        return text


def _sqlite_begin(connection: Connection) -> None:
    # The driver no longer opens transactions itself (see _sqlite_pragmas):
    # SQLAlchemy's begin does, so that SAVEPOINTs work (the writer runs each
    # command of a batch in one). IMMEDIATE: a writer takes the database's
    # write lock when it begins, not at its first write, so two processes
    # writing at once wait (busy_timeout) instead of one failing.
    connection.exec_driver_sql("BEGIN IMMEDIATE" if _writes(connection) else "BEGIN")


def _writes(connection: Connection) -> bool:
    return bool(connection.get_execution_options().get("amplify_writer", False))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets validation read while the writer commits; NORMAL sync is
    # durable across application crashes, which is what WAL needs;
    # busy_timeout covers a migration or CLI write racing the server.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
    # pysqlite (under aiosqlite) begins transactions on its own, and in a way
    # that breaks SAVEPOINT: leave it to SQLAlchemy (_sqlite_begin), as
    # SQLAlchemy's documentation advises.
    dbapi_connection.isolation_level = None


def _sqlite_writer_pragmas(dbapi_connection: Any, record: Any) -> None:
    _sqlite_pragmas(dbapi_connection, record)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


def _alembic_config(connection: Connection) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    return config


class UnknownSchema(Exception):
    """The database's schema is at a revision this build has no migration for: a newer
    build migrated it. Refused rather than served: this build's statements may no
    longer fit its tables."""


def _revisions(connection: Connection) -> list[str]:
    """The revisions the database says it is at; none when it was never migrated."""
    if not inspect(connection).has_table("alembic_version"):
        return []
    return list(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())


def _locked_revisions(connection: Connection) -> list[str]:
    """:func:`_revisions`, read under the migration lock: a replica never reads a
    schema that another (a newer build) is migrating, it waits for its end."""
    if connection.dialect.name == "postgresql":
        # Held until the transaction ends, whatever way it ends; SQLite
        # serialises writers itself (busy_timeout above).
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
    return _revisions(connection)


def _upgrade(connection: Connection) -> None:
    from alembic import command
    from alembic.util import CommandError

    try:
        command.upgrade(_alembic_config(connection), "head")
    except CommandError as exc:  # a revision of a newer build (Alembic: "Can't locate")
        at = ", ".join(_revisions(connection)) or "none"
        raise UnknownSchema(
            f"its schema is at revision {at}, which this build (at {HEAD_REVISION}) has no "
            f"migration for: a newer build migrated it; run that build or a later one ({exc})"
        ) from None


async def migrate(engine: AsyncEngine) -> None:
    """Apply every pending migration; safe to run from several replicas at once.

    Raises :class:`UnknownSchema` for a database a newer build migrated.
    """
    async with engine.connect() as connection:
        # One transaction, the lock held from the read to the commit.
        if await connection.run_sync(_locked_revisions) != [HEAD_REVISION]:
            await connection.run_sync(_upgrade)
            await connection.commit()
    logger.info("database schema is up to date")
