"""Handing a chat to a person: open (or find) the participant's case with a card agents can act on at once."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from typing import Any

from bot.flows.turn import HandoffRequest, HandoffResult
from bot.flows.views import diagnosis_view, installment_view
from bot.texts import Renderer
from core.calendar import JAKARTA
from core.cases import CaseService
from core.hours import SupportDesk
from core.identity import mask_phone, redact
from core.limits import MESSAGE_TEXT
from core.status import StatusService

MAX_MESSAGE = MESSAGE_TEXT  # counted on the text after its HTML is parsed
_TAGS = re.compile(r"<[^>]+>")


def acknowledgement(*, answer_by: datetime | None, identified: bool, already_open: bool, reason: str) -> dict[str, Any]:
    """The context of `agent_opened`, what the participant is told of a handoff: queued with a new case
    (`CaseHandoff.request`) or said at once when their case is already open (`bot/flows/agent.py`)."""
    return {
        "answer_by": answer_by.astimezone(JAKARTA) if answer_by else None,
        "identified": identified,
        "already_open": already_open,
        "reason": reason,
    }


def plain_length(text_html: str) -> int:
    """How long Telegram finds a message: tags and entities parsed, counted in UTF-16 units (emoji count twice)."""
    return len(html.unescape(_TAGS.sub("", text_html)).encode("utf-16-le")) // 2


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
        text = self._fitted_card(
            {
                "person": person,
                "display_name": request.display_name,
                "user_id": request.user_id,
                "reason": request.reason,
                "diagnoses": views,
                "incentives": incentives,
                "steps": request.steps_tried,
                "transcript": [redact(line) for line in request.transcript],
                "case_label": case_label,
            }
        )
        name = person["name"] if person else (request.display_name or str(request.user_id))
        # A topic's name is plain text: the template's HTML escaping is undone ("<b>" stays "<b>", not "&lt;b&gt;").
        topic = html.unescape(self.renderer.render("case_topic_name", "id", name=name, user_id=request.user_id))
        return text, topic, stage

    def _fitted_card(self, context: dict[str, Any]) -> str:
        """The card within Telegram's 4,096 characters: the oldest chat lines go first, then the tails of the steps,
        the incentives and the enrollments; who the participant is and the commands always stay."""
        text = self.renderer.render("case_card", "id", **context)
        for key in ("transcript", "steps", "incentives", "diagnoses"):
            while plain_length(text) > MAX_MESSAGE and context[key]:
                context = context | {key: context[key][1:] if key == "transcript" else context[key][:-1]}
                text = self.renderer.render("case_card", "id", **context)
        if plain_length(text) > MAX_MESSAGE:  # only a freak name is left that long: plain text, cut
            plain = html.unescape(_TAGS.sub("", text))
            excess = plain_length(html.escape(plain, quote=False)) - (MAX_MESSAGE - 1)
            text = html.escape(plain[:-excess] + "…", quote=False)  # a character is at least one unit: fits
        return text

    async def request(self, request: HandoffRequest) -> HandoffResult:
        if not self.cases.staffed:
            return HandoffResult(opened=False)
        card, topic, stage = await self.card(request)
        answer_by = self.desk.next_open(datetime.now(UTC))
        # The participant's acknowledgement is queued with the case, not sent by this turn: when Telegram delivers
        # the message again after a failure that followed the case's commit, nothing is said twice.
        told = acknowledgement(
            answer_by=answer_by,
            identified=request.participant_id is not None,
            already_open=False,
            reason=request.reason,
        )
        opened = await self.cases.open_case(
            request.user_id,
            request.participant_id,
            request.reason,
            request.locale,
            stage,
            request.steps_tried,
            card,
            topic,
            request.message_id,
            self.renderer.render("agent_opened", request.locale, **told),
        )
        # The message that opened the case, delivered again (its first turn failed after the case was stored): its
        # acknowledgement is already queued.
        again = request.message_id is not None and opened.case.opened_message_id == request.message_id
        return HandoffResult(
            opened=True, answer_by=answer_by, already_open=not opened.new and not again, queued=opened.new or again
        )
