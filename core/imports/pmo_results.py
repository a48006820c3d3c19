"""The PMO's processing results: the certificate of each enrollment and, optionally, its incentive schedule.

One row per installment, the certificate fields repeated on each; a row without installment columns carries
the certificate alone. A re-reported installment keeps its transfer status: only the PMO's facts change. A row
processed before the stored certificate was (its `issued_on`: the processing date of the results that last set
it) comes from an older file: it changes neither the certificate nor an installment.
"""

from __future__ import annotations

from core.imports.backend import Backend
from core.imports.reading import Column, ColumnType
from core.imports.report import ImportKind
from core.imports.spec import EVENT_COLUMNS, Applied, Check, EventInsert, EventSource, ImportSpec
from core.imports.sql import JsonField, sql_text
from core.notifications import Notification, NotificationKind, queue_notifications

_CERTIFICATE_CHANGED = (
    "c.number <> s.certificate_number OR c.printed_name <> s.printed_name OR c.issued_on <> s.processed_on"
)
_INSTALLMENT_CHANGED = "i.amount <> s.amount OR i.scheduled_on <> s.scheduled_on OR i.enrollment_id IS NULL"
_SAME_INSTALLMENT = "i.participant_id = s.participant_id AND i.seq = s.installment_seq"
# The installment was set by newer results, for its own enrollment (another of the participant's vouchers).
_NEWER_INSTALLMENT = (
    "EXISTS (SELECT 1 FROM certificates AS ic WHERE ic.enrollment_id = i.enrollment_id "
    "AND ic.issued_on > s.processed_on)"
)


