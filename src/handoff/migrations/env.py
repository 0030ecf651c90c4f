"""Alembic environment: runs on the connection handed over by ``handoff.state.schema.upgrade``."""

from __future__ import annotations

from alembic import context

from handoff.state.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only via `alembic` CLI with a URL
    import sqlalchemy as sa

    connection = sa.create_engine(str(context.config.get_main_option("sqlalchemy.url"))).connect()

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
