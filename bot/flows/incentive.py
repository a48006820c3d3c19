"""Incentive: the schedule, each transfer, and for a failed one the reason and what to do about it."""

from __future__ import annotations

from bot.flows.agent import hand_over
from bot.flows.callbacks import Action
from bot.flows.deadlines import with_deadlines
from bot.flows.turn import Turn
from bot.flows.types import Button
from bot.flows.views import diagnosis_view, installment_view, participant_view
from core.diagnosis import ParticipantStatus


async def start(turn: Turn, participant_id: int) -> None:
    status = await turn.records(participant_id)
    if status is None:
        return
    text, agent = summary(turn, status)
    turn.say_text(with_deadlines(turn, status, text), agent)


def summary(turn: Turn, status: ParticipantStatus, in_status: bool = False) -> tuple[str, tuple[Button, ...]]:
    """The incentive summary and, when a transfer failed or is overdue, the agent button to go with it.
    `in_status`: part of /status, which needs no pointer to itself."""
    installments = [installment_view(i) for i in status.incentives]
    staffed = _staffed(turn)
    failed = any(i["status"] == "failed" for i in installments)
    needs_person = failed or status.incentive.state == "overdue"
    text = turn.text(
        "incentive_summary",
        participant=participant_view(turn.services.directory, status),
        installments=installments,
        headline=diagnosis_view(turn.services.directory, status.headline, turn.locale),
        scheme=turn.services.rules.schemes[status.facts.scheme],
        channels={c["code"]: c for c in turn.services.directory["payout_channels"]},
        in_status=in_status,
        staffed=staffed,
    )
    buttons: list[Button] = []
    if failed:
        buttons.append(turn.button("btn_incentive_fixed", Action.STEP, "fixed"))
    if needs_person:
        # One person button; without a staff group it leads to the complaint form, and says so.
        buttons.append(turn.button("btn_agent" if staffed else "btn_complaint", Action.AGENT))
    return text, tuple(buttons)


async def fixed(turn: Turn, participant_id: int) -> None:
    """The participant fixed the account a transfer failed on: a person asks for the transfer to be sent again
    (an agent when there is a staff group, else the complaint form, which is where it is reported)."""
    staffed = _staffed(turn)
    turn.say("incentive_fixed", staffed=staffed, complaint=turn.services.directory["complaint_form"])
    if staffed:
        await hand_over(turn, participant_id, "participant_asked")


def _staffed(turn: Turn) -> bool:
    return turn.services.cases is not None and turn.services.cases.staffed
