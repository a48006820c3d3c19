"""A platform's daily report: the state of each enrollment (bought, completed, name, rated, sent to the PMO).

An unknown voucher creates the enrollment; a known one gets the facts that differ, unless the report is older
than the one that last changed them (a file imported late): that row changes nothing. Built for a million rows:
rows are independent, so the file is checked and applied chunk by chunk, each step one set-based statement.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.imports.reading import Column, ColumnType
from core.imports.report import ImportKind
from core.imports.spec import (
    EVENT_COLUMNS,
    Applied,
    Check,
    EventInsert,
    EventSource,
    ImportSpec,
    changed_optional,
    duplicates,
    first_failing,
)
from core.imports.sql import JsonField, sql_text

if TYPE_CHECKING:
    from core.imports.backend import Backend

_OPTIONAL_FACTS = ("completed_on", "name_at_institution", "rated_on", "reported_on")
_ENROLLMENT_COLUMNS = (
    "voucher_code, participant_id, training_id, platform_code, purchased_on, "
    "completed_on, name_at_institution, rated_on, reported_on"
)


def _changed(stored: str, staged: str) -> str:
    parts = [f"{stored}.purchased_on <> {staged}.purchased_on"]
    parts += [changed_optional(f"{stored}.{fact}", f"{staged}.{fact}") for fact in _OPTIONAL_FACTS]
    not_stale = f"({stored}.last_report_date IS NULL OR {stored}.last_report_date <= {staged}.report_date)"
    return f"({' OR '.join(parts)}) AND {not_stale}"


class PlatformReportImport(ImportSpec):
    kind = ImportKind.PLATFORM_REPORT
    columns = (
        Column("report_date", ColumnType.PAST_DATE),
        Column("platform", ColumnType.TEXT, max_len=32),
        Column("voucher_code", ColumnType.TEXT, max_len=40),
        Column("participant_id", ColumnType.ID),
        Column("training_code", ColumnType.TEXT, max_len=64),
        Column("purchased_on", ColumnType.PAST_DATE),
        Column("completed_on", ColumnType.OPTIONAL_PAST_DATE),
        Column("name_at_institution", ColumnType.OPTIONAL_TEXT, max_len=200),
        Column("rated_on", ColumnType.OPTIONAL_PAST_DATE),
        Column("reported_on", ColumnType.OPTIONAL_PAST_DATE),
    )
    key = ("voucher_code",)
    streaming = True
    # Loaded in participant order: participants are then looked up, and the enrollments' and events'
    # participant indexes written, page by page rather than at random (measured: both inserts a third faster).
    load_order = 3
    reference_joins = (
        "LEFT JOIN participants AS p ON p.id = s.participant_id LEFT JOIN platforms AS pl ON pl.code = s.platform "
        "LEFT JOIN trainings AS t ON t.code = s.training_code"
    )

    def extra_row_checks(self) -> list[Check]:
        return [
            ("s.purchased_on > s.report_date", sql_text("date_order: purchased_on after report_date")),
            ("s.completed_on < s.purchased_on", sql_text("date_order: completed_on before purchased_on")),
            ("s.rated_on < s.completed_on", sql_text("date_order: rated_on before completed_on")),
            ("s.rated_on < s.purchased_on", sql_text("date_order: rated_on before purchased_on")),
            ("s.reported_on < s.purchased_on", sql_text("date_order: reported_on before purchased_on")),
            ("s.reported_on > s.report_date", sql_text("date_order: reported_on after report_date")),
        ]

    def reference_checks(self) -> list[Check]:
        return [
            ("p.id IS NULL", sql_text("unknown_participant")),
            ("pl.code IS NULL", sql_text("unknown_platform")),
            ("t.id IS NULL", sql_text("unknown_training")),
        ]

    async def process_chunk(
        self, db: Backend, chunk: str, stage: str, source: EventSource, after: int, count: int, *, apply: bool
    ) -> Applied:
        params: dict[str, Any] = {**source.params(), "last_id": None}
        created = 0
        if apply:
            params["last_id"] = int(await db.scalar("SELECT COALESCE(MAX(id), 0) FROM enrollments"))
            # Optimistic: one statement inserts every valid row with a new voucher. When that is all of them
            # (the usual daily report), nothing else needs looking at.
            row_problem = " ".join(f"WHEN {condition} THEN 1" for condition, _ in self.row_checks())
            created = await db.execute(
                db.insert_new(
                    "enrollments",
                    f"{_ENROLLMENT_COLUMNS}, last_report_date",
                    "SELECT s.voucher_code, s.participant_id, t.id, s.platform, s.purchased_on, s.completed_on, "
                    f"s.name_at_institution, s.rated_on, s.reported_on, s.report_date FROM {chunk} AS s "
                    "JOIN participants AS p ON p.id = s.participant_id "
                    "JOIN platforms AS pl ON pl.code = s.platform JOIN trainings AS t ON t.code = s.training_code "
                    f"WHERE (CASE {row_problem} END) IS NULL ORDER BY s.pos",
                    "voucher_code",
                ),
                params,
            )
            if created == count:
                await self._created_events(db, params)
                # Only the vouchers stay, for later chunks' duplicate check.
                await self.stage_rows(db, chunk, stage, self.key)
                return Applied(rows=created)
        # Some row is invalid, repeated, or names a known voucher: look at each.
        await self.stage_rows(db, chunk, stage, self.key)
        found = await first_failing(db, chunk, self.row_checks() + self.reference_checks(), self.reference_joins)
        found += await duplicates(db, stage, self.key, after)
        found += await self._mismatches(db, chunk, params["last_id"])
        if found or not apply:
            return Applied(rejected=found)
        changed = await self._apply_changes(db, chunk, params)
        if created:
            await self._created_events(db, params)
        return Applied(rows=created + changed)

    async def _mismatches(self, db: Backend, chunk: str, last_id: int | None) -> list[tuple[int, str]]:
        """A voucher names one purchase: who bought it, where and what never change."""
        known = (
            "JOIN trainings AS t ON t.code = s.training_code JOIN enrollments AS e ON e.voucher_code = s.voucher_code"
        )
        if last_id is not None:
            known += " AND e.id <= :last_id"  # there before this chunk (not just inserted from it)
        checks = [
            ("e.participant_id <> s.participant_id", sql_text("voucher_mismatch: participant_id")),
            ("e.platform_code <> s.platform", sql_text("voucher_mismatch: platform")),
            ("e.training_id <> t.id", sql_text("voucher_mismatch: training_code")),
        ]
        return await first_failing(db, chunk, checks, known, params={"last_id": last_id})

    async def _apply_changes(self, db: Backend, chunk: str, params: dict[str, Any]) -> int:
        known = f"{chunk} AS s JOIN enrollments AS e ON e.voucher_code = s.voucher_code AND e.id <= :last_id"
        where = _changed("e", "s")  # a row from an older report than the one stored is left out: unchanged
        # The events first, while the stored values are still the old ones they record.
        changed_data = db.json_object(
            [JsonField("purchased_on", "e.purchased_on", "s.purchased_on", "e.purchased_on <> s.purchased_on")]
            + [
                JsonField(fact, f"e.{fact}", f"s.{fact}", changed_optional(f"e.{fact}", f"s.{fact}"))
                for fact in _OPTIONAL_FACTS
            ]
        )
        changed_event = EventInsert("enrollments", "e.id", "e.participant_id", "changed")
        changed = await db.execute(
            EVENT_COLUMNS + changed_event.select_list(changed_data) + f" FROM {known} WHERE {where}", params
        )
        if changed:
            updates = ", ".join(
                ["purchased_on = s.purchased_on", "last_report_date = s.report_date"]
                + [f"{fact} = COALESCE(s.{fact}, e.{fact})" for fact in _OPTIONAL_FACTS]
            )
            await db.execute(
                f"UPDATE enrollments AS e SET {updates} FROM {chunk} AS s "
                f"WHERE e.voucher_code = s.voucher_code AND e.id <= :last_id AND {where}",
                params,
            )
        return changed

    async def _created_events(self, db: Backend, params: dict[str, Any]) -> None:
        """A `created` event for each enrollment this chunk inserted (ids after `last_id`: imports run one at a
        time and nothing else creates enrollments), its data the values stored, read back from the new rows."""
        data = db.json_snapshot([(name, f"e.{name}") for name in _ENROLLMENT_COLUMNS.split(", ")])
        event = EventInsert("enrollments", "e.id", "e.participant_id", "created")
        await db.execute(
            EVENT_COLUMNS + event.select_list(data) + " FROM enrollments AS e WHERE e.id > :last_id ORDER BY e.id",
            params,
        )
