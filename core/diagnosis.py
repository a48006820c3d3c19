"""The diagnosis engine: for each enrollment, where the certificate is stuck, who holds it, and the one next step.

Pure functions over facts (no database, no Telegram): the status service loads the facts, the front end renders the
result. Every threshold comes from `knowledge/rules.yaml`; every date is counted in Indonesian working days.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from enum import StrEnum

from core.calendar import WorkingCalendar
from core.models import InstallmentStatus, Membership, PayoutChannel
from core.names import NameCheck, compare_names
from core.rules import PipelineEra, RatingGate, Remedy, Rules


class Stage(StrEnum):
    NOT_PURCHASED = "not_purchased"
    IN_TRAINING = "in_training"
    NEEDS_RATING = "needs_rating"
    AWAITING_PLATFORM_REPORT = "awaiting_platform_report"
    AWAITING_PMO = "awaiting_pmo"
    CERTIFICATE_ISSUED = "certificate_issued"
    NAME_MISMATCH = "name_mismatch"
    INCENTIVE_SCHEDULED = "incentive_scheduled"
    INCENTIVE_TRANSFERRED = "incentive_transferred"
    INCENTIVE_FAILED = "incentive_failed"


class Holder(StrEnum):
    PARTICIPANT = "participant"
    INSTITUTION = "institution"
    PLATFORM = "platform"
    PMO = "pmo"
    PAYOUT_CHANNEL = "payout_channel"
    NOBODY = "nobody"


class NextAction(StrEnum):
    BUY_TRAINING = "buy_training"
    MEMBERSHIP_REVOKED = "membership_revoked"
    FINISH_TRAINING = "finish_training"
    GIVE_RATING = "give_rating"
    WAIT_PLATFORM_REPORT = "wait_platform_report"
    CONTACT_PLATFORM = "contact_platform"
    WAIT_PMO = "wait_pmo"
    CONTACT_AGENT = "contact_agent"
    ASK_INSTITUTION_FIX_NAME = "ask_institution_fix_name"
    CHECK_CERTIFICATE = "check_certificate"
    WAIT_INCENTIVE_SCHEDULE = "wait_incentive_schedule"
    WAIT_INCENTIVE = "wait_incentive"
    # Remedies for failed transfers (values of `transfer_failures` in rules.yaml).
    REACTIVATE_ACCOUNT = "reactivate_account"
    CONTACT_CHANNEL = "contact_channel"
    CHANGE_PAYOUT_ACCOUNT = "change_payout_account"
    VERIFY_EWALLET = "verify_ewallet"
    RESTORE_PHONE = "restore_phone"
    FREE_BALANCE = "free_balance"
    CHECK_MONTHLY_LIMIT = "check_monthly_limit"
    CHECK_ATTENDANCE = "check_attendance"
    NONE = "none"


# Every remedy the rules file may name has its next action (checked on import: a new remedy needs one here).
_REMEDY_ACTION = {remedy: NextAction(remedy.value) for remedy in Remedy}


class Done(StrEnum):
    """What the records show the participant (and the others in the chain) already did."""

    PURCHASED = "purchased"
    COMPLETED = "completed"
    RATED = "rated"
    REPORTED = "reported"
    CERTIFICATE = "certificate"


class Flag(StrEnum):
    """Something in the records that the programme's rules say should not be, for staff to look into."""

    MEMBERSHIP_REVOKED = "membership_revoked"  # the records still show this training of a revoked membership
    PURCHASED_AFTER_DEADLINE = "purchased_after_deadline"  # no training was bought before the scheme's deadline


