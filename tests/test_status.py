"""The status service reads a participant's facts in one joined query: it must read exactly what one query per
table reads (every enrollment once, in purchase order; every installment once, by `seq`), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date
from functools import partial

from sqlalchemy import Connection, insert, select

from core.calendar import WorkingCalendar
from core.db import Database
from core.demo import seed_demo
from core.diagnosis import EnrollmentFacts, InstallmentFacts, ParticipantFacts, PayoutFacts
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
from core.rules import default_rules
from core.status import DatabaseStatusSource, StatusService

TODAY = date(2026, 4, 8)


def _reference_facts(conn: Connection, participant_id: int) -> ParticipantFacts | None:
    """One plain query per table, joined and ordered in Python: what the joined query must agree with."""
    p = conn.execute(select(Participant).where(Participant.id == participant_id)).first()
    if p is None:
        return None
    a = conn.execute(select(PayoutAccount).where(PayoutAccount.participant_id == participant_id)).first()
    enrollments = []
    for e in conn.execute(select(Enrollment).where(Enrollment.participant_id == participant_id)).all():
        t = conn.execute(select(Training).where(Training.id == e.training_id)).one()
        i = conn.execute(select(Institution).where(Institution.id == t.institution_id)).one()
        pl = conn.execute(select(Platform).where(Platform.code == e.platform_code)).one()
        c = conn.execute(select(Certificate).where(Certificate.enrollment_id == e.id)).first()
        enrollments.append(
            EnrollmentFacts(
                e.id,
                e.platform_code,
                pl.name,
                t.title,
                i.name,
                e.purchased_on,
                e.completed_on,
                e.name_at_institution,
                e.rated_on,
                e.reported_on,
                c.number if c else None,
                c.printed_name if c else None,
                c.issued_on if c else None,
                e.voucher_code,
            )
        )
    installments = [
        InstallmentFacts(
            i.seq, i.amount, i.scheduled_on, i.status, i.enrollment_id, i.transferred_on, i.channel, i.failure_reason
        )
        for i in conn.execute(select(IncentiveInstallment).where(IncentiveInstallment.participant_id == p.id)).all()
    ]
    return ParticipantFacts(
        p.id,
        p.legal_name,
        p.phone,
        p.nik_last4,
        p.scheme,
        p.accepted_on,
        p.membership,
        PayoutFacts(a.channel, a.active, a.verified, a.phone, a.holder_name) if a else None,
        tuple(sorted(enrollments, key=lambda e: (e.purchased_on, e.enrollment_id))),
        tuple(sorted(installments, key=lambda i: i.seq)),
    )


def _add_awkward_participants(conn: Connection) -> tuple[int, int]:
    """Shapes the demo lacks: three trainings bought out of id order with four installments (one tied to no
    training), written out of `seq` order; and a participant with no payout account and no training, only an
    installment."""
    training_id = conn.execute(select(Training.id).limit(1)).scalar_one()
    platform = conn.execute(select(Platform.code).limit(1)).scalar_one()
    ids = []
    for n in (1, 2):
        ids.append(
            conn.execute(
                insert(Participant).returning(Participant.id),
                {
                    "card_number_hash": f"card{n}",
                    "card_number_last4": "0001",
                    "nik_hash": f"nik{n}",
                    "nik_last4": "0002",
                    "legal_name": f"Peserta Uji {n}",
                    "birth_date": date(1990, 1, n),
                    "phone": f"+6281300000{n:03d}",
                    "wave": 10,
                    "scheme": "2020",
                    "accepted_on": date(2020, 5, 1),
                },
            ).scalar_one()
        )
    many, bare = ids
    conn.execute(
        insert(PayoutAccount),
        [{"participant_id": many, "channel": "OVO", "account_last4": "0001", "holder_name": "Peserta Uji 1"}],
    )
    enrollment_ids = [
        conn.execute(
            insert(Enrollment).returning(Enrollment.id),
            {
                "voucher_code": f"UJI{n}",
                "participant_id": many,
                "training_id": training_id,
                "platform_code": platform,
                "purchased_on": purchased,
                "completed_on": date(2020, 7, 1),
                "rated_on": date(2020, 7, 2),
                "reported_on": date(2020, 7, 3),
            },
        ).scalar_one()
        for n, purchased in enumerate((date(2020, 6, 9), date(2020, 6, 1), date(2020, 6, 9)))
    ]
    conn.execute(
        insert(Certificate),
        [
            {
                "enrollment_id": enrollment_ids[1],
                "number": "UJI/1",
                "printed_name": "Peserta Uji 1",
                "issued_on": date(2020, 7, 6),
            }
        ],
    )
    conn.execute(
        insert(IncentiveInstallment),
        [
            {
                "participant_id": many,
                "enrollment_id": enrollment_ids[1] if seq != 3 else None,
                "seq": seq,
                "amount": 600_000,
                "scheduled_on": date(2020, 7, 10 + seq),
                "status": "transferred",
                "transferred_on": date(2020, 7, 10 + seq),
                "channel": "OVO",
                "failure_reason": None,
            }
            for seq in (3, 1, 4, 2)
        ]
        + [
            {
                "participant_id": bare,
                "enrollment_id": None,
                "seq": 1,
                "amount": 600_000,
                "scheduled_on": date(2020, 7, 10),
                "status": "failed",
                "transferred_on": date(2020, 7, 10),
                "channel": None,
                "failure_reason": "account_inactive",
            }
        ],
    )
    return many, bare


async def test_the_joined_query_reads_what_one_query_per_table_reads(db: Database) -> None:
    created = await seed_demo(db.engine, default_rules(), WorkingCalendar(), b"k", TODAY)
    many, bare = await db.run(_add_awkward_participants, write=True)
    source = DatabaseStatusSource(db)
    ids = [pid for pid, _ in created] + [many, bare, max(many, bare) + 1]
    for pid in ids:
        expected = await db.run(partial(_reference_facts, participant_id=pid))
        got = await source.participant_facts(pid)
        # The reprs too: a value of another type can compare equal (1 == True).
        assert got == expected and repr(got) == repr(expected), pid
    facts = await source.participant_facts(many)
    assert facts is not None
    assert [e.purchased_on for e in facts.enrollments] == [date(2020, 6, 1), date(2020, 6, 9), date(2020, 6, 9)]
    assert [i.seq for i in facts.installments] == [1, 2, 3, 4]
    bare_facts = await source.participant_facts(bare)
    assert bare_facts is not None and bare_facts.payout is None and bare_facts.enrollments == ()
    assert [i.seq for i in bare_facts.installments] == [1]
    assert await source.participant_facts(max(many, bare) + 1) is None


async def test_a_participant_without_records_gets_no_status(db: Database) -> None:
    source = DatabaseStatusSource(db)
    assert await StatusService(source, default_rules(), WorkingCalendar()).status(1, TODAY) is None
