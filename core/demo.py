"""Demo data: one persona per stage of the diagnosis and per incentive outcome, dated relative to today.

`prakerja-bot demo` (re)creates the embedded database with these, so every path of the bot can be tried at once.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from core.calendar import WorkingCalendar
from core.db import Database, make_sessionmaker, sqlite_path
from core.diagnosis import Stage
from core.identity import keyed_hash
from core.models import (
    Certificate,
    Enrollment,
    Event,
    IncentiveInstallment,
    InstallmentStatus,
    Institution,
    Membership,
    Participant,
    PayoutAccount,
    Platform,
    Training,
)
from core.paths import knowledge_dir, read_yaml
from core.rules import Rules

INSTITUTIONS = ("dandan.id", "Skill Academy", "Vokasi Nusantara", "Digitalent Center")
TRAININGS = (
    ("TR-001", "Teknik Menjahit untuk Pemula", 0),
    ("TR-002", "Digital Marketing untuk UMKM", 1),
    ("TR-003", "Barista Profesional", 2),
    ("TR-004", "Dasar Akuntansi dan Pembukuan", 3),
    ("TR-005", "Tata Rias Pengantin", 0),
)


@dataclass(frozen=True)
class DemoEnrollment:
    platform: str
    training: str
    purchased: int  # working days before today
    completed: int | None = None
    rated: int | None = None
    reported: int | None = None
    issued: int | None = None
    name_at_institution: str | None = None
    printed_name: str | None = None


@dataclass(frozen=True)
class DemoInstallment:
    seq: int
    scheduled: int  # calendar days from today (negative: in the past)
    status: str = InstallmentStatus.SCHEDULED
    failure_reason: str | None = None


@dataclass(frozen=True)
class DemoPersona:
    key: int
    name: str
    female: bool
    birth_date: date
    scheme: str
    accepted_days_ago: int
    stage: Stage
    channel: str = "BNI"
    account_active: bool = True
    ewallet_verified: bool = True
    ewallet_phone_changed: bool = False
    holder_name: str | None = None  # the payout account's holder, when it is not the participant
    membership: str = Membership.ACTIVE
    enrollments: tuple[DemoEnrollment, ...] = ()
    installments: tuple[DemoInstallment, ...] = field(default=())

    @property
    def phone(self) -> str:
        return f"+62812000000{self.key:02d}"

    @property
    def nik(self) -> str:
        day = self.birth_date.day + (40 if self.female else 0)
        return f"327301{day:02d}{self.birth_date:%m%y}{self.key:04d}"

    @property
    def card_number(self) -> str:
        return f"88{self.key:014d}"  # 88 is no province code: a card number, never mistaken for a NIK


def _failed_transfer(
    key: int,
    name: str,
    female: bool,
    birth_date: date,
    platform: str,
    training: str,
    reason: str,
    *,
    channel: str = "BNI",
    account_active: bool = True,
    holder_name: str | None = None,
    rated: int | None = 9,
) -> DemoPersona:
    """A 2023-scheme participant whose certificate came a week ago and whose one transfer failed for `reason`."""
    return DemoPersona(
        key,
        name,
        female,
        birth_date,
        "2023",
        40,
        Stage.INCENTIVE_FAILED,
        channel=channel,
        account_active=account_active,
        holder_name=holder_name,
        enrollments=(
            DemoEnrollment(
                platform,
                training,
                purchased=20,
                completed=9,
                rated=rated,
                reported=8,
                issued=7,
                name_at_institution=name,
                printed_name=name,
            ),
        ),
        installments=(DemoInstallment(1, -4, InstallmentStatus.FAILED, reason),),
    )


PERSONAS: tuple[DemoPersona, ...] = (
    DemoPersona(1, "Ayu Lestari", True, date(1998, 4, 12), "2023", 5, Stage.NOT_PURCHASED),
    DemoPersona(
        2,
        "Bambang Wijaya",
        False,
        date(1990, 1, 3),
        "2023",
        40,
        Stage.NOT_PURCHASED,
        membership=Membership.REVOKED,
    ),
    DemoPersona(
        3,
        "Citra Dewi",
        True,
        date(2000, 9, 21),
        "2023",
        20,
        Stage.IN_TRAINING,
        enrollments=(DemoEnrollment("tokopedia", "TR-001", purchased=8),),
    ),
    # Finished two working days ago, not rated: since 2021 the platform reports it anyway; the rating comes after
    # the certificate.
    DemoPersona(
        4,
        "Dedi Kurniawan",
        False,
        date(1995, 8, 17),
        "2023",
        25,
        Stage.AWAITING_PLATFORM_REPORT,
        enrollments=(
            DemoEnrollment("pintaria", "TR-002", purchased=12, completed=2, name_at_institution="Dedi Kurniawan"),
        ),
    ),
    DemoPersona(
        5,
        "Fitri Handayani",
        True,
        date(1997, 2, 28),
        "2023",
        30,
        Stage.AWAITING_PLATFORM_REPORT,
        enrollments=(
            DemoEnrollment(
                "pijarmahir",
                "TR-003",
                purchased=15,
                completed=2,
                rated=1,
                name_at_institution="FITRI HANDAYANI",
            ),
        ),
    ),
    DemoPersona(
        6,
        "Gilang Ramadhan",
        False,
        date(1993, 11, 5),
        "2023",
        40,
        Stage.AWAITING_PLATFORM_REPORT,
        enrollments=(
            DemoEnrollment(
                "kariermu",
                "TR-004",
                purchased=20,
                completed=8,
                rated=7,
                name_at_institution="Gilang Ramadhan",
            ),
        ),
    ),
    DemoPersona(
        7,
        "Hana Safitri",
        True,
        date(1999, 6, 9),
        "2023",
        30,
        Stage.AWAITING_PMO,
        enrollments=(
            DemoEnrollment(
                "sekolahmu",
                "TR-005",
                purchased=14,
                completed=3,
                rated=2,
                reported=1,
                name_at_institution="Hana Safitri",
            ),
        ),
    ),
    DemoPersona(
        8,
        "Indra Gunawan",
        False,
        date(1991, 3, 14),
        "2023",
        45,
        Stage.AWAITING_PMO,
        enrollments=(
            DemoEnrollment(
                "kemnaker",
                "TR-002",
                purchased=25,
                completed=8,
                rated=7,
                reported=5,
                name_at_institution="Indra Gunawan",
            ),
        ),
    ),
    DemoPersona(
        9,
        "Joko Susilo",
        False,
        date(1988, 12, 1),
        "2023",
        90,
        Stage.CERTIFICATE_ISSUED,
        enrollments=(
            DemoEnrollment(
                "tokopedia",
                "TR-001",
                purchased=60,
                completed=50,
                rated=50,
                reported=49,
                issued=48,
                name_at_institution="Joko Susilo",
                printed_name="Joko Susilo",
            ),
            DemoEnrollment(
                "bukalapak",
                "TR-003",
                purchased=10,
                completed=4,
                rated=4,
                reported=3,
                issued=2,
                name_at_institution="JOKO SUSILO",
                printed_name="JOKO SUSILO",
            ),
        ),
        installments=(DemoInstallment(1, -60, InstallmentStatus.TRANSFERRED),),
    ),
    DemoPersona(
        10,
        "Kartika Sari",
        True,
        date(1996, 7, 30),
        "2023",
        40,
        Stage.NAME_MISMATCH,
        enrollments=(
            DemoEnrollment(
                "tokopedia",
                "TR-002",
                purchased=20,
                completed=6,
                rated=6,
                reported=5,
                issued=4,
                name_at_institution="Tika Permata",
                printed_name="Tika Permata",
            ),
        ),
    ),
    DemoPersona(
        11,
        "Lukman Hakim",
        False,
        date(1994, 5, 19),
        "2023",
        40,
        Stage.INCENTIVE_SCHEDULED,
        enrollments=(
            DemoEnrollment(
                "pintaria",
                "TR-004",
                purchased=20,
                completed=5,
                rated=5,
                reported=4,
                issued=3,
                name_at_institution="Lukman Hakim, S.Kom",
                printed_name="Lukman Hakim S.Kom",
            ),
        ),
        installments=(DemoInstallment(1, 3),),
    ),
    DemoPersona(
        12,
        "Maya Anggraini",
        True,
        date(1992, 10, 10),
        "2020",
        2300,
        Stage.INCENTIVE_TRANSFERRED,
        channel="OVO",
        enrollments=(
            DemoEnrollment(
                "tokopedia",
                "TR-005",
                purchased=1480,
                completed=1470,
                rated=1470,
                reported=1469,
                issued=1468,
                name_at_institution="Maya Anggraini",
                printed_name="Maya Anggraini",
            ),
        ),
        installments=tuple(DemoInstallment(s, -2180 + 30 * s, InstallmentStatus.TRANSFERRED) for s in range(1, 5)),
    ),
    DemoPersona(
        13,
        "Nur Aini",
        True,
        date(1998, 1, 25),
        "2023",
        40,
        Stage.INCENTIVE_FAILED,
        account_active=False,
        enrollments=(
            DemoEnrollment(
                "bukalapak",
                "TR-001",
                purchased=20,
                completed=9,
                rated=9,
                reported=8,
                issued=7,
                name_at_institution="Nur Aini",
                printed_name="Nuraini",
            ),
        ),
        installments=(DemoInstallment(1, -4, InstallmentStatus.FAILED, "account_inactive"),),
    ),
    DemoPersona(
        14,
        "Oki Setiawan",
        False,
        date(1997, 8, 8),
        "2023",
        40,
        Stage.INCENTIVE_FAILED,
        channel="OVO",
        ewallet_phone_changed=True,
        enrollments=(
            DemoEnrollment(
                "pijarmahir",
                "TR-002",
                purchased=20,
                completed=9,
                rated=9,
                reported=8,
                issued=7,
                name_at_institution="Oki Setiawan",
                printed_name="Oki Setiawan",
            ),
        ),
        installments=(DemoInstallment(1, -4, InstallmentStatus.FAILED, "phone_changed"),),
    ),
    DemoPersona(
        15,
        "Putri Maharani",
        True,
        date(2001, 3, 3),
        "2023",
        40,
        Stage.INCENTIVE_FAILED,
        channel="DANA",
        ewallet_verified=False,
        enrollments=(
            DemoEnrollment(
                "sekolahmu",
                "TR-003",
                purchased=20,
                completed=9,
                rated=9,
                reported=8,
                issued=7,
                name_at_institution="Putri Maharani",
                printed_name="Putri Maharani",
            ),
        ),
        installments=(DemoInstallment(1, -4, InstallmentStatus.FAILED, "ewallet_unverified"),),
    ),
    DemoPersona(
        16,
        "Rudi Hartono",
        False,
        date(1989, 9, 9),
        "2023",
        50,
        Stage.AWAITING_PMO,
        enrollments=(
            DemoEnrollment(
                "tokopedia",
                "TR-004",
                purchased=30,
                completed=3,
                rated=2,
                reported=1,
                name_at_institution="Rudi Hartono",
            ),
            DemoEnrollment("kemnaker", "TR-005", purchased=5, completed=1, name_at_institution="Rudi Hartono"),
        ),
    ),
    # Finished a training in 2020 and never rated it: the rating goes where ratings go today (the dashboard), and
    # under today's order the platform's report (long overdue) does not wait for it.
    DemoPersona(
        17,
        "Eko Prasetyo",
        False,
        date(1990, 2, 14),
        "2020",
        2300,
        Stage.AWAITING_PLATFORM_REPORT,
        enrollments=(DemoEnrollment("bukalapak", "TR-002", purchased=1500, completed=1490),),
    ),
    DemoPersona(
        18,
        "Taufik Hidayat",
        False,
        date(1986, 6, 21),
        "2020",
        2300,
        Stage.INCENTIVE_FAILED,
        channel="GOPAY",
        enrollments=(
            DemoEnrollment(
                "pintaria",
                "TR-001",
                purchased=1480,
                completed=1470,
                rated=1470,
                reported=1469,
                issued=1468,
                name_at_institution="Taufik Hidayat",
                printed_name="Taufik Hidayat",
            ),
        ),
        installments=(
            DemoInstallment(1, -2150, InstallmentStatus.TRANSFERRED),
            DemoInstallment(2, -2120, InstallmentStatus.TRANSFERRED),
            DemoInstallment(3, -2090, InstallmentStatus.FAILED, "balance_cap"),
            DemoInstallment(4, -2060, InstallmentStatus.TRANSFERRED),
        ),
    ),
    # Every other failure reason of `transfer_failures` in rules.yaml, each with the account state that goes with it.
    _failed_transfer(
        19,
        "Umi Kalsum",
        True,
        date(1994, 2, 11),
        "tokopedia",
        "TR-003",
        "account_blocked",
        channel="BCA",
        account_active=False,
    ),
    _failed_transfer(
        20, "Vino Saputra", False, date(1992, 7, 4), "pintaria", "TR-005", "account_closed", account_active=False
    ),
    # The transfer was refused for want of the dashboard review, which the records confirm is missing.
    _failed_transfer(
        21,
        "Wulan Sari",
        True,
        date(1999, 11, 23),
        "bukalapak",
        "TR-004",
        "rating_missing",
        channel="LINKAJA",
        rated=None,
    ),
    # The account is his wife's: it must be in the participant's own name and NIK.
    _failed_transfer(
        22, "Yusuf Maulana", False, date(1987, 4, 30), "kemnaker", "TR-001", "name_mismatch", holder_name="Siti Aminah"
    ),
    _failed_transfer(23, "Zahra Amelia", True, date(2002, 12, 15), "sekolahmu", "TR-002", "other", channel="GOPAY"),
    # Certificate issued yesterday (a working day): the incentive schedule is due with it, not yet overdue.
    DemoPersona(
        24,
        "Agus Salim",
        False,
        date(1991, 8, 8),
        "2023",
        30,
        Stage.CERTIFICATE_ISSUED,
        enrollments=(
            DemoEnrollment(
                "pijarmahir",
                "TR-004",
                purchased=12,
                completed=2,
                rated=2,
                reported=1,
                issued=1,
                name_at_institution="Agus Salim",
                printed_name="AGUS SALIM, S.Kom",
            ),
        ),
    ),
    # Scheduled two weeks ago and still not paid: past the payment window, an agent takes it.
    DemoPersona(
        25,
        "Bayu Pratama",
        False,
        date(1985, 10, 19),
        "2023",
        60,
        Stage.INCENTIVE_SCHEDULED,
        channel="OVO",
        enrollments=(
            DemoEnrollment(
                "kariermu",
                "TR-001",
                purchased=30,
                completed=16,
                rated=16,
                reported=15,
                issued=15,
                name_at_institution="Bayu Pratama",
                printed_name="Bayu Pratama",
            ),
        ),
        installments=(DemoInstallment(1, -14),),
    ),
    # Since 2021 the certificate comes first: issued yesterday without a rating, so the incentive schedule waits
    # for the rating on the dashboard.
    DemoPersona(
        26,
        "Dian Permatasari",
        True,
        date(1996, 5, 2),
        "2023",
        30,
        Stage.NEEDS_RATING,
        enrollments=(
            DemoEnrollment(
                "tokopedia",
                "TR-002",
                purchased=12,
                completed=3,
                reported=2,
                issued=1,
                name_at_institution="Dian Permatasari",
                printed_name="Dian Permatasari",
            ),
        ),
    ),
    # Both eras: a 2020 training rated on the platform before its report, certificate and four installments
    # together; then a second training in today's order, certificate issued and the dashboard rating still to give.
    DemoPersona(
        27,
        "Fajar Nugroho",
        False,
        date(1989, 11, 27),
        "2020",
        2300,
        Stage.NEEDS_RATING,
        channel="LINKAJA",
        enrollments=(
            DemoEnrollment(
                "bukalapak",
                "TR-003",
                purchased=1480,
                completed=1470,
                rated=1470,
                reported=1469,
                issued=1468,
                name_at_institution="Fajar Nugroho",
                printed_name="Fajar Nugroho",
            ),
            DemoEnrollment(
                "pijarmahir",
                "TR-001",
                purchased=10,
                completed=3,
                reported=2,
                issued=1,
                name_at_institution="Fajar Nugroho",
                printed_name="FAJAR NUGROHO",
            ),
        ),
        installments=tuple(DemoInstallment(s, -2180 + 30 * s, InstallmentStatus.TRANSFERRED) for s in range(1, 5)),
    ),
    # The failure reasons the official FAQ adds: the e-wallet's monthly transaction limit, and a training whose
    # sessions or face verifications are not all recorded.
    _failed_transfer(
        28, "Gita Puspita", True, date(1997, 9, 14), "tokopedia", "TR-005", "monthly_limit", channel="DANA"
    ),
    _failed_transfer(29, "Hendra Wijaya", False, date(1993, 1, 19), "pintaria", "TR-003", "attendance_incomplete"),
)


def load_platform_directory(path: Path | None = None) -> list[dict[str, str]]:
    path = path or knowledge_dir() / "platforms.yaml"
    data = read_yaml(path)
    # Former platforms too: records made while they sold trainings still name them.
    return [{"code": p["code"], "name": p["name"]} for p in (*data["platforms"], *data.get("former_platforms", ()))]


async def recreate_database(db: Database) -> None:
    """Start from an empty schema: drop the SQLite file, or migrate a server database down to base."""
    path = sqlite_path(db.url)
    if path is not None:
        await db.disconnect()  # no connection or lane of ours keeps the old file
        for suffix in ("", "-wal", "-shm", "-journal"):
            await asyncio.to_thread(Path(f"{path}{suffix}").unlink, missing_ok=True)
    else:
        await db.downgrade("base")
    await db.migrate()


async def seed_demo(
    engine: AsyncEngine, rules: Rules, calendar: WorkingCalendar, pii_key: bytes, today: date
) -> list[tuple[int, DemoPersona]]:
    """Write the personas; returns (participant id, persona) pairs in persona order."""

    def worked(days: int | None) -> date | None:
        return None if days is None else calendar.add_working_days(calendar.next_working_day(today), -days)

    sessionmaker = make_sessionmaker(engine)
    created: list[tuple[int, DemoPersona]] = []
    async with sessionmaker.begin() as session:
        session.add_all(Platform(**p) for p in load_platform_directory())
        institutions = [Institution(name=name) for name in INSTITUTIONS]
        session.add_all(institutions)
        await session.flush()
        trainings = {
            code: Training(code=code, title=title, institution_id=institutions[i].id) for code, title, i in TRAININGS
        }
        session.add_all(trainings.values())
        await session.flush()
        for persona in PERSONAS:
            scheme = rules.schemes[persona.scheme]
            participant = Participant(
                card_number_hash=keyed_hash(persona.card_number, pii_key),
                card_number_last4=persona.card_number[-4:],
                nik_hash=keyed_hash(persona.nik, pii_key),
                nik_last4=persona.nik[-4:],
                legal_name=persona.name,
                birth_date=persona.birth_date,
                phone=persona.phone,
                email=f"{persona.name.split()[0].lower()}@contoh.id",
                wave=70 if persona.scheme == "2023" else 10,
                scheme=persona.scheme,
                accepted_on=today - timedelta(days=persona.accepted_days_ago),
                membership=persona.membership,
            )
            session.add(participant)
            await session.flush()
            ewallet = persona.channel not in ("BNI", "BCA")
            session.add(
                PayoutAccount(
                    participant_id=participant.id,
                    channel=persona.channel,
                    account_last4=persona.phone[-4:] if ewallet else f"{persona.key:04d}",
                    holder_name=persona.holder_name or persona.name,
                    phone=(persona.phone[:-2] + "99" if persona.ewallet_phone_changed else persona.phone)
                    if ewallet
                    else None,
                    active=persona.account_active,
                    verified=persona.ewallet_verified,
                )
            )
            enrollment_ids: list[int] = []
            for n, spec in enumerate(persona.enrollments, start=1):
                purchased = worked(spec.purchased)
                assert purchased is not None
                enrollment = Enrollment(
                    voucher_code=f"PKJ{persona.key:03d}{n:02d}",
                    participant_id=participant.id,
                    training_id=trainings[spec.training].id,
                    platform_code=spec.platform,
                    purchased_on=purchased,
                    completed_on=worked(spec.completed),
                    name_at_institution=spec.name_at_institution,
                    rated_on=worked(spec.rated),
                    reported_on=worked(spec.reported),
                )
                session.add(enrollment)
                await session.flush()
                enrollment_ids.append(enrollment.id)
                issued = worked(spec.issued)
                if issued is not None:
                    session.add(
                        Certificate(
                            enrollment_id=enrollment.id,
                            number=f"SERT/{issued:%Y}/{persona.key:04d}{n:02d}",
                            printed_name=spec.printed_name or persona.name,
                            issued_on=issued,
                        )
                    )
            for inst in persona.installments:
                scheduled = today + timedelta(days=inst.scheduled)
                session.add(
                    IncentiveInstallment(
                        participant_id=participant.id,
                        enrollment_id=enrollment_ids[0],
                        seq=inst.seq,
                        amount=scheme.incentive_amount,
                        scheduled_on=scheduled,
                        status=inst.status,
                        transferred_on=None if inst.status == InstallmentStatus.SCHEDULED else scheduled,
                        channel=persona.channel,
                        failure_reason=inst.failure_reason,
                    )
                )
            session.add(
                Event(
                    participant_id=participant.id,
                    entity="participants",
                    entity_id=str(participant.id),
                    kind="created",
                    data={"persona": persona.key},
                    source_kind="demo",
                    source_ref="demo",
                )
            )
            created.append((participant.id, persona))
    return created
