"""The durable outbox: Bot API calls written in the same transaction as the change they report, sent later.

Core only records what to send and its fate; the Telegram sender (bot/outbox_sender.py) makes the calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from core.db import make_sessionmaker
from core.models import OutboxMessage, OutboxStatus

STAFF = "staff"
PARTICIPANT = "participant"
# Failures we cannot classify (neither Telegram's refusal nor a network or server error) are counted: after this many
# the item is given up. Transient failures (network, 5xx, 429) are never counted: they wait and go again.
MAX_ATTEMPTS = 8


@dataclass(frozen=True)
class OutboxItem:
    id: int
    lane: str
    chat_id: int
    method: str
    payload: dict[str, Any]
    case_id: int | None
    attempts: int
    not_before: datetime | None = None  # set while a failed send waits for its retry

    def waiting(self, now: datetime) -> bool:
        if self.not_before is None:
            return False
        return _utc(self.not_before) > now


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)  # SQLite hands back naive datetimes; we store UTC


def _item(row: OutboxMessage) -> OutboxItem:
    return OutboxItem(row.id, row.lane, row.chat_id, row.method, row.payload, row.case_id, row.attempts, row.not_before)


def enqueue(
    session: AsyncSession,
    lane: str,
    chat_id: int,
    method: str,
    payload: dict[str, Any],
    *,
    case_id: int | None = None,
    dedupe_key: str | None = None,
) -> OutboxMessage:
    """Add to the caller's transaction: the message exists exactly when the change does."""
    row = OutboxMessage(
        lane=lane, chat_id=chat_id, method=method, payload=payload, case_id=case_id, dedupe_key=dedupe_key
    )
    session.add(row)
    return row


class Outbox:
    def __init__(self, engine: AsyncEngine) -> None:
        self.sessions = make_sessionmaker(engine)

    async def due(self, lane: str, limit: int = 100, now: datetime | None = None) -> list[OutboxItem]:
        """Pending items whose time has come, oldest first (so a chat's messages keep their order)."""
        now = now or datetime.now(UTC)
        async with self.sessions() as session:
            rows = (
                await session.scalars(
                    select(OutboxMessage)
                    .where(
                        OutboxMessage.lane == lane,
                        OutboxMessage.status == OutboxStatus.PENDING,
                        or_(OutboxMessage.not_before.is_(None), OutboxMessage.not_before <= now),
                    )
                    .order_by(OutboxMessage.id)
                    .limit(limit)
                )
            ).all()
            return [_item(r) for r in rows]

    async def pending(self, lane: str, per_chat: int = 100) -> list[OutboxItem]:
        """Every pending item, due or waiting for a retry, oldest first — at most `per_chat` of each chat, so that one
        chat's backlog never hides another chat's messages. A sender that keeps each chat's order must see what waits,
        so that nothing queued later overtakes it (also after a restart)."""
        rank = func.row_number().over(partition_by=OutboxMessage.chat_id, order_by=OutboxMessage.id).label("rank")
        ranked = (
            select(OutboxMessage.id, rank)
            .where(OutboxMessage.lane == lane, OutboxMessage.status == OutboxStatus.PENDING)
            .subquery()
        )
        async with self.sessions() as session:
            rows = (
                await session.scalars(
                    select(OutboxMessage)
                    .join(ranked, ranked.c.id == OutboxMessage.id)
                    .where(ranked.c.rank <= per_chat)
                    .order_by(OutboxMessage.id)
                )
            ).all()
            return [_item(r) for r in rows]

    async def sent_since(self, lane: str, since: datetime) -> list[tuple[int, str, datetime]]:
        """(chat, method, sent at) of what went out after `since`: a new sender's rate limits start from what its
        predecessor sent, not from zero."""
        async with self.sessions() as session:
            rows = await session.execute(
                select(OutboxMessage.chat_id, OutboxMessage.method, OutboxMessage.sent_at).where(
                    OutboxMessage.lane == lane,
                    OutboxMessage.status == OutboxStatus.SENT,
                    OutboxMessage.sent_at >= since,
                )
            )
            return [(chat, method, _utc(at)) for chat, method, at in rows.all() if at is not None]

    async def pending_count(self, lane: str | None = None) -> int:
        async with self.sessions() as session:
            query = select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == OutboxStatus.PENDING)
            if lane:
                query = query.where(OutboxMessage.lane == lane)
            return int(await session.scalar(query) or 0)

    async def mark_sending(self, ids: list[int]) -> list[int]:
        """Take pending items for sending; returns those taken (one another sender took or finished are left out)."""
        async with self.sessions.begin() as session:
            taken = await session.scalars(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(ids), OutboxMessage.status == OutboxStatus.PENDING)
                .values(status=OutboxStatus.SENDING)
                .returning(OutboxMessage.id)
            )
            return list(taken)

    async def recover_sending(self, lane: str) -> int:
        """After a crash: messages handed to Telegram without an answer go again (at least once, never lost)."""
        async with self.sessions.begin() as session:
            result = await session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.lane == lane, OutboxMessage.status == OutboxStatus.SENDING)
                .values(status=OutboxStatus.PENDING)
            )
            return int(getattr(result, "rowcount", 0) or 0)

    async def mark_sent(self, ids: list[int], now: datetime | None = None) -> None:
        async with self.sessions.begin() as session:
            await session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(ids))
                .values(status=OutboxStatus.SENT, sent_at=now or datetime.now(UTC))
            )

    async def retry_later(
        self, item_id: int, delay: float, error: str, count_attempt: bool = True, now: datetime | None = None
    ) -> bool:
        """Try again after `delay` seconds. Only counted failures use up the MAX_ATTEMPTS budget; returns False when
        this one used it up and the item is given up (the caller reports the loss)."""
        async with self.sessions.begin() as session:
            row = await session.get(OutboxMessage, item_id)
            if row is None:
                return True
            if count_attempt:
                row.attempts += 1
            row.error = error[:300]
            if count_attempt and row.attempts >= MAX_ATTEMPTS:
                row.status = OutboxStatus.FAILED
                return False
            row.status = OutboxStatus.PENDING
            row.not_before = (now or datetime.now(UTC)) + timedelta(seconds=delay)
            return True

    async def mark_failed(self, item_id: int, error: str) -> None:
        async with self.sessions.begin() as session:
            await session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == item_id)
                .values(status=OutboxStatus.FAILED, error=error[:300])
            )
