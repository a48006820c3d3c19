"""What every participant turn needs before it starts, read in one round trip.

A turn must know whether the FAQ changed since the matcher was built (an admin's edit on any worker is used at
once) and whether this Telegram account is linked to a participant. Two small queries per turn, each with its own
connection hop, were a large share of a turn's cost; one statement with two scalar subqueries answers both.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import run_blocking
from core.faq_store import revision_query
from core.models import TelegramLink

_LINK = select(TelegramLink.participant_id).where(TelegramLink.telegram_user_id == bindparam("user"))
_BLOCKED = select(TelegramLink.blocked_at.is_not(None)).where(TelegramLink.telegram_user_id == bindparam("user"))
_QUERY = select(revision_query().scalar_subquery(), _LINK.scalar_subquery(), _BLOCKED.scalar_subquery())


@dataclass(frozen=True)
class TurnContext:
    faq_revision: int
    participant_id: int | None  # the linked participant, None when this account has not proved who it is
    blocked: bool  # we marked the chat as having blocked the bot: it writes again, so it unblocked us


class TurnContextReader:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def read(self, telegram_user_id: int) -> TurnContext:
        def read(conn: Connection) -> TurnContext:
            revision, participant_id, blocked = conn.execute(_QUERY, {"user": telegram_user_id}).one()
            return TurnContext(int(revision), participant_id, bool(blocked))

        return await run_blocking(self.engine, read)
