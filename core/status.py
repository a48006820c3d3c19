"""Reading a participant's records and diagnosing them: the one read path the bot, the CLI and benchmarks share."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any, Protocol, cast

from sqlalchemy import Connection, Dialect, bindparam, select

from core.calendar import WorkingCalendar, default_calendar, today_in_jakarta
from core.db import Database, sqlalchemy_errors
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
_PARTICIPANT_COLUMNS = (_p.id, _p.legal_name, _p.phone, _p.nik_last4, _p.scheme, _p.accepted_on, _p.membership)
_PAYOUT_COLUMNS = (_a.channel, _a.active, _a.verified, _a.phone, _a.holder_name)  # PayoutFacts' order
_ENROLLMENT_COLUMNS = (  # EnrollmentFacts' order
    _e.id, _e.platform_code, _pl.name, _t.title, _i.name, _e.purchased_on, _e.completed_on, _e.name_at_institution,
    _e.rated_on, _e.reported_on, _c.number, _c.printed_name, _c.issued_on, _e.voucher_code,
)  # fmt: skip
_INSTALLMENT_COLUMNS = (  # InstallmentFacts' order
    _ii.seq, _ii.amount, _ii.scheduled_on, _ii.status, _ii.enrollment_id, _ii.transferred_on, _ii.channel,
    _ii.failure_reason,
)  # fmt: skip
# Where each part of a row starts: participant, payout account, enrollment, installment.
_PAY = len(_PARTICIPANT_COLUMNS)
_ENR = _PAY + len(_PAYOUT_COLUMNS)
_INS = _ENR + len(_ENROLLMENT_COLUMNS)
# One statement for all of a participant's facts: a look-up used to run three, and on a warm SQLite file each
# statement's execution in SQLAlchemy costs more than the database's own work. A participant with e enrollments and
# i installments gets max(e, 1) × max(i, 1) rows (a handful): each enrollment row repeats every installment, read
# once. Ordered so that the first occurrences come in the order of purchase and of `seq`. Built once: constructing a
# statement costs more than running it.
_FACTS = (
    select(*_PARTICIPANT_COLUMNS, *_PAYOUT_COLUMNS, *_ENROLLMENT_COLUMNS, *_INSTALLMENT_COLUMNS)
    .select_from(_p)
    .outerjoin(_a, _a.participant_id == _p.id)
    # Flat outer joins: a nested "enrollments JOIN trainings …" made SQLite scan every enrollment. Training,
    # institution and platform are required of an enrollment, so outer-joining them changes no row.
    .outerjoin(_e, _e.participant_id == _p.id)
    .outerjoin(_t, _t.id == _e.training_id)
    .outerjoin(_i, _i.id == _t.institution_id)
    .outerjoin(_pl, _pl.code == _e.platform_code)
    .outerjoin(_c, _c.enrollment_id == _e.id)
    .outerjoin(_ii, _ii.participant_id == _p.id)
    .where(_p.id == bindparam("pid"))
    .order_by(_e.purchased_on, _e.id, _ii.seq)
)


def _read_facts(conn: Connection, participant_id: int) -> ParticipantFacts | None:
    if conn.dialect.driver == "pysqlite":  # a lane's sqlite3 connection (not aiosqlite's, on an in-memory database)
        return _facts(*_read_sqlite(conn, participant_id))
    # Typed by position only: the row's parts go to the facts' constructors in their field order.
    return _facts(cast("Sequence[tuple[Any, ...]]", conn.execute(_FACTS, {"pid": participant_id}).all()), None)


def _facts(rows: Sequence[tuple[Any, ...]], convert: _Conversions | None) -> ParticipantFacts | None:
    """The facts from the rows; with `convert`, the values of each part kept are converted first (an enrollment's
    columns repeat on every installment's row: converted once)."""
    if not rows:
        return None
    enrollments: dict[int, EnrollmentFacts] = {}
    installments: dict[int, InstallmentFacts] = {}
    for row in rows:
        enrollment_id, seq = row[_ENR], row[_INS]
        if enrollment_id is not None and enrollment_id not in enrollments:
            enrollments[enrollment_id] = EnrollmentFacts(*_part(row, 2, convert))
        if seq is not None and seq not in installments:
            installments[seq] = InstallmentFacts(*_part(row, 3, convert))
    first = rows[0]
    participant_id, legal_name, phone, nik_last4, scheme, accepted_on, membership = _part(first, 0, convert)
    return ParticipantFacts(
        participant_id,
        legal_name,
        phone,
        nik_last4,
        scheme,
        accepted_on,
        membership,
        payout=PayoutFacts(*_part(first, 1, convert)) if first[_PAY] is not None else None,
        enrollments=tuple(enrollments.values()),
        installments=tuple(installments.values()),
    )


_PARTS = ((0, _PAY), (_PAY, _ENR), (_ENR, _INS), (_INS, None))  # participant, payout account, enrollment, installment
# Per part: where a value needs SQLAlchemy's conversion of what the driver returns (a date from SQLite's text…), and
# that conversion.
_Conversions = tuple[tuple[tuple[int, Callable[[Any], Any]], ...], ...]


def _part(row: tuple[Any, ...], part: int, convert: _Conversions | None) -> Sequence[Any]:
    start, end = _PARTS[part]
    values = row[start:end]
    if convert is None or not convert[part]:
        return values
    converted = list(values)
    for i, process in convert[part]:
        if converted[i] is not None:
            converted[i] = process(converted[i])
    return converted


def _read_sqlite(conn: Connection, participant_id: int) -> tuple[list[tuple[Any, ...]], _Conversions]:
    """`_FACTS` straight on the lane's sqlite3 connection, as the turn context (core/turn_context.py): SQLAlchemy's
    execution of the cached statement and its result cost more than SQLite's own work. The rows come unconverted;
    the conversions SQLAlchemy would apply are returned beside them. Read to the end: no statement stays open."""
    sql, conversions = _sqlite_facts(conn.dialect)
    params = (participant_id,)
    with sqlalchemy_errors(conn, sql, params):
        rows = conn.connection.driver_connection.execute(sql, params).fetchall()  # type: ignore[union-attr]
    return rows, conversions


@functools.cache
def _sqlite_facts(dialect: Dialect) -> tuple[str, _Conversions]:
    """`_FACTS` compiled by SQLAlchemy once: its text (one parameter, the participant id) and its conversions."""
    compiled = _FACTS.compile(dialect=dialect)
    assert compiled.positiontup == ["pid"], compiled.positiontup
    processors = [c.type._cached_result_processor(dialect, None) for c in _FACTS.selected_columns]
    conversions = tuple(
        tuple((i - start, process) for i, process in enumerate(processors[start:end], start) if process is not None)
        for start, end in _PARTS
    )
    return str(compiled), conversions


class DatabaseStatusSource:
    """Facts from the records database: one indexed query per participant.

    The query runs in one step of `Database.run` (on SQLite: the read lane with the
    plain sqlite3 driver; aiosqlite hops threads on every cursor call, which made a lookup three times slower).
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    async def participant_facts(self, participant_id: int) -> ParticipantFacts | None:
        return await self.db.run(lambda conn: _read_facts(conn, participant_id))


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
