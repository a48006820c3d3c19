"""Alembic environment: runs on the connection `core.db.migrate` hands in (async engines run it via run_sync)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from core.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite needs batch mode to alter tables
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    # `alembic revision --autogenerate` during development: a sync URL from -x url=…
    url = context.get_x_argument(as_dictionary=True).get("url", "sqlite:///data/autogen.db")
    with create_engine(url).connect() as sync_connection:
        _run(sync_connection)
        sync_connection.commit()
