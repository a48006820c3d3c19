"""The shape every import kind fills in: its columns, the checks it adds, and how it applies staged rows."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, ClassVar

from core.imports.reading import Column, ColumnType, RowTransform
from core.imports.report import ImportKind
from core.imports.sql import sql_text

if TYPE_CHECKING:
    from core.imports.backend import Backend

Check = tuple[str, str]  # (SQL condition on the staged row `s`, SQL expression of the reason)


def masked_phone_sql(e164: str) -> str:
    """`core.identity.mask_phone` in SQL (both dialects): a phone as the event log keeps it."""
    stars = f"substr('**********', 1, length({e164}) - 8)"  # E.164 has at most 15 digits
    return f"(substr({e164}, 1, 6) || {stars} || substr({e164}, length({e164}) - 1))"


def changed_optional(stored: str, staged: str) -> str:
    """An empty cell never clears a stored fact: a report carries what the sender knows, not retractions."""
    return f"({staged} IS NOT NULL AND ({stored} IS NULL OR {stored} <> {staged}))"


@dataclass
class Applied:
    rows: int = 0  # rows that created or changed something
    changed_participant_ids: set[int] = field(default_factory=set)
    rejected: list[tuple[int, str]] = field(default_factory=list)  # found while applying: roll it all back

    def add(self, other: Applied) -> None:
        self.rows += other.rows
        self.changed_participant_ids |= other.changed_participant_ids
        self.rejected += other.rejected


@dataclass(frozen=True)
class EventSource:
    """What every event of one import records: the batch, and one time for all (the import's start)."""

    ref: str
    at: Any  # as the driver binds `events.occurred_at`

    def params(self) -> dict[str, Any]:
        return {"ref": self.ref, "at": self.at}


@dataclass(frozen=True)
class EventInsert:
    """The columns of an `events` row that an INSERT … SELECT fills for one entity (params: EventSource)."""

    entity: str
    entity_id: str  # SQL
    participant_id: str  # SQL
    kind: str  # created / changed

    def select_list(self, data_sql: str) -> str:
        return (
            f"SELECT :at, {self.participant_id}, {sql_text(self.entity)}, CAST({self.entity_id} AS VARCHAR(64)), "
            f"{sql_text(self.kind)}, {data_sql}, 'import', :ref"
        )


EVENT_COLUMNS = (
    "INSERT INTO events (occurred_at, participant_id, entity, entity_id, kind, data, source_kind, source_ref) "
)


class ImportSpec(ABC):
    """One kind of import. Each chunk of the file arrives in a table of its own (`chunk`: pos 1…n in load
    order, the declared columns, then `line`).

    `columns` are the file's. A kind whose rows need Python work beyond typing (identifiers hashed, phones
    normalised) names a `transform`, run in the reading process; the chunk and the stage then hold its output,
    the `staged_columns`.

    A `streaming` kind's rows are independent: `process_chunk` checks and applies each chunk as it comes, so
    the database works while the next chunk is parsed; each chunk is sorted by `load_order` (a record index)
    when set. Other kinds copy each chunk into a temporary table (`stage`, rows `s`) and are processed once,
    when the whole file is staged, by the generic steps of `process`: duplicates of `key` → `resolve` → row
    and reference checks → `file_checks` → `apply`.
    """

    kind: ClassVar[ImportKind]
    columns: tuple[Column, ...]
    key: ClassVar[tuple[str, ...]]  # what a row addresses; twice in one file is a rejected duplicate
    work_columns: ClassVar[str] = ""  # more stage columns (SQL definitions), filled while checking or applying
    stage_indexes: ClassVar[tuple[tuple[str, ...], ...]] = ()  # for `file_checks`
    reference_joins: ClassVar[str] = ""
    streaming: ClassVar[bool] = False
    load_order: ClassVar[int | None] = None

    @property
    def staged_columns(self) -> tuple[Column, ...]:
        """The columns of the chunk and stage tables: the file's, or what `transform` makes of them."""
        return self.columns

    def transform(self, today: date) -> RowTransform | None:
        """The per-row work of the reading process, if the kind needs any."""
        return None

    async def stage_rows(self, db: Backend, chunk: str, stage: str, columns: Sequence[str] | None = None) -> None:
        """Append the chunk's rows (their `columns`, default all staged ones, and line) to the stage."""
        names = ", ".join([*(columns or [c.name for c in self.staged_columns]), "line"])
        await db.execute(f"INSERT INTO {stage} ({names}) SELECT {names} FROM {chunk} ORDER BY pos")

    async def process_chunk(
        self, db: Backend, chunk: str, stage: str, source: EventSource, after: int, count: int, *, apply: bool
    ) -> Applied:
        """A streaming kind: check the `count` rows of `chunk` and, when `apply` and none is rejected, write
        them. Earlier chunks' rows are in `stage` (their `key` and line, positions up to `after`), for the
        duplicate check across the file."""
        raise NotImplementedError

    def row_checks(self) -> list[Check]:
        """Checks on one staged row alone; the first that holds names the problem."""
        checks: list[Check] = []
        for column in self.staged_columns:
            name, limit = f"s.{column.name}", column.max_len
            missing, too_long = sql_text(f"missing: {column.name}"), sql_text(f"too_long: {column.name}")
            if column.type is ColumnType.TEXT and limit is not None:
                # One test per row instead of two: at a million rows each test costs a tenth of a second.
                checks.append(
                    (
                        f"length({name}) NOT BETWEEN 1 AND {limit}",
                        f"CASE WHEN {name} = '' THEN {missing} ELSE {too_long} END",
                    )
                )
            elif column.type is ColumnType.TEXT:
                checks.append((f"{name} = ''", missing))
            elif limit is not None:
                checks.append((f"length({name}) > {limit}", too_long))
        return checks + self.extra_row_checks()

    def extra_row_checks(self) -> list[Check]:
        return []

    @abstractmethod
    def reference_checks(self) -> list[Check]:
        """Checks against the database, over the stage joined with `reference_joins`."""

    async def resolve(self, db: Backend, stage: str) -> None:  # noqa: B027 - an optional step
        """Fill work columns from the database (ids of what the rows name) before the checks."""

    async def file_checks(self, db: Backend, stage: str) -> list[tuple[int, str]]:
        """Checks across rows of the file."""
        return []

    async def apply(self, db: Backend, stage: str, source: EventSource) -> Applied:
        """Write the staged rows and their events; called only when no row was rejected."""
        raise NotImplementedError

    async def process(
        self, db: Backend, stage: str, source: EventSource, after: int, staged: int, *, apply: bool
    ) -> Applied:
        """Check the `staged` rows after position `after`; when `apply` and none is rejected, write them."""
        found = await duplicates(db, stage, self.key, after)
        if db.name == "postgresql":
            await db.execute(f"ANALYZE {stage}")  # temporary tables get no autovacuum statistics
        await self.resolve(db, stage)
        found += await first_failing(db, stage, self.row_checks() + self.reference_checks(), self.reference_joins)
        for number, columns in enumerate(self.stage_indexes):
            await db.execute(f"CREATE INDEX {stage}_{number} ON {stage} ({', '.join(columns)})")
        found += await self.file_checks(db, stage)
        if found or not apply:
            return Applied(rejected=found)
        return await self.apply(db, stage, source)


async def rows_with_action(db: Backend, stage: str) -> Applied:
    """What a kind that marks each staged row's `action` (created / changed) applied."""
    return Applied(rows=int(await db.scalar(f"SELECT COUNT(*) FROM {stage} WHERE action IS NOT NULL")))


async def duplicates(db: Backend, stage: str, key: Sequence[str], after: int) -> list[tuple[int, str]]:
    """Rows after position `after` whose key an earlier line of the file has (the stage gets a key index)."""
    columns = ", ".join(key)
    await db.execute(f"CREATE INDEX IF NOT EXISTS {stage}_key ON {stage} ({columns})")
    same_key = " AND ".join(f"o.{column} = s.{column}" for column in key)
    rows = await db.rows(
        f"SELECT s.line, MIN(o.line) FROM {stage} AS s JOIN {stage} AS o ON {same_key} AND o.line < s.line "
        "WHERE s.pos > :after GROUP BY s.line",
        {"after": after},
    )
    return [(int(line), f"duplicate: same {columns} as line {first}") for line, first in rows]


async def first_failing(
    db: Backend,
    stage: str,
    checks: Sequence[Check],
    joins: str = "",
    after: int = 0,
    params: dict[str, Any] | None = None,
) -> list[tuple[int, str]]:
    """(line, reason) for every staged row after position `after` where a check holds, the first one winning."""
    if not checks:
        return []
    cases = " ".join(f"WHEN {condition} THEN {reason}" for condition, reason in checks)
    sql = (
        f"SELECT line, reason FROM (SELECT s.line AS line, CASE {cases} END AS reason "
        f"FROM {stage} AS s {joins} WHERE s.pos > :after) AS checked WHERE reason IS NOT NULL"
    )
    rows = await db.rows(sql, {"after": after, **(params or {})})
    return [(int(line), str(reason)) for line, reason in rows]
