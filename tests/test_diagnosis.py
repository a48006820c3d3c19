"""The diagnosis engine, stage by stage, with the calendar edges participants actually hit."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

import pytest

from core.calendar import WorkingCalendar
from core.diagnosis import (
    DiagnosisEngine,
    Done,
    EnrollmentFacts,
    Holder,
    InstallmentFacts,
    NextAction,
    ParticipantFacts,
    ParticipantStatus,
    PayoutFacts,
    Stage,
)
from core.rules import default_rules

ENGINE = DiagnosisEngine(default_rules(), WorkingCalendar())
BASE_ENROLLMENT = EnrollmentFacts(
    enrollment_id=1,
    platform_code="tokopedia",
    platform_name="Tokopedia",
    training_title="Barista Profesional",
    institution_name="dandan.id",
    purchased_on=date(2026, 4, 1),
)
PARTICIPANT = ParticipantFacts(
    participant_id=7,
    legal_name="Siti Nurhaliza",
    phone="+6281200000007",
    nik_last4="0007",
    scheme="2023",
    accepted_on=date(2026, 3, 25),
    payout=PayoutFacts("BNI", active=True, verified=True, phone=None, holder_name="SITI NURHALIZA"),
)


def diagnose(today: date, *, installments: tuple[InstallmentFacts, ...] = (), **changes: Any) -> ParticipantStatus:
    enrollment = replace(BASE_ENROLLMENT, **changes)
    facts = replace(PARTICIPANT, enrollments=(enrollment,), installments=installments)
    return ENGINE.participant_status(facts, today)


def test_not_purchased_has_the_scheme_deadline() -> None:
    status = ENGINE.participant_status(PARTICIPANT, date(2026, 4, 2))
    (d,) = status.diagnoses
    assert (d.stage, d.next_action, d.overdue) == (Stage.NOT_PURCHASED, NextAction.BUY_TRAINING, False)
    assert d.expected_by == date(2026, 4, 9)  # 15 calendar days for the 2023+ scheme
    late = ENGINE.participant_status(PARTICIPANT, date(2026, 4, 10)).diagnoses[0]
    assert (late.next_action, late.overdue) == (NextAction.MEMBERSHIP_REVOKED, True)


def test_2020_scheme_has_30_days_to_buy() -> None:
    facts = replace(PARTICIPANT, scheme="2020", accepted_on=date(2020, 8, 1))
    assert ENGINE.participant_status(facts, date(2020, 8, 5)).diagnoses[0].expected_by == date(2020, 8, 31)


def test_in_training_waits_for_the_institution() -> None:
    d = diagnose(date(2026, 4, 10)).diagnoses[0]
    assert (d.stage, d.holder, d.next_action) == (
        Stage.IN_TRAINING,
        Holder.INSTITUTION,
        NextAction.FINISH_TRAINING,
    )
    assert d.done == (Done.PURCHASED,)


def test_needs_rating_on_the_dashboard_since_march_2021() -> None:
    d = diagnose(date(2026, 4, 10), completed_on=date(2026, 4, 8), name_at_institution="Siti Nurhaliza").diagnoses[0]
    assert (d.stage, d.holder, d.next_action) == (
        Stage.NEEDS_RATING,
        Holder.PARTICIPANT,
        NextAction.GIVE_RATING,
    )
    assert d.rating_place == "dashboard"
    assert d.done == (Done.PURCHASED, Done.COMPLETED)


def test_needs_rating_on_the_platform_in_2020() -> None:
    d = diagnose(date(2020, 10, 10), purchased_on=date(2020, 9, 1), completed_on=date(2020, 10, 1)).diagnoses[0]
    assert d.rating_place == "platform"
    d2021 = diagnose(date(2021, 4, 1), completed_on=date(2021, 3, 18)).diagnoses[0]
    assert d2021.rating_place == "dashboard"


def test_awaiting_platform_report_then_overdue_after_three_working_days() -> None:
    rated = date(2026, 4, 6)  # Monday
    kwargs: dict[str, Any] = {"completed_on": rated, "rated_on": rated}
    d = diagnose(date(2026, 4, 7), **kwargs).diagnoses[0]
    assert (d.stage, d.holder, d.next_action) == (
        Stage.AWAITING_PLATFORM_REPORT,
        Holder.PLATFORM,
        NextAction.WAIT_PLATFORM_REPORT,
    )
    assert d.expected_by == date(2026, 4, 7)
    assert not diagnose(date(2026, 4, 9), **kwargs).diagnoses[0].overdue  # 3rd working day: still on time
    late = diagnose(date(2026, 4, 10), **kwargs).diagnoses[0]
    assert (late.overdue, late.next_action) == (True, NextAction.CONTACT_PLATFORM)


def test_rated_on_the_friday_before_a_long_weekend() -> None:
    # Fri 29 May 2026; Sun 31 May Waisak, Mon 1 June Pancasila: the next working day is Tue 2 June.
    friday = date(2026, 5, 29)
    kwargs: dict[str, Any] = {"completed_on": friday, "rated_on": friday}
    d = diagnose(date(2026, 5, 30), **kwargs).diagnoses[0]
    assert d.expected_by == date(2026, 6, 2)
    assert not diagnose(date(2026, 6, 4), **kwargs).diagnoses[0].overdue
    assert diagnose(date(2026, 6, 5), **kwargs).diagnoses[0].overdue


def test_reported_on_the_eve_of_idul_fitri() -> None:
    # 2026: Nyepi 19 Mar, Idul Fitri 21–22 Mar, cuti bersama 18, 20, 23, 24 Mar: the PMO is back on Wed 25 Mar.
    for reported in (date(2026, 3, 17), date(2026, 3, 20)):
        kwargs: dict[str, Any] = {
            "completed_on": date(2026, 3, 16),
            "rated_on": date(2026, 3, 16),
            "reported_on": reported,
        }
        d = diagnose(date(2026, 3, 23), **kwargs).diagnoses[0]
        assert (d.stage, d.holder) == (Stage.AWAITING_PMO, Holder.PMO)
        assert d.expected_by == date(2026, 3, 25)
        assert not d.overdue
        assert diagnose(date(2026, 3, 25), **kwargs).diagnoses[0].next_action == NextAction.WAIT_PMO
        late = diagnose(date(2026, 3, 26), **kwargs).diagnoses[0]
        assert (late.overdue, late.next_action) == (True, NextAction.CONTACT_AGENT)


def test_report_and_rating_on_the_same_day() -> None:
    day = date(2026, 4, 7)
    d = diagnose(day, completed_on=day, rated_on=day, reported_on=day).diagnoses[0]
    assert d.stage == Stage.AWAITING_PMO
    assert d.expected_by == date(2026, 4, 8)
    assert d.done == (Done.PURCHASED, Done.COMPLETED, Done.RATED, Done.REPORTED)


CERT: dict[str, Any] = {
    "completed_on": date(2026, 4, 6),
    "rated_on": date(2026, 4, 6),
    "reported_on": date(2026, 4, 7),
    "issued_on": date(2026, 4, 8),
    "certificate_number": "SERT/1",
    "printed_name": "SITI NURHALIZA, S.Kom",
}


def test_certificate_issued_waits_for_the_schedule_then_goes_to_an_agent() -> None:
    d = diagnose(date(2026, 4, 8), **CERT).diagnoses[0]
    assert (d.stage, d.next_action, d.expected_by) == (
        Stage.CERTIFICATE_ISSUED,
        NextAction.WAIT_INCENTIVE_SCHEDULE,
        date(2026, 4, 9),
    )
    assert d.name_check is not None and d.name_check.matches  # case and title do not count
    late = diagnose(date(2026, 4, 13), **CERT).diagnoses[0]
    assert (late.overdue, late.next_action) == (True, NextAction.CONTACT_AGENT)


def test_printed_name_of_another_person_is_a_mismatch() -> None:
    d = diagnose(date(2026, 4, 9), **(CERT | {"printed_name": "Dewi Lestari"})).diagnoses[0]
    assert (d.stage, d.holder, d.next_action) == (
        Stage.NAME_MISMATCH,
        Holder.INSTITUTION,
        NextAction.ASK_INSTITUTION_FIX_NAME,
    )
    assert d.name_check is not None and d.name_check.other_name == "Dewi Lestari"


def test_institution_name_mismatch_is_caught_before_the_certificate() -> None:
    d = diagnose(date(2026, 4, 9), completed_on=date(2026, 4, 6), name_at_institution="Budi Santoso").diagnoses[0]
    assert d.stage == Stage.NAME_MISMATCH


@pytest.mark.parametrize(
    ("status", "reason", "stage", "action"),
    [
        ("scheduled", None, Stage.INCENTIVE_SCHEDULED, NextAction.WAIT_INCENTIVE),
        ("transferred", None, Stage.INCENTIVE_TRANSFERRED, NextAction.NONE),
        ("failed", "account_inactive", Stage.INCENTIVE_FAILED, NextAction.REACTIVATE_ACCOUNT),
        ("failed", "phone_changed", Stage.INCENTIVE_FAILED, NextAction.RESTORE_PHONE),
        ("failed", "ewallet_unverified", Stage.INCENTIVE_FAILED, NextAction.VERIFY_EWALLET),
        ("failed", "something_new", Stage.INCENTIVE_FAILED, NextAction.CONTACT_CHANNEL),
    ],
)
def test_incentive_outcomes(status: str, reason: str | None, stage: Stage, action: NextAction) -> None:
    installment = InstallmentFacts(1, 600_000, date(2026, 4, 14), status, enrollment_id=1, failure_reason=reason)
    result = diagnose(date(2026, 4, 15), installments=(installment,), **CERT)
    d = result.diagnoses[0]
    assert (d.stage, d.next_action) == (stage, action)
    assert result.incentives[0].remedy == (action if status != "transferred" else NextAction.NONE)


def test_scheduled_incentive_overdue_after_the_payment_window() -> None:
    installment = InstallmentFacts(1, 600_000, date(2026, 4, 14), "scheduled", enrollment_id=1)
    on_time = diagnose(date(2026, 4, 21), installments=(installment,), **CERT)
    assert on_time.incentives[0].expected_by == date(2026, 4, 21)
    assert not on_time.needs_agent
    late = diagnose(date(2026, 4, 22), installments=(installment,), **CERT)
    assert late.incentives[0].overdue and late.needs_agent
    assert late.diagnoses[0].next_action == NextAction.CONTACT_AGENT


def test_two_enrollments_in_different_stages() -> None:
    first = replace(BASE_ENROLLMENT, **CERT)
    second = replace(BASE_ENROLLMENT, enrollment_id=2, platform_code="pintaria", purchased_on=date(2026, 4, 9))
    installment = InstallmentFacts(1, 600_000, date(2026, 4, 14), "transferred", enrollment_id=1)
    facts = replace(PARTICIPANT, enrollments=(first, second), installments=(installment,))
    status = ENGINE.participant_status(facts, date(2026, 4, 20))
    assert [d.stage for d in status.diagnoses] == [Stage.INCENTIVE_TRANSFERRED, Stage.IN_TRAINING]
    assert status.headline.enrollment_id == 2  # the one still in progress leads


def test_second_training_brings_no_incentive_in_the_2023_scheme() -> None:
    first = replace(BASE_ENROLLMENT, **CERT)
    second = replace(first, enrollment_id=2, purchased_on=date(2026, 4, 2))
    installment = InstallmentFacts(1, 600_000, date(2026, 4, 14), "transferred", enrollment_id=1)
    facts = replace(PARTICIPANT, enrollments=(first, second), installments=(installment,))
    d = ENGINE.participant_status(facts, date(2026, 5, 20)).diagnoses[1]
    assert (d.stage, d.next_action, d.overdue) == (
        Stage.CERTIFICATE_ISSUED,
        NextAction.CHECK_CERTIFICATE,
        False,
    )


def test_payout_warnings_before_a_transfer_fails() -> None:
    facts = replace(
        PARTICIPANT,
        payout=PayoutFacts("OVO", active=False, verified=False, phone="+6281299999999", holder_name="Budi"),
    )
    warnings = ENGINE.participant_status(facts, date(2026, 4, 2)).payout_warnings
    assert set(warnings) == {"account_inactive", "ewallet_unverified", "phone_changed", "name_mismatch"}
    assert ENGINE.participant_status(PARTICIPANT, date(2026, 4, 2)).payout_warnings == ()
