"""What agents do in a staff group, as plain code: who is an agent, the command switch (claim, note, status,
canned, close, queue), and the delivery policy — every answer and every message to a participant goes through the
outbox (late under load or errors, never lost), each action in one transaction.

Handlers in `bot/handlers/agent.py` only parse the staff group's updates into these calls.
"""

from __future__ import annotations

import html
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from markupsafe import Markup

from bot.flows.callbacks import SATISFACTION_NONCE, Action, pack
from bot.flows.handoff import CaseHandoff
from bot.flows.turn import HandoffRequest
from bot.texts import Renderer, load_yaml
from core.calendar import JAKARTA
from core.cases import CaseService, CaseView, ChatMessage, NoOpenCase, QueuedCase
from core.hours import SupportDesk
from core.outbox import AgentEdit

QUEUE_PAGE = 3500  # characters of /queue lines per message: well under Telegram's 4,096 with the heading
# Saves a getChatMember call per agent message. Telegram tells the bot (an admin of the group) when a member leaves
# or is removed (chat_member updates), but only the worker that gets that update hears of it: a removed member may
# act for at most this long on the others.
MEMBERSHIP_TTL = 60.0
MemberLookup = Callable[[int, int], Awaitable[bool]]  # (group, user) → a member of the group now?


@lru_cache(maxsize=1)
def staff_renderer() -> Renderer:
    """What the staff group reads: the shared messages plus the support desk's own texts (`knowledge/support.yaml`)."""
    messages = load_yaml("messages.yaml")["messages"] | load_yaml("support.yaml")["messages"]
    return Renderer(messages, {"rules": load_yaml("rules.yaml"), "directory": load_yaml("platforms.yaml")})


def mask_name(name: str) -> str:
    """Siti Rahayu → Si** Ra****: agents recognise the person in a list, a passer-by learns little."""
    return " ".join(word[:2] + "*" * (len(word) - 2) for word in name.split())


def topic_link(staff_chat_id: int, topic_id: int) -> str | None:
    """t.me/c/<id>/<thread>: a supergroup's id without its -100 prefix opens the topic for its members."""
    text = str(staff_chat_id)
    return f"https://t.me/c/{text.removeprefix('-100')}/{topic_id}" if text.startswith("-100") else None


@dataclass
class AgentRoster:
    """Who may act as an agent: the listed AGENT_IDS, or (none listed) any member of the staff group, asked of
    Telegram at most once a minute per person and forgotten as soon as Telegram says they left."""

    agent_ids: frozenset[int]
    ttl: float = MEMBERSHIP_TTL
    clock: Callable[[], float] = time.monotonic
    known: dict[tuple[int, int], tuple[bool, float]] = field(default_factory=dict)

    async def allows(self, chat_id: int, user_id: int, is_member: MemberLookup) -> bool:
        if self.agent_ids:
            return user_id in self.agent_ids
        cached = self.known.get((chat_id, user_id))
        if cached is not None and cached[1] > self.clock():
            return cached[0]
        allowed = await is_member(chat_id, user_id)
        self.known[chat_id, user_id] = (allowed, self.clock() + self.ttl)
        return allowed

    def forget(self, chat_id: int, user_id: int) -> None:
        self.known.pop((chat_id, user_id), None)


@dataclass(frozen=True)
class Agent:
    id: int
    name: str


@dataclass(frozen=True)
class Place:
    """Where in the staff group something was written: the topic (thread) of a forum, if any."""

    chat_id: int
    thread_id: int | None
    in_topic: bool