class IncentiveState(StrEnum):
    """Where the participant's incentive stands, one word for every answer that mentions it."""

    NONE = "none"  # nothing yet: the incentive comes after the first training's certificate
    NOT_ELIGIBLE = "not_eligible"  # no incentive is due (membership revoked)
    WAITING_RATING = "waiting_rating"  # certificate issued; the schedule waits for the participant's rating
    WAITING_SCHEDULE = "waiting_schedule"  # the schedule is expected by `IncentiveOutlook.on`
    SCHEDULED = "scheduled"  # a payment is scheduled on `on`
    OVERDUE = "overdue"  # a schedule or a payment is past its date `on`
    TRANSFERRED = "transferred"  # every installment was paid, the last on `on`
    FAILED = "failed"  # a transfer failed on `on`


@dataclass(frozen=True)
class IncentiveOutlook:
    state: IncentiveState
    on: date | None = None  # the date that goes with the state (see IncentiveState)
    enrollment_id: int | None = None  # the training the incentive is for


# Next actions that mean nothing more is expected to happen for that training.
_SETTLED = frozenset({NextAction.NONE, NextAction.CHECK_CERTIFICATE})


@dataclass(frozen=True)
class PayoutFacts:
    channel: str
    active: bool
    verified: bool
    phone: str | None
    holder_name: str


@dataclass(frozen=True)
class EnrollmentFacts:
    enrollment_id: int
    platform_code: str
    platform_name: str
    training_title: str
    institution_name: str
    purchased_on: date
    completed_on: date | None = None
    name_at_institution: str | None = None
    rated_on: date | None = None
    reported_on: date | None = None
    certificate_number: str | None = None
    printed_name: str | None = None
    issued_on: date | None = None
    voucher_code: str | None = None  # the code the participant quotes to the platform and the institution


@dataclass(frozen=True)
class InstallmentFacts:
    seq: int
    amount: int
    scheduled_on: date
    status: str
    enrollment_id: int | None = None
    transferred_on: date | None = None
    channel: str | None = None
    failure_reason: str | None = None


@dataclass(frozen=True)
class ParticipantFacts:
    participant_id: int
    legal_name: str
    phone: str
    nik_last4: str
    scheme: str
    accepted_on: date
    membership: str = Membership.ACTIVE
    payout: PayoutFacts | None = None
    enrollments: tuple[EnrollmentFacts, ...] = ()
    installments: tuple[InstallmentFacts, ...] = ()


@dataclass(frozen=True)
class Diagnosis:
    """Where one enrollment stands. `enrollment` is None for a participant who has bought nothing yet."""

    stage: Stage
    holder: Holder
    next_action: NextAction
    expected_by: date | None
    overdue: bool
    done: tuple[Done, ...]
    enrollment: EnrollmentFacts | None = None
    rating_place: str | None = None  # "platform" or "dashboard", for the rating steps
    name_check: NameCheck | None = None
    failure_reason: str | None = None
    flags: tuple[Flag, ...] = ()
    # The last day the current step is on time: after it, the next step (contact the platform, an agent). For a
    # platform report that is later than `expected_by` (usually in 1 working day, late only after 3).
    on_time_until: date | None = None
    era: str | None = None  # the pipeline era the training follows (rules.yaml `pipeline`)
    rating_gates: str | None = None  # what waits for the rating in that era: platform_report / incentive_schedule
    # Whether this training's certificate brings the incentive: the first training only, in both schemes (rules.yaml
    # `incentive_first_training_only`); None without a training.
    brings_incentive: bool | None = None

    @property
    def enrollment_id(self) -> int | None:
        return self.enrollment.enrollment_id if self.enrollment else None

    @property
    def certificate_issued(self) -> bool:
        return self.enrollment is not None and self.enrollment.issued_on is not None


@dataclass(frozen=True)
class InstallmentStatusView:
    seq: int
    amount: int
    scheduled_on: date
    status: str
    transferred_on: date | None
    channel: str | None
    failure_reason: str | None
    remedy: NextAction
    expected_by: date | None
    overdue: bool


