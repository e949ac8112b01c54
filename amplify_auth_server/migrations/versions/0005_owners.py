"""Owners: the team or service a token belongs to, and its listing indexes.

The audit log gets the owner of each entry's token too, and an index
``(owner, id)``: a delegated admin's audit pages are its owner's entries.

A nullable column (every existing token has no owner), and the two listing
indexes of migration 0003 again with ``owner`` leading, so that a
delegated admin's pages (always filtered by its owner) stop after their
rows at any depth, among a million tokens of other owners.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tokens", sa.Column("owner", sa.String(63), nullable=True))
    op.create_index("ix_tokens_owner_created_at_id", "tokens", ["owner", "created_at", "id"])
    op.create_index(
        "ix_tokens_owner_live_created_at_id",
        "tokens",
        ["owner", "created_at", "id"],
        postgresql_where=sa.text("revoked_at IS NULL"),
        sqlite_where=sa.text("revoked_at IS NULL"),
    )
    op.add_column("audit_log", sa.Column("owner", sa.String(63), nullable=True))
    op.create_index("ix_audit_log_owner_id", "audit_log", ["owner", "id"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_owner_id", table_name="audit_log")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("owner")
    op.drop_index("ix_tokens_owner_live_created_at_id", table_name="tokens")
    op.drop_index("ix_tokens_owner_created_at_id", table_name="tokens")
    with op.batch_alter_table("tokens") as batch:
        batch.drop_column("owner")
