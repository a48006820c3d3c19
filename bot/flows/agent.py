"""Handing the chat to a person from any flow, and what the participant is told about it."""

from __future__ import annotations

from bot.flows.handoff import acknowledgement
from bot.flows.state import Phase
from bot.flows.turn import HandoffRequest, Turn
from core.diagnosis import Step


async def hand_over(turn: Turn, participant_id: int | None, reason: str) -> bool:
    """Open (or find) the case; without a staff group, point to the complaint form. True when a person has it."""
    state = turn.state
    tried = state.steps[: state.step_index + 1] if state.steps else []
    request = HandoffRequest(
        user_id=turn.event.user_id,
        participant_id=participant_id,
        reason=reason,
        locale=turn.locale,
        steps_tried=[s for s in tried if s != Step.ESCALATE],
        transcript=list(state.transcript),
        display_name=turn.event.display_name,
        message_id=turn.event.message_id,
    )
    result = await turn.services.handoff.request(request)
    state.phase = Phase.IDLE
    if not result.opened:
        turn.say("agent_unavailable", complaint=turn.services.directory["complaint_form"])
        return False
    if result.queued:
        return True
    told = acknowledgement(
        answer_by=result.answer_by,
        identified=participant_id is not None,
        already_open=result.already_open,
        reason=reason,
    )
    turn.say("agent_opened", **told)
    return True
