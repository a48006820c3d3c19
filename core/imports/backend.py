"""What differs between SQLite and PostgreSQL for an import: the chunk and staging tables, bulk loading, the
lock, JSON.

Everything else is plain SQL both accept (UPDATE … FROM, INSERT … SELECT, window functions).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection

from core.imports.reading import Column, ColumnType, iso_date, plain_date
from core.imports.sql import JsonField, sql_text

log = logging.getLogger(__name__)

# Any fixed number: every import takes the same PostgreSQL advisory lock, so imports run one at a time.
_PG_IMPORT_LOCK = 7_246_301_120
_SQLITE_LOCK_WAIT_SECONDS = 3600.0
_SQLITE_CACHE_KIB = 65_536
_SQLITE_CHUNK_SCHEMA = "import_chunk"  # an attached in-memory database: each chunk's image replaces it
_SQLITE_TYPES = {ColumnType.ID: "INTEGER", ColumnType.OPTIONAL_ID: "INTEGER", ColumnType.BOOLEAN: "INTEGER"}
_POSTGRES_TYPES = {
    ColumnType.BOOLEAN: "BOOLEAN",
    ColumnType.ID: "BIGINT",
    ColumnType.OPTIONAL_ID: "BIGINT",
    ColumnType.PAST_DATE: "DATE",
    ColumnType.OPTIONAL_PAST_DATE: "DATE",
    ColumnType.OPTIONAL_DATE: "DATE",
}


class Backend:
    """One database's way of holding chunks and the stage, locking, and writing JSON; `conn` is the import's
    connection.

    A chunk table holds one chunk of the file (pos 1…n in load order, the declared columns, `line`). The stage
    is a temporary table: a position, the declared columns, `line`, then the kind's own columns.
    """

    name: str
    # How a date is bound: SQLite stores ISO text (as SQLAlchemy does), asyncpg takes `date`. A plain function:
    # the reading child process converts with it.
    date_value: Callable[[date], Any] = staticmethod(plain_date)

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    def column_sql(self, column: Column) -> str:
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

    def chunk_columns_sql(self, columns: Sequence[Column]) -> str:
        body = "".join(f", {c.name} {self.column_sql(c)}" for c in columns)
        return f"pos INTEGER PRIMARY KEY{body}, line INTEGER NOT NULL"

    def chunk_table(self, stage: str) -> str:
        """The table each chunk arrives in."""
        raise NotImplementedError

    async def create_chunk_table(self, stage: str, columns: Sequence[Column]) -> None:
        """Called under the lock, before the first chunk."""

    def chunk_image_sql(self, columns: Sequence[Column]) -> tuple[str, str] | None:
        """For the reading process: how to build each chunk as an SQLite database image, or None for records."""
        return None

    async def load_chunk(self, table: str, data: Any) -> None:
        """Replace the chunk table's rows with the next chunk (`ChunkData.data`)."""
        raise NotImplementedError

    def insert_new(self, table: str, columns: str, select: str, key: str) -> str:
        """INSERT … SELECT of rows whose `key` is not taken yet, the others skipped."""
        return f"INSERT INTO {table} ({columns}) {select} ON CONFLICT ({key}) DO NOTHING"

    async def drop_table(self, table: str) -> None:
        await self.execute(f"DROP TABLE IF EXISTS {table}")

    async def tune(self) -> None:
        """Settings for one big batch on this connection (outside a transaction), undone by `untune`."""

    async def untune(self) -> None:
        """Undo `tune` once the transaction is over."""

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
        """A `changed` event's data: `{"field": [old, new], …}` of the fields that changed."""
        raise NotImplementedError

    def json_snapshot(self, fields: Sequence[tuple[str, str]]) -> str:
        """A `created` event's data: `{"field": value, …}` of the (name, SQL expression) pairs, nulls kept."""
        raise NotImplementedError

    def json_boolean(self, value: str) -> str:
        """A boolean column as event data takes it: JSON true/false (SQLite stores 1/0)."""
        return value


