"""What every participant turn needs before it starts, read in one round trip.

A turn must know whether the FAQ changed since the matcher was built (an admin's edit on any worker is used at
once), whether this Telegram account is linked to a participant, and whether it ever had a case (most never do,
and then no agent can be holding the chat). Separate queries for these, each with its own connection hop, were a
large share of a turn's cost; one statement with scalar subqueries answers them all.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, select

from core.db import Database
from core.faq_store import revision_query
from core.models import Case, TelegramLink

_LINK = select(TelegramLink.participant_id).where(TelegramLink.telegram_user_id == bindparam("user"))
_BLOCKED = select(TelegramLink.blocked_at.is_not(None)).where(TelegramLink.telegram_user_id == bindparam("user"))
_HAD_CASE = select(Case.id).where(Case.telegram_user_id == bindparam("user")).limit(1).exists()
_QUERY = select(revision_query().scalar_subquery(), _LINK.scalar_subquery(), _BLOCKED.scalar_subquery(), _HAD_CASE)


@dataclass(frozen=True)
class TurnContext:
    faq_revision: int
    participant_id: int | None  # the linked participant, None when this account has not proved who it is
    blocked: bool  # we marked the chat as having blocked the bot: it writes again, so it unblocked us
    had_case: bool = True  # some case was ever opened for this chat; if not, no person can be on it now


class TurnContextReader:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def read(self, telegram_user_id: int) -> TurnContext:
        def read(conn: Connection) -> TurnContext:
            revision, participant_id, blocked, had_case = conn.execute(_QUERY, {"user": telegram_user_id}).one()
            return TurnContext(int(revision), participant_id, bool(blocked), bool(had_case))

        return await self.db.run(read)
