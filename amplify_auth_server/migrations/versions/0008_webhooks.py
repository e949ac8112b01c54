"""Webhooks: the delivery outbox, and which expiry each token was warned of.

``webhook_outbox`` holds one row per event and receiver until the receiver
takes it (then the row is deleted), or until it is given up (then it stays,
with ``failed_at``). ``tokens.expiring_notified_for`` is the expiry that
``token.expiring`` was sent for: nullable, so every existing token is one
not warned yet.

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# Migrations are frozen: they never import the models, which move on.

revision = "0008"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "tokens", sa.Column("expiring_notified_for", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_table(
        "webhook_outbox",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.String(200), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", "url", name="pk_webhook_outbox"),
    )
    op.create_index("ix_webhook_outbox_next_attempt_at", "webhook_outbox", ["next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_webhook_outbox_next_attempt_at", table_name="webhook_outbox")
    op.drop_table("webhook_outbox")
    with op.batch_alter_table("tokens") as batch:
        batch.drop_column("expiring_notified_for")
