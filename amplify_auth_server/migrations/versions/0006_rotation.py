"""Rotation: a rotated token names its successor, the successor its predecessor.

Three nullable columns (no existing token was ever rotated): ``replaced_by``
on the old token, ``rotated_from`` on the new one, and the old token's
``finish_when_idle_seconds``, the idle limit that ends its grace early once
usage is known. One partial index: the tokens whose grace ends early once
idle, the few rows the idle scan (amplify_auth_server.rotations) reads
every half minute among a million.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

#: A rotated token whose grace ends once idle, not revoked yet.
_FINISHING = "finish_when_idle_seconds IS NOT NULL AND revoked_at IS NULL"


def upgrade() -> None:
    op.add_column("tokens", sa.Column("replaced_by", sa.String(32), nullable=True))
    op.add_column("tokens", sa.Column("rotated_from", sa.String(32), nullable=True))
    op.add_column("tokens", sa.Column("finish_when_idle_seconds", sa.Integer(), nullable=True))
    op.create_index(
        "ix_tokens_finishing_id",
        "tokens",
        ["id"],
        postgresql_where=sa.text(_FINISHING),
        sqlite_where=sa.text(_FINISHING),
    )


def downgrade() -> None:
    op.drop_index("ix_tokens_finishing_id", table_name="tokens")
    with op.batch_alter_table("tokens") as batch:
        batch.drop_column("finish_when_idle_seconds")
        batch.drop_column("rotated_from")
        batch.drop_column("replaced_by")
