"""A case's life as rules on one case: open → claimed (by /claim, or by an agent's first reply) → closed, reopened
when the participant writes again soon after an agent closed it. No database here: the use cases load the case,
ask these rules, and save what they changed, all in one transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from core.cases.views import ACTIVE
from core.models import Case, CaseStatus


class NoOpenCase(LookupError):
    """The case is closed (or gone): claiming or closing it does nothing. Both report it the same way."""


@dataclass(frozen=True)
class CaseRules:
    reopen_window: timedelta

    @staticmethod
    def claim(case: Case | None, agent_id: int, now: datetime) -> int | None:
        """Take the case; returns the agent who had it before (None if nobody)."""
        if case is None or case.status not in ACTIVE:
            raise NoOpenCase("no open case here")
        previous = case.claimed_by
        case.claimed_by, case.claimed_at, case.status = agent_id, now, CaseStatus.CLAIMED
        case.auto_assigned = False  # taken by a person: automatic assignment leaves it alone from now on
        return previous

    @staticmethod
    def assign_automatically(case: Case, agent_id: int, now: datetime) -> bool:
        """Give a waiting case to an agent (see core.console.assignment); False when it is no longer waiting."""
        if case.status not in ACTIVE or case.claimed_by is not None:
            return False
        case.claimed_by, case.claimed_at, case.status = agent_id, now, CaseStatus.CLAIMED
        case.auto_assigned = True
        return True

    @staticmethod
    def release(case: Case, agent_id: int) -> bool:
        """Put an automatically assigned case back in the queue (its agent went away); one an agent claimed or
        was handed by a supervisor stays theirs."""
        if case.status not in ACTIVE or case.claimed_by != agent_id or not case.auto_assigned:
            return False
        case.claimed_by, case.claimed_at, case.status = None, None, CaseStatus.OPEN
        case.auto_assigned = False
        return True

    @staticmethod
    def agent_replied(case: Case, agent_id: int, now: datetime) -> None:
        """Replying is claiming: the participant now has a person. A reply to a closed case (the closing message
        itself) changes nothing: it must not reopen the case it closes."""
        if case.status not in ACTIVE:
            return
        if case.first_reply_at is None:
            case.first_reply_at = now
        if case.claimed_by is None:
            case.claimed_by, case.claimed_at, case.status = agent_id, now, CaseStatus.CLAIMED

    @staticmethod
    def close(case: Case | None, closed_by: int, now: datetime) -> None:
        if case is None or case.status not in ACTIVE:
            raise NoOpenCase("no open case here")
        case.status, case.closed_at, case.closed_by = CaseStatus.CLOSED, now, closed_by

    def may_reopen(self, last: Case | None, user_id: int, now: datetime) -> bool:
        """Writing again within the window after an agent closed the case reopens it. A case the participant
        closed themselves (/cancel) stays closed: they asked for the bot back."""
        closed_at = last.closed_at if last is not None else None
        if last is None or closed_at is None or now - closed_at > self.reopen_window:
            return False
        return last.closed_by != user_id

    @staticmethod
    def reopen(case: Case) -> None:
        case.status = CaseStatus.CLAIMED if case.claimed_by else CaseStatus.OPEN
        case.closed_at = None
        case.closed_by = None

    @staticmethod
    def rate(case: Case | None, user_id: int, score: int) -> bool:
        """The participant's 1–5 answer; only theirs, only for a closed case, only once."""
        if not 1 <= score <= 5 or case is None:
            return False
        if case.telegram_user_id != user_id or case.status != CaseStatus.CLOSED or case.satisfaction is not None:
            return False
        case.satisfaction = score
        return True
