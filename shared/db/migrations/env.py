"""Alembic's environment: migrations always run on the connection ``shared.db.migrate`` hands over, inside
its transaction and under its lock (never from a URL of their own)."""

from __future__ import annotations

from alembic import context

from shared.db.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through shared.db.migrate (python -m shared.db.migrate)")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
