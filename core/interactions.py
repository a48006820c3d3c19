"""One row per participant update handled: the base of the conversation and deflection statistics."""

from __future__ import annotations

from typing import cast

from sqlalchemy import Table

from core.db import Database
from core.models import Interaction
from core.writes import RowWriter

_TABLE = cast(Table, Interaction.__table__)


class InteractionLog:
    def __init__(self, db: Database, writer: RowWriter | None = None) -> None:
        self.writer = writer or RowWriter(db)

    async def record(self, telegram_user_id: int, participant_id: int | None, kind: str, stage: str | None) -> None:
        values = {"telegram_user_id": telegram_user_id, "participant_id": participant_id, "kind": kind, "stage": stage}
        await self.writer.insert(_TABLE, values)
