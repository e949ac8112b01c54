"""Indexes for listing a million tokens, and the audit log, a page at a time.

Every page is a keyset query, newest first (``created_at, id`` for tokens,
``id`` for the audit log), so each filter has an index that lets a page
stop after ``limit`` rows, whatever its depth.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_tokens_created_at_id", "tokens", ["created_at", "id"])
    # The default listing (active tokens): the revoked ones are not even in it.
    op.create_index(
        "ix_tokens_live_created_at_id",
        "tokens",
        ["created_at", "id"],
        postgresql_where=sa.text("revoked_at IS NULL"),
        sqlite_where=sa.text("revoked_at IS NULL"),
    )
    op.create_index("ix_tokens_expires_at", "tokens", ["expires_at"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE INDEX ix_tokens_lower_name ON tokens (lower(name) text_pattern_ops)")
        op.execute("CREATE INDEX ix_tokens_scopes ON tokens USING gin (scopes jsonb_path_ops)")
    op.create_index("ix_audit_log_actor_id_id", "audit_log", ["actor_id", "id"])
    op.create_index("ix_audit_log_action_id", "audit_log", ["action", "id"])
    op.create_index("ix_audit_log_at", "audit_log", ["at"])


def downgrade() -> None:
    for index, table in (
        ("ix_audit_log_at", "audit_log"),
        ("ix_audit_log_action_id", "audit_log"),
        ("ix_audit_log_actor_id_id", "audit_log"),
        ("ix_tokens_expires_at", "tokens"),
        ("ix_tokens_live_created_at_id", "tokens"),
        ("ix_tokens_created_at_id", "tokens"),
    ):
        op.drop_index(index, table_name=table)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_tokens_scopes")
        op.execute("DROP INDEX ix_tokens_lower_name")
