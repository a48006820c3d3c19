"""Cases: a participant's chat handed to human agents in a staff forum group, one topic per participant.

Every relay into a staff group goes through the outbox (Telegram allows a bot ~20 messages a minute per group and
~20 topic creations a minute): late under load, never lost. Cases and their messages live in the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from core.db import make_sessionmaker
from core.hours import SupportDesk
from core.identity import redact, redact_free_text
from core.models import (
    Case,
    CaseMessage,
    CaseStatus,
    Event,
    OutboxMessage,
    OutboxStatus,
    Participant,
    ParticipantTopic,
)
from core.outbox import PARTICIPANT, STAFF, enqueue

ACTIVE = (CaseStatus.OPEN, CaseStatus.CLAIMED)
MAX_TEXT = 4096  # Telegram's limit for one message


@dataclass(frozen=True)
class CaseView:
    id: int
    telegram_user_id: int
    participant_id: int | None
    status: str
    reason: str
    locale: str
    stage: str | None
    steps_tried: list[str]
    staff_chat_id: int | None
    topic_id: int | None
    opened_at: datetime
    claimed_by: int | None
    closed_at: datetime | None
    satisfaction: int | None

    @classmethod
    def of(cls, c: Case) -> CaseView:
        opened_at = _aware(c.opened_at) or datetime.now(UTC)
        return cls(
            c.id, c.telegram_user_id, c.participant_id, c.status, c.reason, c.locale, c.stage, list(c.steps_tried),
            c.staff_chat_id, c.topic_id, opened_at, c.claimed_by, _aware(c.closed_at), c.satisfaction,
        )  # fmt: skip


@dataclass(frozen=True)
class Opened:
    case: CaseView
    new: bool


@dataclass(frozen=True)
class QueuedCase:
    """A line of /queue: the case and its participant's name when they are identified."""

    case: CaseView
    participant_name: str | None


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:  # SQLite hands back naive datetimes; we store UTC
        return value.replace(tzinfo=UTC)
    return value


def _line(kind: str, text: str | None) -> str:
    """A transcript line: the text, or the kind of media with its caption ("[photo] ini dashboard saya")."""
    if kind == "text":
        return text or ""
    return f"[{kind}] {text}" if text else f"[{kind}]"


def topic_payload(user_id: int, payload: dict[str, Any]) -> dict[str, Any]:
    """The sender fills in the forum topic when it is known (its creation may still be queued)."""
    return payload | {"topic_user": user_id}


def notice_payload(user_id: int, key: str, context: dict[str, Any]) -> dict[str, Any]:
    """A bot notice in a participant's topic, named by its text key: core holds no wording, the sender renders it."""
    return topic_payload(user_id, {"notice": key, "context": context})


def _stored(text: str | None, participant: bool = False) -> str | None:
    """What a case keeps of a message: no NIK, card or phone number — and from a participant, like their FAQ
    questions, nothing that answers the second factor (a birth date, the NIK's last 4 digits)."""
    return (redact_free_text if participant else redact)(text or "")[:MAX_TEXT] or None


def _chunks(text: str, size: int = MAX_TEXT) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


