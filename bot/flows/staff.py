"""What agents do in a case topic, as plain code: claim, note, refresh, canned replies, close, the queue.

Handlers in `bot/handlers/agent.py` parse the staff group's updates and deliver what these return.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from markupsafe import Markup

from bot.flows.callbacks import SATISFACTION_NONCE, Action, pack
from bot.flows.handoff import CaseHandoff
from bot.flows.turn import HandoffRequest
from bot.flows.types import Button, Reply
from bot.texts import Renderer, load_yaml
from core.calendar import JAKARTA
from core.cases import CaseService, CaseView, QueuedCase
from core.hours import SupportDesk

QUEUE_PAGE = 3500  # characters of /queue lines per message: well under Telegram's 4,096 with the heading


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


@dataclass(frozen=True)
class StaffOutcome:
    topic_html: str | None = None  # posted in the case topic (through the staff queue)
    to_participant: Reply | None = None  # sent to the participant's private chat
    case: CaseView | None = None


class StaffDesk:
    def __init__(self, cases: CaseService, handoff: CaseHandoff, renderer: Renderer, desk: SupportDesk) -> None:
        self.cases = cases
        self.handoff = handoff
        self.renderer = renderer
        self.desk = desk

    def text(self, key: str, **context: Any) -> str:
        return self.renderer.render(key, "id", **context)

    async def active_case(self, chat_id: int, thread_id: int | None) -> CaseView | None:
        if thread_id is None:
            return None
        case = await self.cases.case_for_topic(chat_id, thread_id)
        return case if case is not None and case.status != "closed" else None

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

    async def claim(self, case: CaseView, agent_id: int, agent_name: str) -> StaffOutcome:
        previous = await self.cases.claim(case.id, agent_id)
        return StaffOutcome(self.text("staff_claimed", case_id=case.id, agent=agent_name, previous=previous), case=case)

    async def note(self, case: CaseView, agent_id: int, text: str) -> StaffOutcome:
        if not text.strip():
            return StaffOutcome(self.text("staff_note_empty"), case=case)
        await self.cases.note(case.id, agent_id, text.strip())
        return StaffOutcome(self.text("staff_note_saved"), case=case)

    async def media_note(
        self, case: CaseView, agent_id: int, kind: str, text: str, file_ids: list[str], media_group_id: str | None
    ) -> StaffOutcome:
        """A photo or file captioned "/note …": internal like a text note (an album's other parts stay with it)."""
        await self.cases.note(case.id, agent_id, text.strip(), kind, file_ids, media_group_id)
        return StaffOutcome(self.text("staff_note_media_saved", kind=kind), case=case)

    async def album_part(
        self,
        case: CaseView,
        agent_id: int,
        kind: str,
        text: str | None,
        file_ids: list[str],
        chat_id: int,
        message_id: int,
        media_group_id: str,
    ) -> None:
        """One part of an agent's album (each comes as its own update, maybe to another worker): queued, so that the
        outbox sends the album as one — unless a part was captioned "/note …", which keeps the whole album internal
        (a part queued before that note is dropped by the sender)."""
        if await self.cases.album_is_note(case.id, media_group_id):
            await self.cases.note(case.id, agent_id, text or "", kind, file_ids, media_group_id)
            return
        await self.cases.relay_album_part_to_participant(
            case, agent_id, kind, text, chat_id, message_id, media_group_id
        )

    async def status(self, case: CaseView) -> StaffOutcome:
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
        return StaffOutcome(card, case=case)

    def canned(self, case: CaseView, name: str) -> StaffOutcome:
        reply = self.desk.canned.get(name.strip().lower())
        if reply is None:
            return StaffOutcome(self.text("staff_canned_unknown", names=sorted(self.desk.canned)), case=case)
        text = reply.get(case.locale) or reply["id"]
        # The topic shows what the participant was sent (posted only once it was delivered).
        sent = self.text("staff_canned_sent", name=name.strip().lower(), text=text)
        return StaffOutcome(sent, Reply(html.escape(text)), case=case)

    async def close(self, case: CaseView, agent_id: int, agent_name: str) -> StaffOutcome:
        closed = await self.cases.close(case.id, agent_id)
        if closed is None:
            return StaffOutcome(self.text("staff_no_case"), case=case)
        buttons = tuple(
            Button(str(n), pack(SATISFACTION_NONCE, Action.SATISFACTION, f"{case.id}_{n}")) for n in range(1, 6)
        )
        to_participant = Reply(self.renderer.render("case_closed", case.locale), (buttons,))
        return StaffOutcome(self.text("staff_closed", case_id=case.id, agent=agent_name), to_participant, closed)
