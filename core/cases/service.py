"""The case use cases. Each is one transaction: the state change and every message it causes are written together
(cosmicpython's unit of work), so a failure between them cannot leave a half-done case. The jobs live beside it:
`lifecycle` (the rules), `topics`, `relay` (both ways), `staff_posts`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from core.accounts import unlink
from core.cases import relay, staff_posts, topics
from core.cases.lifecycle import CaseRules, NoOpenCase
from core.cases.views import ACTIVE, CaseView, ChatMessage, Opened, QueuedCase, transcript_line
from core.db import make_sessionmaker
from core.hours import SupportDesk
from core.models import Case, CaseMessage, CaseStatus, Event, Participant
from core.outbox import AgentEdit, BotReply, enqueue

Buttons = tuple[tuple[tuple[str, str], ...], ...]


def _now() -> datetime:
    return datetime.now(UTC)


class CaseService:
    def __init__(self, engine: AsyncEngine, staff_chat_ids: list[int], desk: SupportDesk) -> None:
        self.sessions = make_sessionmaker(engine)
        self.staff_chat_ids = staff_chat_ids
        self.desk = desk
        self.rules = CaseRules(desk.reopen_window)

    @property
    def staffed(self) -> bool:
        return bool(self.staff_chat_ids)

    @asynccontextmanager
    async def _unit(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions.begin() as session:
            yield session

    async def _case(self, session: AsyncSession, case_id: int) -> Case | None:
        return await session.get(Case, case_id, with_for_update=True)

    # --- reading --------------------------------------------------------------------------------------------
    async def active_case(self, user_id: int) -> CaseView | None:
        async with self.sessions() as session:
            case = await _active(session, user_id)
            return CaseView.of(case) if case else None

    async def case_by_id(self, case_id: int) -> CaseView | None:
        async with self.sessions() as session:
            case = await session.get(Case, case_id)
            return CaseView.of(case) if case else None

    async def active_case_by_id(self, case_id: int) -> CaseView | None:
        """The case when it is open or claimed (the console acts on it), else None."""
        case = await self.case_by_id(case_id)
        return case if case is not None and case.status in ACTIVE else None

    async def case_for_topic(self, staff_chat_id: int, topic_id: int) -> CaseView | None:
        """The newest case of the participant whose topic this is."""
        async with self.sessions() as session:
            user_id = await topics.owner(session, staff_chat_id, topic_id)
            if user_id is None:
                return None
            case: Case | None = await session.scalar(
                select(Case).where(Case.telegram_user_id == user_id).order_by(Case.id.desc()).limit(1)
            )
            return CaseView.of(case) if case else None

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
            return [(direction, transcript_line(kind, text)) for direction, kind, text in reversed(rows.all())]

    async def participant_name(self, case_id: int) -> str | None:
        """The verified participant's legal name for a case (canned replies address them by it), or None."""
        async with self.sessions() as session:
            name: str | None = await session.scalar(
                select(Participant.legal_name)
                .join(Case, Case.participant_id == Participant.id)
                .where(Case.id == case_id)
            )
            return name

    async def relayed_copy(self, case_id: int, source_message_id: int) -> int | None:
        """The participant-side message id of an agent's topic message (to mirror an edit)."""
        async with self.sessions() as session:
            return await relay.relayed_copy(session, case_id, source_message_id)

    async def album_is_note(self, case_id: int, media_group_id: str) -> bool:
        """Whether an agent's album carries a "/note" caption: then none of its parts may reach the participant."""
        async with self.sessions() as session:
            return await relay.album_is_note(session, case_id, media_group_id)

    # --- the participant ------------------------------------------------------------------------------------
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
        message_id: int | None = None,
        acknowledgement_html: str | None = None,
    ) -> Opened:
        """One active case per participant: asking again returns the open one instead of a duplicate.
        `acknowledgement_html`: what the participant is told about a new case, queued with it (once, however often
        the message that asked is delivered)."""
        if not self.staff_chat_ids:
            raise RuntimeError("no staff group is configured")
        async with self._unit() as session:
            existing = await _active(session, user_id)
            if existing is not None:
                return Opened(CaseView.of(existing), new=False)
            topic = await topics.topic_for_case(session, user_id, self.staff_chat_ids, topic_name)
            opened_at = _now()
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
                opened_at=opened_at,
                first_reply_due=self.desk.first_reply_due(opened_at),
                opened_message_id=message_id,
                card_html=card_html,
            )
            session.add(case)
            await session.flush()
            staff_posts.in_topic(session, case, topic.staff_chat_id, card_html)
            if acknowledgement_html is not None:
                enqueue(session, user_id, BotReply(acknowledgement_html), case_id=case.id)
            _event(session, case, "opened", {"reason": reason}, "participant", str(user_id))
            return Opened(CaseView.of(case), new=True)

    async def reopen_recent(self, user_id: int, now: datetime | None = None) -> CaseView | None:
        """A participant writing again soon after an agent closed their case reopens it (same topic, same agent),
        and the agents see in the topic why messages arrive again after their /close."""
        now = now or _now()
        async with self._unit() as session:
            if await _active(session, user_id) is not None:
                return None
            last: Case | None = await session.scalar(
                select(Case).where(Case.telegram_user_id == user_id).order_by(Case.id.desc()).limit(1)
            )
            if last is None or not self.rules.may_reopen(last, user_id, now):
                return None
            self.rules.reopen(last)
            _event(session, last, "reopened", {}, "participant", str(user_id))
            context = {"case_id": last.id, "claimed_by": last.claimed_by}
            staff_posts.notice(session, last, self.staff_chat_ids[0], "staff_case_reopened", context)
            return CaseView.of(last)

    async def relay_from_participant(
        self, case: CaseView, message: ChatMessage, header: str = "", edit: bool = False
    ) -> None:
        """Store the message and queue its relay into the case's topic (an edit replaces an earlier one that waits)."""
        async with self._unit() as session:
            await relay.from_participant(session, case, message, _now(), header, edit)

    async def close_by_participant(self, case_id: int, user_id: int, staff_html: str) -> bool:
        """/cancel: the case closes and the agents are told in its topic, together."""
        async with self._unit() as session:
            return await self._close_by_participant(session, case_id, user_id, staff_html)

    async def logout_and_close(self, case_id: int, user_id: int, staff_html: str) -> bool:
        """/logout while a person has the chat: the Telegram account is unlinked, and — since it may be in other hands
        now — the case closes and the agents are told, all together. False when the account was not linked."""
        async with self._unit() as session:
            if not await unlink(session, user_id):
                return False
            await self._close_by_participant(session, case_id, user_id, staff_html)
            return True

    async def _close_by_participant(self, session: AsyncSession, case_id: int, user_id: int, staff_html: str) -> bool:
        case = await self._case(session, case_id)
        try:
            self.rules.close(case, user_id, _now())
        except NoOpenCase:
            return False
        assert case is not None
        _event(session, case, "closed", {}, "participant", str(user_id))
        staff_posts.in_topic(session, case, self.staff_chat_ids[0], staff_html)
        return True

    async def rate(self, case_id: int, user_id: int, score: int) -> bool:
        """The participant's 1–5 answer; only theirs, only for a closed case, only once."""
        async with self._unit() as session:
            return self.rules.rate(await self._case(session, case_id), user_id, score)

    # --- the agents -----------------------------------------------------------------------------------------
    async def claim(self, case_id: int, agent_id: int, answer: Callable[[int | None], str]) -> int | None:
        """Claim an open case and say so in its topic (`answer` gets the agent who had it before); NoOpenCase when
        it is closed."""
        async with self._unit() as session:
            case = await self._case(session, case_id)
            previous = self.rules.claim(case, agent_id, _now())
            assert case is not None
            _event(session, case, "claimed", {"previous": previous}, "agent", str(agent_id))
            staff_posts.in_topic(session, case, self.staff_chat_ids[0], answer(previous))
            return previous

    async def assign_automatically(self, case_id: int, agent_id: int, notice_html: str) -> bool:
        """Give a waiting case to an agent and say so in its topic, together; False when someone took it first."""
        async with self._unit() as session:
            case = await self._case(session, case_id)
            if case is None or not self.rules.assign_automatically(case, agent_id, _now()):
                return False
            _event(session, case, "assigned", {"agent": agent_id}, "system", "assignment")
            staff_posts.in_topic(session, case, self.staff_chat_ids[0], notice_html)
            return True

    async def release(self, case_id: int, agent_id: int, notice_html: str) -> bool:
        """An automatically assigned case goes back to the queue (its agent went away), said in its topic."""
        async with self._unit() as session:
            case = await self._case(session, case_id)
            if case is None or not self.rules.release(case, agent_id):
                return False
            _event(session, case, "released", {"agent": agent_id}, "system", "assignment")
            staff_posts.in_topic(session, case, self.staff_chat_ids[0], notice_html)
            return True

    async def close_by_agent(
        self, case_id: int, agent_id: int, staff_html: str, question_html: str, buttons: Buttons, source: ChatMessage
    ) -> CaseView:
        """/close: the case closes, the participant gets the satisfaction question and the topic the notice — all
        or nothing. NoOpenCase when it was not open."""
        async with self._unit() as session:
            case = await self._case(session, case_id)
            now = _now()
            self.rules.close(case, agent_id, now)
            assert case is not None
            _event(session, case, "closed", {}, "agent", str(agent_id))
            await relay.agent_text(session, case, agent_id, question_html, source, now, buttons)
            staff_posts.in_topic(session, case, self.staff_chat_ids[0], staff_html)
            return CaseView.of(case)

    async def reopen_by_agent(self, case_id: int, agent_id: int, staff_html: str) -> CaseView | None:
        """An agent reopens a closed case (from the console): only when its participant has no other active case;
        the topic is told. None when it was not closed or another case is active."""
        async with self._unit() as session:
            case = await self._case(session, case_id)
            if case is None or case.status != CaseStatus.CLOSED:
                return None
            if await _active(session, case.telegram_user_id) is not None:
                return None
            self.rules.reopen(case)
            _event(session, case, "reopened", {}, "agent", str(agent_id))
            staff_posts.in_topic(session, case, self.staff_chat_ids[0], staff_html)
            return CaseView.of(case)

    async def agent_message(self, case_id: int, agent_id: int, message: ChatMessage) -> bool:
        """An agent's message (or album part) in the topic, to the participant through the outbox (retried, never
        lost). An album captioned "/note …" stays internal, with all its parts: False then."""
        async with self._unit() as session:
            case = await self._case(session, case_id)
            if case is None:
                return False
            album = message.media_group_id
            if album and await relay.album_is_note(session, case_id, album):
                relay.note(session, case_id, agent_id, message.text or "", message.kind, message.file_ids, album)
                return False
            await relay.from_agent(session, case, agent_id, message, _now())
            return True

    async def agent_reply(
        self, case_id: int, agent_id: int, text_html: str, source: ChatMessage, staff_html: str
    ) -> None:
        """A text on an agent's behalf (/canned): to the participant and its trace in the topic, together."""
        async with self._unit() as session:
            case = await self._case(session, case_id)
            if case is None:
                return
            await relay.agent_text(session, case, agent_id, text_html, source, _now())
            staff_posts.in_topic(session, case, self.staff_chat_ids[0], staff_html)

    async def agent_edit(self, case: CaseView, edit: AgentEdit) -> None:
        async with self._unit() as session:
            relay.agent_edit(session, case, edit)

    async def note(
        self,
        case_id: int,
        agent_id: int,
        text: str,
        kind: str = "text",
        file_ids: list[str] | None = None,
        media_group_id: str | None = None,
        answer_html: str | None = None,
    ) -> None:
        """An internal note (a text, or a photo or file captioned "/note …"): kept in the case, never relayed; the
        answer, if any, goes into the topic with it."""
        async with self._unit() as session:
            relay.note(session, case_id, agent_id, text, kind, file_ids, media_group_id)
            case = await session.get(Case, case_id)
            if answer_html and case is not None:
                staff_posts.in_topic(session, case, self.staff_chat_ids[0], answer_html)

    async def post_to_topic(self, case_id: int, text_html: str) -> None:
        """A bot answer in the case's topic (a fresh card, an unknown canned name)."""
        async with self._unit() as session:
            case = await session.get(Case, case_id)
            if case is not None:
                staff_posts.in_topic(session, case, self.staff_chat_ids[0], text_html)

    async def post_to_staff_chat(self, staff_chat_id: int, thread_id: int | None, text_html: str) -> None:
        """A bot reply in the staff group outside any case (e.g. /queue), through the same rate-limited queue."""
        async with self._unit() as session:
            staff_posts.in_group(session, staff_chat_id, thread_id, text_html)

    # --- the senders report back ----------------------------------------------------------------------------
    async def notice(self, case_id: int, key: str, context: dict[str, Any]) -> None:
        """A bot notice (text key `key`) in the case's topic, e.g. that an agent's message did not reach the
        participant."""
        async with self._unit() as session:
            case = await session.get(Case, case_id)
            if case is not None:
                staff_posts.notice(session, case, self.staff_chat_ids[0], key, context)

    async def tell_participant(self, case_id: int, kind: str, context: dict[str, Any], dedupe_key: str) -> None:
        """A notification (`notify_{kind}`) to the case's participant in their language, e.g. that a message of
        theirs could not reach the agents."""
        async with self._unit() as session:
            case = await session.get(Case, case_id)
            if case is not None:
                await staff_posts.to_participant(session, case, kind, context, dedupe_key)

    async def copies_made(self, case_id: int, copies: dict[int, int]) -> None:
        """The participant-side ids of an agent's messages (source id → copy id), so that edits are mirrored."""
        async with self._unit() as session:
            await relay.copies_made(session, case_id, copies)

    async def topic_of(self, user_id: int) -> tuple[int, int | None] | None:
        async with self.sessions() as session:
            return await topics.where(session, user_id)

    async def topic_created(self, user_id: int, staff_chat_id: int, topic_id: int) -> None:
        async with self._unit() as session:
            await topics.created(session, user_id, staff_chat_id, topic_id)

    async def topic_lost(self, user_id: int) -> None:
        """The topic was deleted by someone: make a new one (same name), with the open case's card again."""
        async with self._unit() as session:
            await topics.lost(session, user_id)


async def _active(session: AsyncSession, user_id: int) -> Case | None:
    found: Case | None = await session.scalar(
        select(Case).where(Case.telegram_user_id == user_id, Case.status.in_(ACTIVE)).order_by(Case.id.desc()).limit(1)
    )
    return found


def _event(session: AsyncSession, case: Case, kind: str, data: dict[str, Any], source: str, ref: str) -> None:
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