@dataclass(frozen=True)
class ParticipantStatus:
    facts: ParticipantFacts
    diagnoses: tuple[Diagnosis, ...]
    incentives: tuple[InstallmentStatusView, ...]
    payout_warnings: tuple[str, ...] = field(default=())
    incentive: IncentiveOutlook = field(default=IncentiveOutlook(IncentiveState.NONE))

    @property
    def headline(self) -> Diagnosis:
        """The diagnosis to lead with: an overdue one, else the oldest still in progress, else the latest."""
        for diagnosis in self.diagnoses:
            if diagnosis.overdue:
                return diagnosis
        for diagnosis in self.diagnoses:
            if diagnosis.next_action not in _SETTLED:
                return diagnosis
        return self.diagnoses[-1]

    @property
    def needs_agent(self) -> bool:
        return any(d.overdue or d.next_action is NextAction.MEMBERSHIP_REVOKED for d in self.diagnoses) or any(
            i.overdue for i in self.incentives
        )


class DiagnosisEngine:
    """Applies the programme rules and the working-day calendar to a participant's facts."""

    def __init__(self, rules: Rules, calendar: WorkingCalendar) -> None:
        self.rules = rules
        self.calendar = calendar

    def participant_status(self, facts: ParticipantFacts, today: date) -> ParticipantStatus:
        # When each training's schedule appeared: with the certificate (2020), or after the rating (since 2021).
        published: dict[int | None, date | None] = {
            e.enrollment_id: self._schedule_appeared(e) for e in facts.enrollments
        }
        incentives = tuple(
            self.installment(i, today, schedule_appeared_on=published.get(i.enrollment_id)) for i in facts.installments
        )
        if facts.enrollments:
            diagnoses = tuple(
                self._membership(facts, self.enrollment(facts, e, incentives, today)) for e in facts.enrollments
            )
        else:
            diagnoses = (self.not_purchased(facts, today),)
        outlook = incentive_outlook(facts, diagnoses, incentives)
        return ParticipantStatus(facts, diagnoses, incentives, self.payout_warnings(facts), outlook)

    def _schedule_appeared(self, e: EnrollmentFacts) -> date | None:
        if e.issued_on is None or e.rated_on is None:
            return e.issued_on
        if self.rules.era_for(e.rated_on).rating_gates is RatingGate.INCENTIVE_SCHEDULE:
            return self.calendar.add_working_days(
                max(e.rated_on, e.issued_on), self.rules.timing.schedule_after_rating_working_days
            )
        return e.issued_on

    def purchase_deadline(self, facts: ParticipantFacts) -> date:
        """The last day to buy the first training; after it the membership is revoked."""
        return facts.accepted_on + timedelta(days=self.rules.schemes[facts.scheme].purchase_deadline_days)

    def _membership(self, facts: ParticipantFacts, d: Diagnosis) -> Diagnosis:
        """What the membership rules say about a diagnosis of one training.

        The first training must be bought by the scheme's deadline, else the membership is revoked (DESIGN §1); only
        the first: later trainings may be bought any time. A first purchase after the deadline is flagged for
        staff. A revoked membership moves nothing further: a training still in progress gets no promised date,
        only the news and a person to check it (it takes an agent, not waiting, to sort out).
        """
        flags: list[Flag] = []
        if min(e.purchased_on for e in facts.enrollments) > self.purchase_deadline(facts):
            flags.append(Flag.PURCHASED_AFTER_DEADLINE)
        if facts.membership == Membership.REVOKED:
            flags.append(Flag.MEMBERSHIP_REVOKED)
            if d.next_action not in _SETTLED:
                d = replace(
                    d, holder=Holder.PMO, next_action=NextAction.MEMBERSHIP_REVOKED, expected_by=None, overdue=False
                )
        return replace(d, flags=tuple(flags)) if flags else d

    def not_purchased(self, facts: ParticipantFacts, today: date) -> Diagnosis:
        deadline = self.purchase_deadline(facts)
        revoked = facts.membership == Membership.REVOKED or today > deadline
        return Diagnosis(
            stage=Stage.NOT_PURCHASED,
            holder=Holder.PARTICIPANT,
            next_action=NextAction.MEMBERSHIP_REVOKED if revoked else NextAction.BUY_TRAINING,
            expected_by=deadline,
            overdue=revoked,
            done=(),
        )

    def enrollment(
        self,
        facts: ParticipantFacts,
        e: EnrollmentFacts,
        incentives: tuple[InstallmentStatusView, ...],
        today: date,
    ) -> Diagnosis:
        """One training's diagnosis, in the order of its era (rules.yaml `pipeline`): in 2020 the rating gates the
        platform's report and the schedule comes with the certificate; since 18 March 2021 the certificate comes
        first and the rating gates the incentive schedule."""
        timing = self.rules.timing
        done = _done_steps(e)
        era = self.rules.era_for(e.rated_on or today)
        name_check = None
        if e.completed_on is not None:
            # The name on the certificate comes from the institution: a wrong one is fixed there first.
            other_name = e.printed_name if e.issued_on else e.name_at_institution
            name_check = compare_names(facts.legal_name, other_name, self.rules.name_match) if other_name else None
        base = Diagnosis(
            Stage.IN_TRAINING,
            Holder.INSTITUTION,
            NextAction.FINISH_TRAINING,
            None,
            False,
            done,
            e,
            era.rating_place.value,
            name_check=name_check,
            era=era.era,
            rating_gates=era.rating_gates.value,
            brings_incentive=self._brings_incentive(facts, e),
        )

        if e.completed_on is None:
            return base
        if e.issued_on is not None:
            after = self._after_certificate(facts, e, incentives, base, era, today)
            if name_check is not None and not name_check.matches and after.stage is Stage.CERTIFICATE_ISSUED:
                # The certificate exists (with the wrong name) and its schedule keeps its date: both stay visible.
                return replace(
                    after, stage=Stage.NAME_MISMATCH, holder=Holder.INSTITUTION,
                    next_action=NextAction.ASK_INSTITUTION_FIX_NAME,
                )  # fmt: skip
            return after
        if name_check is not None and not name_check.matches:
            return replace(base, stage=Stage.NAME_MISMATCH, next_action=NextAction.ASK_INSTITUTION_FIX_NAME)

        rating_gates_report = era.rating_gates is RatingGate.PLATFORM_REPORT
        if e.rated_on is None and rating_gates_report:
            return replace(
                base, stage=Stage.NEEDS_RATING, holder=Holder.PARTICIPANT, next_action=NextAction.GIVE_RATING
            )

        if e.reported_on is None:
            # The platform reports a training once it is ready: complete (and, in 2020, rated too).
            ready = max(e.rated_on, e.completed_on) if rating_gates_report and e.rated_on else e.completed_on
            overdue = self.calendar.is_overdue(ready, timing.platform_report_overdue_working_days, today)
            return replace(
                base,
                stage=Stage.AWAITING_PLATFORM_REPORT,
                holder=Holder.PLATFORM,
                next_action=NextAction.CONTACT_PLATFORM if overdue else NextAction.WAIT_PLATFORM_REPORT,
                expected_by=self.calendar.add_working_days(ready, timing.platform_report_expected_working_days),
                overdue=overdue,
                on_time_until=self.calendar.add_working_days(ready, timing.platform_report_overdue_working_days),
            )

        overdue = self.calendar.is_overdue(e.reported_on, timing.pmo_overdue_working_days, today)
        return replace(
            base,
            stage=Stage.AWAITING_PMO,
            holder=Holder.PMO,
            next_action=NextAction.CONTACT_AGENT if overdue else NextAction.WAIT_PMO,
            expected_by=self.calendar.add_working_days(e.reported_on, timing.pmo_processing_working_days),
            overdue=overdue,
            on_time_until=self.calendar.add_working_days(e.reported_on, timing.pmo_overdue_working_days),
        )

    def _after_certificate(
        self,
        facts: ParticipantFacts,
        e: EnrollmentFacts,
        incentives: tuple[InstallmentStatusView, ...],
        base: Diagnosis,
        era: PipelineEra,
        today: date,
    ) -> Diagnosis:
        own = [i for i, f in zip(incentives, facts.installments, strict=True) if f.enrollment_id == e.enrollment_id]
        failed = [i for i in own if i.status == InstallmentStatus.FAILED]
        if failed:
            latest = max(failed, key=lambda i: i.seq)
            return replace(
                base,
                stage=Stage.INCENTIVE_FAILED,
                holder=Holder.PARTICIPANT,
                next_action=latest.remedy,
                failure_reason=latest.failure_reason,
            )
        scheduled = [i for i in own if i.status == InstallmentStatus.SCHEDULED]
        if scheduled:
            upcoming = min(scheduled, key=lambda i: i.seq)
            return replace(
                base,
                stage=Stage.INCENTIVE_SCHEDULED,
                holder=Holder.PAYOUT_CHANNEL if today >= upcoming.scheduled_on else Holder.PMO,
                next_action=NextAction.CONTACT_AGENT if upcoming.overdue else NextAction.WAIT_INCENTIVE,
                expected_by=upcoming.expected_by,
                overdue=upcoming.overdue,
            )
        if own:
            return replace(base, stage=Stage.INCENTIVE_TRANSFERRED, holder=Holder.NOBODY, next_action=NextAction.NONE)
        timing = self.rules.timing
        if e.rated_on is None and era.rating_gates is RatingGate.INCENTIVE_SCHEDULE:
            # Since 2021 the certificate comes before the rating, and the incentive schedule waits for it (the
            # next training can only be bought after it too). Given today, the schedule would come by this date.
            return replace(
                base,
                stage=Stage.NEEDS_RATING,
                holder=Holder.PARTICIPANT,
                next_action=NextAction.GIVE_RATING,
                expected_by=self.calendar.add_working_days(today, timing.schedule_after_rating_working_days),
                on_time_until=self.calendar.add_working_days(today, timing.schedule_after_rating_working_days),
            )
        assert e.issued_on is not None
        eligible = self._incentive_eligible(facts, e)
        if not eligible:
            return replace(base, stage=Stage.CERTIFICATE_ISSUED, holder=Holder.NOBODY,
                           next_action=NextAction.CHECK_CERTIFICATE)  # fmt: skip
        start, allowed = self._schedule_start(e, era)
        overdue = self.calendar.is_overdue(start, allowed, today)
        return replace(
            base,
            stage=Stage.CERTIFICATE_ISSUED,
            holder=Holder.PMO,
            next_action=NextAction.CONTACT_AGENT if overdue else NextAction.WAIT_INCENTIVE_SCHEDULE,
            expected_by=self.calendar.add_working_days(start, allowed),
            overdue=overdue,
            on_time_until=self.calendar.add_working_days(start, allowed),
        )

    def _schedule_start(self, e: EnrollmentFacts, era: PipelineEra) -> tuple[date, int]:
        """From which day, and within how many working days, the incentive schedule of an issued certificate
        should appear: since 2021 after the rating (or the certificate, if rated before it); in 2020 with the
        certificate, within the PMO's processing time of having the report (no report date on file: it had the
        report by the day it issued the certificate). Past that, an agent takes it."""
        timing = self.rules.timing
        assert e.issued_on is not None
        if era.rating_gates is RatingGate.INCENTIVE_SCHEDULE and e.rated_on is not None:
            return max(e.rated_on, e.issued_on), timing.schedule_after_rating_working_days
        received = e.reported_on or e.issued_on
        return received, timing.pmo_overdue_working_days + timing.schedule_after_certificate_working_days

    def _incentive_eligible(self, facts: ParticipantFacts, e: EnrollmentFacts) -> bool:
        """Whether this certificate should bring an incentive schedule (the first training only, by scheme)."""
        if facts.installments:
            return False  # the incentive is already scheduled against another training
        return self._brings_incentive(facts, e)

    def _brings_incentive(self, facts: ParticipantFacts, e: EnrollmentFacts) -> bool:
        first = min(facts.enrollments, key=lambda x: (x.purchased_on, x.enrollment_id))
        return (
            first.enrollment_id == e.enrollment_id or not self.rules.schemes[facts.scheme].incentive_first_training_only
        )

    def installment(
        self, i: InstallmentFacts, today: date, schedule_appeared_on: date | None = None
    ) -> InstallmentStatusView:
        """`schedule_appeared_on`: when the schedule appeared on the dashboard (the PMO's processing date, with the
        certificate); unknown, the scheduled date stands in for it."""
        timing = self.rules.timing
        remedy = NextAction.NONE
        expected: date | None = None
        overdue = False
        if i.status == InstallmentStatus.FAILED:
            remedy = _REMEDY_ACTION[self.rules.remedy_for(i.failure_reason)]
        elif i.status == InstallmentStatus.SCHEDULED:
            # Paid within the window after the schedule appears, never before the date the schedule names (the
            # monthly installments of the 2020 scheme each name their own month).
            appeared = schedule_appeared_on or i.scheduled_on
            window = self.calendar.add_working_days(appeared, timing.payment_after_schedule_working_days)
            expected = max(window, i.scheduled_on)
            overdue = today > expected
            remedy = NextAction.CONTACT_AGENT if overdue else NextAction.WAIT_INCENTIVE
        return InstallmentStatusView(
            seq=i.seq,
            amount=i.amount,
            scheduled_on=i.scheduled_on,
            status=i.status,
            transferred_on=i.transferred_on,
            channel=i.channel,
            failure_reason=i.failure_reason,
            remedy=remedy,
            expected_by=expected,
            overdue=overdue,
        )

    def payout_warnings(self, facts: ParticipantFacts) -> tuple[str, ...]:
        """Problems with the payout account that will make the next transfer fail, before it does."""
        payout = facts.payout
        if payout is None:
            return ("no_payout_account",)
        warnings = []
        if not payout.active:
            warnings.append("account_inactive")
        if PayoutChannel(payout.channel).is_ewallet:
            if not payout.verified:
                warnings.append("ewallet_unverified")
            if payout.phone and payout.phone != facts.phone:
                warnings.append("phone_changed")
        name = compare_names(facts.legal_name, payout.holder_name, self.rules.name_match)
        if not name.matches:
            warnings.append("name_mismatch")
        return tuple(warnings)


