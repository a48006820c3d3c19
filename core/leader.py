"""One sender across all workers: the worker holding a PostgreSQL advisory lock runs it; others stand by.

The lock lives on a dedicated connection, so it is released the moment its worker dies and another takes over. The
leader checks that connection every few seconds and stops its work when it is gone (after a database restart the lock
is free for anyone), and a new leader waits a little longer than that before it starts, so two senders never run
side by side.
SQLite deployments are single-process: the only worker always leads.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.db import is_sqlite

GRACE_PERIODS = 3  # check periods a new leader waits after taking the lock, before it starts the work


async def run_as_leader(
    engine: AsyncEngine,
    lock_key: int,
    work: Callable[[asyncio.Event], Awaitable[None]],
    stop: asyncio.Event,
    check_every: float = 2.0,
    retry_every: float = 5.0,
) -> None:
    if is_sqlite(str(engine.url)):
        await work(stop)
        return
    while not stop.is_set():
        try:
            async with engine.connect() as conn:
                locked = await conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": lock_key})
                await conn.commit()  # the lock is the session's: no transaction stays open while we lead
                if locked:
                    try:
                        lost = await _lead(conn, work, stop, check_every)
                    finally:
                        with contextlib.suppress(Exception):
                            await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": lock_key})
                            await conn.commit()
                    if not lost or stop.is_set():
                        return
                    continue  # the lock went with its connection: compete for it again
        except Exception:  # the database is away: try again shortly
            pass
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), retry_every)


async def _lead(
    conn: AsyncConnection, work: Callable[[asyncio.Event], Awaitable[None]], stop: asyncio.Event, check_every: float
) -> bool:
    """Run `work` while the lock's connection lives. When it dies (a database restart, a network cut) the lock is gone
    and another worker may take it: the work is stopped at once, so that two senders never run side by side.
    Returns whether the lock was lost (else the work ended, or we were told to stop)."""
    # A leader whose lock connection died notices within two check periods (the wait, then a check that may time
    # out) and stops. The lock may be ours because such a leader just lost it: hold it that long, and a little
    # more, before starting the work.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), GRACE_PERIODS * check_every)
    if stop.is_set():
        return False
    if not await _alive(conn, check_every):
        return True
    halt = asyncio.Event()
    task = asyncio.ensure_future(work(halt))
    stopping = asyncio.ensure_future(stop.wait())
    lost = False
    try:
        while not lost:
            await asyncio.wait({task, stopping}, timeout=check_every, return_when=asyncio.FIRST_COMPLETED)
            if task.done() or stop.is_set():
                break
            lost = not await _alive(conn, check_every)
    finally:
        halt.set()
        stopping.cancel()
        with contextlib.suppress(Exception):
            await task
    return lost


async def _alive(conn: AsyncConnection, within: float) -> bool:
    """Whether the lock's connection still answers; one that hangs longer than `within` counts as gone."""
    try:
        await asyncio.wait_for(conn.execute(text("SELECT 1")), within)
        await asyncio.wait_for(conn.commit(), within)
    except Exception:
        return False
    return True
