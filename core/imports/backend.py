"""What differs between SQLite and PostgreSQL for an import: staging tables, bulk loading, the lock, JSON.

Everything else is plain SQL both accept (UPDATE … FROM, INSERT … SELECT, window functions).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection

from core.imports.reading import Column, ColumnType, Record

# Any fixed number: every import takes the same PostgreSQL advisory lock, so imports run one at a time.
_PG_IMPORT_LOCK = 7_246_301_120
_SQLITE_LOCK_WAIT_SECONDS = 3600.0
_SQLITE_CACHE_KIB = 65_536
_SQLITE_TYPES = {ColumnType.ID: "INTEGER", ColumnType.OPTIONAL_ID: "INTEGER"}
_POSTGRES_TYPES = {
    ColumnType.ID: "BIGINT",
    ColumnType.OPTIONAL_ID: "BIGINT",
    ColumnType.PAST_DATE: "DATE",
    ColumnType.OPTIONAL_PAST_DATE: "DATE",
    ColumnType.OPTIONAL_DATE: "DATE",
}


@dataclass(frozen=True)
class JsonField:
    """One `"field": [old, new]` entry of an event's data; left out when `when` (SQL) is false."""

    name: str
    old: str | None  # SQL expression; None for a created row
    new: str
    when: str | None = None


class Backend:
    """One database's way of staging rows, locking, and writing JSON; `conn` is the import's connection.

    The stage is a temporary table holding the file's rows: a position, the declared columns, `line`, then
    the kind's own columns.
    """

    name: str

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    def column_sql(self, column: Column) -> str:
        raise NotImplementedError

    def date_value(self, day: date) -> Any:
        """How a date is bound: SQLite stores ISO text (as SQLAlchemy does), asyncpg takes `date`."""
        raise NotImplementedError

    def timestamp_value(self, moment: datetime) -> Any:
        """How a timestamp is bound in raw SQL: SQLAlchemy's SQLite text in UTC, or the aware datetime."""
        return moment

    # SQLite: the rowid, so each new row gets the next number (nothing is deleted from a stage).
    position_sql = "pos INTEGER PRIMARY KEY"

    async def create_stage(self, stage: str, columns: Sequence[Column], extra: str) -> None:
        """`pos` numbers the rows in the order they are loaded (1, 2, …); `line` is where each is in the file."""
        body = "".join(f", {c.name} {self.column_sql(c)}" for c in columns)
        await self.execute(f"CREATE TEMPORARY TABLE {stage} ({self.position_sql}{body}, line INTEGER NOT NULL{extra})")

    async def create_side(self, table: str, columns: Sequence[tuple[str, str]]) -> None:
        """A table of values kept beside the stage for one chunk at a time, keyed by stage position."""
        body = "".join(f", {name} {sql_type}" for name, sql_type in columns)
        await self.execute(f"CREATE TEMPORARY TABLE {table} (pos INTEGER PRIMARY KEY{body})")

    async def clear(self, table: str) -> None:
        await self.execute(f"DELETE FROM {table}")  # SQLite empties a table without triggers at once

    async def load(self, stage: str, names: Sequence[str], records: list[Record]) -> None:
        raise NotImplementedError

    async def drop_table(self, table: str) -> None:
        await self.execute(f"DROP TABLE IF EXISTS {table}")

    async def tune(self) -> None:
        """Settings for one big batch on this connection (outside a transaction), undone by `untune`."""

    async def untune(self) -> None:
        """Undo `tune` once the transaction is over."""

    def json_value(self, sql: str) -> str:
        """A JSON text (built in Python) as a value of the `events.data` column."""
        return sql

    async def lock(self) -> None:
        """Start the transaction that applies an import; only one import holds it at a time."""
        raise NotImplementedError

    async def execute(self, sql: str, params: dict[str, Any] | None = None) -> int:
        result = await self.conn.execute(text(sql), params or {})
        return int(result.rowcount)

    async def scalar(self, sql: str, params: dict[str, Any] | None = None) -> Any:
        return (await self.conn.execute(text(sql), params or {})).scalar()

    async def rows(self, sql: str, params: dict[str, Any] | None = None) -> list[Any]:
        return list((await self.conn.execute(text(sql), params or {})).all())

    def json_object(self, fields: Sequence[JsonField]) -> str:
        raise NotImplementedError


