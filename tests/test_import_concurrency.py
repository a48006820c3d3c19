"""While a large import's transaction is open, a participant's turn still writes (issue 11, item 4).

On PostgreSQL rows are locked, not the database: a turn's first write (claiming its update in the ledger) commits
while the import's rows are still uncommitted. On SQLite the import's transaction holds the only write lock from its
start (the same check sees all 200,000 rows: the turn waited for the whole import), which is why the CLI refuses
large imports while a bot serves from the same file (tests/test_cli.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import Database
from core.imports import ImportKind, run_import
from core.updates import Claim, UpdateLedger
from tests.conftest import PG_URL, requires_pg

ROWS = 200_000


@requires_pg
async def test_a_turn_writes_while_an_import_runs_on_postgresql(pg_engine: AsyncEngine, tmp_path: Path) -> None:
    path = tmp_path / "platforms.csv"
    path.write_text("code,name\n" + "".join(f"p{i:07d},Platform {i}\n" for i in range(ROWS)))
    started = asyncio.Event()
    loop = asyncio.get_running_loop()

    def progress(rows: int) -> None:
        loop.call_soon_threadsafe(started.set)

    importing = asyncio.create_task(run_import(pg_engine, ImportKind.PLATFORMS, path, progress=progress))
    await started.wait()  # the import holds its transaction: its first chunk is in
    async with Database.open(PG_URL) as bot:  # a bot worker's own connections
        claimed = await UpdateLedger(bot, "turn").claim(123_456_789)
        async with bot.engine.connect() as conn:
            visible = await conn.scalar(text("SELECT count(*) FROM platforms"))
    report = await importing
    assert claimed is Claim.NEW and report.status == "applied" and report.applied == ROWS
    assert visible == 0, "the turn's write waited for the import to commit"
