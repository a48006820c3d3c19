"""The Database object owns its SQLite lanes: they start with its first `run`, stop when it closes, and belong to
it alone."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import Connection, text

from core.db import Database


def _lane(conn: Connection) -> threading.Thread:
    """The thread a piece of work ran on (after a real statement on the connection it was given)."""
    conn.execute(text("SELECT 1"))
    return threading.current_thread()


async def test_closing_the_database_stops_its_lanes(tmp_path: Path) -> None:
    async with Database.open(f"sqlite:///{tmp_path / 'lanes.db'}") as db:
        reads, writes = await db.run(_lane), await db.run(_lane, write=True)
        assert reads is not writes and threading.main_thread() not in (reads, writes)
        assert reads.is_alive() and writes.is_alive()
    assert not reads.is_alive() and not writes.is_alive()
    assert not {reads, writes} & set(threading.enumerate())
    with pytest.raises(RuntimeError, match="closed"):
        await db.run(_lane)
    await db.close()  # twice is harmless: an app closes the database a test fixture also closes


async def test_two_databases_on_one_file_have_lanes_of_their_own(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    async with Database.open(url) as first, Database.open(url) as second:
        lanes = {(db, write): await db.run(_lane, write=write) for db in (first, second) for write in (False, True)}
        assert len(set(lanes.values())) == 4
        await first.close()
        assert not lanes[first, False].is_alive() and not lanes[first, True].is_alive()
        assert await second.run(_lane) is lanes[second, False]  # the other one's lanes go on
    assert not any(thread.is_alive() for thread in lanes.values())


async def test_disconnect_closes_the_lanes_and_the_next_run_opens_new_ones(tmp_path: Path) -> None:
    async with Database.open(f"sqlite:///{tmp_path / 'again.db'}") as db:
        before = await db.run(_lane)
        await db.disconnect()
        assert not before.is_alive()
        after = await db.run(_lane)
        assert after is not before and after.is_alive()
    assert not after.is_alive()