class SqliteBackend(Backend):
    name = "sqlite"

    def __init__(self, conn: AsyncConnection) -> None:
        super().__init__(conn)
        self._cache_sizes: list[int] = []

    def column_sql(self, column: Column) -> str:
        return _SQLITE_TYPES.get(column.type, "TEXT")

    def date_value(self, day: date) -> Any:
        return day.isoformat()

    def timestamp_value(self, moment: datetime) -> Any:
        return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")

    async def load(self, stage: str, names: Sequence[str], records: list[Record]) -> None:
        sql = f"INSERT INTO {stage} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
        # The raw aiosqlite connection: one hop to its thread per chunk, no per-row work in SQLAlchemy.
        driver = (await self.conn.get_raw_connection()).driver_connection
        assert driver is not None
        cursor = await driver.executemany(sql, records)
        await cursor.close()

    async def tune(self) -> None:
        # A bigger page cache keeps the index pages of a million-row insert in memory (default: 2 MB).
        self._cache_sizes = [int(await self.scalar(f"PRAGMA {schema}.cache_size")) for schema in ("main", "temp")]
        for schema in ("main", "temp"):
            await self.execute(f"PRAGMA {schema}.cache_size = {-_SQLITE_CACHE_KIB}")
        # Every reference an import writes is checked first, in SQL, under the same write lock (with the line
        # number to report); SQLite's own per-row foreign-key look-ups would only repeat that, for several
        # seconds at a million rows. Restored by untune(); the connection is dropped if that fails.
        await self.execute("PRAGMA foreign_keys = OFF")
        await self.execute("PRAGMA temp_store = MEMORY")

    async def untune(self) -> None:
        for schema, size in zip(("main", "temp"), self._cache_sizes, strict=False):
            await self.execute(f"PRAGMA {schema}.cache_size = {size}")
        await self.execute("PRAGMA foreign_keys = ON")
        if await self.scalar("PRAGMA foreign_keys") != 1:  # still inside a transaction: never hand it back
            await self.conn.invalidate()

    async def lock(self) -> None:
        # BEGIN IMMEDIATE takes SQLite's write lock now, not at the first write: a second import waits here
        # (busy_timeout, then again) and afterwards sees what the first one committed.
        deadline = time.monotonic() + _SQLITE_LOCK_WAIT_SECONDS
        while True:
            try:
                await self.conn.exec_driver_sql("BEGIN IMMEDIATE")
                return
            except OperationalError as exc:
                await self.conn.rollback()
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)

    def json_object(self, fields: Sequence[JsonField]) -> str:
        # Plain string building (values JSON-quoted): faster here than json_object() plus json_patch() to
        # leave out the fields that did not change.
        parts = []
        for f in fields:
            old = "'null'" if f.old is None else f"json_quote({f.old})"
            part = f"',\"{f.name}\":[' || {old} || ',' || json_quote({f.new}) || ']'"
            parts.append(part if f.when is None else f"CASE WHEN {f.when} THEN {part} ELSE '' END")
        return "'{' || substr(" + " || ".join(parts) + ", 2) || '}'"


class PostgresBackend(Backend):
    name = "postgresql"
    position_sql = "pos SERIAL PRIMARY KEY"  # a fresh sequence per stage: 1, 2, … in load order

    def column_sql(self, column: Column) -> str:
        return _POSTGRES_TYPES.get(column.type, "TEXT")

    def date_value(self, day: date) -> Any:
        return day

    async def load(self, stage: str, names: Sequence[str], records: list[Record]) -> None:
        # COPY through asyncpg, inside the transaction SQLAlchemy has open on this connection.
        driver = (await self.conn.get_raw_connection()).driver_connection
        assert driver is not None
        await driver.copy_records_to_table(stage, records=records, columns=list(names))

    async def lock(self) -> None:
        await self.execute("SELECT pg_advisory_xact_lock(:key)", {"key": _PG_IMPORT_LOCK})

    async def clear(self, table: str) -> None:
        await self.execute(f"TRUNCATE {table}")  # DELETE would leave dead rows: no autovacuum on temp tables

    def json_value(self, sql: str) -> str:
        return f"CAST({sql} AS json)"

    def json_object(self, fields: Sequence[JsonField]) -> str:
        args = []
        for f in fields:
            value = f"json_build_array({'NULL' if f.old is None else f.old}, {f.new})"
            if f.when is not None:
                value = f"CASE WHEN {f.when} THEN {value} END"
            args.append(f"'{f.name}', {value}")
        return f"json_strip_nulls(json_build_object({', '.join(args)}))"


def backend_for(conn: AsyncConnection) -> Backend:
    dialect = conn.dialect.name
    if dialect == "sqlite":
        return SqliteBackend(conn)
    if dialect == "postgresql":
        return PostgresBackend(conn)
    raise NotImplementedError(f"imports support SQLite and PostgreSQL, not {dialect}")
