"""Exactly-once handling of Telegram updates across webhook workers.

A worker claims an update_id before handling it and marks it done after its work is committed. A redelivery of a
done update is acknowledged without handling; one claimed by a worker that died (its lease ran out) is taken over.
A live worker renews its lease while it works, so the lease can be short and a dead worker's updates are taken over
within seconds.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from core.db import Database, sqlalchemy_errors
from core.models import ProcessedUpdate

LEASE = timedelta(seconds=15)  # a worker renews it every LEASE / 3 while the update is in hand
KEEP = timedelta(days=2)  # Telegram stops redelivering long before this


class Claim(StrEnum):
    NEW = "new"  # handle it
    DONE = "done"  # already handled: acknowledge
    BUSY = "busy"  # another worker is on it right now: ask Telegram to retry later


# The hot statements, built once per dialect with bound parameters instead of a new statement object per call
# (SQLAlchemy then also skips building each one's cache key): the webhook's claim and done for every update, long
# polling's store and done marks for every batch.
_STORE_KEYS = ("update_id", "status", "worker", "claimed_at", "payload")
_DONE_KEYS = ("update_id", "status", "worker", "claimed_at", "done_at")


@dataclass(frozen=True)
class _Statements:
    claim: Any
    done: Any
    store: Any
    mark_done: Any


@functools.cache
def _statements(dialect_name: str) -> _Statements:
    insert = sqlite.insert if dialect_name == "sqlite" else postgresql.insert
    upsert = insert(ProcessedUpdate)
    return _Statements(
        claim=insert(ProcessedUpdate)
        .values(
            update_id=bindparam("id"),
            status="processing",
            worker=bindparam("worker"),
            claimed_at=bindparam("at", type_=ProcessedUpdate.claimed_at.type),
        )
        .on_conflict_do_nothing(index_elements=["update_id"]),
        done=update(ProcessedUpdate)
        .where(ProcessedUpdate.update_id == bindparam("id"))
        .values(status="done", done_at=bindparam("at", type_=ProcessedUpdate.done_at.type)),
        store=insert(ProcessedUpdate).on_conflict_do_nothing(index_elements=["update_id"]),
        mark_done=upsert.on_conflict_do_update(
            index_elements=["update_id"], set_={"status": "done", "done_at": upsert.excluded.done_at, "payload": None}
        ),
    )


@dataclass(frozen=True)
class _SqliteText:
    """A statement compiled once by SQLAlchemy into SQL text, run straight on the lane's sqlite3 connection (as
    core/writes.py runs its INSERTs): SQLAlchemy's execute — its executemany above all — cost more than the ledger's
    few rows. SQLAlchemy is told a transaction is open, so the lane's commit (or rollback) covers these rows too;
    the driver's errors are raised as SQLAlchemy's."""

    sql: str
    names: tuple[str, ...]  # the parameters, in the statement's order
    constants: dict[str, Any]  # the values the statement itself holds (status="done"…), by parameter
    processors: tuple[Callable[[Any], Any] | None, ...]  # per parameter: SQLAlchemy's conversion of its value

    @classmethod
    def of(cls, statement: Any, dialect: Any, keys: Sequence[str] | None = None) -> _SqliteText:
        compiled = statement.compile(dialect=dialect, column_keys=list(keys) if keys is not None else None)
        names = tuple(compiled.positiontup or ())
        binds = compiled.binds
        constants = {n: binds[n].effective_value for n in names if not binds[n].required}
        processors = tuple(compiled._bind_processors.get(n) for n in names)
        return cls(str(compiled), names, constants, processors)

    def _row(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(
            value if process is None or value is None else process(value)
            for value, process in zip(
                (values[n] if n in values else self.constants[n] for n in self.names), self.processors, strict=True
            )
        )

    def execute(self, conn: Connection, values: Mapping[str, Any]) -> int:
        """Run it once; the rows it changed."""
        row = self._row(values)
        with sqlalchemy_errors(conn, self.sql, row):
            return int(_driver(conn).execute(self.sql, row).rowcount)

    def executemany(self, conn: Connection, rows: Iterable[Mapping[str, Any]]) -> None:
        params = [self._row(values) for values in rows]
        with sqlalchemy_errors(conn, self.sql, params):
            _driver(conn).executemany(self.sql, params)


def _driver(conn: Connection) -> sqlite3.Connection:
    if not conn.in_transaction():
        conn.begin()
    driver = conn.connection.driver_connection
    assert isinstance(driver, sqlite3.Connection)
    return driver


@dataclass(frozen=True)
class _SqliteTexts:
    claim: _SqliteText
    done: _SqliteText
    store: _SqliteText
    mark_done: _SqliteText


def _execute(conn: Connection, name: str, params: dict[str, Any] | list[dict[str, Any]]) -> int:
    """Run the hot statement `name` (`_Statements`), many times for a list of parameters; the rows changed by one.
    On SQLite (a lane thread's connection, core.db) its SQL text straight on sqlite3, elsewhere SQLAlchemy's."""
    many = isinstance(params, list)
    if conn.dialect.name == "sqlite":
        text: _SqliteText = getattr(_sqlite_texts(conn.dialect), name)
        if isinstance(params, list):
            text.executemany(conn, params)
            return len(params)
        return text.execute(conn, params)
    result = conn.execute(getattr(_statements(conn.dialect.name), name), params)
    return len(params) if many else int(result.rowcount)


@functools.cache
def _sqlite_texts(dialect: Any) -> _SqliteTexts:
    statements = _statements("sqlite")
    return _SqliteTexts(
        claim=_SqliteText.of(statements.claim, dialect),
        done=_SqliteText.of(statements.done, dialect),
        store=_SqliteText.of(statements.store, dialect, _STORE_KEYS),
        mark_done=_SqliteText.of(statements.mark_done, dialect, _DONE_KEYS),
    )


class UpdateLedger:
    def __init__(self, db: Database, worker: str, lease: timedelta = LEASE) -> None:
        self.db = db
        self.sessions = db.sessions
        self.worker = worker[:64]
        self.lease = lease
        self._insert = sqlite.insert if db.is_sqlite else postgresql.insert

    async def claim(self, update_id: int, now: datetime | None = None) -> Claim:
        moment = now or datetime.now(UTC)

        def claim(conn: Connection) -> Claim:
            if _execute(conn, "claim", {"id": update_id, "worker": self.worker, "at": moment}) == 1:
                return Claim.NEW
            row = conn.execute(
                select(ProcessedUpdate.status, ProcessedUpdate.claimed_at)
                .where(ProcessedUpdate.update_id == update_id)
                .with_for_update()
            ).first()
            if row is None:  # released between our insert and read: try again next delivery
                return Claim.BUSY
            if row.status == "done":
                return Claim.DONE
            if moment - row.claimed_at < self.lease:
                return Claim.BUSY
            conn.execute(  # its worker died mid-update: take it over
                update(ProcessedUpdate)
                .where(ProcessedUpdate.update_id == update_id)
                .values(worker=self.worker, claimed_at=moment)
            )
            return Claim.NEW

        # Every update passes here twice (claim, done): on SQLite in one lane-thread step each (core.db).
        return await self.db.run(claim, write=True)

    async def renew(self, update_id: int, now: datetime | None = None) -> bool:
        """Still working on it: push the lease forward. False when the claim is no longer ours."""
        return await self.renew_many([update_id], now) == 1

    async def renew_many(self, update_ids: Sequence[int], now: datetime | None = None) -> int:
        """`renew` for all the updates a worker has in hand, in one statement; how many claims were still ours."""
        if not update_ids:
            return 0
        async with self.sessions.begin() as session:
            result = await session.execute(
                update(ProcessedUpdate)
                .where(
                    ProcessedUpdate.update_id.in_(list(update_ids)),
                    ProcessedUpdate.worker == self.worker,
                    ProcessedUpdate.status == "processing",
                )
                .values(claimed_at=now or datetime.now(UTC))
            )
            return int(getattr(result, "rowcount", 0) or 0)

    async def done(self, update_id: int, now: datetime | None = None) -> None:
        params = {"id": update_id, "at": now or datetime.now(UTC)}
        await self.db.run(lambda conn: _execute(conn, "done", params), write=True)

    async def record_done(self, update_id: int, now: datetime | None = None) -> None:
        """Handled without a claim: long polling has one consumer (Telegram refuses a second getUpdates), so it only
        needs to know afterwards what is done — and a database busy with a writer must not hold up the turn."""
        moment = now or datetime.now(UTC)
        statement = (
            self._insert(ProcessedUpdate)
            .values(update_id=update_id, status="done", worker=self.worker, claimed_at=moment, done_at=moment)
            .on_conflict_do_update(index_elements=["update_id"], set_={"status": "done", "done_at": moment})
        )
        # Not on the write lane that turns share (core.db): while another writer holds SQLite, this waits on its own
        # connection instead of queueing every turn's writes behind it.
        async with self.db.engine.begin() as conn:
            await conn.execute(statement)

    async def release(self, update_id: int) -> None:
        """Handling failed: forget the claim so Telegram's retry is handled afresh."""
        async with self.sessions.begin() as session:
            await session.execute(
                delete(ProcessedUpdate).where(
                    ProcessedUpdate.update_id == update_id, ProcessedUpdate.status == "processing"
                )
            )

    async def forget_old(self, now: datetime | None = None) -> int:
        cutoff = (now or datetime.now(UTC)) - KEEP
        async with self.sessions.begin() as session:
            result = await session.execute(
                delete(ProcessedUpdate).where(ProcessedUpdate.status == "done", ProcessedUpdate.done_at < cutoff)
            )
            return int(getattr(result, "rowcount", 0) or 0)

    async def is_done(self, update_id: int) -> bool:
        # On SQLite through the read lane (core.db): a read that a writer holding the database never delays.
        statement = select(ProcessedUpdate.status).where(ProcessedUpdate.update_id == update_id)
        status = await self.db.run(lambda conn: conn.execute(statement).scalar())
        return bool(status == "done")

    # --- long polling's durable inbox --------------------------------------------------------------------------
    async def receive(
        self, updates: Sequence[tuple[int, str]], now: datetime | None = None, *, done: Sequence[int] = ()
    ) -> None:
        """Store polled updates (id, body) in one transaction before their offset is confirmed to Telegram; one
        already known (done, or stored before) is left as it is. Once this returns, Telegram may forget them: a
        restart handles what is still open from the stored body (`open_payloads`). `done`: updates handled
        meanwhile, marked done (as `done_many` does) in the same transaction — one commit per polled batch."""
        if not updates and not done:
            return
        moment = now or datetime.now(UTC)
        rows: list[dict[str, Any]] = [
            {"update_id": i, "status": "processing", "worker": self.worker, "claimed_at": moment, "payload": body}
            for i, body in updates
        ]
        done_rows = self._done_rows(done, moment)

        def store(conn: Connection) -> None:
            if rows:
                _execute(conn, "store", rows)
            if done_rows:  # after the store: an update both stored and done here ends up done
                _execute(conn, "mark_done", done_rows)

        await self.db.run(store, write=True)

    async def done_among(self, update_ids: Sequence[int]) -> set[int]:
        """Which of these updates are done (one read; on SQLite through the read lane, which a writer holding the
        database never delays)."""
        statement = select(ProcessedUpdate.update_id).where(
            ProcessedUpdate.update_id.in_(list(update_ids)), ProcessedUpdate.status == "done"
        )
        rows = await self.db.run(lambda conn: conn.execute(statement).scalars().all())
        return {int(i) for i in rows}

    async def highest(self) -> int:
        """The highest update id the ledger holds (0 when empty): an update above it was never seen here."""
        statement = select(func.max(ProcessedUpdate.update_id))
        found = await self.db.run(lambda conn: conn.execute(statement).scalar())
        return int(found or 0)

    async def open_payloads(self) -> list[tuple[int, str]]:
        """Polled updates stored but never marked done (the process stopped meanwhile), oldest first."""
        statement = (
            select(ProcessedUpdate.update_id, ProcessedUpdate.payload)
            .where(ProcessedUpdate.status == "processing", ProcessedUpdate.payload.is_not(None))
            .order_by(ProcessedUpdate.update_id)
        )
        rows = await self.db.run(lambda conn: conn.execute(statement).all())
        return [(int(i), str(body)) for i, body in rows]

    async def done_many(self, update_ids: Sequence[int], now: datetime | None = None) -> None:
        """Mark handled updates done in one transaction, and drop their stored bodies (they hold personal data). An
        upsert: the batch may be done before `receive` stored it, which then leaves it alone."""
        if not update_ids:
            return
        rows = self._done_rows(update_ids, now or datetime.now(UTC))
        await self.db.run(lambda conn: _execute(conn, "mark_done", rows), write=True)

    def _done_rows(self, update_ids: Sequence[int], moment: datetime) -> list[dict[str, Any]]:
        return [
            {"update_id": i, "status": "done", "worker": self.worker, "claimed_at": moment, "done_at": moment}
            for i in dict.fromkeys(update_ids)
        ]
