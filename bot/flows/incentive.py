"""Incentive: the schedule, each transfer, and for a failed one the reason and what to do about it."""

from __future__ import annotations

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
    needs_person = any(i["overdue"] or i["status"] == "failed" for i in installments)
    text = turn.text(
        "incentive_summary",
        participant=participant_view(turn.services.directory, status),
        installments=installments,
        headline=diagnosis_view(turn.services.directory, status.headline, turn.locale),
        scheme=turn.services.rules.schemes[status.facts.scheme],
        channels={c["code"]: c for c in turn.services.directory["payout_channels"]},
        in_status=in_status,
    )
    return text, (turn.button("btn_agent", Action.AGENT),) if needs_person else ()
