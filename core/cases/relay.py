"""Messages of a case, both ways: stored (redacted) in the case and queued in the outbox in the same transaction.
A participant's go to their topic in the staff group, an agent's to the participant's private chat: both late under
load or errors, never lost. Functions on the caller's session: the use case owns the transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.cases import topics
from core.cases.lifecycle import CaseRules
from core.cases.views import CaseView, ChatMessage, chunks, stored
from core.identity import redact_free_text
from core.models import Case, CaseMessage, OutboxMessage, OutboxStatus
from core.outbox import (
    STAFF,
    AgentCopy,
    AgentEdit,
    AgentText,
    CopyToTopic,
    OutboundMessage,
    ParticipantNotification,
    RelayText,
    decode,
    enqueue,
)

# A participant with this many messages still waiting for their topic is told, once per backlog, that the agents get
# them a little later (the staff group takes ~20 messages a minute; the sender serves every participant in turn).
BACKLOG_NOTICE = 15


async def from_participant(
    session: AsyncSession, case: CaseView, message: ChatMessage, now: datetime, header: str = "", edit: bool = False
) -> None:
    """Store the message and queue its relay into the case's topic (texts are merged by the sender)."""
    session.add(
        CaseMessage(
            case_id=case.id,
            direction="participant",
            author_id=case.telegram_user_id,
            kind=message.kind,
            text=stored(message.text, participant=True),
            file_ids=message.file_ids,
            source_chat_id=message.chat_id,
            source_message_id=message.message_id,
            media_group_id=message.media_group_id,
        )
    )
    chat = case.staff_chat_id or await _topic_chat(session, case)
    user = case.telegram_user_id
    queued = now.timestamp()
    outgoing: list[OutboundMessage]
    if message.kind == "text" or edit:
        if edit:
            await _supersede_edits(session, user, message.message_id)
        # A header (an edit's) can push a full-length text past Telegram's limit: it then goes in two parts.
        # Agents see what the case keeps: no NIK, card or phone number, nothing that answers the second factor.
        shown = redact_free_text(message.text or "")
        outgoing = [RelayText(part, queued, message.message_id if edit else None)
                    for part in chunks(f"{header}{shown}")]  # fmt: skip
    else:
        ids = (message.message_id,)
        caption = redact_free_text(message.text) if message.text else None
        masked = caption if caption != message.text else None
        outgoing = [CopyToTopic(message.chat_id, ids, queued, message.media_group_id, masked)]
    for item in outgoing:
        enqueue(session, chat, item, case_id=case.id, topic_user=user)
    await topics.revive_creation(session, user)
    await _tell_of_backlog(session, case, chat)


async def _topic_chat(session: AsyncSession, case: CaseView) -> int:
    where = await topics.where(session, case.telegram_user_id)
    if where is None:
        raise LookupError(f"case {case.id} has no staff group")
    return where[0]


async def _supersede_edits(session: AsyncSession, user_id: int, message_id: int) -> None:
    """An edit of a message whose earlier edit still waits: only the newest goes (200 edits are not 200 relays).
    One the sender is sending right now goes too; none is lost."""
    rows = (
        await session.execute(
            select(OutboxMessage.id, OutboxMessage.payload).where(
                OutboxMessage.lane == STAFF,
                OutboxMessage.topic_user == user_id,
                OutboxMessage.method == "relayText",
                OutboxMessage.status == OutboxStatus.PENDING,
            )
        )
    ).all()
    older = [row_id for row_id, payload in rows if _edit_of(payload) == message_id]  # a handful per participant
    if older:
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(older), OutboxMessage.status == OutboxStatus.PENDING)
            .values(status=OutboxStatus.FAILED, error="superseded by a newer edit", payload={})
        )


def _edit_of(payload: dict[str, Any]) -> int | None:
    message = decode(STAFF, "relayText", payload)
    return message.edit_of if isinstance(message, RelayText) else None


