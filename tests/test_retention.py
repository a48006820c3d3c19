"""Personal data is kept no longer than needed (issue 11, item 7): sent outbox rows keep nothing of the message, and
after RETENTION_DAYS the rows themselves, the text of questions and the chats of closed cases go."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bot import cli
from core.cases import CaseService, ChatMessage
from core.hours import default_support_desk
from core.models import Case, CaseMessage, FaqAnswer, OutboxMessage, OutboxStatus, ProcessedUpdate
from core.outbox import STAFF, Outbox
from core.retention import Retention

GROUP = -100_800_001
OLD, RECENT = 9_800_001, 9_800_002
SECRET = "nama ibu kandung saya Siti Aminah"


async def case_with_chat(cases: CaseService, user: int) -> int:
    opened = await cases.open_case(user, None, "participant_asked", "id", None, [], "<b>kartu</b>", "P")
    await cases.relay_from_participant(opened.case, ChatMessage("text", SECRET, [], user, 1))
    await cases.close_by_participant(opened.case.id, user, "ditutup")
    return opened.case.id


async def test_a_sent_relay_keeps_nothing_of_what_was_said(engine: AsyncEngine) -> None:
    cases = CaseService(engine, [GROUP], default_support_desk())
    await case_with_chat(cases, OLD)
    outbox = Outbox(engine)
    pending = await outbox.pending(STAFF)
    async with engine.connect() as conn:
        assert SECRET in str((await conn.execute(select(OutboxMessage.payload))).all())  # needed until it is sent
    await outbox.mark_sent([item.id for item in pending])
    async with engine.connect() as conn:
        payloads = (await conn.scalars(select(OutboxMessage.payload))).all()
    assert payloads and all(payload == {} for payload in payloads)


async def test_old_data_goes_after_the_retention_period_and_recent_data_stays(engine: AsyncEngine) -> None:
    cases = CaseService(engine, [GROUP], default_support_desk())
    now = datetime.now(UTC)
    old_case, recent_case = await case_with_chat(cases, OLD), await case_with_chat(cases, RECENT)
    outbox = Outbox(engine)
    old_rows = [i.id for i in await outbox.pending(STAFF) if i.topic_user == OLD]
    recent_rows = [i.id for i in await outbox.pending(STAFF) if i.topic_user == RECENT]
    await outbox.mark_sent(old_rows, now=now - timedelta(days=31))
    await outbox.mark_sent(recent_rows, now=now - timedelta(days=29))
    async with engine.begin() as conn:
        await conn.execute(update(Case).where(Case.id == old_case).values(closed_at=now - timedelta(days=31)))
        await conn.execute(
            insert(FaqAnswer),
            [
                {"asked_at": now - timedelta(days=31), "question": "nik 3174 gmn", "kind": "none", "score": 0.0},
                {"asked_at": now - timedelta(days=1), "question": "sertif blm muncul", "kind": "none", "score": 0.0},
            ],
        )
        # A polled update left open (its process stopped and never came back): its body is personal data too.
        stale, fresh = now - timedelta(days=31), now - timedelta(days=1)
        await conn.execute(
            insert(ProcessedUpdate),
            [
                {"update_id": 1, "status": "processing", "worker": "p", "claimed_at": stale, "payload": "{nik}"},
                {"update_id": 2, "status": "processing", "worker": "p", "claimed_at": fresh, "payload": "{hp}"},
            ],
        )
    purged = await Retention(engine, days=30).purge(now)
    assert (purged.outbox_rows, purged.questions, purged.case_messages, purged.cards) == (len(old_rows), 1, 1, 1)
    assert purged.update_bodies == 1
    async with engine.connect() as conn:
        bodies = dict((await conn.execute(select(ProcessedUpdate.update_id, ProcessedUpdate.payload))).all())
    assert bodies == {1: None, 2: "{hp}"}
    async with engine.connect() as conn:
        left = set((await conn.scalars(select(OutboxMessage.id))).all())
        questions = sorted((await conn.scalars(select(FaqAnswer.question))).all())
        messages = (await conn.execute(select(CaseMessage.case_id, func.count()).group_by(CaseMessage.case_id))).all()
        cards = dict((await conn.execute(select(Case.id, Case.card_html))).all())
    assert left == set(recent_rows)
    assert questions == ["", "sertif blm muncul"]  # the old row stays for the statistics, without its words
    assert [tuple(m) for m in messages] == [(recent_case, 1)]
    assert cards == {old_case: None, recent_case: "<b>kartu</b>"}
    assert (await Retention(engine, days=30).purge(now)).outbox_rows == 0  # nothing twice


async def test_the_purge_command(sqlite_engine: AsyncEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cases = CaseService(sqlite_engine, [GROUP], default_support_desk())
    await case_with_chat(cases, OLD)
    async with sqlite_engine.begin() as conn:
        await conn.execute(
            update(OutboxMessage).values(status=OutboxStatus.SENT, sent_at=datetime.now(UTC) - timedelta(days=8))
        )
    monkeypatch.setenv("DATABASE_URL", str(sqlite_engine.url))
    monkeypatch.setenv("RETENTION_DAYS", "7")
    monkeypatch.chdir(tmp_path)  # no .env of the developer's
    assert await _run_cli(["purge"]) == 0
    async with sqlite_engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(OutboxMessage)) == 0


async def _run_cli(argv: list[str]) -> int:
    import asyncio

    return await asyncio.to_thread(cli.main, argv)
