"""The diagnosis engine, stage by stage, with the calendar edges participants actually hit."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import pytest

from core.calendar import WorkingCalendar
from core.diagnosis import (
    DiagnosisEngine,
    Done,
    EnrollmentFacts,
    Flag,
    Holder,
    IncentiveState,
    InstallmentFacts,
    NextAction,
    ParticipantFacts,
    ParticipantStatus,
    PayoutFacts,
    Stage,
    Step,
    troubleshooting_steps,
)
from core.rules import Remedy, default_rules

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


def test_since_march_2021_the_report_does_not_wait_for_the_rating() -> None:
    # Institution → platform → PMO → certificate, THEN the rating: a completed, unrated training is the platform's.
    d = diagnose(date(2026, 4, 10), completed_on=date(2026, 4, 8), name_at_institution="Siti Nurhaliza").diagnoses[0]
    assert (d.stage, d.holder, d.next_action, d.expected_by) == (
        Stage.AWAITING_PLATFORM_REPORT,
        Holder.PLATFORM,
        NextAction.WAIT_PLATFORM_REPORT,
        date(2026, 4, 9),  # completed + 1 working day
    )
    assert (d.rating_place, d.era, d.rating_gates) == ("dashboard", "2021", "incentive_schedule")
    assert d.done == (Done.PURCHASED, Done.COMPLETED)
    reported = diagnose(date(2026, 4, 10), completed_on=date(2026, 4, 8), reported_on=date(2026, 4, 9)).diagnoses[0]
    assert (reported.stage, reported.expected_by) == (Stage.AWAITING_PMO, date(2026, 4, 10))


def test_certificate_issued_without_a_rating_needs_the_rating_for_the_schedule() -> None:
    # The demo persona the bot used to contradict: certificate on the dashboard, no rating, no schedule.
    unrated: dict[str, Any] = {
        "completed_on": date(2026, 4, 6),
        "reported_on": date(2026, 4, 7),
        "issued_on": date(2026, 4, 8),
    }
    status = diagnose(date(2026, 4, 10), **unrated, printed_name="Siti Nurhaliza")
    d = status.diagnoses[0]
    assert (d.stage, d.holder, d.next_action, d.overdue) == (
        Stage.NEEDS_RATING,
        Holder.PARTICIPANT,
        NextAction.GIVE_RATING,
        False,
    )
    assert d.done == (Done.PURCHASED, Done.COMPLETED, Done.REPORTED, Done.CERTIFICATE)
    assert d.expected_by == date(2026, 4, 13)  # rated today (Fri) → schedule by the next working day (Mon)
    assert (status.incentive.state, status.incentive.on) == (IncentiveState.WAITING_RATING, None)
    assert troubleshooting_steps(d) == (Step.CERTIFICATE_READY, Step.GIVE_RATING, Step.WAIT, Step.ESCALATE)
    # Rated on Friday: the schedule is expected one working day after the rating.
    rated = diagnose(date(2026, 4, 13), **unrated, rated_on=date(2026, 4, 10), printed_name="Siti Nurhaliza")
    d = rated.diagnoses[0]
    assert (d.stage, d.next_action, d.expected_by, d.overdue) == (
        Stage.CERTIFICATE_ISSUED,
        NextAction.WAIT_INCENTIVE_SCHEDULE,
        date(2026, 4, 13),
        False,
    )
    assert (rated.incentive.state, rated.incentive.on) == (IncentiveState.WAITING_SCHEDULE, date(2026, 4, 13))
    late = diagnose(date(2026, 4, 14), **unrated, rated_on=date(2026, 4, 10), printed_name="Siti Nurhaliza")
    assert (late.diagnoses[0].overdue, late.diagnoses[0].next_action) == (True, NextAction.CONTACT_AGENT)
    assert late.incentive.state == IncentiveState.OVERDUE


def test_needs_rating_on_the_platform_in_2020() -> None:
    d = diagnose(date(2020, 10, 10), purchased_on=date(2020, 9, 1), completed_on=date(2020, 10, 1)).diagnoses[0]
    assert d.rating_place == "platform"
    d2021 = diagnose(date(2021, 4, 1), completed_on=date(2021, 3, 18)).diagnoses[0]
    assert d2021.rating_place == "dashboard"


def test_a_rating_still_to_give_goes_where_ratings_are_given_today() -> None:
    # Completed on 1 March 2021, before the dashboard took over ratings (18 March 2021), and still not rated in
    # 2026: the rating is given now, so on the dashboard and under today's order — the completion date does not
    # decide, and the platform's report (five years late) does not wait for the rating.
    early_2021: dict[str, Any] = {"purchased_on": date(2021, 2, 1), "completed_on": date(2021, 3, 1)}
    d = diagnose(date(2026, 4, 10), **early_2021).diagnoses[0]
    assert (d.stage, d.rating_place, d.era, d.overdue) == (Stage.AWAITING_PLATFORM_REPORT, "dashboard", "2021", True)
    in_2020 = diagnose(date(2020, 10, 10), purchased_on=date(2020, 9, 1), completed_on=date(2020, 10, 1)).diagnoses[0]
    assert (in_2020.stage, in_2020.era, in_2020.rating_gates) == (Stage.NEEDS_RATING, "2020", "platform_report")


@pytest.mark.parametrize(
    ("rated_on", "place"),
    [(date(2021, 3, 17), "platform"), (date(2021, 3, 18), "dashboard"), (date(2022, 1, 5), "dashboard")],
)
def test_a_rating_given_is_judged_by_its_own_date(rated_on: date, place: str) -> None:
    # Completed before the switch in every case: only the rating's date matters.
    facts: dict[str, Any] = {"purchased_on": date(2021, 2, 1), "completed_on": date(2021, 3, 1), "rated_on": rated_on}
    d = diagnose(rated_on + timedelta(days=1), **facts).diagnoses[0]
    assert (d.stage, d.rating_place) == (Stage.AWAITING_PLATFORM_REPORT, place)


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
    assert d.on_time_until == date(2026, 4, 9)  # usually a working day; late only after three
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


# The same certificate in 2020: rated on the platform before the report; the schedule came with the certificate.
CERT_2020: dict[str, Any] = {
    "purchased_on": date(2020, 9, 28),
    "completed_on": date(2020, 10, 5),
    "rated_on": date(2020, 10, 5),
    "reported_on": date(2020, 10, 6),
    "issued_on": date(2020, 10, 7),
    "certificate_number": "SERT/1",
    "printed_name": "SITI NURHALIZA, S.Kom",
}


def test_certificate_issued_waits_for_the_schedule_a_day_after_the_rating() -> None:
    # Since 2021 the schedule appears about 1×24 h after the rating (rated Mon 6 Apr, certificate Wed 8 Apr): one
    # working day after the later of the two.
    d = diagnose(date(2026, 4, 8), **CERT).diagnoses[0]
    assert (d.stage, d.next_action, d.expected_by, d.overdue) == (
        Stage.CERTIFICATE_ISSUED,
        NextAction.WAIT_INCENTIVE_SCHEDULE,
        date(2026, 4, 9),
        False,
    )
    assert d.name_check is not None and d.name_check.matches  # case and title do not count
    assert not diagnose(date(2026, 4, 9), **CERT).diagnoses[0].overdue
    late = diagnose(date(2026, 4, 10), **CERT).diagnoses[0]
    assert (late.overdue, late.next_action) == (True, NextAction.CONTACT_AGENT)


def test_in_2020_the_schedule_came_with_the_certificate_then_goes_to_an_agent() -> None:
    # DESIGN §1: the PMO put the certificate *and* the schedule on the dashboard within 1 working day of having
    # the report (reported Tue 6 Oct 2020): the schedule is due with the certificate, not a day after it.
    d = diagnose(date(2020, 10, 7), **CERT_2020).diagnoses[0]
    assert (d.stage, d.next_action, d.expected_by, d.overdue, d.era) == (
        Stage.CERTIFICATE_ISSUED,
        NextAction.WAIT_INCENTIVE_SCHEDULE,
        date(2020, 10, 7),
        False,
        "2020",
    )
    late = diagnose(date(2020, 10, 8), **CERT_2020).diagnoses[0]
    assert (late.overdue, late.next_action) == (True, NextAction.CONTACT_AGENT)


def test_schedule_due_with_a_certificate_the_pmo_issued_late_in_2020() -> None:
    # Reported Tue 6 Oct, certificate only on Mon 12 Oct, no schedule with it: the schedule is as late as the
    # certificate was, so an agent takes it at once.
    late_certificate = CERT_2020 | {"issued_on": date(2020, 10, 12)}
    d = diagnose(date(2020, 10, 12), **late_certificate).diagnoses[0]
    assert (d.expected_by, d.overdue, d.next_action) == (date(2020, 10, 7), True, NextAction.CONTACT_AGENT)


def test_schedule_without_a_report_date_counts_from_the_certificate_in_2020() -> None:
    d = diagnose(date(2020, 10, 8), **(CERT_2020 | {"reported_on": None})).diagnoses[0]
    assert (d.stage, d.expected_by, d.overdue) == (Stage.CERTIFICATE_ISSUED, date(2020, 10, 8), False)
    assert diagnose(date(2020, 10, 9), **(CERT_2020 | {"reported_on": None})).diagnoses[0].overdue


def test_printed_name_of_another_person_is_a_mismatch() -> None:
    d = diagnose(date(2026, 4, 9), **(CERT | {"printed_name": "Dewi Lestari"})).diagnoses[0]
    assert (d.stage, d.holder, d.next_action) == (
        Stage.NAME_MISMATCH,
        Holder.INSTITUTION,
        NextAction.ASK_INSTITUTION_FIX_NAME,
    )
    assert d.name_check is not None and d.name_check.other_name == "Dewi Lestari"


def test_a_wrong_printed_name_does_not_hide_the_certificate_or_its_late_schedule() -> None:
    status = diagnose(date(2026, 4, 14), **(CERT | {"printed_name": "Dewi Lestari"}))
    d = status.diagnoses[0]
    assert (d.stage, d.certificate_issued, Done.CERTIFICATE in d.done) == (Stage.NAME_MISMATCH, True, True)
    assert (d.expected_by, d.overdue) == (date(2026, 4, 9), True)  # the schedule was due the day after the rating
    assert status.needs_agent
    assert (status.incentive.state, status.incentive.on) == (IncentiveState.OVERDUE, date(2026, 4, 9))
    assert troubleshooting_steps(d) == (Step.FIX_NAME, Step.ESCALATE)


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
    # DESIGN §1: payment 3–5 working days after the schedule *appears* — a working day after the later of rating
    # and certificate, Thu 9 Apr — so by Thu 16 Apr, not 5 working days after the date it names (Tue 14 Apr).
    installment = InstallmentFacts(1, 600_000, date(2026, 4, 14), "scheduled", enrollment_id=1)
    on_time = diagnose(date(2026, 4, 16), installments=(installment,), **CERT)
    assert on_time.incentives[0].expected_by == date(2026, 4, 16)
    assert not on_time.needs_agent
    assert (on_time.incentive.state, on_time.incentive.on) == (IncentiveState.SCHEDULED, date(2026, 4, 14))
    late = diagnose(date(2026, 4, 17), installments=(installment,), **CERT)
    assert (late.incentive.state, late.incentive.on) == (IncentiveState.OVERDUE, date(2026, 4, 16))
    assert late.incentives[0].overdue and late.needs_agent
    assert late.diagnoses[0].next_action == NextAction.CONTACT_AGENT


def test_a_later_monthly_installment_is_not_due_before_its_own_date() -> None:
    # 2020 scheme: four installments published with the certificate, each naming its month.
    second = InstallmentFacts(2, 600_000, date(2026, 5, 14), "scheduled", enrollment_id=1)
    status = diagnose(date(2026, 5, 14), installments=(second,), **CERT)
    assert (status.incentives[0].expected_by, status.incentives[0].overdue) == (date(2026, 5, 14), False)
    assert diagnose(date(2026, 5, 15), installments=(second,), **CERT).incentives[0].overdue


def test_payment_window_without_a_known_publication_counts_from_the_schedule() -> None:
    unlinked = InstallmentFacts(1, 600_000, date(2026, 4, 14), "scheduled", enrollment_id=None)
    view = ENGINE.installment(unlinked, date(2026, 4, 15))
    assert (view.expected_by, view.overdue) == (date(2026, 4, 21), False)


@pytest.mark.parametrize("reason", sorted(default_rules().transfer_failures.reasons))
def test_every_failure_reason_in_the_rules_has_its_remedy(reason: str) -> None:
    installment = InstallmentFacts(1, 600_000, date(2026, 4, 14), "failed", enrollment_id=1, failure_reason=reason)
    result = diagnose(date(2026, 4, 15), installments=(installment,), **CERT)
    d = result.diagnoses[0]
    assert (d.stage, d.failure_reason) == (Stage.INCENTIVE_FAILED, reason)
    assert d.next_action.value == default_rules().transfer_failures.reasons[reason].value == result.incentives[0].remedy


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


# --- membership: revoked, and the first purchase after the scheme's deadline --------------------------------------
IN_PROGRESS: dict[str, Any] = {"completed_on": date(2026, 4, 6), "rated_on": date(2026, 4, 6)}


def test_a_revoked_membership_stops_a_training_in_progress() -> None:
    # DESIGN §1: membership is active or revoked; revoked, nothing moves on, so no date is promised and the only
    # step is a person (the complaint form or an agent).
    facts = replace(PARTICIPANT, membership="revoked", enrollments=(replace(BASE_ENROLLMENT, **IN_PROGRESS),))
    status = ENGINE.participant_status(facts, date(2026, 4, 7))
    (d,) = status.diagnoses
    assert d.stage == Stage.AWAITING_PLATFORM_REPORT  # where the records stand
    assert (d.holder, d.next_action, d.expected_by, d.overdue) == (
        Holder.PMO,
        NextAction.MEMBERSHIP_REVOKED,
        None,
        False,
    )
    assert d.flags == (Flag.MEMBERSHIP_REVOKED,)
    assert status.needs_agent
    assert troubleshooting_steps(d) == (Step.ESCALATE,)


def test_a_revoked_membership_leaves_a_settled_training_as_it_is() -> None:
    installment = InstallmentFacts(1, 600_000, date(2026, 4, 14), "transferred", enrollment_id=1)
    facts = replace(
        PARTICIPANT,
        membership="revoked",
        enrollments=(replace(BASE_ENROLLMENT, **CERT),),
        installments=(installment,),
    )
    (d,) = ENGINE.participant_status(facts, date(2026, 4, 20)).diagnoses
    assert (d.stage, d.next_action, d.flags) == (
        Stage.INCENTIVE_TRANSFERRED,
        NextAction.NONE,
        (Flag.MEMBERSHIP_REVOKED,),
    )


def test_an_active_membership_is_not_flagged() -> None:
    (d,) = diagnose(date(2026, 4, 7), **IN_PROGRESS).diagnoses
    assert (d.next_action, d.flags) == (NextAction.WAIT_PLATFORM_REPORT, ())


@pytest.mark.parametrize(
    ("scheme", "accepted_on", "deadline"),
    [("2023", date(2026, 3, 25), date(2026, 4, 9)), ("2020", date(2020, 8, 1), date(2020, 8, 31))],
)
def test_a_first_purchase_after_the_schemes_deadline_is_flagged(scheme: str, accepted_on: date, deadline: date) -> None:
    def flags(*purchases: date) -> list[tuple[Flag, ...]]:
        enrollments = tuple(
            replace(BASE_ENROLLMENT, enrollment_id=n, purchased_on=bought) for n, bought in enumerate(purchases, 1)
        )
        facts = replace(PARTICIPANT, scheme=scheme, accepted_on=accepted_on, enrollments=enrollments)
        return [d.flags for d in ENGINE.participant_status(facts, deadline + timedelta(days=60)).diagnoses]

    assert flags(deadline) == [()]  # on the last day: in time
    assert flags(deadline + timedelta(days=1)) == [(Flag.PURCHASED_AFTER_DEADLINE,)]
    # The deadline is for the first training only: a second one bought later is normal.
    assert flags(deadline, deadline + timedelta(days=30)) == [(), ()]
    late = (Flag.PURCHASED_AFTER_DEADLINE,)
    assert flags(deadline + timedelta(days=1), deadline + timedelta(days=2)) == [late, late]


def test_a_late_first_purchase_keeps_its_pipeline() -> None:
    # The membership is still active in the records: the diagnosis goes on and only flags it for staff.
    late: dict[str, Any] = {
        "purchased_on": date(2026, 4, 20),  # accepted 25 Mar: the 2023 scheme's 15 days ended 9 Apr
        "completed_on": date(2026, 4, 27),
        "rated_on": date(2026, 4, 27),
    }
    (d,) = diagnose(date(2026, 4, 28), **late).diagnoses
    assert (d.stage, d.next_action, d.flags) == (
        Stage.AWAITING_PLATFORM_REPORT,
        NextAction.WAIT_PLATFORM_REPORT,
        (Flag.PURCHASED_AFTER_DEADLINE,),
    )


def test_every_remedy_the_rules_may_name_is_a_next_action() -> None:
    assert {remedy.value for remedy in Remedy} <= {action.value for action in NextAction}
