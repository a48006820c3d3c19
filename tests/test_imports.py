"""Imports against real databases: SQLite files, and PostgreSQL when DATABASE_URL points at one.

Each test builds its own reference data (platforms, trainings, participants), writes a real file and reads the
database back: counts, stored facts and the event log.
"""

from __future__ import annotations

import asyncio
import csv
import json
from collections.abc import Iterable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import Database, make_engine, make_sessionmaker
from core.diagnosis import Stage
from core.identity import digits_only, keyed_hash, mask_phone
from core.imports import ImportFileError, ImportKind, ImportReport, run_import
from core.imports import backend as import_backend
from core.imports import child as import_child
from core.imports import runner as import_runner
from core.models import (
    Certificate,
    Enrollment,
    Event,
    ImportBatch,
    IncentiveInstallment,
    InstallmentStatus,
    Institution,
    Participant,
    PayoutAccount,
    Platform,
    Training,
)
from core.status import DatabaseStatusSource, StatusService

TODAY = date(2024, 7, 1)
REPORT = ImportKind.PLATFORM_REPORT
PMO = ImportKind.PMO_RESULTS
TRANSFERS = ImportKind.TRANSFERS

PR_HEADER = [
    "report_date",
    "platform",
    "voucher_code",
    "participant_id",
    "training_code",
    "purchased_on",
    "completed_on",
    "name_at_institution",
    "rated_on",
    "reported_on",
]
PMO_HEADER = [
    "voucher_code",
    "processed_on",
    "certificate_number",
    "printed_name",
    "installment_seq",
    "amount",
    "scheduled_on",
]
TRANSFER_HEADER = ["participant_id", "installment_seq", "channel", "status", "transferred_on", "failure_reason"]


# --- helpers -------------------------------------------------------------------------------------------------


async def seed(engine: AsyncEngine, participants: int = 3) -> None:
    """Two platforms, one institution with two trainings, and `participants` participants (ids 1…n)."""
    async with make_sessionmaker(engine)() as session:
        session.add_all([Platform(code="tokopedia", name="Tokopedia"), Platform(code="pintaria", name="Pintaria")])
        institution = Institution(name="Lembaga Uji")
        session.add(institution)
        await session.flush()
        session.add_all(
            [
                Training(code="TR-1", title="Menjahit", institution_id=institution.id),
                Training(code="TR-2", title="Barista", institution_id=institution.id),
            ]
        )
        session.add_all(
            [
                Participant(
                    id=n,
                    card_number_hash=f"card-{n}",
                    card_number_last4=f"{n:04d}",
                    nik_hash=f"nik-{n}",
                    nik_last4=f"{n:04d}",
                    legal_name=f"Peserta {n}",
                    birth_date=date(1990, 1, 1),
                    phone=f"+62812{n:08d}",
                    wave=10,
                    scheme="2020",
                    accepted_on=date(2020, 5, 1),
                )
                for n in range(1, participants + 1)
            ]
        )
        await session.commit()


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(header)
        out.writerows(rows)
    return path


def write_jsonl(path: Path, objects: Iterable[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(o) + "\n" for o in objects), encoding="utf-8")
    return path


def report_row(
    voucher: str,
    participant: int | str = 1,
    *,
    platform: str = "tokopedia",
    training: str = "TR-1",
    purchased: str = "2024-01-10",
    completed: str = "",
    name: str = "",
    rated: str = "",
    reported: str = "",
    report_date: str = "2024-06-30",
) -> list[Any]:
    return [report_date, platform, voucher, participant, training, purchased, completed, name, rated, reported]


async def scalar(engine: AsyncEngine, sql: str, **params: Any) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar()


async def events(engine: AsyncEngine, entity: str | None = None) -> list[Event]:
    async with make_sessionmaker(engine)() as session:
        query = select(Event).order_by(Event.id)
        if entity is not None:
            query = query.where(Event.entity == entity)
        return list((await session.scalars(query)).all())


async def enrollment(engine: AsyncEngine, voucher: str) -> Enrollment:
    async with make_sessionmaker(engine)() as session:
        return (await session.scalars(select(Enrollment).where(Enrollment.voucher_code == voucher))).one()


async def batches(engine: AsyncEngine) -> list[ImportBatch]:
    async with make_sessionmaker(engine)() as session:
        return list((await session.scalars(select(ImportBatch).order_by(ImportBatch.id))).all())


async def run(engine: AsyncEngine, kind: ImportKind | str, path: Path, **kwargs: Any) -> ImportReport:
    return await run_import(engine, kind, path, today=TODAY, **kwargs)


def rejections(report: ImportReport) -> list[tuple[int, str]]:
    return [(row.line, row.code) for row in report.rejected]


# --- platform report -----------------------------------------------------------------------------------------