async def _tell_of_backlog(session: AsyncSession, case: CaseView, chat: int) -> None:
    """Once per backlog: told when one was queued after the oldest message still waiting, not again."""
    waiting, oldest = (
        await session.execute(
            select(func.count(), func.min(OutboxMessage.id)).where(
                OutboxMessage.lane == STAFF,
                OutboxMessage.chat_id == chat,
                OutboxMessage.topic_user == case.telegram_user_id,
                OutboxMessage.status == OutboxStatus.PENDING,
            )
        )
    ).one()
    if waiting < BACKLOG_NOTICE:
        return
    told = await session.scalar(
        select(OutboxMessage.id).where(
            OutboxMessage.case_id == case.id,
            OutboxMessage.method == "notify",
            OutboxMessage.dedupe_key.like(f"relay_backlog:{case.id}:%"),
            OutboxMessage.id > oldest,
        )
    )
    if told is None:
        notice = ParticipantNotification("relay_backlog", case.locale)
        enqueue(session, case.telegram_user_id, notice, case_id=case.id, dedupe_key=f"relay_backlog:{case.id}:{oldest}")


async def record_agent(
    session: AsyncSession,
    case: Case,
    agent_id: int,
    message: ChatMessage,
    now: datetime,
    relayed_message_id: int | None = None,
) -> None:
    session.add(
        CaseMessage(
            case_id=case.id,
            direction="agent",
            author_id=agent_id,
            kind=message.kind,
            text=stored(message.text),
            source_chat_id=message.chat_id,
            source_message_id=message.message_id,
            relayed_message_id=relayed_message_id,
            media_group_id=message.media_group_id,
        )
    )
    CaseRules.agent_replied(case, agent_id, now)


async def from_agent(session: AsyncSession, case: Case, agent_id: int, message: ChatMessage, now: datetime) -> None:
    """An agent's message (or an album's part) to the participant: recorded and queued together. The sender copies
    an album as one, and notes each copy's id, for edits."""
    await record_agent(session, case, agent_id, message, now)
    copy = AgentCopy(message.chat_id, (message.message_id,), now.timestamp(), message.media_group_id)
    enqueue(session, case.telegram_user_id, copy, case_id=case.id)


async def agent_text(
    session: AsyncSession, case: Case, agent_id: int, text_html: str, source: ChatMessage, now: datetime,
    buttons: tuple[tuple[tuple[str, str], ...], ...] = (),
) -> None:  # fmt: skip
    """A text sent on an agent's behalf (a canned reply, the satisfaction question)."""
    await record_agent(session, case, agent_id, source, now)
    enqueue(session, case.telegram_user_id, AgentText(text_html, buttons), case_id=case.id)


def agent_edit(session: AsyncSession, case: CaseView, edit: AgentEdit) -> None:
    enqueue(session, case.telegram_user_id, edit, case_id=case.id)


async def copies_made(session: AsyncSession, case_id: int, copies: dict[int, int]) -> None:
    """The participant-side ids of an agent's messages (source id → copy id), so that edits are mirrored."""
    rows = await session.scalars(
        select(CaseMessage).where(
            CaseMessage.case_id == case_id,
            CaseMessage.direction == "agent",
            CaseMessage.source_message_id.in_(list(copies)),
        )
    )
    for row in rows.all():
        if row.source_message_id is not None:
            row.relayed_message_id = copies[row.source_message_id]


async def relayed_copy(session: AsyncSession, case_id: int, source_message_id: int) -> int | None:
    found: int | None = await session.scalar(
        select(CaseMessage.relayed_message_id).where(
            CaseMessage.case_id == case_id,
            CaseMessage.direction == "agent",
            CaseMessage.source_message_id == source_message_id,
        )
    )
    return found


async def album_is_note(session: AsyncSession, case_id: int, media_group_id: str) -> bool:
    found = await session.scalar(
        select(CaseMessage.id)
        .where(
            CaseMessage.case_id == case_id,
            CaseMessage.direction == "note",
            CaseMessage.media_group_id == media_group_id,
        )
        .limit(1)
    )
    return found is not None


def note(
    session: AsyncSession,
    case_id: int,
    agent_id: int,
    text: str,
    kind: str = "text",
    file_ids: list[str] | None = None,
    media_group_id: str | None = None,
) -> None:
    """An internal note (a text, or a photo or file captioned "/note …"): kept in the case, never relayed."""
    session.add(
        CaseMessage(
            case_id=case_id,
            direction="note",
            author_id=agent_id,
            kind=kind,
            text=stored(text),
            file_ids=file_ids or [],
            media_group_id=media_group_id,
        )
    )
