"""The schema is created by migrating: empty → head → base → head, on SQLite and (when set) PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError

from core.db import Database
from core.models import Base
from tests.conftest import PG_URL, requires_pg


async def _roundtrip(url: str) -> None:
    async with Database.open(url) as db:
        engine = db.engine
        await db.downgrade("base")
        await db.migrate()
        async with engine.connect() as conn:
            tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
            revision = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
        assert set(Base.metadata.tables) <= tables
        assert revision
        # The migrations and the models agree: nothing left for autogenerate to do.
        from alembic.autogenerate import compare_metadata
        from alembic.migration import MigrationContext

        async with engine.connect() as conn:
            diff = await conn.run_sync(lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata))
        assert diff == []
        # The event log is append-only at the database level.
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO events (participant_id, entity, entity_id, kind, data, source_kind, source_ref) "
                    "VALUES (1, 'participants', '1', 'created', '{}', 'system', 'test')"
                )
            )
        for statement in ("UPDATE events SET kind = 'x'", "DELETE FROM events"):
            with pytest.raises(DBAPIError):
                async with engine.begin() as conn:
                    await conn.execute(text(statement))
        await db.downgrade("base")
        async with engine.connect() as conn:
            left = set(await conn.run_sync(lambda c: inspect(c).get_table_names())) - {"alembic_version"}
        assert left == set()
        await db.migrate()


async def test_sqlite_upgrade_from_empty_to_head(tmp_path: Path) -> None:
    await _roundtrip(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")


@requires_pg
async def test_postgresql_upgrade_from_empty_to_head() -> None:
    await _roundtrip(PG_URL)


async def test_cases_opened_before_the_sla_get_their_first_reply_due(tmp_path: Path) -> None:
    async with Database.open(f"sqlite+aiosqlite:///{tmp_path / 'sla.db'}") as db:
        engine = db.engine
        await db.migrate("0012")
        async with engine.begin() as conn:
            # Tuesday 4 March 2025, 16:30 WIB (09:30 UTC): half an hour that day, half the next morning.
            await conn.execute(
                text(
                    "INSERT INTO cases (telegram_user_id, status, reason, locale, steps_tried, opened_at) "
                    "VALUES (1, 'open', 'participant_asked', 'id', '[]', '2025-03-04 09:30:00')"
                )
            )
        await db.migrate()
        async with engine.connect() as conn:
            due = (await conn.execute(text("SELECT first_reply_due FROM cases"))).scalar_one()
        assert str(due).startswith("2025-03-05 01:30:00")  # 08:30 WIB
