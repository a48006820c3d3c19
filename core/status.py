"""Reading a participant's records and diagnosing them: the one read path the bot, the CLI and benchmarks share."""

from __future__ import annotations

from datetime import date
from typing import Protocol

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.calendar import WorkingCalendar, default_calendar, today_in_jakarta
from core.db import close_sidecar, run_blocking
from core.diagnosis import (
    DiagnosisEngine,
    EnrollmentFacts,
    InstallmentFacts,
    ParticipantFacts,
    ParticipantStatus,
    PayoutFacts,
)
from core.models import (
    Certificate,
    Enrollment,
    IncentiveInstallment,
    Institution,
    Participant,
    PayoutAccount,
    Platform,
    Training,
)
from core.rules import Rules, default_rules


class StatusSource(Protocol):
    """Where a participant's facts come from: our database, or a live status API behind the same interface."""

    async def participant_facts(self, participant_id: int) -> ParticipantFacts | None: ...


_p, _a = Participant, PayoutAccount
_e, _c, _t, _i, _pl = Enrollment, Certificate, Training, Institution, Platform
_ii = IncentiveInstallment
# Built once: constructing a statement costs more than running it on a warm SQLite file.
_PARTICIPANT = (
    select(
        _p.id,
        _p.legal_name,
        _p.phone,
        _p.nik_last4,
        _p.scheme,
        _p.accepted_on,
        _p.membership,
        _a.channel,
        _a.active,
        _a.verified,
        _a.phone.label("payout_phone"),
        _a.holder_name,
    )
    .outerjoin(_a, _a.participant_id == _p.id)
    .where(_p.id == bindparam("pid"))
)
_ENROLLMENTS = (
    select(
        _e.id,
        _e.platform_code,
        _pl.name,
        _t.title,
        _i.name.label("institution"),
        _e.purchased_on,
        _e.completed_on,
        _e.name_at_institution,
        _e.rated_on,
        _e.reported_on,
        _c.number,
        _c.printed_name,
        _c.issued_on,
        _e.voucher_code,
    )
    .join(_t, _t.id == _e.training_id)
    .join(_i, _i.id == _t.institution_id)
    .join(_pl, _pl.code == _e.platform_code)
    .outerjoin(_c, _c.enrollment_id == _e.id)
    .where(_e.participant_id == bindparam("pid"))
    .order_by(_e.purchased_on, _e.id)
)
_INSTALLMENTS = (
    select(
        _ii.seq,
        _ii.amount,
        _ii.scheduled_on,
        _ii.status,
        _ii.enrollment_id,
        _ii.transferred_on,
        _ii.channel,
        _ii.failure_reason,
    )
    .where(_ii.participant_id == bindparam("pid"))
    .order_by(_ii.seq)
)


def _read_facts(conn: Connection, participant_id: int) -> ParticipantFacts | None:
    params = {"pid": participant_id}
    row = conn.execute(_PARTICIPANT, params).first()
    if row is None:
        return None
    enrollment_rows = conn.execute(_ENROLLMENTS, params).all()
    installment_rows = conn.execute(_INSTALLMENTS, params).all()
    payout = (
        PayoutFacts(row.channel, row.active, row.verified, row.payout_phone, row.holder_name)
        if row.channel is not None
        else None
    )
    return ParticipantFacts(
        participant_id=row.id,
        legal_name=row.legal_name,
        phone=row.phone,
        nik_last4=row.nik_last4,
        scheme=row.scheme,
        accepted_on=row.accepted_on,
        membership=row.membership,
        payout=payout,
        enrollments=tuple(EnrollmentFacts(*r) for r in enrollment_rows),
        installments=tuple(InstallmentFacts(*r) for r in installment_rows),
    )


class DatabaseStatusSource:
    """Facts from the records database: three indexed queries per participant.

    The three queries run together in one step of `run_blocking` (on SQLite: the sidecar's read lane with the
    plain sqlite3 driver; aiosqlite hops threads on every cursor call, which made a lookup three times slower).
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def participant_facts(self, participant_id: int) -> ParticipantFacts | None:
        return await run_blocking(self.engine, lambda conn: _read_facts(conn, participant_id))

    def close(self) -> None:
        close_sidecar(self.engine)


class StatusService:
    """Use case: the diagnosis of every enrollment and installment of one participant, as of today in Jakarta."""

    def __init__(
        self,
        source: StatusSource,
        rules: Rules | None = None,
        calendar: WorkingCalendar | None = None,
    ) -> None:
        self.source = source
        self.engine = DiagnosisEngine(rules or default_rules(), calendar or default_calendar())

    async def status(self, participant_id: int, today: date | None = None) -> ParticipantStatus | None:
        facts = await self.source.participant_facts(participant_id)
        if facts is None:
            return None
        return self.engine.participant_status(facts, today or today_in_jakarta())