async def test_platform_report_creates_enrollments_and_the_same_file_again_changes_nothing(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    await seed(engine)
    path = write_csv(
        tmp_path / "report.csv",
        PR_HEADER,
        [
            report_row(
                "V-1", 1, completed="2024-02-01", name="Budi Santoso", rated="2024-02-02", reported="2024-02-03"
            ),
            report_row("V-2", 2, platform="pintaria", training="TR-2"),
            report_row("V-3", 3, completed="2024-03-01"),
        ],
    )

    first = await run(engine, REPORT, path)
    assert (first.status, first.rows_read, first.applied, first.unchanged, first.rejected) == ("applied", 3, 3, 0, [])
    stored = await enrollment(engine, "V-1")
    assert (stored.participant_id, stored.platform_code, stored.purchased_on) == (1, "tokopedia", date(2024, 1, 10))
    assert (stored.completed_on, stored.name_at_institution) == (date(2024, 2, 1), "Budi Santoso")
    assert (stored.rated_on, stored.reported_on) == (date(2024, 2, 2), date(2024, 2, 3))
    created = await events(engine)
    assert [(e.entity, e.kind, e.source_kind, e.source_ref) for e in created] == [
        ("enrollments", "created", "import", str(first.batch_id))
    ] * 3
    # A created event holds the new row's values (a changed one, [old, new] of what changed).
    by_voucher = {e.data["voucher_code"]: e for e in created}
    assert by_voucher["V-1"].entity_id == str(stored.id) and by_voucher["V-1"].participant_id == 1
    assert by_voucher["V-1"].data["name_at_institution"] == "Budi Santoso"
    assert by_voucher["V-2"].data == {
        "voucher_code": "V-2",
        "participant_id": 2,
        "training_id": (await enrollment(engine, "V-2")).training_id,
        "platform_code": "pintaria",
        "purchased_on": "2024-01-10",
        "completed_on": None,
        "name_at_institution": None,
        "rated_on": None,
        "reported_on": None,
    }

    second = await run(engine, REPORT, path)
    assert (second.status, second.rows_read, second.applied, second.unchanged) == ("applied", 3, 0, 3)
    assert len(await events(engine)) == 3
    recorded = await batches(engine)
    assert [(b.kind, b.status, b.rows_read, b.rows_applied, b.rows_unchanged) for b in recorded] == [
        ("platform-report", "applied", 3, 3, 0),
        ("platform-report", "applied", 3, 0, 3),
    ]
    assert recorded[0].file_sha256 == recorded[1].file_sha256 and len(recorded[0].file_sha256) == 64
    assert all(b.finished_at is not None for b in recorded)


async def test_a_changed_fact_is_applied_and_recorded_as_one_event_with_old_and_new(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    await seed(engine)
    await run(engine, REPORT, write_csv(tmp_path / "day1.csv", PR_HEADER, [report_row("V-1"), report_row("V-2", 2)]))
    before = len(await events(engine))

    day2 = write_csv(
        tmp_path / "day2.csv",
        PR_HEADER,
        [report_row("V-1", completed="2024-02-01", name="Budi"), report_row("V-2", 2)],
    )
    report = await run(engine, REPORT, day2)

    assert (report.applied, report.unchanged) == (1, 1)
    stored = await enrollment(engine, "V-1")
    assert (stored.completed_on, stored.name_at_institution) == (date(2024, 2, 1), "Budi")
    new_events = (await events(engine))[before:]
    assert len(new_events) == 1
    event = new_events[0]
    assert (event.entity, event.entity_id, event.kind, event.participant_id) == (
        "enrollments",
        str(stored.id),
        "changed",
        1,
    )
    assert event.data == {"completed_on": [None, "2024-02-01"], "name_at_institution": [None, "Budi"]}
    assert event.source_ref == str(report.batch_id)

    # A correction of a stored fact records the old value; an empty cell clears nothing.
    day3 = write_csv(tmp_path / "day3.csv", PR_HEADER, [report_row("V-1", completed="2024-02-05")])
    report = await run(engine, REPORT, day3)
    assert report.applied == 1
    last = (await events(engine))[-1]
    assert last.data == {"completed_on": ["2024-02-01", "2024-02-05"]}
    stored = await enrollment(engine, "V-1")
    assert (stored.completed_on, stored.name_at_institution) == (date(2024, 2, 5), "Budi")


async def test_bad_rows_are_reported_by_line_and_nothing_is_written(engine: AsyncEngine, tmp_path: Path) -> None:
    await seed(engine)
    path = tmp_path / "bad.csv"
    rows = [
        report_row("V-OK", 1),  # line 2
        report_row("V-3", 99),  # 3 unknown participant
        report_row("V-4", 1, platform="shopee"),  # 4 unknown platform
        report_row("V-5", 1, training="TR-404"),  # 5 unknown training
        report_row("V-6", 1, purchased="2024-13-01"),  # 6 bad date
        report_row("V-7", 1, rated="2024-07-02"),  # 7 future date (today is 2024-07-01)
        report_row("V-8", "12a"),  # 8 bad number
        report_row("", 1),  # 9 missing voucher
        report_row("V-10", 1, name="x" * 201),  # 10 name too long
        report_row("V-11", 1, completed="2024-01-01"),  # 11 completed before purchased
        report_row("V-OK", 2),  # 12 duplicate of line 2
        ["2024-06-30", "tokopedia", "V-13"],  # 13 wrong column count
        report_row("V-14", 1, name="Siti\nNur"),  # 14-15: a quoted name over two lines, valid
        report_row("V-16", 1, purchased="2024/01/10"),  # 16 not ISO
        report_row("V" * 41, 1),  # 17 voucher too long
    ]
    write_csv(path, PR_HEADER, rows)

    report = await run(engine, REPORT, path)

    assert report.status == "rejected"
    assert rejections(report) == [
        (3, "unknown_participant"),
        (4, "unknown_platform"),
        (5, "unknown_training"),
        (6, "bad_date"),
        (7, "future_date"),
        (8, "bad_number"),
        (9, "missing"),
        (10, "too_long"),
        (11, "date_order"),
        (12, "duplicate"),
        (13, "wrong_column_count"),
        (16, "bad_date"),
        (17, "too_long"),
    ]
    reasons = {row.line: row.reason for row in report.rejected}
    assert reasons[7] == "future_date: rated_on"
    assert (reasons[9], reasons[17]) == ("missing: voucher_code", "too_long: voucher_code")
    assert reasons[10] == "too_long: name_at_institution"
    assert reasons[12] == "duplicate: same voucher_code as line 2"
    assert (report.rows_read, report.applied, report.unchanged) == (15, 0, 0)
    assert await scalar(engine, "SELECT COUNT(*) FROM enrollments") == 0
    assert await scalar(engine, "SELECT COUNT(*) FROM events") == 0
    [batch] = await batches(engine)
    assert (batch.status, batch.rows_read, batch.rows_rejected, batch.rows_applied) == ("rejected", 15, 13, 0)
    assert report.batch_id == batch.id


async def test_a_known_voucher_naming_another_participant_is_rejected(engine: AsyncEngine, tmp_path: Path) -> None:
    await seed(engine)
    await run(engine, REPORT, write_csv(tmp_path / "a.csv", PR_HEADER, [report_row("V-1", 1)]))
    path = write_csv(
        tmp_path / "b.csv",
        PR_HEADER,
        [report_row("V-1", 2), report_row("V-2", 2), report_row("V-1b", 1, training="TR-2")],
    )
    report = await run(engine, REPORT, path)
    assert report.status == "rejected"
    assert [(r.line, r.reason) for r in report.rejected] == [(2, "voucher_mismatch: participant_id")]
    assert await scalar(engine, "SELECT COUNT(*) FROM enrollments") == 1
    assert await scalar(engine, "SELECT COUNT(*) FROM events") == 1


async def test_wrong_header_is_a_file_error_naming_the_columns(engine: AsyncEngine, tmp_path: Path) -> None:
    await seed(engine)
    header = [c for c in PR_HEADER if c not in ("voucher_code", "rated_on")] + ["voucher", "note"]
    path = write_csv(tmp_path / "header.csv", header, [["2024-06-30"] * len(header)])
    with pytest.raises(ImportFileError) as caught:
        await run(engine, REPORT, path)
    message = str(caught.value)
    assert "missing columns: voucher_code, rated_on" in message
    assert "unknown columns: voucher, note" in message
    assert "\n" not in message
    assert await batches(engine) == []


@pytest.mark.parametrize(
    ("encoding", "expected"),
    [("latin-1", "not UTF-8"), ("cp1252", "not UTF-8"), ("utf-16", "UTF-16"), ("utf-16-le", "NUL bytes")],
)
async def test_a_file_that_is_not_utf8_is_a_file_error(
    sqlite_engine: AsyncEngine, tmp_path: Path, encoding: str, expected: str
) -> None:
    await seed(sqlite_engine)
    path = tmp_path / "encoded.csv"
    lines = [",".join(PR_HEADER), ",".join(map(str, report_row("V-1", name="Séverine Müller")))]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode(encoding))
    with pytest.raises(ImportFileError, match=expected):
        await run(sqlite_engine, REPORT, path)
    assert await scalar(sqlite_engine, "SELECT COUNT(*) FROM enrollments") == 0
    assert await batches(sqlite_engine) == []


async def test_a_utf8_bom_and_crlf_line_ends_are_fine(sqlite_engine: AsyncEngine, tmp_path: Path) -> None:
    await seed(sqlite_engine)
    path = tmp_path / "bom.csv"
    lines = [",".join(PR_HEADER), ",".join(map(str, report_row("V-1", name="Séverine Müller")))]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("utf-8-sig"))
    report = await run(sqlite_engine, REPORT, path)
    assert (report.status, report.applied) == ("applied", 1)
    assert (await enrollment(sqlite_engine, "V-1")).name_at_institution == "Séverine Müller"


async def test_a_date_after_today_in_jakarta_is_rejected(sqlite_engine: AsyncEngine, tmp_path: Path) -> None:
    await seed(sqlite_engine)
    path = write_csv(
        tmp_path / "f.csv", PR_HEADER, [report_row("V-1", purchased="2024-07-01", report_date="2024-07-01")]
    )
    assert (await run_import(sqlite_engine, REPORT, path, today=date(2024, 7, 1))).status == "applied"
    path = write_csv(
        tmp_path / "g.csv", PR_HEADER, [report_row("V-2", purchased="2024-07-02", report_date="2024-07-02")]
    )
    report = await run_import(sqlite_engine, REPORT, path, today=date(2024, 7, 1))
    assert [(r.line, r.reason) for r in report.rejected] == [(2, "future_date: report_date")]
    # Without `today`, the date in Asia/Jakarta is used: far-future rows are always rejected.
    path = write_csv(tmp_path / "h.csv", PR_HEADER, [report_row("V-3", report_date="2999-01-01")])
    assert rejections(await run_import(sqlite_engine, REPORT, path)) == [(2, "future_date")]


