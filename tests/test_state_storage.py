"""Conversation state lives in aiogram's storage: with Redis, a restart in the middle of identifying loses nothing."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from aiogram.fsm.storage.base import BaseStorage, StorageKey
from aiogram.fsm.storage.redis import RedisStorage

from bot.app import build_app
from bot.flows.types import EventKind, Incoming, Outcome
from bot.settings import Settings
from bot.telegram import REDIS_CONNECTIONS, make_storage
from core.calendar import default_calendar, today_in_jakarta
from core.db import Database
from core.demo import recreate_database, seed_demo
from core.rules import default_rules
from tests.conftest import REDIS_URL

USER = 777_001
DEDI_PHONE = "+6281200000004"


async def _say(storage: BaseStorage, app_settings: Settings, db: Path, event: Incoming) -> Outcome:
    key = StorageKey(bot_id=1, chat_id=event.user_id, user_id=event.user_id)
    app = build_app(app_settings, Database.open(f"sqlite+aiosqlite:///{db}"))
    try:
        outcome = await app.conversation.handle(event, await storage.get_data(key))
    finally:
        await app.close()
    await storage.set_data(key, outcome.state)
    return outcome


@pytest.mark.skipif(not REDIS_URL, reason="REDIS_URL is not set")
async def test_a_restart_mid_conversation_keeps_the_state_in_redis(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    settings = Settings(_env_file=None, database_url=f"sqlite+aiosqlite:///{db}", redis_url=REDIS_URL)
    async with Database.open(settings.database_url) as seeding:
        await recreate_database(seeding)
        await seed_demo(seeding.engine, default_rules(), default_calendar(), settings.pii_key, today_in_jakarta())

    first = make_storage(settings)
    await first.set_data(StorageKey(bot_id=1, chat_id=USER, user_id=USER), {})
    await _say(first, settings, db, Incoming(EventKind.TEXT, USER, "sertifikat saya belum muncul"))
    outcome = await _say(
        first, settings, db, Incoming(EventKind.CONTACT, USER, contact_phone=DEDI_PHONE, contact_user_id=USER)
    )
    assert "tanggal lahir" in outcome.replies[0].text
    await first.close()  # the process stops here

    second = make_storage(settings)  # …and a new one starts
    try:
        outcome = await _say(second, settings, db, Incoming(EventKind.TEXT, USER, "17-08-1995"))
    finally:
        await second.set_data(StorageKey(bot_id=1, chat_id=USER, user_id=USER), {})
        await second.close()
    texts = "\n".join(r.text for r in outcome.replies)
    assert "Dedi Kurniawan" in texts and "Digital Marketing untuk UMKM" in texts


def test_memory_storage_without_redis() -> None:
    from aiogram.fsm.storage.memory import MemoryStorage

    assert isinstance(make_storage(Settings(_env_file=None, redis_url=None)), MemoryStorage)


@pytest.mark.skipif(not REDIS_URL, reason="REDIS_URL is not set")
async def test_more_commands_in_hand_than_redis_connections_wait_for_one_instead_of_failing() -> None:
    """A webhook worker with more updates in hand than its pool has connections: each Redis command waits for a free
    connection (redis-py's default pool raised MaxConnectionsError, and the updates were answered 500)."""
    settings = Settings(_env_file=None, redis_url=REDIS_URL)
    storage = make_storage(settings)
    assert isinstance(storage, RedisStorage)
    redis = storage.redis
    key = f"test-pool-{uuid.uuid4().hex}"
    try:
        # Each BLPOP holds its connection for 0.2 s: 2.5 times as many at once as the pool has.
        results = await asyncio.gather(
            *(redis.blpop([key], timeout=0.2) for _ in range(REDIS_CONNECTIONS * 5 // 2)), return_exceptions=True
        )
        assert [r for r in results if r is not None] == []
    finally:
        await storage.close()
