"""Payout channels' transfer results: each installment transferred, or failed with a reason from the rules.

A result older than the attempt already stored (a file imported late) does not overwrite the newer one.
"""

from __future__ import annotations

from core.imports.backend import Backend
from core.imports.reading import Column, ColumnType
from core.imports.report import ImportKind
from core.imports.spec import EVENT_COLUMNS, Applied, Check, EventInsert, EventSource, ImportSpec
from core.imports.sql import JsonField, sql_text
from core.models import InstallmentStatus, PayoutChannel
from core.notifications import Notification, NotificationKind, queue_notifications
from core.rules import default_rules

_REASON_CHANGED = "COALESCE(i.failure_reason, '') <> COALESCE(s.failure_reason, '')"
_FACTS_CHANGED = (
    "i.status <> s.status OR i.transferred_on IS NULL OR i.transferred_on <> s.transferred_on "
    f"OR i.channel IS NULL OR i.channel <> s.channel OR {_REASON_CHANGED}"
)
_NOT_STALE = "(i.transferred_on IS NULL OR i.transferred_on <= s.transferred_on)"


class TransfersImport(ImportSpec):
    kind = ImportKind.TRANSFERS
    key = ("participant_id", "installment_seq")
    work_columns = ", installment_id INTEGER, action VARCHAR(8)"
    reference_joins = "LEFT JOIN participants AS p ON p.id = s.participant_id"

    def __init__(self) -> None:
        self.columns = (
            Column("participant_id", ColumnType.ID),
            Column("installment_seq", ColumnType.ID),
            Column("channel", ColumnType.CHOICE, choices=tuple(PayoutChannel)),
            Column(
                "status",
                ColumnType.CHOICE,
                choices=(InstallmentStatus.TRANSFERRED, InstallmentStatus.FAILED),
            ),
            Column("transferred_on", ColumnType.PAST_DATE),
            Column(
                "failure_reason",
                ColumnType.OPTIONAL_CHOICE,
                choices=tuple(default_rules().transfer_failures.reasons),
                in_header=False,
            ),
        )

    def extra_row_checks(self) -> list[Check]:
        return [
            ("s.status = 'failed' AND s.failure_reason IS NULL", sql_text("missing: failure_reason")),
            ("s.status = 'transferred' AND s.failure_reason IS NOT NULL", sql_text("unexpected: failure_reason")),
        ]

    async def resolve(self, db: Backend, stage: str) -> None:
        await db.execute(
            f"UPDATE {stage} AS s SET installment_id = i.id FROM incentive_installments AS i "
            "WHERE i.participant_id = s.participant_id AND i.seq = s.installment_seq"
        )

    def reference_checks(self) -> list[Check]:
        return [
            ("p.id IS NULL", sql_text("unknown_participant")),
            ("s.installment_id IS NULL", sql_text("unknown_installment")),
        ]

    async def apply(self, db: Backend, stage: str, source: EventSource) -> Applied:
        await db.execute(
            f"UPDATE {stage} AS s SET action = 'changed' WHERE EXISTS (SELECT 1 FROM incentive_installments AS i "
            f"WHERE i.id = s.installment_id AND ({_FACTS_CHANGED}) AND {_NOT_STALE})"
        )
        changes = db.json_object(
            [
                JsonField("status", "i.status", "s.status", "i.status <> s.status"),
                JsonField(
                    "transferred_on",
                    "i.transferred_on",
                    "s.transferred_on",
                    "i.transferred_on IS NULL OR i.transferred_on <> s.transferred_on",
                ),
                JsonField("channel", "i.channel", "s.channel", "i.channel IS NULL OR i.channel <> s.channel"),
                JsonField("failure_reason", "i.failure_reason", "s.failure_reason", _REASON_CHANGED),
            ]
        )
        await db.execute(
            EVENT_COLUMNS
            + EventInsert("incentive_installments", "i.id", "i.participant_id", "changed").select_list(changes)
            + f" FROM {stage} AS s JOIN incentive_installments AS i ON i.id = s.installment_id "
            "WHERE s.action = 'changed'",
            source.params(),
        )
        # Read before the update: a linked participant hears of each new transfer outcome (same transaction).
        outcomes = await db.rows(
            "SELECT i.participant_id, i.seq, i.amount, s.status, s.channel, s.transferred_on FROM "
            f"{stage} AS s JOIN incentive_installments AS i ON i.id = s.installment_id "
            "WHERE s.action = 'changed' AND i.status <> s.status"
        )
        await db.execute(
            "UPDATE incentive_installments AS i SET status = s.status, transferred_on = s.transferred_on, "
            f"channel = s.channel, failure_reason = s.failure_reason FROM {stage} AS s "
            "WHERE i.id = s.installment_id AND s.action = 'changed'"
        )
        notes = [
            Notification(
                int(p),
                NotificationKind.TRANSFER_DONE if status == "transferred" else NotificationKind.TRANSFER_FAILED,
                f"{p}/{seq}/{status}/{day}",
                {"seq": int(seq), "amount": int(amount), "channel": channel or ""},
            )
            for p, seq, amount, status, channel, day in outcomes
        ]
        await db.conn.run_sync(queue_notifications, notes)
        rows = await db.rows(f"SELECT s.participant_id FROM {stage} AS s WHERE s.action = 'changed'")
        return Applied(rows=len(rows), changed_participant_ids={int(p) for (p,) in rows})