def incentive_outlook(
    facts: ParticipantFacts,
    diagnoses: tuple[Diagnosis, ...],
    incentives: tuple[InstallmentStatusView, ...],
) -> IncentiveOutlook:
    """The one answer to "where is my incentive?", derived from the installments and the diagnoses, so that no
    message can contradict the diagnosis."""
    if incentives:
        first_id = facts.installments[0].enrollment_id
        failed = [i for i in incentives if i.status == InstallmentStatus.FAILED]
        if failed:
            latest = max(failed, key=lambda i: i.seq)
            return IncentiveOutlook(IncentiveState.FAILED, latest.transferred_on, first_id)
        scheduled = [i for i in incentives if i.status == InstallmentStatus.SCHEDULED]
        late = [i for i in scheduled if i.overdue]
        if late:
            return IncentiveOutlook(
                IncentiveState.OVERDUE, min(i.expected_by or i.scheduled_on for i in late), first_id
            )
        if scheduled:
            return IncentiveOutlook(IncentiveState.SCHEDULED, min(i.scheduled_on for i in scheduled), first_id)
        paid = [i.transferred_on for i in incentives if i.transferred_on is not None]
        return IncentiveOutlook(IncentiveState.TRANSFERRED, max(paid) if paid else None, first_id)
    if facts.membership == Membership.REVOKED:
        return IncentiveOutlook(IncentiveState.NOT_ELIGIBLE)
    trainings = [d for d in diagnoses if d.enrollment is not None]
    if not trainings:
        return IncentiveOutlook(IncentiveState.NONE)
    # The incentive is for the first training (the other trainings' certificates bring none).
    d = min(trainings, key=lambda x: (x.enrollment.purchased_on, x.enrollment_id) if x.enrollment else (date.max, 0))
    if not d.certificate_issued:
        return IncentiveOutlook(IncentiveState.NONE, None, d.enrollment_id)
    if d.stage is Stage.NEEDS_RATING:
        return IncentiveOutlook(IncentiveState.WAITING_RATING, None, d.enrollment_id)
    if d.next_action is NextAction.CHECK_CERTIFICATE:
        return IncentiveOutlook(IncentiveState.NOT_ELIGIBLE, None, d.enrollment_id)
    state = IncentiveState.OVERDUE if d.overdue else IncentiveState.WAITING_SCHEDULE
    return IncentiveOutlook(state, d.expected_by, d.enrollment_id)


