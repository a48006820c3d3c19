"""Getting a database ready for the bot: the schema brought up to date, and demo personas where they belong."""

from __future__ import annotations

import asyncio
from enum import Enum

from sqlalchemy import func, select

from core.calendar import default_calendar, today_in_jakarta
from core.db import Database, sqlite_path
from core.demo import recreate_database, seed_demo
from core.models import Participant
from core.rules import default_rules


class DatabaseState(Enum):
    DEMO_CREATED = "demo_created"  # a new SQLite file, filled with the demo personas
    EMPTY = "empty"  # migrated, no participants yet: waiting for its first import
    READY = "ready"


async def prepare_database(database_url: str, pii_key: bytes, demo: bool) -> DatabaseState:
    """Bring the schema up to date. `demo`: an SQLite file that does not exist yet is created with the demo
    personas (the console chat and `./run.sh` work out of the box). An existing database is never recreated or
    seeded: an empty one may be a production database waiting for its first import."""
    path = sqlite_path(database_url)
    new_file = path is not None and not await asyncio.to_thread(path.exists)
    async with Database.open(database_url) as db:
        if new_file and demo:
            await recreate_database(db)
            await seed_demo(db.engine, default_rules(), default_calendar(), pii_key, today_in_jakarta())
            return DatabaseState.DEMO_CREATED
        await db.migrate()
        async with db.engine.connect() as conn:
            participants = await conn.scalar(select(func.count()).select_from(Participant))
        return DatabaseState.READY if participants else DatabaseState.EMPTY
