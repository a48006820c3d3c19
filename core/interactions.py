"""One row per participant update handled: the base of the conversation and deflection statistics."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import make_sessionmaker
from core.models import Interaction


class InteractionLog:
    def __init__(self, engine: AsyncEngine) -> None:
        self.sessions = make_sessionmaker(engine)

    async def record(self, telegram_user_id: int, participant_id: int | None, kind: str, stage: str | None) -> None:
        async with self.sessions.begin() as session:
            session.add(
                Interaction(telegram_user_id=telegram_user_id, participant_id=participant_id, kind=kind, stage=stage)
            )
