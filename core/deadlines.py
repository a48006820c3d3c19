"""Deadlines that cost a participant money, and how many days are left before each (rules.yaml `deadlines`).

A pure function of the participant's facts, today's date and the rules: which deadline applies to this participant
now, by when, and how many calendar days are left (0 on the deadline day itself, negative once it has passed).
A dated deadline is reported from `warning.days_before` days ahead until `warning.days_after` days after it; the
post-test window has no date here (the records hold no meeting or redeem dates), so it is reported as a standing
reminder while the first training (the one the incentive is for) is in progress.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

from core.diagnosis import EnrollmentFacts, ParticipantFacts
from core.models import InstallmentStatus, Membership
from core.rules import RatingGate, Rules, yearly_deadline


class DeadlineKind(StrEnum):
    LINK_PAYOUT_ACCOUNT = "link_payout_account"
    GIVE_RATING = "give_rating"
    EVALUATION_SURVEY = "evaluation_survey"
    NEXT_TRAINING = "next_training"
    POST_TEST = "post_test"


@dataclass(frozen=True)
class Deadline:
    kind: DeadlineKind
    due: date | None  # None: a window with no date we know (the post test)
    days_left: int | None  # 0 on the day itself; negative once passed; None without a date
    enrollment: EnrollmentFacts | None = None  # the training it is about, when it is about one

    @property
    def passed(self) -> bool:
        return self.days_left is not None and self.days_left < 0


def upcoming_deadlines(facts: ParticipantFacts, today: date, rules: Rules) -> tuple[Deadline, ...]:
    """The deadlines that apply to this participant around `today`, the earliest first (undated ones last)."""
    if facts.membership != Membership.ACTIVE:
        return ()  # a revoked membership has nothing left to win or lose by a date
    d = rules.deadlines
    budget_year = facts.accepted_on.year
    dated: list[tuple[DeadlineKind, date | None, EnrollmentFacts | None]] = []
    if facts.payout is None:
        dated.append((DeadlineKind.LINK_PAYOUT_ACCOUNT, yearly_deadline(d.link_payout_account, budget_year), None))
    # Only a rating that can be given now: since 2021 the "Beri Ulasan" button comes with the certificate, so a
    # training still waiting for it gets no rating deadline (it would ask for something the dashboard refuses).
    rating_needs_certificate = rules.era_for(today).rating_gates is RatingGate.INCENTIVE_SCHEDULE
    unrated = [
        e
        for e in facts.enrollments
        if e.completed_on is not None
        and e.rated_on is None
        and (e.issued_on is not None or not rating_needs_certificate)
    ]
    if unrated:
        first = min(unrated, key=_bought)
        dated.append((DeadlineKind.GIVE_RATING, yearly_deadline(d.give_rating, budget_year), first))
    if any(i.status == InstallmentStatus.TRANSFERRED for i in facts.installments):
        dated.append((DeadlineKind.EVALUATION_SURVEY, yearly_deadline(d.evaluation_survey, budget_year), None))
    if facts.scheme in d.next_training.schemes and facts.enrollments:
        latest = max(facts.enrollments, key=_bought)
        if latest.rated_on is not None:
            # Counted with the rating day as day 1 (FAQ: rated 1 March → buy by 15 March).
            due = latest.rated_on + timedelta(days=d.next_training.days_after_rating - 1)
            dated.append((DeadlineKind.NEXT_TRAINING, due, latest))
    found = [
        Deadline(kind, due, (due - today).days, enrollment)
        for kind, due, enrollment in dated
        if due is not None and -d.warning.days_after <= (due - today).days <= d.warning.days_before
    ]
    found.sort(key=lambda item: (item.due or date.max, list(DeadlineKind).index(item.kind)))
    if facts.scheme in d.post_test.schemes and facts.enrollments:
        # The window decides whether the first training counts for the incentive (the official FAQ).
        first = min(facts.enrollments, key=_bought)
        if first.completed_on is None:
            found.append(Deadline(DeadlineKind.POST_TEST, None, None, first))
    return tuple(found)


def _bought(e: EnrollmentFacts) -> tuple[date, int]:
    return (e.purchased_on, e.enrollment_id)
