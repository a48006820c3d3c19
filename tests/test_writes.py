"""Group commit: concurrent turns' rows share statements and transactions, each gets its own id and outcome."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

import pytest
from sqlalchemy import Connection, Engine, Table, event, func, insert, select
from sqlalchemy.exc import IntegrityError

from core.db import Database
from core.models import FaqAnswer, Interaction
from core.writes import RowWriter

ANSWERS = cast(Table, FaqAnswer.__table__)
INTERACTIONS = cast(Table, Interaction.__table__)


def _answer(n: int) -> dict[str, Any]:
    return {"question": f"q{n}", "kind": "answer", "faq_id": "survey", "score": 90.0, "telegram_user_id": n,
            "participant_id": None}  # fmt: skip


async def test_concurrent_rows_share_statements(db: Database) -> None:
    inserts = 0

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        nonlocal inserts
        inserts += statement.lstrip().upper().startswith("INSERT")

    row = {"telegram_user_id": 1, "participant_id": None, "kind": "text", "stage": None}
    event.listen(Engine, "before_cursor_execute", count)
    try:
        writer = RowWriter(db)
        await asyncio.gather(*(writer.insert(INTERACTIONS, row) for _ in range(200)))
    finally:
        event.remove(Engine, "before_cursor_execute", count)
    assert inserts <= 4  # a multi-row INSERT per batch, not 200
    async with db.engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(Interaction)) == 200


async def test_each_caller_gets_the_id_of_its_own_row(db: Database) -> None:
    writer = RowWriter(db)
    ids = await asyncio.gather(*(writer.insert(ANSWERS, _answer(n), returning_id=True) for n in range(200)))
    assert len(set(ids)) == 200 and all(isinstance(i, int) for i in ids)
    async with db.engine.connect() as conn:
        stored = dict((await conn.execute(select(FaqAnswer.id, FaqAnswer.question))).all())
    assert [stored[cast(int, i)] for i in ids] == [f"q{n}" for n in range(200)]


async def test_a_bad_row_fails_alone(db: Database) -> None:
    writer = RowWriter(db)
    good = {"telegram_user_id": 1, "participant_id": None, "kind": "text", "stage": None}
    bad = good | {"telegram_user_id": None}  # NOT NULL
    results = await asyncio.gather(
        *(writer.insert(INTERACTIONS, bad if n == 5 else good) for n in range(10)), return_exceptions=True
    )
    assert isinstance(results[5], IntegrityError)
    assert [r for n, r in enumerate(results) if n != 5] == [None] * 9
    async with db.engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(Interaction)) == 9


async def test_close_waits_for_rows_in_flight(db: Database) -> None:
    writer = RowWriter(db)
    pending = [asyncio.ensure_future(writer.insert(ANSWERS, _answer(n))) for n in range(20)]
    await asyncio.sleep(0)
    await writer.close()
    await asyncio.gather(*pending)
    async with db.engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(FaqAnswer)) == 20


@pytest.mark.parametrize("size", [1, 3])
async def test_small_batches_still_write_everything(db: Database, size: int) -> None:
    writer = RowWriter(db, max_batch=size)
    await asyncio.gather(*(writer.insert(ANSWERS, _answer(n)) for n in range(10)))
    async with db.engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(FaqAnswer)) == 10


async def test_writes_of_concurrent_callers_share_commits_and_fail_alone(db: Database) -> None:
    commits = 0

    def count(conn: Any) -> None:
        nonlocal commits
        commits += 1

    def job(n: int) -> Callable[[Connection], int]:
        def work(conn: Connection) -> int:
            if n == 7:
                raise ValueError("job 7 fails")
            conn.execute(insert(Interaction).values(telegram_user_id=n, kind="text"))
            return n

        return work

    event.listen(Engine, "commit", count)
    try:
        results = await asyncio.gather(*(db.run(job(n), write=True) for n in range(50)), return_exceptions=True)
    finally:
        event.remove(Engine, "commit", count)
    assert isinstance(results[7], ValueError)
    assert [r for n, r in enumerate(results) if n != 7] == [n for n in range(50) if n != 7]
    async with db.engine.connect() as conn:
        users = set((await conn.execute(select(Interaction.telegram_user_id))).scalars())
    assert users == set(range(50)) - {7}
    if db.is_sqlite:
        assert commits < 50  # grouped (the group with job 7 ran again one by one)
