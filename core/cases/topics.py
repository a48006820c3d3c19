"""Each participant's forum topic in a staff group: which group, its name and id, its creation through the outbox,
and its recreation when someone deletes it. Functions on the caller's session: the use case owns the transaction."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.cases.views import ACTIVE
from core.limits import TOPIC_NAME
from core.models import Case, OutboxMessage, OutboxStatus, ParticipantTopic
from core.outbox import STAFF, CreateTopic, StaffPost, enqueue

MAX_NAME = TOPIC_NAME


def fallback_name(user_id: int) -> str:
    return f"#{user_id}"


async def least_busy_group(session: AsyncSession, staff_chat_ids: Sequence[int]) -> int:
    """New participants go to the staff group with the fewest open cases (each group has its own limits)."""
    rows = await session.execute(
        select(Case.staff_chat_id, func.count())
        .where(Case.status.in_(ACTIVE), Case.staff_chat_id.in_(list(staff_chat_ids)))
        .group_by(Case.staff_chat_id)
    )
    load = {chat: count for chat, count in rows.all()}
    return min(staff_chat_ids, key=lambda chat: (load.get(chat, 0), staff_chat_ids.index(chat)))


async def topic_for_case(
    session: AsyncSession, user_id: int, staff_chat_ids: Sequence[int], name: str
) -> ParticipantTopic:
    """The participant's topic, reused for each case: made (queued) when there is none yet, or moved when its group
    is no longer a staff group. The name is kept for a recreation."""
    topic = await session.get(ParticipantTopic, user_id, with_for_update=True)
    if topic is None or topic.staff_chat_id not in staff_chat_ids:
        chat_id = await least_busy_group(session, staff_chat_ids)
        if topic is None:
            topic = ParticipantTopic(telegram_user_id=user_id, staff_chat_id=chat_id, topic_id=None)
            session.add(topic)
        else:
            topic.staff_chat_id, topic.topic_id = chat_id, None
    topic.name = name[:MAX_NAME]
    if topic.topic_id is None:
        queue_creation(session, topic)
    return topic


def queue_creation(session: AsyncSession, topic: ParticipantTopic) -> None:
    user = topic.telegram_user_id
    name = topic.name or fallback_name(user)
    enqueue(session, topic.staff_chat_id, CreateTopic(name), topic_user=user)


async def revive_creation(session: AsyncSession, user_id: int) -> None:
    """The participant writes while their topic does not exist: a creation that failed (the bot lacked the right,
    say) is tried again now, and one that is gone is queued again — their messages wait for it."""
    topic = await session.get(ParticipantTopic, user_id)
    if topic is None or topic.topic_id is not None:
        return
    queued = (
        await session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.lane == STAFF,
                OutboxMessage.chat_id == topic.staff_chat_id,
                OutboxMessage.topic_user == user_id,
                OutboxMessage.method == "createForumTopic",
                OutboxMessage.status == OutboxStatus.PENDING,
            )
        )
    ).all()
    for row in queued:
        if row.error and row.error != "429":  # a 429's wait is Telegram's to set
            row.not_before = None
    if not queued:
        queue_creation(session, topic)


async def created(session: AsyncSession, user_id: int, staff_chat_id: int, topic_id: int) -> None:
    topic = await session.get(ParticipantTopic, user_id, with_for_update=True)
    if topic is None:
        return
    topic.staff_chat_id, topic.topic_id = staff_chat_id, topic_id
    await session.execute(
        update(Case)
        .where(Case.telegram_user_id == user_id, Case.status.in_(ACTIVE))
        .values(staff_chat_id=staff_chat_id, topic_id=topic_id)
    )


async def lost(session: AsyncSession, user_id: int) -> None:
    """The topic was deleted by someone: a new one (same name), and the open case's card in it again; queued
    messages wait for it."""
    topic = await session.get(ParticipantTopic, user_id, with_for_update=True)
    if topic is None or topic.topic_id is None:
        return
    topic.topic_id = None
    await session.execute(
        update(Case).where(Case.telegram_user_id == user_id, Case.status.in_(ACTIVE)).values(topic_id=None)
    )
    queue_creation(session, topic)
    active: Case | None = await session.scalar(
        select(Case).where(Case.telegram_user_id == user_id, Case.status.in_(ACTIVE)).order_by(Case.id.desc()).limit(1)
    )
    if active is not None and active.card_html:
        enqueue(session, topic.staff_chat_id, StaffPost(active.card_html), case_id=active.id, topic_user=user_id)


async def where(session: AsyncSession, user_id: int) -> tuple[int, int | None] | None:
    topic = await session.get(ParticipantTopic, user_id)
    return (topic.staff_chat_id, topic.topic_id) if topic else None


async def owner(session: AsyncSession, staff_chat_id: int, topic_id: int) -> int | None:
    """The participant whose topic this is."""
    found: int | None = await session.scalar(
        select(ParticipantTopic.telegram_user_id).where(
            ParticipantTopic.staff_chat_id == staff_chat_id, ParticipantTopic.topic_id == topic_id
        )
    )
    return found
