"""Usage: when each token was last used, and how often per day.

``tokens.last_used_at`` (nullable: no token has been seen yet; indexed for
the ``unused_for_days`` and ``used_within_days`` filters) and
``token_usage``, one row per token and UTC day with its count, of which the
usage flush keeps the last 30 days (see :mod:`amplify_auth_server.usage`).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tokens", sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_tokens_last_used_at", "tokens", ["last_used_at"])
    op.create_table(
        "token_usage",
        sa.Column("token_id", sa.String(32), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.ForeignKeyConstraint(
            ["token_id"],
            ["tokens.id"],
            name="fk_token_usage_token_id_tokens",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_id", "day", name="pk_token_usage"),
    )
    op.create_index("ix_token_usage_day", "token_usage", ["day"])


def downgrade() -> None:
    op.drop_index("ix_token_usage_day", table_name="token_usage")
    op.drop_table("token_usage")
    op.drop_index("ix_tokens_last_used_at", table_name="tokens")
    with op.batch_alter_table("tokens") as batch:
        batch.drop_column("last_used_at")