def _done_steps(e: EnrollmentFacts) -> tuple[Done, ...]:
    steps = [Done.PURCHASED]
    if e.completed_on:
        steps.append(Done.COMPLETED)
    if e.rated_on:
        steps.append(Done.RATED)
    if e.reported_on:
        steps.append(Done.REPORTED)
    if e.issued_on:
        steps.append(Done.CERTIFICATE)
    return tuple(steps)


class Step(StrEnum):
    """A troubleshooting step the participant can take, in the order the diagnosis says matters."""

    FINISH_TRAINING = "finish_training"
    FIX_NAME = "fix_name"
    GIVE_RATING = "give_rating"
    WAIT = "wait"
    CHECK_NAME = "check_name"
    CONTACT_PLATFORM = "contact_platform"
    CERTIFICATE_READY = "certificate_ready"
    ESCALATE = "escalate"  # the complaint form and an agent: always last


def troubleshooting_steps(d: Diagnosis) -> tuple[Step, ...]:
    """The steps for a missing certificate, most useful first; steps the records rule out are left out."""
    if d.next_action is NextAction.MEMBERSHIP_REVOKED:
        return (Step.ESCALATE,)  # nothing the participant does moves a revoked membership's training
    name_unknown = d.name_check is None
    issued = d.certificate_issued
    steps: list[Step]
    match d.stage:
        case Stage.NOT_PURCHASED:
            steps = []
        case Stage.IN_TRAINING:
            steps = [Step.FINISH_TRAINING, Step.CONTACT_PLATFORM]
        case Stage.NAME_MISMATCH:
            # Issued with the wrong name: the institution corrects it; the platform has nothing left to report.
            steps = [Step.FIX_NAME] if issued else [Step.FIX_NAME, Step.CONTACT_PLATFORM]
        case Stage.NEEDS_RATING if issued:
            # Since 2021: the certificate is there; the rating only holds the incentive schedule back.
            steps = [Step.CERTIFICATE_READY, Step.GIVE_RATING, Step.WAIT]
        case Stage.NEEDS_RATING:
            steps = [Step.GIVE_RATING, Step.WAIT, Step.CONTACT_PLATFORM]
        case Stage.AWAITING_PLATFORM_REPORT:
            steps = [Step.CONTACT_PLATFORM] if d.overdue else [Step.WAIT, Step.CONTACT_PLATFORM]
        case Stage.AWAITING_PMO:
            steps = [] if d.overdue else [Step.WAIT]
        case _:
            steps = [Step.CERTIFICATE_READY]
    if name_unknown and d.stage in (Stage.AWAITING_PLATFORM_REPORT, Stage.AWAITING_PMO, Stage.NEEDS_RATING):
        steps.insert(1 if steps else 0, Step.CHECK_NAME)
    return (*steps, Step.ESCALATE)
