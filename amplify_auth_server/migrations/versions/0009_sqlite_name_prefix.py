"""SQLite: an index on ``lower(name)``, for the case-insensitive name prefix filter.

PostgreSQL has had one since migration 0003 (with ``text_pattern_ops``);
SQLite searched a prefix by walking the creation index, 100,000 rows for a
page of a prefix that 1 in 1,000 tokens have. With this index, a page whose
window of creation order holds too few matches takes the rest from here
(see ``TokenStore._windowed_page``).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("CREATE INDEX ix_tokens_lower_name ON tokens (lower(name))")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP INDEX ix_tokens_lower_name")
