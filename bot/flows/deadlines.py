"""The deadline warnings under a summary (/status, certificate, incentive): core/deadlines.py's answer as text."""

from __future__ import annotations

from typing import Any

from bot.flows.turn import Turn
from core.calendar import today_in_jakarta
from core.deadlines import Deadline, upcoming_deadlines
from core.diagnosis import ParticipantStatus


def deadline_context(deadlines: tuple[Deadline, ...]) -> dict[str, Any]:
    """The `deadline_warnings` template's context: one plain dict per deadline."""
    return {
        "deadlines": [
            {
                "kind": d.kind.value,
                "due": d.due,
                "days_left": d.days_left,
                "passed": d.passed,
                "training": d.enrollment.training_title if d.enrollment else "",
            }
            for d in deadlines
        ]
    }


def with_deadlines(turn: Turn, status: ParticipantStatus, text: str) -> str:
    """`text` followed by the warnings for the deadlines this participant faces today (unchanged when none)."""
    found = upcoming_deadlines(status.facts, today_in_jakarta(), turn.services.rules)
    if not found:
        return text
    return f"{text}\n\n{turn.text('deadline_warnings', **deadline_context(found))}"
