"""Alembic environment: runs on the connection the server hands it.

The server applies migrations itself (at start-up, and with
``amplify-auth-server migrate``), on its own async engine, so this
environment never builds an engine of its own.
"""

from __future__ import annotations

from alembic import context

from amplify_auth_server.tables import include_object, metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "Run migrations with `amplify-auth-server migrate`, which knows DATABASE_URL."
    )

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=True,
    include_object=include_object,
)
with context.begin_transaction():
    context.run_migrations()
