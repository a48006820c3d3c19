"""What the bot itself posts about a case: in the case's topic (a card, a command's answer, a notice by text key),
in a staff group outside any case (/queue), and to the participant (a notification). Functions on the caller's
session: the use case owns the transaction, so a post exists exactly when the change it reports does."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import Case, OutboxMessage
from core.outbox import ParticipantNotification, StaffPost, TopicNotice, enqueue


def in_topic(session: AsyncSession, case: Case, staff_chat_id: int, text_html: str) -> None:
    """Ready HTML in the case's topic (it waits for the topic if that is still being made)."""
    post = StaffPost(text_html)
    enqueue(session, case.staff_chat_id or staff_chat_id, post, case_id=case.id, topic_user=case.telegram_user_id)


def notice(session: AsyncSession, case: Case, staff_chat_id: int, key: str, context: dict[str, Any]) -> None:
    """A notice in the case's topic named by its text key (the sender renders it)."""
    chat = case.staff_chat_id or staff_chat_id
    enqueue(session, chat, TopicNotice(key, context), case_id=case.id, topic_user=case.telegram_user_id)


def in_group(session: AsyncSession, staff_chat_id: int, thread_id: int | None, text_html: str) -> None:
    """A bot reply in the staff group outside any case (e.g. /queue), through the same rate-limited queue."""
    enqueue(session, staff_chat_id, StaffPost(text_html, thread_id))


async def to_participant(
    session: AsyncSession, case: Case, kind: str, context: dict[str, Any], dedupe_key: str
) -> None:
    """A notification (`notify_{kind}`) to the case's participant in their language, once per `dedupe_key`."""
    exists = await session.scalar(select(OutboxMessage.id).where(OutboxMessage.dedupe_key == dedupe_key))
    if exists is None:
        message = ParticipantNotification(kind, case.locale, context)
        enqueue(session, case.telegram_user_id, message, case_id=case.id, dedupe_key=dedupe_key)
