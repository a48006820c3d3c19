"""The console's case work: reading a case for the page or the API, and the staff actions on it. Every action goes
through the same `core.cases` use cases as the Telegram staff group (so a reply from either shows in both), lands in
the audit log, and is published to the live updates."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from bot.flows.staff import Agent, StaffDesk
from bot.web.context import WebContext
from bot.web.texts import ActionRefused
from core.cases import CaseService
from core.cases.lifecycle import NoOpenCase
from core.cases.views import ACTIVE, MAX_TEXT, CaseView, ChatMessage
from core.console.inbox import mask_name
from core.console.staff import Principal
from core.db import make_sessionmaker
from core.identity import mask_phone
from core.models import Case, CaseMessage, OutboxMessage


@dataclass(frozen=True)
class TranscriptLine:
    id: int
    direction: str
    author_id: int | None
    kind: str
    text: str | None
    at: datetime
    files: int = 0  # photos/documents/voice notes, shown through the console's file proxy


@dataclass(frozen=True)
class Delivery:
    id: int
    method: str
    status: str
    error: str | None
    at: datetime


@dataclass
class CaseDetail:
    case: CaseView
    card: dict[str, Any] | None
    diagnoses: list[dict[str, Any]] = field(default_factory=list)
    incentives: list[dict[str, Any]] = field(default_factory=list)
    transcript: list[TranscriptLine] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        c = self.case
        return {
            "id": c.id,
            "status": c.status,
            "telegram_user_id": c.telegram_user_id,
            "reason": c.reason,
            "locale": c.locale,
            "stage": c.stage,
            "steps_tried": c.steps_tried,
            "staff_chat_id": c.staff_chat_id,
            "opened_at": c.opened_at.isoformat(),
            "claimed_by": c.claimed_by,
            "closed_at": c.closed_at.isoformat() if c.closed_at else None,
            "satisfaction": c.satisfaction,
            "participant": self.card,
            "diagnoses": self.diagnoses,
            "incentives": self.incentives,
            "transcript": [
                {
                    "id": m.id,
                    "direction": m.direction,
                    "author_id": m.author_id,
                    "kind": m.kind,
                    "text": m.text,
                    "at": m.at.isoformat(),
                    "media": [f"/cases/{c.id}/media/{m.id}/{n}" for n in range(m.files)],
                }
                for m in self.transcript
            ],
            "deliveries": [
                {"id": d.id, "method": d.method, "status": d.status, "error": d.error, "at": d.at.isoformat()}
                for d in self.deliveries
            ],
        }


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


class ConsoleCases:
    def __init__(self, context: WebContext) -> None:
        self.context = context
        self.sessions = make_sessionmaker(context.app.engine)

    @property
    def cases(self) -> CaseService:
        cases = self.context.app.services.cases
        if cases is None:
            raise ActionRefused("err_no_staff_group", 503)
        return cases

    @property
    def staff(self) -> StaffDesk:
        staff = self.context.app.staff
        if staff is None:
            raise ActionRefused("err_no_staff_group", 503)
        return staff

    # --- reading -------------------------------------------------------------------------------------------
    async def detail(self, case_id: int) -> CaseDetail | None:
        async with self.sessions() as session:
            row = await session.get(Case, case_id)
            if row is None:
                return None
            view = CaseView.of(row)
            messages = (
                await session.scalars(
                    select(CaseMessage).where(CaseMessage.case_id == case_id).order_by(CaseMessage.id)
                )
            ).all()
            outbox = (
                await session.scalars(
                    select(OutboxMessage)
                    .where(OutboxMessage.case_id == case_id, OutboxMessage.lane == "participant")
                    .order_by(OutboxMessage.id)
                )
            ).all()
        detail = CaseDetail(view, None)
        detail.transcript = [
            TranscriptLine(
                m.id, m.direction, m.author_id, m.kind, m.text, m.created_at or datetime.now(UTC), len(m.file_ids or [])
            )
            for m in messages
        ]
        detail.deliveries = [
            Delivery(o.id, o.method, o.status, o.error, o.sent_at or o.created_at or datetime.now(UTC)) for o in outbox
        ]
        if view.participant_id is not None:
            await self._participant(detail, view.participant_id)
        return detail

    async def _participant(self, detail: CaseDetail, participant_id: int) -> None:
        """The masked card: never the NIK, its last digits or the birth date (the second factor), never the phone."""
        status = await self.context.app.services.status.status(participant_id)
        if status is None:
            return
        facts = status.facts
        detail.card = {
            "participant_id": facts.participant_id,
            "name": mask_name(facts.legal_name),
            "phone": mask_phone(facts.phone),
            "scheme": facts.scheme,
            "membership": facts.membership,
            "payout_channel": facts.payout.channel if facts.payout else None,
        }
        detail.diagnoses = [
            {
                "enrollment_id": d.enrollment_id,
                "platform": d.enrollment.platform_code if d.enrollment else None,
                "training": d.enrollment.training_title if d.enrollment else None,
                "stage": d.stage.value,
                "holder": d.holder.value,
                "next_action": d.next_action.value,
                "expected_by": _iso(d.expected_by),
                "overdue": d.overdue,
            }
            for d in status.diagnoses
        ]
        detail.incentives = [
            {
                "seq": i.seq,
                "amount": i.amount,
                "scheduled_on": _iso(i.scheduled_on),
                "status": i.status,
                "channel": i.channel,
                "failure_reason": i.failure_reason,
                "overdue": i.overdue,
            }
            for i in status.incentives
        ]

    # --- acting --------------------------------------------------------------------------------------------
    def _agent(self, who: Principal, telegram_id: int | None = None) -> Agent:
        agent_id = telegram_id if telegram_id is not None else who.agent_id
        return Agent(agent_id, str(agent_id) if who.telegram_id is not None or telegram_id else who.actor)

    async def _open_case(self, case_id: int) -> CaseView:
        detail = await self.cases.active_case_by_id(case_id)
        if detail is None:
            raise ActionRefused("err_closed")
        return detail

    @staticmethod
    def _text(value: str) -> str:
        value = value.strip()
        if not value:
            raise ActionRefused("err_empty", 422)
        if len(value) > MAX_TEXT:
            raise ActionRefused("err_too_long", 422)
        return value

    async def _done(self, who: Principal, action: str, case_id: int, data: dict[str, Any] | None = None) -> None:
        await self.context.audit.record(who.actor, action, f"case:{case_id}", data or {})
        await self.context.events.publish({"type": "case", "case_id": case_id, "kind": action})

    async def reply(self, who: Principal, case_id: int, text: str, close: bool = False) -> None:
        """To the participant through the outbox (retried, delivered or failed as the case page shows), and its trace
        in the case's Telegram topic, in one transaction."""
        body = self._text(text)
        case = await self._open_case(case_id)
        agent = self._agent(who)
        topic = self.staff.text("staff_console_reply", agent=agent.name, text=body)
        recorded = ChatMessage("text", body, [], 0, 0)
        await self.cases.agent_reply(case.id, agent.id, html.escape(body), recorded, topic)
        await self._done(who, "case.reply", case_id, {"chars": len(body)})
        if close:
            await self.close(who, case_id)

    async def note(self, who: Principal, case_id: int, text: str) -> None:
        body = self._text(text)
        if await self.cases.case_by_id(case_id) is None:
            raise ActionRefused("err_not_found", 404)
        agent = self._agent(who)
        await self.cases.note(
            case_id,
            agent.id,
            body,
            answer_html=self.staff.text("staff_console_note", agent=agent.name, text=body),
        )
        await self._done(who, "case.note", case_id)

    async def claim(self, who: Principal, case_id: int, assignee: int | None = None) -> None:
        """Claim (for oneself) or assign / transfer (to another agent: the caller checked the role)."""
        case = await self._open_case(case_id)
        agent = self._agent(who)
        target = assignee if assignee is not None else agent.id
        if assignee is not None and await self.context.access.role_of(assignee) is None:
            raise ActionRefused("err_bad_agent", 422)

        def answer(previous: int | None) -> str:
            if target == agent.id:
                return self.staff.text("staff_claimed", case_id=case.id, agent=agent.name, previous=previous)
            return self.staff.text("staff_assigned", case_id=case.id, assignee=target, agent=agent.name)

        try:
            await self.cases.claim(case.id, target, answer)
        except NoOpenCase as error:
            raise ActionRefused("err_closed") from error
        await self._done(who, "case.assign" if target != agent.id else "case.claim", case_id, {"agent": target})

    async def close(self, who: Principal, case_id: int) -> None:
        case = await self._open_case(case_id)
        try:
            await self.staff.close(case, self._agent(who), ChatMessage("text", None, [], 0, 0))
        except NoOpenCase as error:
            raise ActionRefused("err_closed") from error
        await self._done(who, "case.close", case_id)

    async def reopen(self, who: Principal, case_id: int) -> None:
        agent = self._agent(who)
        notice = self.staff.text("staff_reopened_by_agent", case_id=case_id, agent=agent.name)
        if await self.cases.reopen_by_agent(case_id, agent.id, notice) is None:
            raise ActionRefused("err_reopen")
        await self._done(who, "case.reopen", case_id)

    async def canned(self, who: Principal, case: CaseView) -> dict[str, str]:
        """The canned replies for this case, variables filled in (the agent may still edit them before sending)."""
        desk = self.context.desk
        name = await self.cases.participant_name(case.id)
        values = desk.canned_values(name, case.locale, case.id, self._agent(who).name)
        return {key: desk.canned_text(key, case.locale, values) or "" for key in desk.canned}


def is_active(status: str) -> bool:
    return status in ACTIVE