class SqliteBackend(Backend):
    name = "sqlite"
    date_value = staticmethod(iso_date)

    def __init__(self, conn: AsyncConnection) -> None:
        super().__init__(conn)
        self._cache_sizes: list[int] = []

    def column_sql(self, column: Column) -> str:
        return _SQLITE_TYPES.get(column.type, "TEXT")

    def timestamp_value(self, moment: datetime) -> Any:
        return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")

    def chunk_table(self, stage: str) -> str:
        return f"{_SQLITE_CHUNK_SCHEMA}.rows"

    def chunk_image_sql(self, columns: Sequence[Column]) -> tuple[str, str] | None:
        names = [c.name for c in columns] + ["line"]
        values = ["NULLIF(?, '')" if c.optional else "?" for c in columns] + ["?"]
        return (
            f"CREATE TABLE rows ({self.chunk_columns_sql(columns)})",
            f"INSERT INTO rows ({', '.join(names)}) VALUES ({', '.join(values)})",
        )

    # False: always take the documented way (copy_chunk); tests use it to cover that way.
    swap_images = True

    async def load_chunk(self, table: str, data: Any) -> None:
        # The image the reading process built becomes the attached schema: no row passes through Python here.
        # sqlite3_deserialize swaps the attached database even inside the import's transaction (it is read
        # only). aiosqlite has no deserialize: the call is queued on its thread as its own methods are. SQLite's
        # documentation allows it to refuse that (BUSY), and aiosqlite's internals may change: then the rows are
        # copied in instead, slower but by documented means.
        if self.swap_images:
            try:
                driver = (await self.conn.get_raw_connection()).driver_connection
                assert driver is not None
                await driver._execute(driver._conn.deserialize, data, name=_SQLITE_CHUNK_SCHEMA)
                return
            except (sqlite3.Error, AttributeError) as exc:
                log.warning("chunk image not swapped in (%r): copying its rows instead", exc)
                type(self).swap_images = False
        await self.copy_chunk(data)

    async def copy_chunk(self, data: bytes) -> None:
        """The chunk's rows into the attached schema through plain SQL (the image is read in a side connection)."""
        create, names, rows = await asyncio.to_thread(_image_rows, data)
        target = f"{_SQLITE_CHUNK_SCHEMA}.rows"
        await self.conn.exec_driver_sql(f"DROP TABLE IF EXISTS {target}")
        await self.conn.exec_driver_sql(create.replace("CREATE TABLE rows", f"CREATE TABLE {target}", 1))
        if rows:
            marks = ", ".join("?" for _ in names)
            await self.conn.exec_driver_sql(f"INSERT INTO {target} ({', '.join(names)}) VALUES ({marks})", rows)

    def insert_new(self, table: str, columns: str, select: str, key: str) -> str:
        # OR IGNORE skips a taken key like ON CONFLICT DO NOTHING, and as no row can then abort the statement
        # half-way, SQLite keeps no statement journal: every index page it changes would be copied to one first.
        # The rows selected are checked, so the unique key is the only constraint that can skip one.
        return f"INSERT OR IGNORE INTO {table} ({columns}) {select}"

    async def tune(self) -> None:
        # A bigger page cache keeps the index pages of a million-row insert in memory (default: 2 MB).
        self._cache_sizes = [int(await self.scalar(f"PRAGMA {schema}.cache_size")) for schema in ("main", "temp")]
        for schema in ("main", "temp"):
            await self.execute(f"PRAGMA {schema}.cache_size = {-_SQLITE_CACHE_KIB}")
        # Every reference an import writes is checked first, in SQL, under the same write lock (with the line
        # number to report); SQLite's own per-row foreign-key look-ups would only repeat that, for several
        # seconds at a million rows. Restored by untune(); the connection is dropped if that fails.
        await self.execute("PRAGMA foreign_keys = OFF")
        await self.execute(f"ATTACH DATABASE ':memory:' AS {_SQLITE_CHUNK_SCHEMA}")  # not allowed in a transaction

    async def untune(self) -> None:
        for schema, size in zip(("main", "temp"), self._cache_sizes, strict=False):
            await self.execute(f"PRAGMA {schema}.cache_size = {size}")
        await self.execute("PRAGMA foreign_keys = ON")
        if await self.scalar("PRAGMA foreign_keys") != 1:  # still inside a transaction: never hand it back
            await self.conn.invalidate()
            return
        attached = {str(name) for _, name, *_ in await self.rows("PRAGMA database_list")}
        if _SQLITE_CHUNK_SCHEMA in attached:
            await self.execute(f"DETACH DATABASE {_SQLITE_CHUNK_SCHEMA}")

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
            part = f"',\"{f.name}\":[' || json_quote({f.old}) || ',' || json_quote({f.new}) || ']'"
            parts.append(part if f.when is None else f"CASE WHEN {f.when} THEN {part} ELSE '' END")
        return "'{' || substr(" + " || ".join(parts) + ", 2) || '}'"

    def json_boolean(self, value: str) -> str:
        return f"json(CASE WHEN {value} THEN 'true' WHEN NOT {value} THEN 'false' END)"

    def json_snapshot(self, fields: Sequence[tuple[str, str]]) -> str:
        # One C call per row: at a million rows far cheaper than building the text in Python or with ||.
        return "json_object(" + ", ".join(f"{sql_text(name)}, {sql}" for name, sql in fields) + ")"


