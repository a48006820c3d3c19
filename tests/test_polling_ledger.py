"""Long polling confirms an update to Telegram (the getUpdates offset) only once it is handled and recorded in the
update ledger: a `prakerja-bot run` killed with SIGKILL right in a burst loses nothing, and a restart does not handle
again what was done (issue 11, item 3). A real process against the fake Bot API, on an SQLite file."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy import select

from core.db import Database
from core.models import ProcessedUpdate
from core.updates import UpdateLedger
from tests.fake_bot_api import FakeBotApi
from tests.harness import SCRIPT, TOKEN, environment, start_bot, stop, wait_until_polling

BURST = 40


def done_updates(database: Path) -> set[int]:
    with contextlib.closing(sqlite3.connect(database)) as conn:
        return {row[0] for row in conn.execute("SELECT update_id FROM processed_updates WHERE status = 'done'")}


async def test_a_killed_poller_loses_no_update_and_repeats_none_it_finished(tmp_path: Path) -> None:
    database = tmp_path / "polling.db"
    env = environment(f"sqlite+aiosqlite:///{database}")
    demo = await asyncio.to_thread(
        subprocess.run, [str(SCRIPT), "demo"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert demo.returncode == 0, demo.stderr
    async with FakeBotApi(TOKEN) as api:
        env |= {"BOT_API_URL": api.url}
        process = start_bot(tmp_path, env, tmp_path / "first.log")
        try:
            await wait_until_polling(api, process, tmp_path / "first.log")
            users = list(range(7_700_001, 7_700_001 + BURST))
            updates = {api.push_message(user, "/help")["update_id"]: user for user in users}
            # Killed as soon as the burst is being answered: most updates are fetched, few are done.
            await api.wait_for(lambda: len(api.calls_to("sendMessage")) >= 1, 60, "the first answer")
        finally:
            await stop(process, kill=True)
        finished_before = done_updates(database)
        answered_before = {user: len(api.sent(user)) for user in users}
        assert len(finished_before) < BURST  # the kill did land mid-burst

        process = start_bot(tmp_path, env, tmp_path / "second.log")
        try:
            await api.wait_for(lambda: all(api.sent(user) for user in users), 90, "every participant answered")
            await api.wait_for(lambda: done_updates(database) >= set(updates), 30, "every update recorded as done")
        finally:
            await stop(process)
        assert process.returncode == 0, (tmp_path / "second.log").read_text()[-2000:]
    # Nothing lost: every participant got their answer. Nothing done was handled again after the restart.
    for update_id, user in updates.items():
        assert api.sent(user), f"update {update_id} was lost"
        if update_id in finished_before:
            assert len(api.sent(user)) == answered_before[user], f"update {update_id} was handled twice"


async def test_the_polling_inbox_keeps_an_update_until_it_is_done(db: Database) -> None:
    """Polled updates are stored before Telegram forgets them; done ones lose their body (personal data) and are
    never stored again; marking done may come before the store (the turn was quicker), which then leaves it done."""
    ledger = UpdateLedger(db, "polling:test")
    assert await ledger.highest() == 0
    await ledger.receive([(1, '{"update_id": 1}'), (2, '{"update_id": 2}')])
    assert await ledger.open_payloads() == [(1, '{"update_id": 1}'), (2, '{"update_id": 2}')]
    await ledger.done_many([1, 3])  # 3: done before its store
    await ledger.receive([(1, '{"update_id": 1}'), (3, '{"update_id": 3}')])
    assert await ledger.open_payloads() == [(2, '{"update_id": 2}')]
    assert await ledger.done_among([1, 2, 3]) == {1, 3}
    assert await ledger.highest() == 3  # a poller reads done_among only for updates up to here
    async with db.engine.connect() as conn:
        bodies = dict((await conn.execute(select(ProcessedUpdate.update_id, ProcessedUpdate.payload))).all())
    assert bodies == {1: None, 2: '{"update_id": 2}', 3: None}
