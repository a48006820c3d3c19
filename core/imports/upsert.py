"""The recipe every reference-data import writes, declared once: classify each staged row (created / changed /
unchanged), log a `changed` event with `{"field": [old, new]}` of what differs, update, insert the new rows, and
log a `created` event with their values — all set-based SQL over the stage (rows `s`).

A kind declares its table, how a staged row finds its target row, the facts a row may change and the columns of a
new row; `Upsert.apply` writes the SQL. Rows whose facts are unchanged get no action and no event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from core.imports.backend import Backend
from core.imports.spec import EVENT_COLUMNS, EventInsert, EventSource, changed_optional
from core.imports.sql import JsonField

EventValue = Callable[[Backend, str, str], str]  # (db, table alias, column) → SQL of the value an event keeps


def plain_value(db: Backend, alias: str, column: str) -> str:
    return f"{alias}.{column}"


@dataclass(frozen=True)
class Fact:
    """A column a row may change, from the staged column of the same name; an `optional` one is never cleared by
    an empty cell (a report carries what the sender knows, not retractions)."""

    column: str
    optional: bool = False
    staged: str | None = None  # the stage's column, when it is named otherwise


@dataclass(frozen=True)
class Upsert:
    table: str
    alias: str  # of the target table in the SQL, e.g. "p"
    match: str  # SQL: the target row of staged row `s`
    entity_id: str  # SQL over the alias, for events
    facts: tuple[Fact, ...]
    inserted: tuple[tuple[str, str], ...]  # (column, SQL over `s`) of a new row
    snapshot: tuple[str, ...]  # columns a `created` event keeps
    participant_id: str = "NULL"  # SQL over the alias, for events
    created_match: str | None = None  # how a new row is found again, when not by `match`
    event_value: EventValue = plain_value

    def _staged(self, fact: Fact) -> str:
        return f"s.{fact.staged or fact.column}"

    def _differs(self, fact: Fact) -> str:
        stored = f"{self.alias}.{fact.column}"
        return changed_optional(stored, self._staged(fact)) if fact.optional else f"{stored} <> {self._staged(fact)}"

    async def apply(self, db: Backend, stage: str, source: EventSource) -> None:
        """Write the staged rows of `stage` (which has an `action` column) and their events."""
        params = source.params()
        t = self.alias
        target = f"{self.table} AS {t}"
        differs = " OR ".join(self._differs(f) for f in self.facts)
        await db.execute(f"UPDATE {stage} AS s SET action = 'created' WHERE NOT EXISTS (SELECT 1 FROM {target} "
                         f"WHERE {self.match})")  # fmt: skip
        await db.execute(f"UPDATE {stage} AS s SET action = 'changed' WHERE EXISTS (SELECT 1 FROM {target} "
                         f"WHERE {self.match} AND ({differs}))")  # fmt: skip
        fields = [
            JsonField(
                f.column,
                self.event_value(db, t, f.column),
                self.event_value(db, "s", f.staged or f.column),
                self._differs(f) if len(self.facts) > 1 else None,
            )
            for f in self.facts
        ]
        await db.execute(
            EVENT_COLUMNS
            + EventInsert(self.table, self.entity_id, self.participant_id, "changed").select_list(
                db.json_object(fields)
            )
            + f" FROM {stage} AS s JOIN {target} ON {self.match} WHERE s.action = 'changed' ORDER BY s.line",
            params,
        )
        updates = ", ".join(
            f"{f.column} = COALESCE({self._staged(f)}, {t}.{f.column})"
            if f.optional
            else f"{f.column} = {self._staged(f)}"
            for f in self.facts
        )
        await db.execute(f"UPDATE {target} SET {updates} FROM {stage} AS s WHERE {self.match} AND s.action = 'changed'")
        columns = ", ".join(column for column, _ in self.inserted)
        values = ", ".join(sql for _, sql in self.inserted)
        await db.execute(
            f"INSERT INTO {self.table} ({columns}) SELECT {values} FROM {stage} AS s "
            "WHERE s.action = 'created' ORDER BY s.line"
        )
        snapshot = db.json_snapshot([(name, self.event_value(db, t, name)) for name in self.snapshot])
        await db.execute(
            EVENT_COLUMNS
            + EventInsert(self.table, self.entity_id, self.participant_id, "created").select_list(snapshot)
            + f" FROM {stage} AS s JOIN {target} ON {self.created_match or self.match} "
            "WHERE s.action = 'created' ORDER BY s.line",
            params,
        )
