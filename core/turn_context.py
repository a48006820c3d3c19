"""What every participant turn needs before it starts, read in one round trip.

A turn must know whether the FAQ changed since the matcher was built (an admin's edit on any worker is used at
once), whether this Telegram account is linked to a participant, and whether it ever had a case (most never do,
and then no agent can be holding the chat). Separate queries for these, each with its own connection hop, were a
large share of a turn's cost; one statement with scalar subqueries answers them all.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Dialect, bindparam, select

from core.db import Database, sqlalchemy_errors
from core.faq_store import revision_query
from core.models import Case, TelegramLink

_LINK = select(TelegramLink.participant_id).where(TelegramLink.telegram_user_id == bindparam("user"))
_BLOCKED = select(TelegramLink.blocked_at.is_not(None)).where(TelegramLink.telegram_user_id == bindparam("user"))
_HAD_CASE = select(Case.id).where(Case.telegram_user_id == bindparam("user")).limit(1).exists()
_QUERY = select(revision_query().scalar_subquery(), _LINK.scalar_subquery(), _BLOCKED.scalar_subquery(), _HAD_CASE)


@dataclass(frozen=True)
class TurnContext:
    faq_revision: int
    participant_id: int | None  # the linked participant, None when this account has not proved who it is
    blocked: bool  # we marked the chat as having blocked the bot: it writes again, so it unblocked us
    had_case: bool = True  # some case was ever opened for this chat; if not, no person can be on it now


class TurnContextReader:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def read(self, telegram_user_id: int) -> TurnContext:
        def read(conn: Connection) -> TurnContext:
            if conn.dialect.name == "sqlite":
                revision, participant_id, blocked, had_case = _read_sqlite(conn, telegram_user_id)
            else:
                revision, participant_id, blocked, had_case = conn.execute(_QUERY, {"user": telegram_user_id}).one()
            return TurnContext(int(revision), participant_id, bool(blocked), bool(had_case))

        return await self.db.run(read)


def _read_sqlite(conn: Connection, telegram_user_id: int) -> tuple[Any, ...]:
    """The same statement straight on the sqlite3 connection of the lane: SQLAlchemy's execution of the cached
    statement and its result cost ~30 µs a turn, sqlite3's own ~4 µs (the statement is prepared once, in sqlite3's
    cache). The lane ends the read as before (its rollback); the cursor is read to the end, so no statement keeps a
    snapshot open."""
    sql, fixed, users = _sqlite_query(conn.dialect)
    params = list(fixed)
    for i in users:
        params[i] = telegram_user_id
    with sqlalchemy_errors(conn, sql, params):
        rows = conn.connection.driver_connection.execute(sql, params).fetchall()  # type: ignore[union-attr]
    return tuple(rows[0])


@functools.cache
def _sqlite_query(dialect: Dialect) -> tuple[str, tuple[Any, ...], tuple[int, ...]]:
    """`_QUERY` compiled by SQLAlchemy once (as core/writes.py's INSERTs): its text, its fixed parameters in order,
    where the user id goes."""
    compiled = _QUERY.compile(dialect=dialect)
    names = compiled.positiontup or []
    fixed = compiled.construct_params({"user": None})
    users = tuple(i for i, name in enumerate(names) if name == "user")
    return str(compiled), tuple(None if i in users else fixed[n] for i, n in enumerate(names)), users