class PmoResultsImport(ImportSpec):
    kind = ImportKind.PMO_RESULTS
    columns = (
        Column("voucher_code", ColumnType.TEXT, max_len=40),
        Column("processed_on", ColumnType.PAST_DATE),
        Column("certificate_number", ColumnType.TEXT, max_len=64),
        Column("printed_name", ColumnType.TEXT, max_len=200),
        Column("installment_seq", ColumnType.OPTIONAL_ID, in_header=False),
        Column("amount", ColumnType.OPTIONAL_ID, in_header=False),
        Column("scheduled_on", ColumnType.OPTIONAL_DATE, in_header=False),
    )
    key = ("voucher_code", "installment_seq")
    work_columns = (
        ", enrollment_id INTEGER, participant_id INTEGER, first_of_voucher INTEGER, stale INTEGER,"
        " cert_action VARCHAR(8), inst_action VARCHAR(8)"
    )
    stage_indexes = (("certificate_number",), ("participant_id", "installment_seq"))
    reference_joins = (
        "LEFT JOIN certificates AS c ON c.number = s.certificate_number "
        f"LEFT JOIN incentive_installments AS i ON {_SAME_INSTALLMENT}"
    )

    def extra_row_checks(self) -> list[Check]:
        return [
            (
                "(s.installment_seq IS NULL) <> (s.amount IS NULL) "
                "OR (s.installment_seq IS NULL) <> (s.scheduled_on IS NULL)",
                sql_text("incomplete_installment"),
            ),
            ("s.scheduled_on < s.processed_on", sql_text("date_order: scheduled_on before processed_on")),
        ]

    async def resolve(self, db: Backend, stage: str) -> None:
        await db.execute(
            f"UPDATE {stage} AS s SET enrollment_id = e.id, participant_id = e.participant_id "
            "FROM enrollments AS e WHERE e.voucher_code = s.voucher_code"
        )

    def reference_checks(self) -> list[Check]:
        return [
            ("s.enrollment_id IS NULL", sql_text("unknown_voucher")),
            ("c.enrollment_id <> s.enrollment_id", sql_text("certificate_number_taken")),
            ("i.enrollment_id <> s.enrollment_id", sql_text("installment_other_enrollment")),
        ]

    async def file_checks(self, db: Backend, stage: str) -> list[tuple[int, str]]:
        await db.execute(
            f"UPDATE {stage} SET first_of_voucher = 1 "
            f"WHERE line IN (SELECT MIN(line) FROM {stage} GROUP BY voucher_code)"
        )
        conflicting = await db.rows(
            f"SELECT s.line, f.line FROM {stage} AS s JOIN {stage} AS f "
            "ON f.voucher_code = s.voucher_code AND f.first_of_voucher = 1 "
            "WHERE s.line <> f.line AND (s.processed_on <> f.processed_on "
            "OR s.certificate_number <> f.certificate_number OR s.printed_name <> f.printed_name)"
        )
        shared_number = await db.rows(
            f"SELECT s.line, MIN(o.line) FROM {stage} AS s JOIN {stage} AS o "
            "ON o.certificate_number = s.certificate_number AND o.voucher_code <> s.voucher_code "
            "AND o.line < s.line GROUP BY s.line"
        )
        # The same installment of one participant reached through two of their vouchers.
        shared_installment = await db.rows(
            f"SELECT s.line, MIN(o.line) FROM {stage} AS s JOIN {stage} AS o "
            "ON o.participant_id = s.participant_id AND o.installment_seq = s.installment_seq "
            "AND o.line < s.line GROUP BY s.line"
        )
        return (
            [(int(line), f"conflicting_certificate: differs from line {first}") for line, first in conflicting]
            + [(int(line), f"duplicate: certificate_number as line {first}") for line, first in shared_number]
            + [
                (int(line), f"duplicate: installment_seq of the participant as line {first}")
                for line, first in shared_installment
            ]
        )

    async def apply(self, db: Backend, stage: str, source: EventSource) -> Applied:
        params = source.params()
        # Mark what each row changes before anything is written (every row of a voucher shares its certificate).
        await db.execute(
            f"UPDATE {stage} AS s SET stale = 1 WHERE EXISTS (SELECT 1 FROM certificates AS c "
            "WHERE c.enrollment_id = s.enrollment_id AND c.issued_on > s.processed_on)"
        )
        await db.execute(
            f"UPDATE {stage} AS s SET cert_action = 'created' "
            "WHERE NOT EXISTS (SELECT 1 FROM certificates AS c WHERE c.enrollment_id = s.enrollment_id)"
        )
        await db.execute(
            f"UPDATE {stage} AS s SET cert_action = 'changed' WHERE s.stale IS NULL AND EXISTS (SELECT 1 "
            f"FROM certificates AS c WHERE c.enrollment_id = s.enrollment_id AND ({_CERTIFICATE_CHANGED}))"
        )
        await db.execute(
            f"UPDATE {stage} AS s SET inst_action = 'created' WHERE s.installment_seq IS NOT NULL AND s.stale IS NULL "
            f"AND NOT EXISTS (SELECT 1 FROM incentive_installments AS i WHERE {_SAME_INSTALLMENT})"
        )
        await db.execute(
            f"UPDATE {stage} AS s SET inst_action = 'changed' WHERE s.stale IS NULL AND EXISTS (SELECT 1 FROM "
            f"incentive_installments AS i WHERE {_SAME_INSTALLMENT} AND ({_INSTALLMENT_CHANGED}) "
            f"AND NOT {_NEWER_INSTALLMENT})"
        )

        first = "s.first_of_voucher = 1"
        certificate_changes = db.json_object(
            [
                JsonField("number", "c.number", "s.certificate_number", "c.number <> s.certificate_number"),
                JsonField("printed_name", "c.printed_name", "s.printed_name", "c.printed_name <> s.printed_name"),
                JsonField("issued_on", "c.issued_on", "s.processed_on", "c.issued_on <> s.processed_on"),
            ]
        )
        await db.execute(
            EVENT_COLUMNS
            + EventInsert("certificates", "c.id", "s.participant_id", "changed").select_list(certificate_changes)
            + f" FROM {stage} AS s JOIN certificates AS c ON c.enrollment_id = s.enrollment_id "
            f"WHERE s.cert_action = 'changed' AND {first}",
            params,
        )
        await db.execute(
            "UPDATE certificates AS c SET number = s.certificate_number, printed_name = s.printed_name, "
            f"issued_on = s.processed_on FROM {stage} AS s "
            f"WHERE c.enrollment_id = s.enrollment_id AND s.cert_action = 'changed' AND {first}"
        )
        await db.execute(
            "INSERT INTO certificates (enrollment_id, number, printed_name, issued_on) "
            f"SELECT s.enrollment_id, s.certificate_number, s.printed_name, s.processed_on FROM {stage} AS s "
            f"WHERE s.cert_action = 'created' AND {first} ORDER BY s.line"
        )
        certificate_created = db.json_snapshot(
            [(name, f"c.{name}") for name in ("enrollment_id", "number", "printed_name", "issued_on")]
        )
        await db.execute(
            EVENT_COLUMNS
            + EventInsert("certificates", "c.id", "s.participant_id", "created").select_list(certificate_created)
            + f" FROM {stage} AS s JOIN certificates AS c ON c.enrollment_id = s.enrollment_id "
            f"WHERE s.cert_action = 'created' AND {first} ORDER BY c.id",
            params,
        )

        installment_changes = db.json_object(
            [
                JsonField("amount", "i.amount", "s.amount", "i.amount <> s.amount"),
                JsonField("scheduled_on", "i.scheduled_on", "s.scheduled_on", "i.scheduled_on <> s.scheduled_on"),
                JsonField("enrollment_id", "i.enrollment_id", "s.enrollment_id", "i.enrollment_id IS NULL"),
            ]
        )
        await db.execute(
            EVENT_COLUMNS
            + EventInsert("incentive_installments", "i.id", "i.participant_id", "changed").select_list(
                installment_changes
            )
            + f" FROM {stage} AS s JOIN incentive_installments AS i ON {_SAME_INSTALLMENT} "
            "WHERE s.inst_action = 'changed'",
            params,
        )
        await db.execute(
            "UPDATE incentive_installments AS i SET amount = s.amount, scheduled_on = s.scheduled_on, "
            f"enrollment_id = s.enrollment_id FROM {stage} AS s "
            f"WHERE {_SAME_INSTALLMENT} AND s.inst_action = 'changed'"
        )
        await db.execute(
            "INSERT INTO incentive_installments (participant_id, enrollment_id, seq, amount, scheduled_on, status) "
            "SELECT s.participant_id, s.enrollment_id, s.installment_seq, s.amount, s.scheduled_on, 'scheduled' "
            f"FROM {stage} AS s WHERE s.inst_action = 'created' ORDER BY s.line"
        )
        installment_created = db.json_snapshot(
            [(name, f"i.{name}") for name in ("enrollment_id", "seq", "amount", "scheduled_on", "status")]
        )
        await db.execute(
            EVENT_COLUMNS
            + EventInsert("incentive_installments", "i.id", "i.participant_id", "created").select_list(
                installment_created
            )
            + f" FROM {stage} AS s JOIN incentive_installments AS i ON {_SAME_INSTALLMENT} "
            "WHERE s.inst_action = 'created' ORDER BY i.id",
            params,
        )

        # Linked participants hear about a new certificate, in this same transaction (the outbox).
        issued = await db.rows(
            "SELECT s.participant_id, c.number, t.title FROM "
            f"{stage} AS s JOIN certificates AS c ON c.enrollment_id = s.enrollment_id "
            "JOIN enrollments AS e ON e.id = s.enrollment_id JOIN trainings AS t ON t.id = e.training_id "
            f"WHERE s.cert_action = 'created' AND {first}"
        )
        notes = [
            Notification(
                int(p), NotificationKind.CERTIFICATE_ISSUED, str(number), {"training": title, "number": number}
            )
            for p, number, title in issued
        ]
        await db.conn.run_sync(queue_notifications, notes)

        touched = "s.cert_action IS NOT NULL OR s.inst_action IS NOT NULL"
        applied = int(await db.scalar(f"SELECT COUNT(*) FROM {stage} AS s WHERE {touched}"))
        participants = await db.rows(f"SELECT DISTINCT s.participant_id FROM {stage} AS s WHERE {touched}")
        return Applied(rows=applied, changed_participant_ids={int(p) for (p,) in participants})
