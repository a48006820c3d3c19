"""What the FAQ answered and whether it helped: the record admins read to decide which FAQ to write next."""

from __future__ import annotations

from typing import cast

from sqlalchemy import Table, update

from core.db import Database
from core.identity import redact_free_text
from core.models import FaqAnswer
from core.writes import RowWriter

MAX_QUESTION = 1000
_TABLE = cast(Table, FaqAnswer.__table__)


class FaqAnswerLog:
    def __init__(self, db: Database, writer: RowWriter | None = None) -> None:
        self.sessions = db.sessions
        self.writer = writer or RowWriter(db)

    async def record(
        self,
        question: str,
        kind: str,
        faq_id: str | None,
        score: float,
        telegram_user_id: int | None,
        participant_id: int | None,
    ) -> int:
        """Store one answer; the question is redacted (no NIK, phone number or second-factor answer is kept) and
        capped in length."""
        values = {
            "question": redact_free_text(question)[:MAX_QUESTION],
            "kind": kind,
            "faq_id": faq_id,
            "score": score,
            "telegram_user_id": telegram_user_id,
            "participant_id": participant_id,
        }
        answer_id = await self.writer.insert(_TABLE, values, returning_id=True)
        assert answer_id is not None
        return answer_id

    async def feedback(self, answer_id: int, helpful: bool, telegram_user_id: int) -> bool:
        """Only the person who got the answer can rate it; returns whether a row was updated."""
        async with self.sessions.begin() as session:
            result = await session.execute(
                update(FaqAnswer)
                .where(FaqAnswer.id == answer_id, FaqAnswer.telegram_user_id == telegram_user_id)
                .values(helpful=helpful)
            )
            return bool(getattr(result, "rowcount", 0))
