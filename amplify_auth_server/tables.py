"""The database schema, as SQLAlchemy Core tables.

Core rather than the ORM: the validation miss path runs one compiled
primary-key-like lookup, and an ORM session costs several times that
(1.3 ms against 0.26 ms for asyncpg alone, measured here). Alembic
migrations create and upgrade these tables; :data:`metadata` is their
reference for autogenerate. The records read from them are in
:mod:`amplify_auth_server.models`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


#: SQLAlchemy's text of a datetime on SQLite (``DATETIME``'s storage format), by position.
_SQLITE_TEXT: Final = "%04d-%02d-%02d %02d:%02d:%02d.%06d"


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    SQLite has no timezone type and hands back naive values; this puts the
    UTC back so that comparisons never mix naive and aware datetimes.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass an aware UTC datetime")
        return value.astimezone(UTC)

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        """On SQLite, :meth:`process_bind_param` and SQLite's text in one step:
        SQLAlchemy's own builds the text from a dict of the seven fields, after
        the UTC conversion's own call, and the writer binds three datetimes per
        create. The text is the same
        (``2026-12-01 09:30:00.000000``, what every stored row and query holds)."""
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)
        bind = self.process_bind_param

        def process(value: datetime | None) -> str | None:
            utc = bind(value, dialect)
            if utc is None:
                return None
            return _SQLITE_TEXT % (
                utc.year,
                utc.month,
                utc.day,
                utc.hour,
                utc.minute,
                utc.second,
                utc.microsecond,
            )

        return process

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONDocument = JSON().with_variant(JSONB(), "postgresql")

tokens = Table(
    "tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    # SHA-256 hex of the raw token; the raw token itself is never stored.
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("name", String(100), nullable=False),
    Column("scopes", JSONDocument, nullable=False),
    Column("description", Text, nullable=True),
    Column("metadata", JSONDocument, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=True),
    Column("revoked_at", UTCDateTime, nullable=True),
    # Bumped by every change. Caches accept an entry only when it is newer
    # than what they hold, so a slow reader can never overwrite a revocation.
    Column("version", Integer, nullable=False, server_default="1"),
    Column("created_by", String(32), nullable=True),
    # The team or service the token belongs to (contract.OWNER); set at
    # creation, never changed. Null: no owner (migration 0005).
    Column("owner", String(63), nullable=True),
    # Rotation (migration 0006): the successor's id on the old
    # token, the predecessor's on the new one, and the old token's idle
    # limit (seconds without use after which its grace ends early).
    Column("replaced_by", String(32), nullable=True),
    Column("rotated_from", String(32), nullable=True),
    Column("finish_when_idle_seconds", Integer, nullable=True),
    # The expiry that `token.expiring` was sent for (migration 0008): null, or
    # an older expiry than the current one (extended since), means not yet.
    Column("expiring_notified_for", UTCDateTime, nullable=True),
    # When a validation last answered it valid, by a replica's clock or at an
    # SDK's report (amplify_auth_server.usage): accurate to a flush interval,
    # or a report interval. Null: never used since migration 0007.
    Column("last_used_at", UTCDateTime, nullable=True),
    # Listing is keyset-paged, newest first: one index per way of listing,
    # so that a page stops after its rows at any depth (migration 0003).
    Index("ix_tokens_created_at_id", "created_at", "id"),
    Index(
        "ix_tokens_live_created_at_id",
        "created_at",
        "id",
        postgresql_where=text("revoked_at IS NULL"),
        sqlite_where=text("revoked_at IS NULL"),
    ),
    Index("ix_tokens_expires_at", "expires_at"),
    # The usage filters (unused_for_days, used_within_days).
    Index("ix_tokens_last_used_at", "last_used_at"),
    # The rotated tokens whose grace ends once idle (the idle scan's few rows).
    Index(
        "ix_tokens_finishing_id",
        "id",
        postgresql_where=text("finish_when_idle_seconds IS NOT NULL AND revoked_at IS NULL"),
        sqlite_where=text("finish_when_idle_seconds IS NOT NULL AND revoked_at IS NULL"),
    ),
    # The same two listings for one owner (a delegated admin's every page):
    # the owner first, so that a page reads only that owner's rows.
    Index("ix_tokens_owner_created_at_id", "owner", "created_at", "id"),
    Index(
        "ix_tokens_owner_live_created_at_id",
        "owner",
        "created_at",
        "id",
        postgresql_where=text("revoked_at IS NULL"),
        sqlite_where=text("revoked_at IS NULL"),
    ),
)
#: Indexes made by migrations in each dialect's own terms, not declared here
#: (autogenerate can neither create nor compare them on both): a name
#: prefix whatever its case (PostgreSQL with text_pattern_ops, migration
#: 0003; SQLite on the expression lower(name), migration 0009) and the
#: scopes a token holds (PostgreSQL, GIN). Comparisons of the schema leave
#: them out (include_object).
DIALECT_INDEXES: Final = frozenset({"ix_tokens_lower_name", "ix_tokens_scopes"})


def include_object(
    item: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """Alembic's filter for comparing the schema: everything but :data:`DIALECT_INDEXES`."""
    return not (type_ == "index" and name in DIALECT_INDEXES)


audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("at", UTCDateTime, nullable=False),
    # The token id of the admin who acted, or "system" for the server itself.
    Column("actor_id", String(32), nullable=False),
    Column("actor_name", String(100), nullable=True),
    Column("action", String(32), nullable=False),
    Column("token_id", String(32), nullable=True),
    Column("details", JSONDocument, nullable=False),
    # The owner of the token it is about (for a refusal: of the token that
    # tried): what a delegated admin's audit log is limited to (migration 0005).
    Column("owner", String(63), nullable=True),
    Index("ix_audit_log_token_id_id", "token_id", "id"),
    Index("ix_audit_log_owner_id", "owner", "id"),
    Index("ix_audit_log_actor_id_id", "actor_id", "id"),
    Index("ix_audit_log_action_id", "action", "id"),
    Index("ix_audit_log_at", "at"),
)


# How many validations answered each token valid, per UTC day: the last
# USAGE_DAYS days only (older rows are pruned by the usage flush). Written
# by the single writer's RecordUsage, never read by validation.
token_usage = Table(
    "token_usage",
    metadata,
    Column("token_id", String(32), ForeignKey("tokens.id", ondelete="CASCADE"), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("count", BigInteger, nullable=False),
    # The prune deletes by day across every token.
    Index("ix_token_usage_day", "day"),
)


# Cache writes that must not be lost. A change writes its row here in the
# same transaction as the change itself, and deletes it once Redis holds the
# new state; any replica replays what is left (see amplify_auth_server.outbox).
cache_outbox = Table(
    "cache_outbox",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

# Webhook deliveries still to make (see amplify_auth_server.webhooks): one row
# per event and URL, written in the change's own transaction, deleted once the
# receiver answered 2xx. ``id`` is the event's webhook-id, the same at every
# attempt and for every URL; ``body`` the exact JSON signed and sent. A row
# given up (past WEBHOOK_RETRY_HOURS) stays, with ``failed_at``.
webhook_outbox = Table(
    "webhook_outbox",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("url", String(2048), primary_key=True),
    Column("type", String(40), nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    # When an attempt is next due; while one is under way, the end of its
    # lease (a replica killed mid-attempt leaves the row due again then).
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", String(200), nullable=True),
    Column("failed_at", UTCDateTime, nullable=True),
    Index("ix_webhook_outbox_next_attempt_at", "next_attempt_at"),
)

# The creates that idempotency keys named (see contract.IDEMPOTENCY_WINDOW).
# The key is kept by hash only, per admin token: its primary key is what
# makes two replicas racing with one key mint once (the second's insert
# fails, and its retry finds the first's row). Rows older than the window are
# pruned by the next keyed create.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("actor_id", String(32), primary_key=True),
    Column("key_hash", String(64), primary_key=True),
    # The canonical body's SHA-256: the same key with another body is refused.
    Column("body_hash", String(64), nullable=False),
    Column("token_id", String(32), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_idempotency_keys_created_at", "created_at"),
)

# One row naming this database. Redis keys carry it, so that two deployments
# sharing a Redis (and its default key prefix) can never read each other's
# entries, nor count each other's replicas.
installation = Table(
    "installation",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("instance_id", String(32), nullable=False),
)
