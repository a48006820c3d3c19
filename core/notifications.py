"""Telling linked participants what changed in their records: certificate issued, transfer done or failed.

Imports call `queue_notifications` inside their own transaction, so a notification exists exactly when the change
does. The outbox row carries the kind and the facts; the sender renders the text in the participant's language.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite

from core.models import OutboxMessage, OutboxStatus, TelegramLink
from core.outbox import PARTICIPANT, notify_queued

CHUNK = 500


class NotificationKind(StrEnum):
    CERTIFICATE_ISSUED = "certificate_issued"
    TRANSFER_DONE = "transfer_done"
    TRANSFER_FAILED = "transfer_failed"


@dataclass(frozen=True)
class Notification:
    participant_id: int
    kind: NotificationKind
    key: str  # what changed, e.g. the certificate number or "<participant>/<seq>/<status>": one message per change
    context: dict[str, Any]


def _jsonable(context: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, date) else v for k, v in context.items()}


def queue_notifications(conn: Connection, notifications: Iterable[Notification]) -> int:
    """Queue one outbox message per linked, not-blocked Telegram account; the same change is never queued twice."""
    insert = sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert
    queued = 0
    batch: list[Notification] = []

    def flush() -> int:
        ids = {n.participant_id for n in batch}
        links = conn.execute(
            select(TelegramLink.participant_id, TelegramLink.telegram_user_id, TelegramLink.locale).where(
                TelegramLink.participant_id.in_(ids), TelegramLink.blocked_at.is_(None)
            )
        ).all()
        by_participant: dict[int, list[tuple[int, str]]] = {}
        for participant_id, user_id, locale in links:
            by_participant.setdefault(participant_id, []).append((user_id, locale))
        rows = [
            {
                "lane": PARTICIPANT,
                "chat_id": user_id,
                "method": "notify",
                "payload": {"kind": n.kind.value, "locale": locale, "context": _jsonable(n.context)},
                "dedupe_key": f"{n.kind.value}:{n.key}:{user_id}"[:128],
                "status": OutboxStatus.PENDING.value,
                "attempts": 0,
            }
            for n in batch
            for user_id, locale in by_participant.get(n.participant_id, [])
        ]
        if not rows:
            return 0
        result = conn.execute(insert(OutboxMessage).on_conflict_do_nothing(index_elements=["dedupe_key"]), rows)
        notify_queued(conn, [PARTICIPANT])
        return int(getattr(result, "rowcount", 0) or 0)

    for notification in notifications:
        batch.append(notification)
        if len(batch) >= CHUNK:
            queued += flush()
            batch = []
    if batch:
        queued += flush()
    return queued
