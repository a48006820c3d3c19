"""Incentive: the schedule, each transfer, and for a failed one the reason and what to do about it."""

from __future__ import annotations

from bot.flows.callbacks import Action
from bot.flows.turn import Turn
from bot.flows.views import diagnosis_view, installment_view, participant_view


async def start(turn: Turn, participant_id: int) -> None:
    status = await turn.records(participant_id)
    if status is None:
        return
    installments = [installment_view(i) for i in status.incentives]
    scheme = turn.services.rules.schemes[status.facts.scheme]
    needs_person = any(i["overdue"] or i["status"] == "failed" for i in installments)
    turn.say(
        "incentive_summary",
        (turn.button("btn_agent", Action.AGENT),) if needs_person else (),
        participant=participant_view(turn.services.directory, status),
        installments=installments,
        headline=diagnosis_view(turn.services.directory, status.headline, turn.locale),
        scheme=scheme,
        channels={c["code"]: c for c in turn.services.directory["payout_channels"]},
    )
