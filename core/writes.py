"""Group commit for the small rows every turn writes (interactions, FAQ answers).

Concurrent turns each hand over their row and wait for it; one flusher writes everything waiting in one
transaction, one multi-row INSERT per table. A busy bot pays one commit for many turns instead of one each, and on
SQLite our own connections stop queueing for the file's write lock. A turn still goes on only after its row is
committed, so nothing it reported is lost if the process dies afterwards.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Table, insert

from core.db import Database, sqlalchemy_errors

log = logging.getLogger(__name__)
MAX_BATCH = 500  # rows per transaction: keeps one flush short even after a stall


@dataclass
class _Row:
    table: Table
    values: dict[str, Any]
    returning_id: bool
    done: asyncio.Future[int | None] = field(repr=False)

    @property
    def shape(self) -> tuple[str, tuple[str, ...], bool]:
        """Rows of one shape go into one statement (a multi-row INSERT needs the same columns)."""
        return self.table.name, tuple(sorted(self.values)), self.returning_id


class RowWriter:
    def __init__(self, db: Database, max_batch: int = MAX_BATCH) -> None:
        self.db = db
        self.max_batch = max_batch
        self._waiting: list[_Row] = []
        self._flusher: asyncio.Task[None] | None = None

    async def insert(self, table: Table, values: dict[str, Any], *, returning_id: bool = False) -> int | None:
        """Insert one row; with `returning_id`, its new primary key. Returns once the row is committed."""
        loop = asyncio.get_running_loop()
        row = _Row(table, values, returning_id, loop.create_future())
        self._waiting.append(row)
        if self._flusher is None or self._flusher.done() or self._flusher.get_loop() is not loop:
            self._flusher = loop.create_task(self._flush())
        return await row.done

    async def close(self) -> None:
        """Wait for the rows handed over so far (on shutdown)."""
        if self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)

    async def _flush(self) -> None:
        # Rows handed over while a batch is being written form the next batch: batches grow with the load.
        while self._waiting:
            batch, self._waiting = self._waiting[: self.max_batch], self._waiting[self.max_batch :]
            try:
                await self._write(batch)
            except Exception as exc:
                if len(batch) == 1:
                    _settle(batch[0], exc)
                    continue
                # One bad row must not fail the others: write them one by one, each with its own outcome.
                log.warning("batch of %d rows failed, writing them one by one: %r", len(batch), exc)
                for row in batch:
                    try:
                        await self._write([row])
                    except Exception as single:
                        _settle(row, single)

    async def _write(self, batch: list[_Row]) -> None:
        shapes: dict[tuple[str, tuple[str, ...], bool], list[_Row]] = {}
        for row in batch:
            shapes.setdefault(row.shape, []).append(row)
        groups = list(shapes.values())
        statements = [(rows[0].table, rows[0].returning_id, [row.values for row in rows]) for rows in groups]
        results = await self.db.run(lambda conn: [_insert_many(conn, *s) for s in statements], write=True)
        for rows, ids in zip(groups, results, strict=True):
            for row, result in zip(rows, ids, strict=True):
                _settle(row, result)


def _insert_many(conn: Connection, table: Table, returning_id: bool, params: list[dict[str, Any]]) -> list[int | None]:
    """One multi-row INSERT; with `returning_id`, the new ids in the order of `params`."""
    if conn.dialect.name == "sqlite":
        plain = _sqlite_insert(conn.dialect, table, tuple(sorted(params[0])), returning_id)
        if plain is not None:
            return _insert_sqlite(conn, plain, returning_id, params)
    if not returning_id:
        conn.execute(_insert_statement(table, returning_id, False), params)
        return [None] * len(params)
    if len(params) == 1:  # a quiet moment's single row: a plain INSERT ... RETURNING, without the ordered batch
        return [int(conn.execute(_insert_statement(table, returning_id, False), params[0]).scalar_one())]
    return [int(i) for i in conn.execute(_insert_statement(table, returning_id, True), params).scalars()]


@functools.cache
def _insert_statement(table: Table, returning_id: bool, ordered: bool) -> Any:
    """Built once per table and kind: a new statement per flush also cost SQLAlchemy its cache key each time."""
    statement = insert(table)
    return statement.returning(table.c.id, sort_by_parameter_order=ordered) if returning_id else statement


@dataclass(frozen=True)
class _PlainInsert:
    sql: str
    order: tuple[str, ...]  # the values' keys, in the statement's parameter order
    defaults: dict[str, Any]  # the columns left out of the values, with their (constant) Python-side defaults
    processors: tuple[Callable[[Any], Any] | None, ...]  # per parameter: SQLAlchemy's conversion of its value


@functools.cache
def _sqlite_insert(dialect: Any, table: Table, keys: tuple[str, ...], returning_id: bool) -> _PlainInsert | None:
    """The INSERT for rows with these keys, compiled once by SQLAlchemy into SQL text for sqlite3 itself; None when
    a column left out has a default that SQLAlchemy must compute per row (then SQLAlchemy executes it)."""
    statement = insert(table).returning(table.c.id) if returning_id else insert(table)
    compiled = statement.compile(dialect=dialect, column_keys=list(keys))
    order = tuple(compiled.positiontup or ())
    defaults: dict[str, Any] = {}
    for name in order:
        if name in keys:
            continue
        default = table.c[name].default if name in table.c else None
        if default is None or not default.is_scalar:
            return None
        defaults[name] = default.arg  # type: ignore[attr-defined]
    # SQLAlchemy's conversions of the values (a float for a Float, a stored form for a date…), applied as it would.
    processors = tuple(table.c[name].type._cached_bind_processor(dialect) for name in order)
    return _PlainInsert(str(compiled), order, defaults, processors)


def _insert_sqlite(
    conn: Connection, plain: _PlainInsert, returning_id: bool, params: list[dict[str, Any]]
) -> list[int | None]:
    """The rows through the lane's sqlite3 connection: SQLAlchemy's executemany (and, with RETURNING, its
    multi-VALUES statement of a new length per batch, prepared again each time) cost more than the rows. One
    prepared statement, run per row (executemany without RETURNING). SQLAlchemy is told a transaction is open, so
    the lane's commit (or rollback) covers these rows too."""
    if not conn.in_transaction():
        conn.begin()
    rows = [
        tuple(
            value if process is None or value is None else process(value)
            for value, process in zip(
                (values[n] if n in values else plain.defaults[n] for n in plain.order), plain.processors, strict=True
            )
        )
        for values in params
    ]
    sqlite = conn.connection.driver_connection
    assert sqlite is not None
    with sqlalchemy_errors(conn, plain.sql, rows):
        if not returning_id:
            sqlite.executemany(plain.sql, rows)
            return [None] * len(rows)
        ids: list[int | None] = []
        for row in rows:
            ((new_id,),) = sqlite.execute(plain.sql, row).fetchall()
            ids.append(int(new_id))
        return ids


def _settle(row: _Row, outcome: int | BaseException | None) -> None:
    if row.done.done():  # the turn that waited for it was cancelled meanwhile
        return
    if isinstance(outcome, BaseException):
        row.done.set_exception(outcome)
    else:
        row.done.set_result(outcome)
