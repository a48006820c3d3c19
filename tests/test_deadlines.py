"""Warnings before the deadlines that cost money (core/deadlines.py), counted from the sourced rules in rules.yaml,
and their text in both languages — on the deadline day itself, before it and after it."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from bot.flows.deadlines import deadline_context
from bot.texts import default_renderer
from core.deadlines import Deadline, DeadlineKind, upcoming_deadlines
from core.diagnosis import EnrollmentFacts, InstallmentFacts, ParticipantFacts, PayoutFacts
from core.paths import knowledge_dir
from core.rules import default_rules, parse_rules

RULES = default_rules()
TODAY = date(2026, 12, 3)  # the day this was written: the 2026 deadline for the payout account and the rating

PAYOUT = PayoutFacts("OVO", active=True, verified=True, phone="+6281200000001", holder_name="Siti Nurhaliza")
PARTICIPANT = ParticipantFacts(
    participant_id=1,
    legal_name="Siti Nurhaliza",
    phone="+6281200000001",
    nik_last4="0001",
    scheme="2023",
    accepted_on=date(2026, 3, 25),
    payout=PAYOUT,
)
TRAINING = EnrollmentFacts(1, "tokopedia", "Tokopedia", "Barista Profesional", "dandan.id", date(2026, 4, 1))


def kinds(found: tuple[Deadline, ...]) -> list[tuple[DeadlineKind, date | None, int | None]]:
    return [(d.kind, d.due, d.days_left) for d in found]


def test_payout_account_on_the_deadline_day_itself() -> None:
    facts = replace(PARTICIPANT, payout=None)
    assert kinds(upcoming_deadlines(facts, TODAY, RULES)) == [(DeadlineKind.LINK_PAYOUT_ACCOUNT, date(2026, 12, 3), 0)]


@pytest.mark.parametrize(
    ("today", "days_left"),
    [
        (date(2026, 11, 19), 14),  # the first day of the warning
        (date(2026, 12, 2), 1),
        (date(2026, 12, 3), 0),
        (date(2026, 12, 4), -1),  # passed: still said, so the participant knows why
        (date(2027, 1, 2), -30),  # the last day it is still said
    ],
)
def test_payout_account_warning_window(today: date, days_left: int) -> None:
    (found,) = upcoming_deadlines(replace(PARTICIPANT, payout=None), today, RULES)
    assert (found.kind, found.days_left, found.passed) == (DeadlineKind.LINK_PAYOUT_ACCOUNT, days_left, days_left < 0)


@pytest.mark.parametrize("today", [date(2026, 11, 18), date(2027, 1, 3), date(2026, 6, 1)])
def test_no_warning_far_from_the_deadline(today: date) -> None:
    assert upcoming_deadlines(replace(PARTICIPANT, payout=None), today, RULES) == ()


def test_a_linked_account_has_no_account_deadline() -> None:
    assert upcoming_deadlines(PARTICIPANT, TODAY, RULES) == ()


def test_rating_deadline_for_a_certificate_without_rating() -> None:
    completed = replace(TRAINING, completed_on=date(2026, 11, 30), issued_on=date(2026, 12, 1))
    (found,) = upcoming_deadlines(replace(PARTICIPANT, enrollments=(completed,)), TODAY, RULES)
    assert (found.kind, found.due, found.days_left, found.enrollment) == (
        DeadlineKind.GIVE_RATING,
        date(2026, 12, 3),
        0,
        completed,
    )


def test_no_rating_deadline_before_the_certificate_since_2021() -> None:
    # Since 18 March 2021 "Beri Ulasan" opens with the certificate: a finished training still waiting for its
    # report cannot be rated yet, so the bot must not ask for the rating by today.
    completed = replace(TRAINING, completed_on=date(2026, 11, 30))
    assert upcoming_deadlines(replace(PARTICIPANT, enrollments=(completed,)), TODAY, RULES) == ()


def test_survey_deadline_once_the_incentive_is_paid() -> None:
    done = replace(TRAINING, completed_on=date(2026, 4, 6), rated_on=date(2026, 4, 6), issued_on=date(2026, 4, 8))
    paid = InstallmentFacts(1, 600_000, date(2026, 4, 14), "transferred", enrollment_id=1)
    facts = replace(PARTICIPANT, enrollments=(done,), installments=(paid,))
    assert kinds(upcoming_deadlines(facts, TODAY, RULES)) == [(DeadlineKind.EVALUATION_SURVEY, date(2026, 12, 10), 7)]
    scheduled = replace(paid, status="scheduled")
    assert upcoming_deadlines(replace(facts, installments=(scheduled,)), TODAY, RULES) == ()


def test_next_training_within_15_days_of_the_rating_as_in_the_official_example() -> None:
    # The official FAQ: rated on 1 March 2024 → the next training bought by 15 March 2024.
    rated = replace(TRAINING, purchased_on=date(2024, 2, 1), completed_on=date(2024, 2, 28), rated_on=date(2024, 3, 1))
    facts = replace(PARTICIPANT, accepted_on=date(2024, 1, 20), enrollments=(rated,))
    assert kinds(upcoming_deadlines(facts, date(2024, 3, 15), RULES)) == [
        (DeadlineKind.NEXT_TRAINING, date(2024, 3, 15), 0)
    ]
    assert kinds(upcoming_deadlines(facts, date(2024, 3, 16), RULES)) == [
        (DeadlineKind.NEXT_TRAINING, date(2024, 3, 15), -1)
    ]
    bought_again = replace(rated, enrollment_id=2, purchased_on=date(2024, 3, 10), completed_on=None, rated_on=None)
    later = replace(facts, enrollments=(rated, bought_again))
    assert upcoming_deadlines(later, date(2024, 3, 15), RULES) == ()  # bought in time; its post test is no
    # condition of the incentive (that was the first training's)


def test_post_test_reminder_while_in_training_comes_last() -> None:
    facts = replace(PARTICIPANT, payout=None, enrollments=(TRAINING,))
    found = upcoming_deadlines(facts, TODAY, RULES)
    assert kinds(found) == [
        (DeadlineKind.LINK_PAYOUT_ACCOUNT, date(2026, 12, 3), 0),
        (DeadlineKind.POST_TEST, None, None),
    ]
    assert found[1].enrollment == TRAINING and not found[1].passed


def test_earliest_first() -> None:
    completed = replace(TRAINING, completed_on=date(2026, 11, 30), issued_on=date(2026, 12, 1))
    paid = InstallmentFacts(1, 600_000, date(2026, 4, 14), "transferred", enrollment_id=1)
    facts = replace(PARTICIPANT, payout=None, enrollments=(completed,), installments=(paid,))
    assert [d.kind for d in upcoming_deadlines(facts, date(2026, 12, 1), RULES)] == [
        DeadlineKind.LINK_PAYOUT_ACCOUNT,
        DeadlineKind.GIVE_RATING,
        DeadlineKind.EVALUATION_SURVEY,
    ]


def test_a_revoked_membership_has_no_deadlines() -> None:
    facts = replace(PARTICIPANT, payout=None, membership="revoked", enrollments=(TRAINING,))
    assert upcoming_deadlines(facts, TODAY, RULES) == ()


def test_budget_years_follow_their_own_rule() -> None:
    # 2022: everything by 10 December (the programme's announcement, via Liputan6); before 2022 no date is known.
    facts = replace(PARTICIPANT, payout=None, accepted_on=date(2022, 6, 1))
    assert kinds(upcoming_deadlines(facts, date(2022, 12, 3), RULES)) == [
        (DeadlineKind.LINK_PAYOUT_ACCOUNT, date(2022, 12, 10), 7)
    ]
    old = replace(PARTICIPANT, scheme="2020", payout=None, accepted_on=date(2020, 8, 1), enrollments=(TRAINING,))
    assert upcoming_deadlines(old, date(2020, 12, 3), RULES) == ()  # and no 2023-scheme windows for 2020


def test_the_warning_window_is_read_from_the_rules() -> None:
    text = (knowledge_dir() / "rules.yaml").read_text(encoding="utf-8")
    narrow = parse_rules(text.replace("    days_before: 14 ", "    days_before: 0 "))
    facts = replace(PARTICIPANT, payout=None)
    assert upcoming_deadlines(facts, date(2026, 12, 2), narrow) == ()
    assert len(upcoming_deadlines(facts, TODAY, narrow)) == 1


# --- the text --------------------------------------------------------------------------------------------------


def render(facts: ParticipantFacts, today: date, locale: str) -> str:
    context = deadline_context(upcoming_deadlines(facts, today, RULES))
    return default_renderer().render("deadline_warnings", locale, **context)


def test_text_on_the_day_itself_and_after() -> None:
    facts = replace(PARTICIPANT, payout=None)
    today_id = render(facts, TODAY, "id")
    assert "<b>hari ini</b>" in today_id and "3 Desember 2026" in today_id and "lewat" not in today_id
    today_en = render(facts, TODAY, "en")
    assert "<b>today</b>" in today_en and "3 December 2026" in today_en
    after = render(facts, date(2026, 12, 4), "id")
    assert "sudah lewat" in after and "hari ini" not in after and "3 Desember 2026" in after
    assert "passed" in render(facts, date(2026, 12, 4), "en")
    before = render(facts, date(2026, 11, 26), "id")
    assert "7 hari lagi" in before
    assert "1 day left" in render(facts, date(2026, 12, 2), "en")


def test_text_names_the_step_and_the_windows() -> None:
    facts = replace(
        PARTICIPANT, enrollments=(replace(TRAINING, completed_on=date(2026, 11, 30), issued_on=date(2026, 12, 1)),)
    )
    assert "rating &amp; ulasan pelatihan yang sudah selesai" in render(facts, TODAY, "id")
    in_training = replace(PARTICIPANT, enrollments=(TRAINING,))
    text = render(in_training, TODAY, "id")
    assert "Post test" in text and "30 hari" in text and "60 hari" in text
    assert "30 days" in render(in_training, TODAY, "en")


def test_no_deadline_no_text() -> None:
    assert render(PARTICIPANT, TODAY, "id") == ""