class CaseService:
    def __init__(self, engine: AsyncEngine, staff_chat_ids: list[int], desk: SupportDesk) -> None:
        self.sessions = make_sessionmaker(engine)
        self.staff_chat_ids = staff_chat_ids
        self.desk = desk

    @property
    def staffed(self) -> bool:
        return bool(self.staff_chat_ids)

    async def active_case(self, user_id: int) -> CaseView | None:
        async with self.sessions() as session:
            case = await self._active(session, user_id)
            return CaseView.of(case) if case else None

    async def _active(self, session: AsyncSession, user_id: int) -> Case | None:
        found: Case | None = await session.scalar(
            select(Case)
            .where(Case.telegram_user_id == user_id, Case.status.in_(ACTIVE))
            .order_by(Case.id.desc())
            .limit(1)
        )
        return found

    async def open_case(
        self,
        user_id: int,
        participant_id: int | None,
        reason: str,
        locale: str,
        stage: str | None,
        steps_tried: list[str],
        card_html: str,
        topic_name: str,
    ) -> Opened:
        """One active case per participant: asking again returns the open one instead of a duplicate."""
        if not self.staff_chat_ids:
            raise RuntimeError("no staff group is configured")
        async with self.sessions.begin() as session:
            existing = await self._active(session, user_id)
            if existing is not None:
                return Opened(CaseView.of(existing), new=False)
            topic = await session.get(ParticipantTopic, user_id, with_for_update=True)
            if topic is None or topic.staff_chat_id not in self.staff_chat_ids:
                chat_id = await self._least_busy_staff_chat(session)
                if topic is None:
                    topic = ParticipantTopic(telegram_user_id=user_id, staff_chat_id=chat_id, topic_id=None)
                    session.add(topic)
                else:
                    topic.staff_chat_id, topic.topic_id = chat_id, None
            if topic.topic_id is None:
                self._queue_topic(session, topic, topic_name)
            case = Case(
                telegram_user_id=user_id,
                participant_id=participant_id,
                reason=reason,
                locale=locale,
                stage=stage,
                steps_tried=steps_tried,
                staff_chat_id=topic.staff_chat_id,
                topic_id=topic.topic_id,
                status=CaseStatus.OPEN,
                opened_at=datetime.now(UTC),
            )
            session.add(case)
            await session.flush()
            enqueue(
                session,
                STAFF,
                topic.staff_chat_id,
                "sendMessage",
                topic_payload(user_id, {"text": card_html, "parse_mode": "HTML"}),
                case_id=case.id,
            )
            self._event(session, case, "opened", {"reason": reason}, "participant", str(user_id))
            return Opened(CaseView.of(case), new=True)

    def _queue_topic(self, session: AsyncSession, topic: ParticipantTopic, name: str) -> None:
        enqueue(
            session,
            STAFF,
            topic.staff_chat_id,
            "createForumTopic",
            {"name": name[:128], "topic_user": topic.telegram_user_id},
        )

    async def _least_busy_staff_chat(self, session: AsyncSession) -> int:
        """New participants go to the staff group with the fewest open cases (each group has its own limits)."""
        rows = await session.execute(
            select(Case.staff_chat_id, func.count())
            .where(Case.status.in_(ACTIVE), Case.staff_chat_id.in_(self.staff_chat_ids))
            .group_by(Case.staff_chat_id)
        )
        load = {chat: count for chat, count in rows.all()}
        return min(self.staff_chat_ids, key=lambda chat: (load.get(chat, 0), self.staff_chat_ids.index(chat)))

    async def reopen_recent(self, user_id: int, now: datetime | None = None) -> CaseView | None:
        """A participant writing again soon after an agent closed their case reopens it (same topic, same agent).

        A case the participant closed themselves (/cancel) stays closed: they asked for the bot back.
        """
        now = now or datetime.now(UTC)
        async with self.sessions.begin() as session:
            if await self._active(session, user_id) is not None:
                return None
            last: Case | None = await session.scalar(
                select(Case).where(Case.telegram_user_id == user_id).order_by(Case.id.desc()).limit(1)
            )
            closed_at = _aware(last.closed_at) if last else None
            if last is None or closed_at is None or now - closed_at > self.desk.reopen_window:
                return None
            if last.closed_by == user_id:
                return None
            last.status = CaseStatus.CLAIMED if last.claimed_by else CaseStatus.OPEN
            last.closed_at = None
            last.closed_by = None
            self._event(session, last, "reopened", {}, "participant", str(user_id))
            # The agents see in the topic why messages arrive again after their /close.
            chat = last.staff_chat_id or self.staff_chat_ids[0]
            context = {"case_id": last.id, "claimed_by": last.claimed_by}
            notice = notice_payload(user_id, "staff_case_reopened", context)
            enqueue(session, STAFF, chat, "notice", notice, case_id=last.id)
            return CaseView.of(last)

    async def relay_from_participant(
        self,
        case: CaseView,
        kind: str,
        text: str | None,
        file_ids: list[str],
        source_chat_id: int,
        source_message_id: int,
        media_group_id: str | None = None,
        header: str = "",
    ) -> None:
        """Store the message and queue its relay into the case's topic (texts are merged by the sender)."""
        async with self.sessions.begin() as session:
            session.add(
                CaseMessage(
                    case_id=case.id,
                    direction="participant",
                    author_id=case.telegram_user_id,
                    kind=kind,
                    text=_stored(text, participant=True),
                    file_ids=file_ids,
                    source_chat_id=source_chat_id,
                    source_message_id=source_message_id,
                    media_group_id=media_group_id,
                )
            )
            chat = case.staff_chat_id or self.staff_chat_ids[0]
            user = case.telegram_user_id
            payload: dict[str, Any]
            if kind == "text":
                # `queued_at`: the sender waits a moment, so that texts typed in quick succession go as one message.
                # A header (an edit's) can push a full-length text past Telegram's limit: it then goes in two parts.
                for part in _chunks(f"{header}{text}"):
                    payload = {"text": part, "case_id": case.id, "queued_at": datetime.now(UTC).timestamp()}
                    enqueue(session, STAFF, chat, "relayText", topic_payload(user, payload), case_id=case.id)
            else:
                payload = {"from_chat_id": source_chat_id, "message_ids": [source_message_id]}
                if media_group_id:
                    # The sender waits a moment after the first part so that the whole album goes as one.
                    payload |= {"media_group_id": media_group_id, "queued_at": datetime.now(UTC).timestamp()}
                enqueue(session, STAFF, chat, "copyMessages", topic_payload(user, payload), case_id=case.id)
            await self._revive_topic_creation(session, user)

    async def _revive_topic_creation(self, session: AsyncSession, user_id: int) -> None:
        """The participant writes while their topic does not exist: a creation that failed (the bot lacked the
        right, say) is tried again now, and one that is gone is queued again — their messages wait for it."""
        topic = await session.get(ParticipantTopic, user_id)
        if topic is None or topic.topic_id is not None:
            return
        queued = (
            await session.scalars(
                select(OutboxMessage).where(
                    OutboxMessage.lane == STAFF,
                    OutboxMessage.chat_id == topic.staff_chat_id,
                    OutboxMessage.method == "createForumTopic",
                    OutboxMessage.status == OutboxStatus.PENDING,
                )
            )
        ).all()
        mine = [row for row in queued if row.payload.get("topic_user") == user_id]
        for row in mine:
            if row.error and row.error != "429":  # a 429's wait is Telegram's to set
                row.not_before = None
        if not mine:
            self._queue_topic(session, topic, await self._earlier_topic_name(session, topic) or f"#{user_id}")

    async def notice(self, case_id: int, key: str, context: dict[str, Any]) -> None:
        """A bot notice (text key `key`) in the case's topic, e.g. that an agent's album did not reach the
        participant."""
        async with self.sessions.begin() as session:
            case = await session.get(Case, case_id)
            if case is None:
                return
            chat = case.staff_chat_id or self.staff_chat_ids[0]
            payload = notice_payload(case.telegram_user_id, key, context)
            enqueue(session, STAFF, chat, "notice", payload, case_id=case_id)

    async def tell_participant(self, case_id: int, kind: str, context: dict[str, Any], dedupe_key: str) -> None:
        """A notification (`notify_{kind}`) to the case's participant in their language, e.g. that a message of
        theirs could not reach the agents."""
        async with self.sessions.begin() as session:
            case = await session.get(Case, case_id)
            if case is None:
                return
            payload = {"kind": kind, "locale": case.locale, "context": context}
            exists = await session.scalar(select(OutboxMessage.id).where(OutboxMessage.dedupe_key == dedupe_key))
            if exists is None:
                user = case.telegram_user_id
                enqueue(session, PARTICIPANT, user, "notify", payload, case_id=case_id, dedupe_key=dedupe_key)

    async def post_to_topic(self, case: CaseView, text_html: str) -> None:
        """A bot notice in the case's topic (e.g. "the participant closed the case")."""
        async with self.sessions.begin() as session:
            chat = case.staff_chat_id or self.staff_chat_ids[0]
            payload = topic_payload(case.telegram_user_id, {"text": text_html, "parse_mode": "HTML"})
            enqueue(session, STAFF, chat, "sendMessage", payload, case_id=case.id)

    async def post_to_staff_chat(self, staff_chat_id: int, thread_id: int | None, text_html: str) -> None:
        """A bot reply in the staff group outside any case (e.g. /queue), through the same rate-limited queue."""
        async with self.sessions.begin() as session:
            payload: dict[str, Any] = {"text": text_html, "parse_mode": "HTML"}
            if thread_id is not None:
                payload["message_thread_id"] = thread_id
            enqueue(session, STAFF, staff_chat_id, "sendMessage", payload)

    async def case_for_topic(self, staff_chat_id: int, topic_id: int) -> CaseView | None:
        """The newest case of the participant whose topic this is."""
        async with self.sessions() as session:
            user_id = await session.scalar(
                select(ParticipantTopic.telegram_user_id).where(
                    ParticipantTopic.staff_chat_id == staff_chat_id, ParticipantTopic.topic_id == topic_id
                )
            )
            if user_id is None:
                return None
            case: Case | None = await session.scalar(
                select(Case).where(Case.telegram_user_id == user_id).order_by(Case.id.desc()).limit(1)
            )
            return CaseView.of(case) if case else None

    async def record_agent_message(
        self,
        case_id: int,
        agent_id: int,
        kind: str,
        text: str | None,
        source_chat_id: int,
        source_message_id: int,
        relayed_message_id: int | None,
        now: datetime | None = None,
        media_group_id: str | None = None,
    ) -> None:
        async with self.sessions.begin() as session:
            source = (source_chat_id, source_message_id, relayed_message_id, media_group_id)
            await self._record_agent(session, case_id, agent_id, kind, text, *source, now or datetime.now(UTC))

    async def _record_agent(
        self,
        session: AsyncSession,
        case_id: int,
        agent_id: int,
        kind: str,
        text: str | None,
        source_chat_id: int,
        source_message_id: int,
        relayed_message_id: int | None,
        media_group_id: str | None,
        now: datetime,
    ) -> None:
        case = await session.get(Case, case_id, with_for_update=True)
        if case is None:
            return
        session.add(
            CaseMessage(
                case_id=case_id,
                direction="agent",
                author_id=agent_id,
                kind=kind,
                text=_stored(text),
                source_chat_id=source_chat_id,
                source_message_id=source_message_id,
                relayed_message_id=relayed_message_id,
                media_group_id=media_group_id,
            )
        )
        if case.status not in ACTIVE:
            return  # e.g. the closing message itself: it must not reopen (claim) the case it closes
        if case.first_reply_at is None:
            case.first_reply_at = now
        if case.claimed_by is None:
            # Replying is claiming: the participant now has a person.
            case.claimed_by, case.claimed_at, case.status = agent_id, now, CaseStatus.CLAIMED

    async def relay_album_part_to_participant(
        self,
        case: CaseView,
        agent_id: int,
        kind: str,
        text: str | None,
        from_chat_id: int,
        message_id: int,
        media_group_id: str,
    ) -> None:
        """An agent's album arrives as separate updates: record each part and queue it, in one transaction (the
        sender copies the album as one and then notes each part's copy, for edits)."""
        async with self.sessions.begin() as session:
            source = (from_chat_id, message_id, None, media_group_id)
            await self._record_agent(session, case.id, agent_id, kind, text, *source, datetime.now(UTC))
            payload = {
                "from_chat_id": from_chat_id,
                "message_ids": [message_id],
                "media_group_id": media_group_id,
                "queued_at": datetime.now(UTC).timestamp(),
            }
            enqueue(session, PARTICIPANT, case.telegram_user_id, "copyMessages", payload, case_id=case.id)

    async def album_relayed(self, case_id: int, copies: dict[int, int]) -> None:
        """The participant-side ids of an agent's album parts (source id → copy id), so that edits are mirrored."""
        async with self.sessions.begin() as session:
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

    async def album_is_note(self, case_id: int, media_group_id: str) -> bool:
        """Whether an agent's album carries a "/note" caption: then none of its parts may reach the participant."""
        async with self.sessions() as session:
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

    async def relayed_copy(self, case_id: int, source_message_id: int) -> int | None:
        """The participant-side message id of an agent's topic message (to mirror an edit)."""
        async with self.sessions() as session:
            found: int | None = await session.scalar(
                select(CaseMessage.relayed_message_id).where(
                    CaseMessage.case_id == case_id,
                    CaseMessage.direction == "agent",
                    CaseMessage.source_message_id == source_message_id,
                )
            )
            return found

    async def note(
        self,
        case_id: int,
        agent_id: int,
        text: str,
        kind: str = "text",
        file_ids: list[str] | None = None,
        media_group_id: str | None = None,
    ) -> None:
        """An internal note (a text, or a photo or file captioned "/note …"): kept in the case, never relayed."""
        async with self.sessions.begin() as session:
            session.add(
                CaseMessage(
                    case_id=case_id,
                    direction="note",
                    author_id=agent_id,
                    kind=kind,
                    text=_stored(text),
                    file_ids=file_ids or [],
                    media_group_id=media_group_id,
                )
            )

    async def claim(self, case_id: int, agent_id: int) -> int | None:
        """Claim an open case; returns the agent who had it before (None if nobody)."""
        async with self.sessions.begin() as session:
            case = await session.get(Case, case_id, with_for_update=True)
            if case is None or case.status == CaseStatus.CLOSED:
                raise LookupError("no open case here")
            previous = case.claimed_by
            case.claimed_by, case.claimed_at, case.status = agent_id, datetime.now(UTC), CaseStatus.CLAIMED
            self._event(session, case, "claimed", {"previous": previous}, "agent", str(agent_id))
            return previous

    async def close(self, case_id: int, closed_by: int, source_kind: str = "agent") -> CaseView | None:
        """Close an active case; None when it was not active (nothing to tell anyone)."""
        async with self.sessions.begin() as session:
            case = await session.get(Case, case_id, with_for_update=True)
            if case is None or case.status == CaseStatus.CLOSED:
                return None
            case.status, case.closed_at, case.closed_by = CaseStatus.CLOSED, datetime.now(UTC), closed_by
            self._event(session, case, "closed", {}, source_kind, str(closed_by))
            return CaseView.of(case)

    async def rate(self, case_id: int, user_id: int, score: int) -> bool:
        """The participant's 1–5 answer; only theirs, only for a closed case, only once."""
        if not 1 <= score <= 5:
            return False
        async with self.sessions.begin() as session:
            case = await session.get(Case, case_id, with_for_update=True)
            if case is None or case.telegram_user_id != user_id or case.status != CaseStatus.CLOSED:
                return False
            if case.satisfaction is not None:
                return False
            case.satisfaction = score
            return True

    async def queue(self, staff_chat_id: int) -> list[QueuedCase]:
        """The staff group's open cases, oldest first, with the participant's name when they are identified."""
        async with self.sessions() as session:
            rows = await session.execute(
                select(Case, Participant.legal_name)
                .outerjoin(Participant, Participant.id == Case.participant_id)
                .where(Case.status.in_(ACTIVE), Case.staff_chat_id == staff_chat_id)
                .order_by(Case.opened_at, Case.id)
            )
            return [QueuedCase(CaseView.of(case), name) for case, name in rows.all()]

    async def transcript(self, case_id: int, limit: int) -> list[tuple[str, str]]:
        async with self.sessions() as session:
            rows = await session.execute(
                select(CaseMessage.direction, CaseMessage.kind, CaseMessage.text)
                .where(CaseMessage.case_id == case_id)
                .order_by(CaseMessage.id.desc())
                .limit(limit)
            )
            return [(direction, _line(kind, text)) for direction, kind, text in reversed(rows.all())]

    # --- the sender reports back ----------------------------------------------------------------------------
    async def topic_of(self, user_id: int) -> tuple[int, int | None] | None:
        async with self.sessions() as session:
            topic = await session.get(ParticipantTopic, user_id)
            return (topic.staff_chat_id, topic.topic_id) if topic else None

    async def topic_created(self, user_id: int, staff_chat_id: int, topic_id: int) -> None:
        async with self.sessions.begin() as session:
            topic = await session.get(ParticipantTopic, user_id, with_for_update=True)
            if topic is None:
                return
            topic.staff_chat_id, topic.topic_id = staff_chat_id, topic_id
            for case in (await session.scalars(select(Case).where(Case.telegram_user_id == user_id))).all():
                if case.status in ACTIVE:
                    case.staff_chat_id, case.topic_id = staff_chat_id, topic_id

    async def topic_lost(self, user_id: int, name: str | None = None) -> None:
        """The topic was deleted by someone: make a new one (same name), and post the open case's card in it again;
        queued messages wait for it."""
        async with self.sessions.begin() as session:
            topic = await session.get(ParticipantTopic, user_id, with_for_update=True)
            if topic is None or topic.topic_id is None:
                return
            topic.topic_id = None
            for case in (await session.scalars(select(Case).where(Case.telegram_user_id == user_id))).all():
                if case.status in ACTIVE:
                    case.topic_id = None
            earlier = await self._earlier_topic_name(session, topic)
            self._queue_topic(session, topic, name or earlier or f"#{user_id}")
            active = await self._active(session, user_id)
            card = await self._card_of(session, active.id) if active is not None else None
            if active is not None and card is not None:
                payload = topic_payload(user_id, {"text": card, "parse_mode": "HTML"})
                enqueue(session, STAFF, topic.staff_chat_id, "sendMessage", payload, case_id=active.id)

    async def _earlier_topic_name(self, session: AsyncSession, topic: ParticipantTopic) -> str | None:
        rows = await session.scalars(
            select(OutboxMessage.payload)
            .where(
                OutboxMessage.lane == STAFF,
                OutboxMessage.chat_id == topic.staff_chat_id,
                OutboxMessage.method == "createForumTopic",
            )
            .order_by(OutboxMessage.id.desc())
            .limit(500)
        )
        for payload in rows.all():
            if payload.get("topic_user") == topic.telegram_user_id and payload.get("name"):
                return str(payload["name"])
        return None

    async def _card_of(self, session: AsyncSession, case_id: int) -> str | None:
        """The case card as posted when the case opened (its first message into the topic)."""
        payload = await session.scalar(
            select(OutboxMessage.payload)
            .where(OutboxMessage.case_id == case_id, OutboxMessage.method == "sendMessage")
            .order_by(OutboxMessage.id)
            .limit(1)
        )
        return str(payload["text"]) if payload and payload.get("text") else None

    def _event(self, session: AsyncSession, case: Case, kind: str, data: dict[str, Any], source: str, ref: str) -> None:
        session.add(
            Event(
                participant_id=case.participant_id,
                entity="cases",
                entity_id=str(case.id),
                kind=kind,
                data=data,
                source_kind=source,
                source_ref=ref,
            )
        )
