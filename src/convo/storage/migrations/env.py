"""Alembic environment: runs on the connection handed over by ``engine.upgrade_to_head``.

There is no offline (SQL script) mode and no ini file; convo applies migrations itself.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from convo.storage.schema import metadata


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError("convo migrations run through convo.storage.engine.upgrade_to_head")
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("convo migrations cannot run in offline mode")
run_migrations_online()
