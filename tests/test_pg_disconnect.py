"""PostgreSQL connections that die under the pool (no pre-ping round trip on checkout): the server ends them with
`pg_terminate_backend` — on this test's own database only, unlike a restart of the server — and the next use of the
Database must neither fail nor apply a write twice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import Database, make_engine
from tests.conftest import PG_URL

KILL_OTHERS = text(
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
)
OTHERS = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"


@pytest.fixture
async def admin(pg_db: Database) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(PG_URL, isolation_level="AUTOCOMMIT")
    await pg_db.run(lambda conn: conn.execute(text("CREATE TABLE probe (n integer NOT NULL)")), write=True)
    try:
        yield engine
    finally:
        async with engine.connect() as conn:
            await conn.execute(text("DROP TABLE IF EXISTS probe"))
        await engine.dispose()


async def kill_the_others(admin: AsyncEngine, wait: bool = False) -> int:
    """End every other connection to this database; `wait`: until those backends are gone, as after a restart."""
    async with admin.connect() as conn:
        killed = int(await conn.scalar(KILL_OTHERS) or 0)
        for _ in range(1000 if wait else 0):
            if not await conn.scalar(text(OTHERS)):
                break
            await asyncio.sleep(0.01)
    if wait:
        await asyncio.sleep(0.1)  # for this loop to read the end of their sockets
    return killed


def _pid_after(seconds: float) -> Callable[[Connection], int]:
    def work(conn: Connection) -> int:
        return int(conn.execute(text("SELECT pg_backend_pid() FROM pg_sleep(:s)"), {"s": seconds}).scalar_one())

    return work


async def test_pooled_connections_the_server_ended_are_replaced_without_an_error(
    pg_db: Database, admin: AsyncEngine
) -> None:
    # Three connections in the pool (three runs at once, reads and writes), ended by the server.
    before = set(await asyncio.gather(*(pg_db.run(_pid_after(0.05), write=w) for w in (False, True, False))))
    assert len(before) == 3
    assert await kill_the_others(admin, wait=True) >= 3
    # Used first through the engine itself (the services' sessions, the CLI, the web console), which no retry covers:
    # the checkout replaces the dead ones.
    async with pg_db.sessions() as session:
        assert await session.scalar(text("SELECT pg_backend_pid()")) not in before
    async with pg_db.engine.begin() as conn:
        await conn.execute(text("INSERT INTO probe VALUES (1)"))
    after = set(await asyncio.gather(*(pg_db.run(_pid_after(0.05), write=w) for w in (True, False, True))))
    assert not after & before
    # Used right after the kill, before this process could notice: `run` runs its work again on a new connection.
    assert await kill_the_others(admin) >= 3
    again = await asyncio.gather(*(pg_db.run(_pid_after(0.0), write=w) for w in (True, False, True)))
    assert not set(again) & after
    assert await pg_db.run(lambda conn: conn.execute(text("SELECT count(*) FROM probe")).scalar()) == 1


async def test_work_whose_connection_dies_midway_runs_again_and_writes_once(pg_db: Database) -> None:
    calls = 0

    def insert_then_die_the_first_time(conn: Connection) -> int:
        nonlocal calls
        calls += 1
        conn.execute(text("INSERT INTO probe VALUES (:n)"), {"n": calls})
        if calls == 1:  # the server ends this very connection before the transaction commits
            conn.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
        return calls

    await pg_db.run(lambda conn: conn.execute(text("CREATE TABLE probe (n integer NOT NULL)")), write=True)
    try:
        assert await pg_db.run(insert_then_die_the_first_time, write=True) == 2
        assert await pg_db.run(lambda conn: conn.execute(text("SELECT n FROM probe")).scalars().all()) == [2]

        def always_die(conn: Connection) -> None:
            nonlocal calls
            calls += 1
            conn.execute(text("INSERT INTO probe VALUES (0)"))
            conn.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))

        calls = 0
        with pytest.raises(DBAPIError) as failed:
            await pg_db.run(always_die, write=True)
        assert failed.value.connection_invalidated and calls == 2  # once again, not forever
        assert await pg_db.run(lambda conn: conn.execute(text("SELECT n FROM probe")).scalars().all()) == [2]
    finally:
        await pg_db.run(lambda conn: conn.execute(text("DROP TABLE probe")), write=True)
