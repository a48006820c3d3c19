"""The audit log: every staff action in the console or the API, who did what to what and when."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import make_sessionmaker
from core.models import AuditEntry


@dataclass(frozen=True)
class AuditLine:
    id: int
    at: datetime
    actor: str
    action: str
    target: str | None
    data: dict[str, Any]


class AuditLog:
    def __init__(self, engine: AsyncEngine) -> None:
        self.sessions = make_sessionmaker(engine)

    async def record(
        self, actor: str, action: str, target: str | None = None, data: dict[str, Any] | None = None
    ) -> None:
        async with self.sessions.begin() as session:
            session.add(AuditEntry(at=datetime.now(UTC), actor=actor, action=action, target=target, data=data or {}))

    async def recent(self, limit: int = 100, actor: str | None = None, before: int | None = None) -> list[AuditLine]:
        """Newest first; `before` (an entry id) gives the page after the one that ended with that entry."""
        query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
        if actor:
            query = query.where(AuditEntry.actor == actor)
        if before is not None:
            query = query.where(AuditEntry.id < before)
        async with self.sessions() as session:
            rows = (await session.scalars(query)).all()
        return [AuditLine(r.id, r.at or r.at, r.actor, r.action, r.target, dict(r.data)) for r in rows]
