"""Handing a chat to a person: open (or find) the participant's case with a card agents can act on at once."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot.flows.turn import HandoffRequest, HandoffResult
from bot.flows.views import diagnosis_view, installment_view
from bot.texts import Renderer
from core.cases import CaseService
from core.hours import SupportDesk
from core.identity import mask_phone, redact
from core.status import StatusService


class CaseHandoff:
    def __init__(
        self,
        cases: CaseService,
        status: StatusService,
        renderer: Renderer,
        directory: dict[str, Any],
        desk: SupportDesk,
    ) -> None:
        self.cases = cases
        self.status = status
        self.renderer = renderer
        self.directory = directory
        self.desk = desk

    async def card(self, request: HandoffRequest, case_label: str = "") -> tuple[str, str, str | None]:
        """(card HTML, topic name, headline stage) — identity masked: name, last 4 NIK digits, masked phone."""
        status = await self.status.status(request.participant_id) if request.participant_id is not None else None
        views = []
        incentives = []
        person = None
        stage = None
        if status is not None:
            facts = status.facts
            person = {
                "name": facts.legal_name,
                "nik_last4": facts.nik_last4,
                "phone": mask_phone(facts.phone),
                "scheme": facts.scheme,
                "participant_id": facts.participant_id,
            }
            views = [diagnosis_view(self.directory, d, "id") for d in status.diagnoses]
            incentives = [installment_view(i) for i in status.incentives]
            stage = status.headline.stage.value
        text = self.renderer.render(
            "case_card",
            "id",
            person=person,
            display_name=request.display_name,
            user_id=request.user_id,
            reason=request.reason,
            diagnoses=views,
            incentives=incentives,
            steps=request.steps_tried,
            transcript=[redact(line) for line in request.transcript],
            case_label=case_label,
        )
        name = person["name"] if person else (request.display_name or str(request.user_id))
        topic = self.renderer.render("case_topic_name", "id", name=name, user_id=request.user_id)
        return text, topic, stage

    async def request(self, request: HandoffRequest) -> HandoffResult:
        if not self.cases.staffed:
            return HandoffResult(opened=False)
        card, topic, stage = await self.card(request)
        opened = await self.cases.open_case(
            request.user_id,
            request.participant_id,
            request.reason,
            request.locale,
            stage,
            request.steps_tried,
            card,
            topic,
        )
        return HandoffResult(opened=True, answer_by=self.desk.next_open(datetime.now(UTC)), already_open=not opened.new)
