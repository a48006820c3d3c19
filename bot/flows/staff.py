"""What agents do in a case topic, as plain code: claim, note, refresh, canned replies, close, the queue.

Handlers in `bot/handlers/agent.py` parse the staff group's updates and deliver what these return.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from bot.flows.callbacks import SATISFACTION_NONCE, Action, pack
from bot.flows.handoff import CaseHandoff
from bot.flows.turn import HandoffRequest
from bot.flows.types import Button, Reply
from bot.texts import Renderer
from core.calendar import JAKARTA
from core.cases import CaseService, CaseView
from core.hours import SupportDesk


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

    async def queue(self) -> str:
        cases = [{**c.__dict__, "opened_at": c.opened_at.astimezone(JAKARTA)} for c in await self.cases.queue()]
        return self.text("staff_queue", cases=cases)

    async def claim(self, case: CaseView, agent_id: int, agent_name: str) -> StaffOutcome:
        previous = await self.cases.claim(case.id, agent_id)
        return StaffOutcome(self.text("staff_claimed", case_id=case.id, agent=agent_name, previous=previous), case=case)

    async def note(self, case: CaseView, agent_id: int, text: str) -> StaffOutcome:
        if not text.strip():
            return StaffOutcome(self.text("staff_note_empty"), case=case)
        await self.cases.note(case.id, agent_id, text.strip())
        return StaffOutcome(self.text("staff_note_saved"), case=case)

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