class StaffDesk:
    def __init__(
        self, cases: CaseService, handoff: CaseHandoff, renderer: Renderer, desk: SupportDesk, roster: AgentRoster
    ) -> None:
        self.cases = cases
        self.handoff = handoff
        self.renderer = renderer
        self.desk = desk
        self.roster = roster

    def text(self, key: str, **context: Any) -> str:
        return self.renderer.render(key, "id", **context)

    async def _answer(self, place: Place, key: str, **context: Any) -> None:
        await self.cases.post_to_staff_chat(place.chat_id, place.thread_id, self.text(key, **context))

    async def active_case(self, chat_id: int, thread_id: int | None) -> CaseView | None:
        if thread_id is None:
            return None
        case = await self.cases.case_for_topic(chat_id, thread_id)
        return case if case is not None and case.status != "closed" else None

    # --- what the handlers call -------------------------------------------------------------------------------
    async def command(self, place: Place, agent: Agent, name: str, argument: str, source: ChatMessage) -> None:
        """A staff command from an agent (the caller checked the roster). `source` is the message itself (a photo
        captioned "/note …" is a note with its file)."""
        if name == "queue":
            for page in await self.queue(place.chat_id):
                await self.cases.post_to_staff_chat(place.chat_id, place.thread_id, page)
            return
        case = await self.active_case(place.chat_id, place.thread_id if place.in_topic else None)
        if case is None:
            await self._answer(place, "staff_no_case" if place.in_topic else "staff_outside_topic")
            return
        try:
            match name:
                case "claim":
                    await self.claim(case, agent)
                case "note":
                    await self.note(case, agent, argument, source)
                case "status":
                    await self.cases.post_to_topic(case.id, await self.status(case))
                case "canned":
                    await self.canned(case, agent, argument, source)
                case _:
                    await self.close(case, agent, source)
        except NoOpenCase:  # closed meanwhile (another agent, the participant): claim and close say so alike
            await self._answer(place, "staff_no_case")

    async def not_an_agent(self, place: Place) -> None:
        await self._answer(place, "staff_not_agent")

    async def agent_message(self, place: Place, agent: Agent, message: ChatMessage) -> None:
        """An agent writing in a case topic: the participant receives a copy under the bot's name, through the
        outbox. An album's parts come as separate updates (maybe to other workers): the sender sends them as one —
        unless a part was captioned "/note …", which keeps the whole album internal."""
        case = await self.active_case(place.chat_id, place.thread_id)
        if case is None:
            await self._answer(place, "staff_no_case")
            return
        await self.cases.agent_message(case.id, agent.id, message)

    async def agent_edit(
        self, place: Place, message_id: int, text: str | None, caption: str | None, entities: list[dict[str, Any]]
    ) -> None:
        """An agent corrects a message (its text, or a photo's caption): the participant's copy is corrected too."""
        case = await self.active_case(place.chat_id, place.thread_id)
        if case is not None:
            await self.cases.agent_edit(case, AgentEdit(message_id, text, caption, tuple(entities)))

    async def queue(self, staff_chat_id: int) -> list[str]:
        """This staff group's open cases, oldest first: as many messages as Telegram's 4,096 characters need."""
        lines = [
            Markup(self.text("staff_queue_line", **self._queue_line(q))) for q in await self.cases.queue(staff_chat_id)
        ]
        pages: list[list[Markup]] = [[]]
        size = 0
        for line in lines:
            if pages[-1] and size + len(line) + 1 > QUEUE_PAGE:
                pages.append([])
                size = 0
            pages[-1].append(line)
            size += len(line) + 1
        return [
            self.text("staff_queue_page", total=len(lines), page=n, pages=len(pages), lines=page)
            for n, page in enumerate(pages, start=1)
        ]

    @staticmethod
    def _queue_line(queued: QueuedCase) -> dict[str, Any]:
        case = queued.case
        link = topic_link(case.staff_chat_id, case.topic_id) if case.staff_chat_id and case.topic_id else None
        return {
            "case_id": case.id,
            "link": link,
            "name": mask_name(queued.participant_name) if queued.participant_name else None,
            "opened_at": case.opened_at.astimezone(JAKARTA),
            "status": case.status,
            "claimed_by": case.claimed_by,
            "stage": case.stage,
            "reason": case.reason,
        }

    async def claim(self, case: CaseView, agent: Agent) -> None:
        def answer(previous: int | None) -> str:
            return self.text("staff_claimed", case_id=case.id, agent=agent.name, previous=previous)

        await self.cases.claim(case.id, agent.id, answer)

    async def note(self, case: CaseView, agent: Agent, text: str, source: ChatMessage) -> None:
        if source.kind != "text":  # a photo or file captioned "/note …": internal like a text note
            answer = self.text("staff_note_media_saved", kind=source.kind)
            await self.cases.note(
                case.id, agent.id, text.strip(), source.kind, source.file_ids, source.media_group_id, answer
            )
        elif not text.strip():
            await self.cases.post_to_topic(case.id, self.text("staff_note_empty"))
        else:
            await self.cases.note(case.id, agent.id, text.strip(), answer_html=self.text("staff_note_saved"))

    async def status(self, case: CaseView) -> str:
        """A fresh case card: the diagnosis as of now, and the conversation so far."""
        lines = await self.cases.transcript(case.id, self.desk.transcript_lines)
        icons = {"participant": "👤", "agent": "🙋", "note": "📝", "bot": "🤖"}
        request = HandoffRequest(
            user_id=case.telegram_user_id,
            participant_id=case.participant_id,
            reason=case.reason,
            locale=case.locale,
            steps_tried=case.steps_tried,
            transcript=[f"{icons.get(direction, '·')} {text[:200]}" for direction, text in lines],
        )
        card, _, _ = await self.handoff.card(request, case_label=f"#{case.id}")
        return card

    async def canned(self, case: CaseView, agent: Agent, name: str, source: ChatMessage) -> None:
        key = name.strip().lower()
        values = self.desk.canned_values(await self.cases.participant_name(case.id), case.locale, case.id, agent.name)
        text = self.desk.canned_text(key, case.locale, values)
        if text is None:
            await self.cases.post_to_topic(case.id, self.text("staff_canned_unknown", names=sorted(self.desk.canned)))
            return
        # The topic shows what the participant is sent; if it cannot reach them, a notice follows.
        sent = self.text("staff_canned_sent", name=key, text=text)
        recorded = ChatMessage("text", text, [], source.chat_id, source.message_id)
        await self.cases.agent_reply(case.id, agent.id, html.escape(text), recorded, sent)

    async def close(self, case: CaseView, agent: Agent, source: ChatMessage) -> None:
        """The case closes, the participant gets the 1–5 question, the topic says so — one transaction."""
        buttons = (
            tuple((str(n), pack(SATISFACTION_NONCE, Action.SATISFACTION, f"{case.id}_{n}")) for n in range(1, 6)),
        )
        question = self.renderer.render("case_closed", case.locale)
        closed = self.text("staff_closed", case_id=case.id, agent=agent.name)
        recorded = ChatMessage("text", question, [], source.chat_id, source.message_id)
        await self.cases.close_by_agent(case.id, agent.id, closed, question, buttons, recorded)

    # --- the participant's side -------------------------------------------------------------------------------
    async def relay_from_participant(self, case: CaseView, message: ChatMessage) -> None:
        """What a participant writes while a person has their chat goes to the topic."""
        await self.cases.relay_from_participant(case, message)

    async def participant_edited(self, user_id: int, message: ChatMessage) -> None:
        """An edit matters only while a person reads along: tell the agent what the message says now."""
        case = await self.cases.active_case(user_id)
        if case is not None:
            header = self.text("staff_edited") + "\n"
            await self.cases.relay_from_participant(case, message, header=header, edit=True)