async def test_jsonl_reports_import_like_csv(engine: AsyncEngine, tmp_path: Path) -> None:
    await seed(engine)
    objects = [dict(zip(PR_HEADER, report_row("V-1", 1, completed="2024-02-01"), strict=True))]
    objects.append(
        {
            "report_date": "2024-06-30",
            "platform": "pintaria",
            "voucher_code": "V-2",
            "participant_id": 2,
            "training_code": "TR-2",
            "purchased_on": "2024-01-10",
            "rated_on": None,
        }
    )
    path = write_jsonl(tmp_path / "report.jsonl", objects)
    report = await run(engine, REPORT, path)
    assert (report.status, report.applied) == ("applied", 2)
    assert (await enrollment(engine, "V-1")).completed_on == date(2024, 2, 1)
    assert (await enrollment(engine, "V-2")).participant_id == 2
    assert (await run(engine, REPORT, path)).unchanged == 2


async def test_jsonl_rows_with_bad_json_or_unknown_fields_are_rejected(
    sqlite_engine: AsyncEngine, tmp_path: Path
) -> None:
    await seed(sqlite_engine)
    good = dict(zip(PR_HEADER, report_row("V-1"), strict=True))
    path = tmp_path / "report.ndjson"
    path.write_text(
        "\n".join(
            [
                json.dumps(good),
                "",  # a blank line is skipped, and still counted in line numbers
                '{"voucher_code": "V-2", ',
                json.dumps({**good, "voucher_code": "V-3", "note": "x"}),
                json.dumps({**good, "voucher_code": "V-4", "participant_id": 1.5}),
                json.dumps([1, 2]),
                json.dumps({**good, "voucher_code": "V-5", "purchased_on": None}),
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    report = await run(sqlite_engine, REPORT, path)
    assert [(r.line, r.reason) for r in report.rejected] == [
        (3, "bad_json"),
        (4, "unknown_field: note"),
        (5, "bad_value: participant_id"),
        (6, "bad_json: not an object"),
        (7, "missing: purchased_on"),
    ]
    assert report.rows_read == 6
    assert await scalar(sqlite_engine, "SELECT COUNT(*) FROM enrollments") == 0


async def test_a_jsonl_file_whose_first_line_is_not_an_object_is_a_file_error(
    sqlite_engine: AsyncEngine, tmp_path: Path
) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text("voucher_code,platform\n", encoding="utf-8")
    with pytest.raises(ImportFileError, match="not a JSON object"):
        await run(sqlite_engine, REPORT, path)
    path.write_text(json.dumps({"voucher_code": "V-1"}) + "\n", encoding="utf-8")
    with pytest.raises(ImportFileError, match="missing columns: report_date, platform"):
        await run(sqlite_engine, REPORT, path)


async def test_a_bad_byte_deep_in_the_file_is_a_file_error_and_nothing_is_written(
    engine: AsyncEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The header check reads only the file's start: this byte is met by the reading process, chunks later.
    monkeypatch.setattr(import_runner, "CHUNK_ROWS", 500)
    await seed(engine)
    path = write_csv(tmp_path / "deep.csv", PR_HEADER, [report_row(f"V-{n}", 1 + n % 3) for n in range(3000)])
    path.write_bytes(path.read_bytes() + b"2024-06-30,tokopedia,V-X,1,TR-1,2024-01-10,,S\xe9verine,,\r\n")
    with pytest.raises(ImportFileError, match=r"not UTF-8 text \(undecodable byte near line \d+\)") as caught:
        await run(engine, REPORT, path)
    assert int(str(caught.value).split("near line ")[1].split(")")[0]) > 2500  # decoded 8 KB at a time
    assert await scalar(engine, "SELECT COUNT(*) FROM enrollments") == 0
    assert await batches(engine) == []


async def test_a_reading_process_that_dies_fails_the_import_and_writes_nothing(
    sqlite_engine: AsyncEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await seed(sqlite_engine)
    monkeypatch.setattr(import_child, "_CHILD_CODE", "import sys; sys.exit(3)")
    path = write_csv(tmp_path / "ok.csv", PR_HEADER, [report_row("V-1")])
    with pytest.raises(RuntimeError, match="exit code 3"):
        await run(sqlite_engine, REPORT, path)
    assert await batches(sqlite_engine) == []
    monkeypatch.undo()
    assert (await run(sqlite_engine, REPORT, path)).applied == 1  # the connection went back to the pool clean


async def test_file_level_errors(sqlite_engine: AsyncEngine, tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(ImportFileError, match="empty"):
        await run(sqlite_engine, REPORT, empty)
    with pytest.raises(ImportFileError, match="unsupported file type"):
        await run(sqlite_engine, REPORT, write_csv(tmp_path / "report.xlsx", PR_HEADER, []))
    with pytest.raises(ValueError, match="not-a-kind"):
        await run(sqlite_engine, "not-a-kind", empty)
    header_only = write_csv(tmp_path / "header.csv", PR_HEADER, [])
    report = await run(sqlite_engine, "platform-report", header_only)
    assert (report.status, report.rows_read, report.applied) == ("applied", 0, 0)


# --- PMO results and transfers -------------------------------------------------------------------------------


async def enrolled(engine: AsyncEngine, tmp_path: Path) -> None:
    await seed(engine)
    rows = [
        report_row("V-1", 1, completed="2024-02-01"),
        report_row("V-2", 2, completed="2024-02-01"),
        report_row("V-3", 3),
    ]
    assert (await run(engine, REPORT, write_csv(tmp_path / "enrol.csv", PR_HEADER, rows))).applied == 3


async def installments(engine: AsyncEngine) -> list[IncentiveInstallment]:
    async with make_sessionmaker(engine)() as session:
        query = select(IncentiveInstallment).order_by(IncentiveInstallment.participant_id, IncentiveInstallment.seq)
        return list((await session.scalars(query)).all())


async def test_pmo_results_create_certificates_and_schedules_once(engine: AsyncEngine, tmp_path: Path) -> None:
    await enrolled(engine, tmp_path)
    path = write_csv(
        tmp_path / "pmo.csv",
        PMO_HEADER,
        [
            ["V-1", "2024-02-05", "CERT-1", "Budi", 1, 600000, "2024-02-10"],
            ["V-1", "2024-02-05", "CERT-1", "Budi", 2, 600000, "2024-03-10"],
            ["V-2", "2024-02-06", "CERT-2", "Siti", "", "", ""],
        ],
    )
    report = await run(engine, PMO, path)
    assert (report.status, report.applied, report.unchanged) == ("applied", 3, 0)
    assert report.changed_participant_ids == {1, 2}
    async with make_sessionmaker(engine)() as session:
        certificates = list((await session.scalars(select(Certificate).order_by(Certificate.number))).all())
    v1, v2 = await enrollment(engine, "V-1"), await enrollment(engine, "V-2")
    assert [(c.enrollment_id, c.number, c.printed_name, c.issued_on) for c in certificates] == [
        (v1.id, "CERT-1", "Budi", date(2024, 2, 5)),
        (v2.id, "CERT-2", "Siti", date(2024, 2, 6)),
    ]
    assert [
        (i.participant_id, i.enrollment_id, i.seq, i.amount, i.scheduled_on, i.status)
        for i in await installments(engine)
    ] == [
        (1, v1.id, 1, 600000, date(2024, 2, 10), "scheduled"),
        (1, v1.id, 2, 600000, date(2024, 3, 10), "scheduled"),
    ]
    assert [(e.kind, e.participant_id) for e in await events(engine, "certificates")] == [
        ("created", 1),
        ("created", 2),
    ]
    assert len(await events(engine, "incentive_installments")) == 2

    again = await run(engine, PMO, path)
    assert (again.applied, again.unchanged, again.changed_participant_ids) == (0, 3, set())
    assert len(await events(engine, "certificates")) == 2


async def test_pmo_re_report_keeps_a_transfer_status_and_records_what_changed(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    await enrolled(engine, tmp_path)
    first = [["V-1", "2024-02-05", "CERT-1", "Budi", 1, 600000, "2024-02-10"]]
    await run(engine, PMO, write_csv(tmp_path / "pmo1.csv", PMO_HEADER, first))
    transfer = [[1, 1, "BNI", "transferred", "2024-02-12", ""]]
    assert (await run(engine, TRANSFERS, write_csv(tmp_path / "t.csv", TRANSFER_HEADER, transfer))).applied == 1

    fixed = [["V-1", "2024-02-05", "CERT-1", "Budi Santoso", 1, 600000, "2024-02-11"]]
    report = await run(engine, PMO, write_csv(tmp_path / "pmo2.csv", PMO_HEADER, fixed))
    assert (report.applied, report.changed_participant_ids) == (1, {1})
    [installment] = await installments(engine)
    assert (installment.status, installment.transferred_on, installment.scheduled_on) == (
        InstallmentStatus.TRANSFERRED,
        date(2024, 2, 12),
        date(2024, 2, 11),
    )
    assert (await events(engine, "certificates"))[-1].data == {"printed_name": ["Budi", "Budi Santoso"]}
    assert (await events(engine, "incentive_installments"))[-1].data == {"scheduled_on": ["2024-02-10", "2024-02-11"]}


async def test_pmo_rows_that_cannot_apply_are_rejected(engine: AsyncEngine, tmp_path: Path) -> None:
    await enrolled(engine, tmp_path)
    await run(
        engine, PMO, write_csv(tmp_path / "p0.csv", PMO_HEADER, [["V-3", "2024-02-05", "CERT-3", "Ani", "", "", ""]])
    )
    rows: list[list[Any]] = [
        ["V-1", "2024-02-05", "CERT-1", "Budi", 1, 600000, "2024-02-10"],  # 2 fine
        ["V-1", "2024-02-05", "CERT-1X", "Budi", 2, 600000, "2024-03-10"],  # 3 conflicts with line 2
        ["V-404", "2024-02-05", "CERT-9", "Nobody", "", "", ""],  # 4 unknown voucher
        ["V-2", "2024-02-05", "CERT-3", "Siti", 1, 600000, "2024-02-10"],  # 5 the number of V-3's certificate
        ["V-2", "2024-02-05", "CERT-3", "Siti", 2, "", "2024-02-10"],  # 6 installment without amount
        ["V-2", "2024-02-05", "CERT-3", "Siti", 1, 600000, "2024-02-10"],  # 7 the same installment as line 5
    ]
    report = await run(engine, PMO, write_csv(tmp_path / "p.csv", PMO_HEADER, rows))
    assert [(r.line, r.reason) for r in report.rejected] == [
        (3, "conflicting_certificate: differs from line 2"),
        (4, "unknown_voucher"),
        (5, "certificate_number_taken"),
        (6, "incomplete_installment"),
        (7, "duplicate: same voucher_code, installment_seq as line 5"),
    ]
    assert await scalar(engine, "SELECT COUNT(*) FROM certificates") == 1
    assert await installments(engine) == []


async def test_transfers_update_installments_and_reject_what_they_cannot_match(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    await enrolled(engine, tmp_path)
    schedule = [
        ["V-1", "2024-02-05", "CERT-1", "Budi", 1, 600000, "2024-02-10"],
        ["V-1", "2024-02-05", "CERT-1", "Budi", 2, 600000, "2024-03-10"],
        ["V-2", "2024-02-05", "CERT-2", "Siti", 1, 600000, "2024-02-10"],
    ]
    await run(engine, PMO, write_csv(tmp_path / "pmo.csv", PMO_HEADER, schedule))

    bad = [
        [1, 1, "gopay", "failed", "2024-02-11", ""],  # 2 failed without reason
        [1, 2, "OVO", "failed", "2024-02-11", "lost_in_space"],  # 3 not a reason of the rules
        [2, 7, "BNI", "transferred", "2024-02-11", ""],  # 4 no such installment
        [9, 1, "BNI", "transferred", "2024-02-11", ""],  # 5 no such participant
        [2, 1, "PayPal", "transferred", "2024-02-11", ""],  # 6 unknown channel
        [2, 1, "BNI", "pending", "2024-02-11", ""],  # 7 unknown status
        [2, 1, "BNI", "transferred", "2024-02-11", "account_inactive"],  # 8 a reason on a success
    ]
    report = await run(engine, TRANSFERS, write_csv(tmp_path / "bad.csv", TRANSFER_HEADER, bad))
    assert [(r.line, r.reason) for r in report.rejected] == [
        (2, "missing: failure_reason"),
        (3, "bad_value: failure_reason"),
        (4, "unknown_installment"),
        (5, "unknown_participant"),
        (6, "bad_value: channel"),
        (7, "bad_value: status"),
        (8, "unexpected: failure_reason"),
    ]
    assert {i.status for i in await installments(engine)} == {"scheduled"}

    good = [[1, 1, "gopay", "failed", "2024-02-11", "account_inactive"], [2, 1, "BNI", "transferred", "2024-02-12", ""]]
    report = await run(engine, TRANSFERS, write_csv(tmp_path / "good.csv", TRANSFER_HEADER, good))
    assert (report.status, report.applied, report.changed_participant_ids) == ("applied", 2, {1, 2})
    stored = {(i.participant_id, i.seq): i for i in await installments(engine)}
    assert (stored[1, 1].status, stored[1, 1].channel, stored[1, 1].failure_reason) == (
        "failed",
        "GOPAY",
        "account_inactive",
    )
    assert (stored[2, 1].status, stored[2, 1].transferred_on, stored[2, 1].failure_reason) == (
        "transferred",
        date(2024, 2, 12),
        None,
    )
    assert stored[1, 2].status == "scheduled"
    assert (await events(engine, "incentive_installments"))[-2].data == {
        "status": ["scheduled", "failed"],
        "transferred_on": [None, "2024-02-11"],
        "channel": [None, "GOPAY"],
        "failure_reason": [None, "account_inactive"],
    }

    # The retry succeeds; an older result imported late does not undo it; the same file twice changes nothing.
    retry = [[1, 1, "GOPAY", "transferred", "2024-02-14", ""]]
    assert (await run(engine, TRANSFERS, write_csv(tmp_path / "retry.csv", TRANSFER_HEADER, retry))).applied == 1
    late = await run(engine, TRANSFERS, write_csv(tmp_path / "late.csv", TRANSFER_HEADER, good[:1]))
    assert (late.applied, late.unchanged) == (0, 1)
    assert (await installments(engine))[0].status == "transferred"
    assert (await run(engine, TRANSFERS, tmp_path / "retry.csv")).unchanged == 1


async def test_a_transfers_file_may_leave_out_the_failure_reason_column(
    sqlite_engine: AsyncEngine, tmp_path: Path
) -> None:
    await enrolled(sqlite_engine, tmp_path)
    await run(
        sqlite_engine,
        PMO,
        write_csv(tmp_path / "p.csv", PMO_HEADER, [["V-1", "2024-02-05", "C-1", "B", 1, 600000, "2024-02-10"]]),
    )
    path = write_jsonl(
        tmp_path / "t.jsonl",
        [
            {
                "participant_id": 1,
                "installment_seq": 1,
                "channel": "dana",
                "status": "transferred",
                "transferred_on": "2024-02-12",
            }
        ],
    )
    report = await run(sqlite_engine, TRANSFERS, path)
    assert (report.status, report.applied) == ("applied", 1)
    assert (await installments(sqlite_engine))[0].channel == "DANA"


# --- an older file never overwrites newer facts ------------------------------------------------------------------


async def test_an_older_platform_report_changes_nothing_a_newer_one_set(engine: AsyncEngine, tmp_path: Path) -> None:
    await seed(engine)
    nov20 = write_csv(
        tmp_path / "2024-06-20.csv",
        PR_HEADER,
        [report_row("V-1", completed="2024-06-10", name="Budi", report_date="2024-06-20")],
    )
    nov21 = write_csv(
        tmp_path / "2024-06-21.csv",
        PR_HEADER,
        [report_row("V-1", completed="2024-06-10", name="Budi Santoso", report_date="2024-06-21")],
    )
    assert (await run(engine, REPORT, nov20)).applied == 1
    assert (await run(engine, REPORT, nov21)).applied == 1
    assert (await enrollment(engine, "V-1")).name_at_institution == "Budi Santoso"
    logged = len(await events(engine))

    # The 20th's report once more, late: its row counts as unchanged, and a voucher it alone has is still new.
    late = write_csv(
        tmp_path / "late.csv",
        PR_HEADER,
        [
            report_row("V-1", completed="2024-06-10", name="Budi", rated="2024-06-11", report_date="2024-06-20"),
            report_row("V-2", 2, report_date="2024-06-20"),
        ],
    )
    report = await run(engine, REPORT, late)
    assert (report.status, report.applied, report.unchanged, report.rejected) == ("applied", 1, 1, [])
    stored = await enrollment(engine, "V-1")
    assert (stored.name_at_institution, stored.rated_on, stored.last_report_date) == (
        "Budi Santoso",
        None,
        date(2024, 6, 21),
    )
    assert [(e.kind, e.data.get("voucher_code")) for e in (await events(engine))[logged:]] == [("created", "V-2")]

    # A report of the same day may correct it; a newer one moves the date on.
    same_day = [
        report_row("V-1", completed="2024-06-10", name="Budi Santoso", rated="2024-06-12", report_date="2024-06-21")
    ]
    assert (await run(engine, REPORT, write_csv(tmp_path / "fix.csv", PR_HEADER, same_day))).applied == 1
    newer = [report_row("V-1", completed="2024-06-10", name="Budi S.", report_date="2024-06-24")]
    assert (await run(engine, REPORT, write_csv(tmp_path / "newer.csv", PR_HEADER, newer))).applied == 1
    stored = await enrollment(engine, "V-1")
    assert (stored.name_at_institution, stored.rated_on, stored.last_report_date) == (
        "Budi S.",
        date(2024, 6, 12),
        date(2024, 6, 24),
    )
    assert (await events(engine))[-1].data == {"name_at_institution": ["Budi Santoso", "Budi S."]}


async def test_older_pmo_results_change_nothing_newer_ones_set(engine: AsyncEngine, tmp_path: Path) -> None:
    await enrolled(engine, tmp_path)
    nov20 = write_csv(
        tmp_path / "pmo-20.csv", PMO_HEADER, [["V-1", "2024-06-20", "CERT-1", "Budi", 1, 600000, "2024-06-28"]]
    )
    nov21 = write_csv(
        tmp_path / "pmo-21.csv", PMO_HEADER, [["V-1", "2024-06-21", "CERT-1", "Budi Santoso", 1, 600000, "2024-06-29"]]
    )
    assert (await run(engine, PMO, nov20)).applied == 1
    assert (await run(engine, PMO, nov21)).applied == 1
    logged = len(await events(engine))

    late = write_csv(
        tmp_path / "pmo-late.csv",
        PMO_HEADER,
        [
            ["V-1", "2024-06-20", "CERT-1", "Budi", 1, 600000, "2024-06-28"],
            ["V-1", "2024-06-20", "CERT-1", "Budi", 2, 600000, "2024-07-28"],  # not in the newer results either
            ["V-2", "2024-06-20", "CERT-2", "Siti", "", "", ""],  # a certificate not known yet
        ],
    )
    report = await run(engine, PMO, late)
    assert (report.status, report.applied, report.unchanged, report.changed_participant_ids) == ("applied", 1, 2, {2})
    async with make_sessionmaker(engine)() as session:
        certificate = (await session.scalars(select(Certificate).where(Certificate.number == "CERT-1"))).one()
    assert (certificate.printed_name, certificate.issued_on) == ("Budi Santoso", date(2024, 6, 21))
    assert [(i.participant_id, i.seq, i.scheduled_on) for i in await installments(engine)] == [
        (1, 1, date(2024, 6, 29))
    ]
    assert [(e.entity, e.kind, e.participant_id) for e in (await events(engine))[logged:]] == [
        ("certificates", "created", 2)
    ]
    assert (await run(engine, PMO, nov21)).unchanged == 1


# --- loading a new database: platforms, trainings, participants, payout accounts ------------------------------

PII_KEY = b"test-pii-key"
PLATFORMS = ImportKind.PLATFORMS
TRAININGS = ImportKind.TRAININGS
PARTICIPANTS = ImportKind.PARTICIPANTS
ACCOUNTS = ImportKind.PAYOUT_ACCOUNTS
PARTICIPANT_HEADER = [
    "participant_id",
    "card_number",
    "nik",
    "legal_name",
    "birth_date",
    "phone",
    "email",
    "wave",
    "accepted_on",
    "membership",
]
ACCOUNT_HEADER = ["participant_id", "channel", "account_number", "holder_name", "phone", "active", "verified"]


def nik_of(born: date, serial: int, *, female: bool = False) -> str:
    """A NIK with a real structure: West Java, regency 73, district 01, the birth date (+40 for women), serial."""
    return f"327301{born.day + (40 if female else 0):02d}{born:%m%y}{serial:04d}"


def card_of(n: int) -> str:
    return f"88{n:014d}"  # 88 is no province: never a NIK


def participant_row(
    n: int,
    *,
    name: str | None = None,
    born: date | None = None,
    nik: str | None = None,
    card: str | None = None,
    phone: str | None = None,
    email: str = "",
    wave: int = 50,
    accepted: str = "2023-03-01",
    membership: str = "active",
) -> list[Any]:
    born = born or date(1990, 1, 1 + n % 28)
    return [
        n,
        card if card is not None else card_of(n),
        nik if nik is not None else nik_of(born, n),
        name if name is not None else f"Peserta {n}",
        born.isoformat(),
        phone if phone is not None else f"0812-{n:04d}-{n:04d}",
        email,
        wave,
        accepted,
        membership,
    ]


async def run_pii(engine: AsyncEngine, kind: ImportKind, path: Path) -> ImportReport:
    return await run_import(engine, kind, path, today=TODAY, pii_key=PII_KEY)


async def participant_rows(engine: AsyncEngine) -> list[tuple[Any, ...]]:
    async with engine.connect() as conn:
        return [tuple(row) for row in await conn.execute(text("SELECT * FROM participants ORDER BY id"))]


async def participants_by_id(engine: AsyncEngine) -> dict[int, Participant]:
    async with make_sessionmaker(engine)() as session:
        return {p.id: p for p in (await session.scalars(select(Participant))).all()}


async def test_participants_are_stored_with_hashed_identifiers_and_the_same_file_again_changes_nothing(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    rows = [
        participant_row(
            1,
            name="Siti Aminah",
            born=date(1995, 8, 17),
            nik=nik_of(date(1995, 8, 17), 1, female=True),
            email="siti@contoh.id",
            accepted="2021-05-03",
        ),
        participant_row(2, phone="+62 812 0000 0002", accepted="2023-02-01", membership="REVOKED"),
        participant_row(3, born=date(2001, 3, 9), nik="3273 0109 0301 0003", card="8800-0000-0000-0003"),
    ]
    path = write_csv(tmp_path / "participants.csv", PARTICIPANT_HEADER, rows)

    first = await run_pii(engine, PARTICIPANTS, path)
    assert (first.status, first.rows_read, first.applied, first.unchanged, first.rejected) == ("applied", 3, 3, 0, [])
    stored = await participants_by_id(engine)
    siti = stored[1]
    assert (siti.legal_name, siti.birth_date, siti.phone, siti.email) == (
        "Siti Aminah",
        date(1995, 8, 17),
        "+6281200010001",
        "siti@contoh.id",
    )
    assert siti.nik_hash == keyed_hash(nik_of(date(1995, 8, 17), 1, female=True), PII_KEY) and siti.nik_last4 == "0001"
    assert siti.card_number_hash == keyed_hash(card_of(1), PII_KEY) and siti.card_number_last4 == "0001"
    assert (siti.wave, siti.accepted_on, siti.scheme, siti.membership) == (50, date(2021, 5, 3), "2020", "active")
    assert (stored[2].phone, stored[2].scheme, stored[2].membership, stored[2].email) == (
        "+6281200000002",
        "2023",
        "revoked",
        None,
    )
    # Written with spaces and dashes, the identifiers hash as their digits (as the bot hashes what people type).
    assert stored[3].nik_hash == keyed_hash("3273010903010003", PII_KEY)
    assert stored[3].card_number_hash == keyed_hash(card_of(3), PII_KEY)

    logged = await events(engine, "participants")
    assert [(e.entity_id, e.participant_id, e.kind, e.source_ref) for e in logged] == [
        (str(n), n, "created", str(first.batch_id)) for n in (1, 2, 3)
    ]
    assert logged[0].data == {
        "nik_last4": "0001",
        "card_number_last4": "0001",
        "legal_name": "Siti Aminah",
        "birth_date": "1995-08-17",
        "phone": mask_phone("+6281200010001"),
        "email": "siti@contoh.id",
        "wave": 50,
        "scheme": "2020",
        "accepted_on": "2021-05-03",
        "membership": "active",
    }
    everything = json.dumps([e.data for e in logged])
    for row in rows:
        for secret in (row[1], row[2], row[5]):
            assert digits_only(str(secret)) not in digits_only(everything)

    table = await participant_rows(engine)
    again = await run_pii(engine, PARTICIPANTS, path)
    assert (again.status, again.applied, again.unchanged) == ("applied", 0, 3)
    # The same rows as JSON Lines (no email field at all) change nothing either.
    objects = [dict(zip(PARTICIPANT_HEADER, row, strict=True)) for row in rows]
    for obj in objects:
        del obj["email"]
    jsonl = await run_pii(engine, PARTICIPANTS, write_jsonl(tmp_path / "participants.jsonl", objects))
    assert (jsonl.status, jsonl.applied, jsonl.unchanged) == ("applied", 0, 3)
    assert len(await events(engine)) == 3
    assert await participant_rows(engine) == table


async def test_a_changed_name_or_phone_is_a_changed_event_with_the_phone_masked(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    before = [participant_row(1, email="satu@contoh.id"), participant_row(2)]
    await run_pii(engine, PARTICIPANTS, write_csv(tmp_path / "a.csv", PARTICIPANT_HEADER, before))
    after = [
        participant_row(1, name="Peserta Satu", phone="081377778888"),  # no email: the stored one stays
        participant_row(2, accepted="2022-12-30", membership="revoked"),
    ]
    report = await run_pii(engine, PARTICIPANTS, write_csv(tmp_path / "b.csv", PARTICIPANT_HEADER, after))
    assert (report.status, report.applied, report.unchanged) == ("applied", 2, 0)
    stored = await participants_by_id(engine)
    assert (stored[1].legal_name, stored[1].phone, stored[1].email) == (
        "Peserta Satu",
        "+6281377778888",
        "satu@contoh.id",
    )
    assert (stored[2].accepted_on, stored[2].scheme, stored[2].membership) == (date(2022, 12, 30), "2020", "revoked")
    changed = [e for e in await events(engine, "participants") if e.kind == "changed"]
    assert [(e.entity_id, e.source_ref) for e in changed] == [("1", str(report.batch_id)), ("2", str(report.batch_id))]
    assert changed[0].data == {
        "legal_name": ["Peserta 1", "Peserta Satu"],
        "phone": [mask_phone("+6281200010001"), mask_phone("+6281377778888")],
    }
    assert changed[1].data == {
        "accepted_on": ["2023-03-01", "2022-12-30"],
        "scheme": ["2023", "2020"],
        "membership": ["active", "revoked"],
    }


async def test_participant_rows_that_cannot_apply_are_rejected_by_line_and_never_show_a_secret(
    engine: AsyncEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    known = [participant_row(100, born=date(1990, 1, 4))]
    assert (await run_pii(engine, PARTICIPANTS, write_csv(tmp_path / "k.csv", PARTICIPANT_HEADER, known))).applied == 1
    monkeypatch.setattr(import_runner, "CHUNK_ROWS", 4)  # the lines are counted across chunks
    line2 = participant_row(1)
    with_letter = nik_of(date(1990, 1, 18), 17)
    rows = [
        line2,  # 2 fine
        participant_row(2, born=date(1990, 1, 5), nik=nik_of(date(1990, 1, 6), 2)),  # 3 the NIK: another birth date
        participant_row(3, nik=card_of(3)),  # 4 a card number given as the NIK
        participant_row(4, card=nik_of(date(1990, 1, 4), 4)),  # 5 a NIK given as the card number
        participant_row(5, nik=nik_of(date(1990, 1, 5), 5)[:15]),  # 6 15 digits
        participant_row(6, phone="0212345678"),  # 7 a Jakarta landline
        participant_row(7, nik=line2[2], born=date(1990, 1, 2)),  # 8 line 2's NIK
        participant_row(8, phone=line2[5]),  # 9 line 2's phone
        participant_row(9, membership="maybe"),  # 10
        participant_row(10, born=date(2024, 7, 2), nik=nik_of(date(2024, 7, 2), 10)),  # 11 born tomorrow
        participant_row(11, accepted="2019-12-31"),  # 12 before the programme
        participant_row(12, name=""),  # 13
        participant_row(13, email="not an address"),  # 14
        participant_row(14, nik=nik_of(date(1990, 1, 4), 100), born=date(1990, 1, 4)),  # 15 participant 100's NIK
        participant_row(100, nik=nik_of(date(1990, 1, 4), 9999), born=date(1990, 1, 4)),  # 16 another NIK for 100
        participant_row(15, card=card_of(100)),  # 17 participant 100's card number
        participant_row(16, nik=""),  # 18
        participant_row(17, nik=with_letter[:12] + "X" + with_letter[12:]),  # 19 a letter in it
    ]
    path = write_csv(tmp_path / "bad.csv", PARTICIPANT_HEADER, rows)

    report = await run_pii(engine, PARTICIPANTS, path)

    assert report.status == "rejected"
    assert [(r.line, r.reason) for r in report.rejected] == [
        (3, "nik_birth_date_mismatch: birth_date"),
        (4, "card_number_as_nik: nik_province"),
        (5, "nik_as_card_number: card_number"),
        (6, "bad_nik: nik_length"),
        (7, "bad_phone: phone_not_mobile"),
        (8, "duplicate: nik as line 2"),
        (9, "duplicate: phone as line 2"),
        (10, "bad_value: membership"),
        (11, "future_date: birth_date"),
        (12, "date_order: accepted_on before the programme"),
        (13, "missing: legal_name"),
        (14, "bad_value: email"),
        (15, "nik_taken"),
        (16, "participant_mismatch: nik"),
        (17, "card_number_taken"),
        (18, "missing: nik"),
        (19, "bad_nik: nik_length"),
    ]
    secrets = [digits_only(str(row[column])) for row in rows for column in (1, 2, 5)]
    for rejected in report.rejected:
        assert not any(secret and secret in digits_only(rejected.reason) for secret in secrets)
    assert (report.rows_read, report.applied, report.unchanged) == (18, 0, 0)
    assert await scalar(engine, "SELECT COUNT(*) FROM participants") == 1
    assert len(await events(engine)) == 1
    assert [b.status for b in await batches(engine)] == ["applied", "rejected"]


async def test_the_participants_import_needs_the_pii_key(sqlite_engine: AsyncEngine, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "p.csv", PARTICIPANT_HEADER, [participant_row(1)])
    with pytest.raises(ImportFileError, match="PII_HASH_KEY"):
        await run(sqlite_engine, PARTICIPANTS, path)
    assert await batches(sqlite_engine) == []


async def test_platforms_and_trainings_with_their_institutions(engine: AsyncEngine, tmp_path: Path) -> None:
    platforms = write_csv(
        tmp_path / "platforms.csv", ["code", "name"], [["tokopedia", "Tokopedia"], ["pintaria", "Pintaria"]]
    )
    report = await run(engine, PLATFORMS, platforms)
    assert (report.status, report.applied) == ("applied", 2)
    assert (await run(engine, PLATFORMS, platforms)).unchanged == 2
    renamed = write_jsonl(tmp_path / "platforms.jsonl", [{"code": "pintaria", "name": "Pintaria (HarukaEdu)"}])
    assert (await run(engine, PLATFORMS, renamed)).applied == 1
    async with make_sessionmaker(engine)() as session:
        assert {p.code: p.name for p in (await session.scalars(select(Platform))).all()} == {
            "tokopedia": "Tokopedia",
            "pintaria": "Pintaria (HarukaEdu)",
        }
    assert [(e.entity_id, e.kind, e.data, e.participant_id) for e in await events(engine, "platforms")] == [
        ("tokopedia", "created", {"code": "tokopedia", "name": "Tokopedia"}, None),
        ("pintaria", "created", {"code": "pintaria", "name": "Pintaria"}, None),
        ("pintaria", "changed", {"name": ["Pintaria", "Pintaria (HarukaEdu)"]}, None),
    ]

    bad_platforms = [["bukalapak", "Bukalapak"], ["bukalapak", "BukaLapak"], ["x" * 33, "X"], ["kemnaker", ""]]
    report = await run(engine, PLATFORMS, write_csv(tmp_path / "bad-platforms.csv", ["code", "name"], bad_platforms))
    assert [(r.line, r.reason) for r in report.rejected] == [
        (3, "duplicate: same code as line 2"),
        (4, "too_long: code"),
        (5, "missing: name"),
    ]
    assert await scalar(engine, "SELECT COUNT(*) FROM platforms") == 2

    header = ["training_code", "title", "institution"]
    trainings = write_csv(
        tmp_path / "trainings.csv",
        header,
        [["TR-1", "Menjahit", "Lembaga A"], ["TR-2", "Barista", "Lembaga B"], ["TR-3", "Akuntansi", "Lembaga A"]],
    )
    report = await run(engine, TRAININGS, trainings)
    assert (report.status, report.applied) == ("applied", 3)
    assert (await run(engine, TRAININGS, trainings)).unchanged == 3
    moved = write_csv(
        tmp_path / "moved.csv", header, [["TR-3", "Akuntansi Dasar", "Lembaga C"], ["TR-1", "Menjahit", "Lembaga A"]]
    )
    report = await run(engine, TRAININGS, moved)
    assert (report.applied, report.unchanged) == (1, 1)
    async with make_sessionmaker(engine)() as session:
        institutions = {i.name: i.id for i in (await session.scalars(select(Institution))).all()}
        stored = {t.code: (t.title, t.institution_id) for t in (await session.scalars(select(Training))).all()}
    assert sorted(institutions) == ["Lembaga A", "Lembaga B", "Lembaga C"]
    assert stored == {
        "TR-1": ("Menjahit", institutions["Lembaga A"]),
        "TR-2": ("Barista", institutions["Lembaga B"]),
        "TR-3": ("Akuntansi Dasar", institutions["Lembaga C"]),
    }
    assert [(e.kind, e.data) for e in await events(engine, "institutions")] == [
        ("created", {"name": "Lembaga A"}),
        ("created", {"name": "Lembaga B"}),
        ("created", {"name": "Lembaga C"}),
    ]
    assert (await events(engine, "trainings"))[-1].data == {
        "title": ["Akuntansi", "Akuntansi Dasar"],
        "institution_id": [institutions["Lembaga A"], institutions["Lembaga C"]],
    }

    bad = write_csv(
        tmp_path / "bad.csv",
        header,
        [["TR-9", "Baru", "Lembaga D"], ["TR-9", "Lagi", "Lembaga D"], ["TR-8", "", "Lembaga D"], ["T" * 65, "X", "Y"]],
    )
    report = await run(engine, TRAININGS, bad)
    assert [(r.line, r.reason) for r in report.rejected] == [
        (3, "duplicate: same training_code as line 2"),
        (4, "missing: title"),
        (5, "too_long: training_code"),
    ]
    assert await scalar(engine, "SELECT COUNT(*) FROM institutions") == 3


async def test_payout_accounts_keep_the_last_4_digits_and_mask_phones_in_the_log(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    await seed(engine)
    rows = [
        [1, "bni", "0123-456-789", "Peserta 1", "", "ya", "TRUE"],
        [2, "OVO", "081200000002", "Peserta 2", "0812 0000 0002", "true", "tidak"],
    ]
    path = write_csv(tmp_path / "accounts.csv", ACCOUNT_HEADER, rows)
    report = await run(engine, ACCOUNTS, path)
    assert (report.status, report.applied) == ("applied", 2)
    assert (await run(engine, ACCOUNTS, path)).unchanged == 2
    async with make_sessionmaker(engine)() as session:
        stored = {a.participant_id: a for a in (await session.scalars(select(PayoutAccount))).all()}
    assert [
        (a.channel, a.account_last4, a.holder_name, a.phone, a.active, a.verified) for a in (stored[1], stored[2])
    ] == [
        ("BNI", "6789", "Peserta 1", None, True, True),
        ("OVO", "0002", "Peserta 2", "+6281200000002", True, False),
    ]
    created = await events(engine, "payout_accounts")
    assert created[1].data == {
        "participant_id": 2,
        "channel": "OVO",
        "account_last4": "0002",
        "holder_name": "Peserta 2",
        "phone": mask_phone("+6281200000002"),
        "active": True,
        "verified": False,
    }

    # JSON Lines with JSON booleans; the e-wallet verified, its phone changed.
    update = {"participant_id": 2, "channel": "ovo", "account_number": "081299998888", "holder_name": "Peserta 2"}
    update |= {"phone": "081299998888", "active": True, "verified": True}
    report = await run(engine, ACCOUNTS, write_jsonl(tmp_path / "accounts.jsonl", [update]))
    assert (report.applied, report.unchanged) == (1, 0)
    assert (await events(engine, "payout_accounts"))[-1].data == {
        "account_last4": ["0002", "8888"],
        "verified": [False, True],
        "phone": [mask_phone("+6281200000002"), mask_phone("+6281299998888")],
    }

    bad = [
        [99, "BNI", "12345678", "Nobody", "", "true", "true"],  # 2 unknown participant
        [3, "DANA", "081200000003", "Peserta 3", "", "true", "true"],  # 3 an e-wallet without its phone
        [3, "GOPAY", "081200000003", "Peserta 3", "081200000003", "perhaps", "true"],  # 4
        [3, "PayPal", "12345678", "Peserta 3", "", "true", "true"],  # 5
        [3, "BCA", "12-3", "Peserta 3", "", "true", "true"],  # 6 too few digits
        [3, "GOPAY", "081200000003", "Peserta 3", "0812", "true", "true"],  # 7 no phone number
    ]
    report = await run(engine, ACCOUNTS, write_csv(tmp_path / "bad.csv", ACCOUNT_HEADER, bad))
    assert [(r.line, r.reason) for r in report.rejected] == [
        (2, "unknown_participant"),
        (3, "missing: phone"),
        (4, "bad_value: active"),
        (5, "bad_value: channel"),
        (6, "bad_value: account_number"),
        (7, "bad_phone: phone_format"),
    ]
    assert await scalar(engine, "SELECT COUNT(*) FROM payout_accounts") == 2


async def test_a_freshly_migrated_database_is_loaded_by_imports_alone(db: Database, tmp_path: Path) -> None:
    """`prakerja-bot migrate`, then the imports: reference data, participants, their reports → a diagnosis."""
    engine = db.engine
    assert await scalar(engine, "SELECT COUNT(*) FROM platforms") == 0
    steps: list[tuple[ImportKind, Path]] = [
        (PLATFORMS, write_csv(tmp_path / "platforms.csv", ["code", "name"], [["tokopedia", "Tokopedia"]])),
        (
            TRAININGS,
            write_csv(
                tmp_path / "trainings.csv",
                ["training_code", "title", "institution"],
                [["TR-1", "Menjahit", "Lembaga A"], ["TR-2", "Barista", "Lembaga B"]],
            ),
        ),
        (
            PARTICIPANTS,
            write_csv(
                tmp_path / "participants.csv",
                PARTICIPANT_HEADER,
                [participant_row(n, accepted="2024-05-02") for n in (1, 2, 3)],
            ),
        ),
        (
            ACCOUNTS,
            write_csv(tmp_path / "accounts.csv", ACCOUNT_HEADER, [[1, "BNI", "1234567890", "Peserta 1", "", "1", "1"]]),
        ),
        (
            REPORT,
            write_csv(
                tmp_path / "report.csv",
                PR_HEADER,
                [
                    report_row("V-1", 1, purchased="2024-05-06", completed="2024-06-20", name="Peserta 1"),
                    report_row(
                        "V-2",
                        2,
                        training="TR-2",
                        purchased="2024-05-06",
                        completed="2024-06-24",
                        name="Peserta 2",
                        rated="2024-06-25",
                        reported="2024-06-27",
                        report_date="2024-06-28",
                    ),
                ],
            ),
        ),
    ]
    for kind, path in steps:
        report = await run_pii(engine, kind, path)
        assert (kind, report.status, report.rejected) == (kind, "applied", [])

    service = StatusService(DatabaseStatusSource(db))
    stages = {}
    for participant_id in (1, 2, 3):
        status = await service.status(participant_id, TODAY)
        assert status is not None
        stages[participant_id] = [d.stage for d in status.diagnoses]
    assert stages == {
        1: [Stage.AWAITING_PLATFORM_REPORT],
        2: [Stage.AWAITING_PMO],
        3: [Stage.NOT_PURCHASED],
    }  # 2024: the report does not wait for the rating
    first = await service.status(1, TODAY)
    assert first is not None and first.facts.scheme == "2023" and first.payout_warnings == ()
    assert first.diagnoses[0].enrollment is not None
    assert first.diagnoses[0].enrollment.institution_name == "Lembaga A"


# --- scale, chunks, concurrency ------------------------------------------------------------------------------


async def test_chunk_by_chunk_a_late_rejection_undoes_the_earlier_chunks(
    engine: AsyncEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(import_runner, "CHUNK_ROWS", 3)
    await seed(engine)
    await run(
        engine, REPORT, write_csv(tmp_path / "old.csv", PR_HEADER, [report_row("OLD-1", 1), report_row("OLD-2", 2)])
    )
    rows = [report_row(f"N-{n}", 1 + n % 3) for n in range(7)]
    rows.insert(4, report_row("OLD-1", 1, completed="2024-02-01"))  # a known voucher mid-file: a change
    mixed = await run(engine, REPORT, write_csv(tmp_path / "mixed.csv", PR_HEADER, rows))
    assert (mixed.status, mixed.rows_read, mixed.applied, mixed.unchanged) == ("applied", 8, 8, 0)
    assert (await enrollment(engine, "OLD-1")).completed_on == date(2024, 2, 1)
    assert await scalar(engine, "SELECT COUNT(*) FROM enrollments") == 9
    assert await scalar(engine, "SELECT COUNT(*) FROM events WHERE kind = 'changed'") == 1

    rows = [report_row(f"M-{n}", 1) for n in range(8)] + [report_row("M-1", 1), report_row("M-9", 99)]
    report = await run(engine, REPORT, write_csv(tmp_path / "late.csv", PR_HEADER, rows))
    assert [(r.line, r.reason) for r in report.rejected] == [
        (10, "duplicate: same voucher_code as line 3"),
        (11, "unknown_participant"),
    ]
    assert await scalar(engine, "SELECT COUNT(*) FROM enrollments WHERE voucher_code LIKE 'M-%'") == 0
    again = await run(engine, REPORT, tmp_path / "mixed.csv")
    assert (again.applied, again.unchanged) == (0, 8)


async def test_a_50_mb_file_streams_with_progress(sqlite_engine: AsyncEngine, tmp_path: Path) -> None:
    await seed(sqlite_engine, participants=500)
    path = tmp_path / "big.csv"
    rows = 640_000
    with path.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(PR_HEADER)
        for n in range(rows):
            done = n % 3 != 0
            out.writerow(
                report_row(
                    f"PK{(n * 2654435761) % 10**10:010d}",
                    1 + n % 500,
                    platform=("tokopedia", "pintaria")[n % 2],
                    training=("TR-1", "TR-2")[n % 2],
                    purchased=f"2024-0{1 + n % 3}-{1 + n % 28:02d}",
                    completed=f"2024-04-{1 + n % 28:02d}" if done else "",
                    name=f"Peserta Nomor {1 + n % 500}" if done else "",
                    rated=f"2024-05-{1 + n % 28:02d}" if done else "",
                )
            )
    assert path.stat().st_size > 50_000_000
    seen: list[int] = []
    report = await run(sqlite_engine, REPORT, path, progress=seen.append)
    assert (report.status, report.rows_read, report.applied) == ("applied", rows, rows)
    # Streamed: progress reported chunk by chunk as the file is read, not once at the end. (How fast is for
    # bench/import_bench.py to measure, never for a test to time.)
    assert seen == sorted(seen) and seen[-1] == rows and len(seen) > 5
    assert await scalar(sqlite_engine, "SELECT COUNT(*) FROM enrollments") == rows
    assert await scalar(sqlite_engine, "SELECT COUNT(*) FROM events") == rows
    # The import gave its connection back as it found it: foreign keys enforced again.
    assert await scalar(sqlite_engine, "PRAGMA foreign_keys") == 1


async def test_the_same_file_imported_twice_at_once_is_applied_once(engine: AsyncEngine, tmp_path: Path) -> None:
    await seed(engine)
    path = write_csv(tmp_path / "same.csv", PR_HEADER, [report_row(f"V-{n}", 1 + n % 3) for n in range(40)])

    reports = await asyncio.gather(run(engine, REPORT, path), run(engine, REPORT, path))
    assert sorted((r.applied, r.unchanged) for r in reports) == [(0, 40), (40, 0)]

    # Two engines: as two processes would.
    other_path = write_csv(tmp_path / "other.csv", PR_HEADER, [report_row(f"W-{n}", 1) for n in range(40)])
    second = make_engine(engine.url.render_as_string(hide_password=False))
    try:
        reports = await asyncio.gather(run(engine, REPORT, other_path), run(second, REPORT, other_path))
    finally:
        await second.dispose()
    assert sorted((r.applied, r.unchanged) for r in reports) == [(0, 40), (40, 0)]
    assert await scalar(engine, "SELECT COUNT(*) FROM enrollments") == 80
    assert await scalar(engine, "SELECT COUNT(*) FROM events") == 80
    assert [b.status for b in await batches(engine)] == ["applied"] * 4


@pytest.mark.parametrize(
    "case",
    [
        test_platform_report_creates_enrollments_and_the_same_file_again_changes_nothing,
        test_bad_rows_are_reported_by_line_and_nothing_is_written,
        test_pmo_results_create_certificates_and_schedules_once,
        test_participants_are_stored_with_hashed_identifiers_and_the_same_file_again_changes_nothing,
        test_payout_accounts_keep_the_last_4_digits_and_mask_phones_in_the_log,
    ],
)
async def test_the_documented_way_in_when_sqlite_refuses_the_image_swap(
    sqlite_engine: AsyncEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: Any
) -> None:
    """On a SQLite that refuses `deserialize` inside the transaction, chunks are copied in row by row: same results."""
    monkeypatch.setattr(import_backend.SqliteBackend, "swap_images", False)
    copied: list[int] = []
    copy_chunk = import_backend.SqliteBackend.copy_chunk

    async def counting(self: import_backend.SqliteBackend, data: bytes) -> None:
        copied.append(len(data))
        await copy_chunk(self, data)

    monkeypatch.setattr(import_backend.SqliteBackend, "copy_chunk", counting)
    await case(sqlite_engine, tmp_path)
    assert copied  # the copy path carried the chunks