class PostgresBackend(Backend):
    name = "postgresql"
    position_sql = "pos SERIAL PRIMARY KEY"  # a fresh sequence per stage: 1, 2, … in load order

    def __init__(self, conn: AsyncConnection) -> None:
        super().__init__(conn)
        self._chunk_columns: list[str] = []

    def column_sql(self, column: Column) -> str:
        return _POSTGRES_TYPES.get(column.type, "TEXT")

    def chunk_table(self, stage: str) -> str:
        return f"{stage}_chunk"

    async def create_chunk_table(self, stage: str, columns: Sequence[Column]) -> None:
        await self.execute(f"CREATE TEMPORARY TABLE {self.chunk_table(stage)} ({self.chunk_columns_sql(columns)})")
        self._chunk_columns = ["pos"] + [c.name for c in columns] + ["line"]

    async def load_chunk(self, table: str, data: Any) -> None:
        # TRUNCATE, not DELETE: no dead rows (temporary tables get no autovacuum). Then COPY through asyncpg,
        # inside the transaction SQLAlchemy has open on this connection.
        await self.execute(f"TRUNCATE {table}")
        driver = (await self.conn.get_raw_connection()).driver_connection
        assert driver is not None
        await driver.copy_records_to_table(table, records=data, columns=self._chunk_columns)

    async def lock(self) -> None:
        await self.execute("SELECT pg_advisory_xact_lock(:key)", {"key": _PG_IMPORT_LOCK})

    def json_object(self, fields: Sequence[JsonField]) -> str:
        args = []
        for f in fields:
            value = f"json_build_array({f.old}, {f.new})"
            if f.when is not None:
                value = f"CASE WHEN {f.when} THEN {value} END"
            args.append(f"'{f.name}', {value}")
        return f"json_strip_nulls(json_build_object({', '.join(args)}))"

    def json_snapshot(self, fields: Sequence[tuple[str, str]]) -> str:
        return "json_build_object(" + ", ".join(f"{sql_text(name)}, {sql}" for name, sql in fields) + ")"


def backend_for(conn: AsyncConnection) -> Backend:
    dialect = conn.dialect.name
    if dialect == "sqlite":
        return SqliteBackend(conn)
    if dialect == "postgresql":
        return PostgresBackend(conn)
    raise NotImplementedError(f"imports support SQLite and PostgreSQL, not {dialect}")


def _image_rows(data: bytes) -> tuple[str, list[str], list[tuple[Any, ...]]]:
    side = sqlite3.connect(":memory:")
    try:
        side.deserialize(data)
        (create,) = side.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'rows'").fetchone()
        cursor = side.execute("SELECT * FROM rows")
        names = [d[0] for d in cursor.description]
        return str(create), names, cursor.fetchall()
    finally:
        side.close()
