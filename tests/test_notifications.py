"""Imports tell linked participants what changed: queued in the import's own transaction, sent within limits."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from aiogram import Bot
from sqlalchemy import event, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import build_app
from bot.flows.types import EventKind, Incoming
from bot.notifications import ParticipantSender
from bot.settings import Settings
from bot.telegram import make_bot
from bot.texts import default_renderer
from core.accounts import AccountService
from core.calendar import default_calendar, today_in_jakarta
from core.db import Database
from core.demo import seed_demo
from core.imports import ImportKind, run_import
from core.models import OutboxMessage, TelegramLink
from core.notifications import Notification, NotificationKind, queue_notifications
from core.outbox import CHANNEL, OTHERS_POLL, PARTICIPANT, Outbox, ParticipantNotification, StaffPost, encode, enqueue
from core.rules import default_rules
from tests.fake_bot_api import FakeBotApi, blocked_by_user, too_many_requests

HANA, HANA_USER = 7, 91_007  # awaiting the PMO: voucher PKJ00701
NUR, NUR_USER = 13, 91_013  # incentive 1 failed
TRANSFER = {"seq": 1, "amount": 1, "channel": ""}


async def _linked(engine: AsyncEngine) -> AsyncEngine:
    await seed_demo(engine, default_rules(), default_calendar(), b"k", today_in_jakarta())
    async with engine.begin() as conn:
        await conn.execute(
            insert(TelegramLink),
            [
                {"telegram_user_id": HANA_USER, "participant_id": HANA, "locale": "id"},
                {"telegram_user_id": NUR_USER, "participant_id": NUR, "locale": "en"},
            ],
        )
    return engine


@pytest.fixture
async def world(sqlite_engine: AsyncEngine) -> AsyncEngine:
    return await _linked(sqlite_engine)


@pytest.fixture
async def pg_world(pg_engine: AsyncEngine) -> AsyncEngine:
    return await _linked(pg_engine)


@pytest.fixture
async def api() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi() as server:
        for user in (HANA_USER, NUR_USER):
            server.push_message(user, "/start")  # they have talked to the bot before, as linked participants have
        yield server


@pytest.fixture
async def bot(api: FakeBotApi) -> AsyncIterator[Bot]:
    bot = make_bot(Settings(_env_file=None, bot_token=api.token, bot_api_url=api.url))
    yield bot
    await bot.session.close()


async def notifications(engine: AsyncEngine) -> list[OutboxMessage]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(OutboxMessage).where(OutboxMessage.lane == PARTICIPANT))
        return list(rows.all())  # type: ignore[arg-type]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


async def test_a_certificate_import_queues_one_notification_even_when_imported_twice(
    world: AsyncEngine, tmp_path: Path
) -> None:
    today = today_in_jakarta()
    pmo = write(
        tmp_path / "pmo.csv",
        f"voucher_code,processed_on,certificate_number,printed_name\nPKJ00701,{today},SERT/X/1,Hana Safitri\n",
    )
    for _ in range(2):
        report = await run_import(world, ImportKind.PMO_RESULTS, pmo)
        assert report.status == "applied"
    [row] = await notifications(world)
    assert (row.chat_id, row.method, row.payload["kind"]) == (HANA_USER, "notify", "certificate_issued")
    assert row.payload["context"]["number"] == "SERT/X/1"


async def test_a_rejected_import_queues_nothing(world: AsyncEngine, tmp_path: Path) -> None:
    future = today_in_jakarta() + timedelta(days=3)
    pmo = write(
        tmp_path / "pmo.csv",
        "voucher_code,processed_on,certificate_number,printed_name\n"
        f"PKJ00701,{today_in_jakarta()},SERT/X/1,Hana Safitri\nPKJ00701,{future},SERT/X/2,Hana Safitri\n",
    )
    report = await run_import(world, ImportKind.PMO_RESULTS, pmo)
    assert report.status == "rejected"
    assert await notifications(world) == []


async def test_transfer_outcomes_reach_the_participant_in_their_language(
    world: AsyncEngine, tmp_path: Path, api: FakeBotApi, bot: Bot
) -> None:
    day = today_in_jakarta()
    transfers = write(
        tmp_path / "transfers.csv",
        "participant_id,installment_seq,channel,status,transferred_on,failure_reason\n"
        f"{NUR},1,BNI,transferred,{day},\n",
    )
    assert (await run_import(world, ImportKind.TRANSFERS, transfers)).status == "applied"
    sender = ParticipantSender(bot, Outbox(world), AccountService(world), default_renderer())
    assert await sender.drain_once() == 1
    [message] = api.sent(NUR_USER)
    assert "Incentive 1" in message and "Rp600,000" in message and "transferred" in message
    assert await sender.drain_once() == 0  # sent once, never again


async def test_a_participant_who_blocked_the_bot_is_marked_and_skipped(
    world: AsyncEngine, tmp_path: Path, api: FakeBotApi, bot: Bot
) -> None:
    pmo = write(
        tmp_path / "pmo.csv",
        f"voucher_code,processed_on,certificate_number,printed_name\nPKJ00701,{today_in_jakarta()},S/1,Hana Safitri\n",
    )
    await run_import(world, ImportKind.PMO_RESULTS, pmo)
    api.fail_next("sendMessage", blocked_by_user(), chat_id=HANA_USER)
    sender = ParticipantSender(bot, Outbox(world), AccountService(world), default_renderer())
    await sender.drain_once()
    [row] = await notifications(world)
    assert row.status == "failed"
    async with world.connect() as conn:
        blocked = await conn.scalar(select(TelegramLink.blocked_at).where(TelegramLink.telegram_user_id == HANA_USER))
    assert blocked is not None
    # The next change is not queued for them at all.
    transfers = write(
        tmp_path / "t.csv",
        "participant_id,installment_seq,channel,status,transferred_on,failure_reason\n"
        f"{NUR},1,BNI,transferred,{today_in_jakarta()},\n",
    )
    await run_import(world, ImportKind.TRANSFERS, transfers)
    assert [r.chat_id for r in await notifications(world) if r.status == "pending"] == [NUR_USER]


async def test_writing_again_after_blocking_the_bot_resumes_notifications(
    world: AsyncEngine, sqlite_db: Database, tmp_path: Path, api: FakeBotApi, bot: Bot
) -> None:
    async with world.begin() as conn:
        await conn.execute(
            update(TelegramLink).where(TelegramLink.telegram_user_id == HANA_USER).values(blocked_at=func.now())
        )
    app = build_app(Settings(_env_file=None), sqlite_db)  # the database `world` filled
    try:
        outcome = await app.conversation.handle(Incoming(EventKind.COMMAND, HANA_USER, "help"), None)
        assert outcome.replies  # answered as usual
    finally:
        await app.writer.close()
    async with world.connect() as conn:
        blocked = await conn.scalar(select(TelegramLink.blocked_at).where(TelegramLink.telegram_user_id == HANA_USER))
    assert blocked is None
    pmo = write(
        tmp_path / "pmo.csv",
        f"voucher_code,processed_on,certificate_number,printed_name\nPKJ00701,{today_in_jakarta()},S/1,Hana Safitri\n",
    )
    await run_import(world, ImportKind.PMO_RESULTS, pmo)
    assert [r.chat_id for r in await notifications(world) if r.status == "pending"] == [HANA_USER]


async def test_a_429_pauses_and_the_message_still_goes_once(
    world: AsyncEngine, tmp_path: Path, api: FakeBotApi, bot: Bot
) -> None:
    pmo = write(
        tmp_path / "pmo.csv",
        f"voucher_code,processed_on,certificate_number,printed_name\nPKJ00701,{today_in_jakarta()},S/1,Hana Safitri\n",
    )
    await run_import(world, ImportKind.PMO_RESULTS, pmo)
    api.fail_next("sendMessage", too_many_requests(1))
    sender = ParticipantSender(bot, Outbox(world), AccountService(world), default_renderer())
    assert await sender.drain_once() == 0
    await asyncio.sleep(1.1)
    assert await sender.drain_once() == 1
    assert len(api.sent(HANA_USER)) == 1


async def test_one_message_a_second_per_chat(world: AsyncEngine, api: FakeBotApi, bot: Bot) -> None:
    outbox = Outbox(world)
    async with outbox.sessions.begin() as session:
        for n in range(3):
            session.add(
                OutboxMessage(
                    lane=PARTICIPANT,
                    chat_id=HANA_USER,
                    method="notify",
                    payload={
                        "kind": "transfer_done",
                        "locale": "id",
                        "context": {"seq": n + 1, "amount": 1, "channel": ""},
                    },
                    dedupe_key=f"t{n}",
                )
            )
    sender = ParticipantSender(bot, outbox, AccountService(world), default_renderer())
    loop = asyncio.get_running_loop()
    started = loop.time()
    sent = 0
    while sent < 3:
        sent += await sender.drain_once()
        await asyncio.sleep(0.05)
    assert loop.time() - started >= 2.0  # three messages to one chat take at least two seconds
    times = [c.at for c in api.calls_to("sendMessage", HANA_USER)]
    assert all(b - a >= 0.95 for a, b in itertools.pairwise(times))
    async with world.connect() as conn:
        assert (
            await conn.scalar(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == "sent"))
            == 3
        )


@contextlib.asynccontextmanager
async def running(sender: ParticipantSender, idle: float) -> AsyncIterator[None]:
    """The sender's loop for the block, after it has looked once, found nothing and gone quiet; stopped after it."""
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop, idle=idle))
    await asyncio.sleep(0.3)
    try:
        yield
    finally:
        stop.set()
        await task


async def test_a_message_queued_in_this_process_goes_at_once_however_rarely_the_sender_polls(
    world: AsyncEngine, api: FakeBotApi, bot: Bot
) -> None:
    outbox = Outbox(world)
    sender = ParticipantSender(bot, outbox, AccountService(world), default_renderer())
    async with running(sender, idle=60.0):  # it would look again only after a minute
        async with outbox.sessions.begin() as session:
            enqueue(session, HANA_USER, ParticipantNotification("transfer_done", "id", TRANSFER))
        await api.wait_for_messages(HANA_USER, 1, within=5.0)  # the commit rang the sender's doorbell
    assert len(api.sent(HANA_USER)) == 1


async def test_a_message_queued_by_another_process_goes_within_the_stated_bound(
    world: AsyncEngine, api: FakeBotApi, bot: Bot
) -> None:
    sender = ParticipantSender(bot, Outbox(world), AccountService(world), default_renderer())
    async with running(sender, idle=0.5):
        # As the CLI's `notify` in another process would: a row written on a connection of its own, no doorbell rung.
        async with Database.open(str(world.url)) as other, other.engine.begin() as conn:
            method, payload = encode(ParticipantNotification("transfer_done", "id", TRANSFER))
            row = {"lane": PARTICIPANT, "chat_id": HANA_USER, "method": method, "payload": payload}
            await conn.execute(insert(OutboxMessage).values(**row))
        # The idle sender asked nothing since its last look, but the database's WAL changed: on the next stat
        # (SQLITE_STAT_EVERY, with a margin for a busy machine), well before OTHERS_POLL — the look it takes
        # anyway.
        await api.wait_for_messages(HANA_USER, 1, within=OTHERS_POLL - 2.0)
    assert len(api.sent(HANA_USER)) == 1


async def test_on_postgresql_a_commit_that_queued_messages_notifies_their_lanes(pg_world: AsyncEngine) -> None:
    """Every worker queues, only the leader sends: the queuing commit tells it with a NOTIFY (a rolled-back one not)."""
    heard: asyncio.Queue[str] = asyncio.Queue()
    outbox = Outbox(pg_world)
    async with pg_world.connect() as listening:
        driver = (await listening.get_raw_connection()).driver_connection
        assert driver is not None
        await driver.add_listener(CHANNEL, lambda _c, _p, _ch, payload: heard.put_nowait(payload))
        with contextlib.suppress(RuntimeError):
            async with outbox.sessions.begin() as session:
                enqueue(session, HANA_USER, ParticipantNotification("transfer_done", "id", TRANSFER))
                raise RuntimeError("rolled back")
        async with outbox.sessions.begin() as session:
            enqueue(session, HANA_USER, ParticipantNotification("transfer_done", "id", TRANSFER))
            enqueue(session, 1, StaffPost("card", None))
        assert await asyncio.wait_for(heard.get(), 5.0) == "participant,staff"
        await asyncio.sleep(0.2)
        assert heard.empty()


async def test_on_postgresql_an_idle_sender_sends_what_another_worker_queued_at_once(
    pg_world: AsyncEngine, api: FakeBotApi, bot: Bot
) -> None:
    """The sender's process LISTENs: a message queued elsewhere goes well before its look every OTHERS_POLL seconds
    (its `idle`, a minute here, is for messages waiting on a pace)."""
    sender = ParticipantSender(bot, Outbox(pg_world), AccountService(pg_world), default_renderer())
    async with running(sender, idle=60.0), Database.open(str(pg_world.url)) as other:
        await asyncio.sleep(1.0)  # idle: its first look and its LISTEN connection take longer than running()'s wait
        async with other.engine.begin() as conn:  # as the CLI's `notify` and the imports queue: in bulk, no Session
            notification = Notification(NUR, NotificationKind.TRANSFER_DONE, "pg-bulk", TRANSFER)
            assert await conn.run_sync(queue_notifications, [notification]) == 1
        await api.wait_for_messages(NUR_USER, 1, within=OTHERS_POLL - 3.0)


async def test_on_postgresql_a_sender_whose_listen_connection_died_polls_every_idle(
    pg_world: AsyncEngine, api: FakeBotApi, bot: Bot
) -> None:
    """Without its LISTEN connection (killed here) no NOTIFY would reach it: it looks every `idle` seconds again."""
    sender = ParticipantSender(bot, Outbox(pg_world), AccountService(pg_world), default_renderer())
    async with running(sender, idle=0.2), Database.open(str(pg_world.url)) as other:
        await asyncio.sleep(1.0)
        async with other.engine.begin() as conn:
            killed = await conn.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND query LIKE 'LISTEN%'"
                )
            )
        assert killed == 1
        async with other.engine.begin() as conn:  # a row and no NOTIFY: only a look finds it
            method, payload = encode(ParticipantNotification("transfer_done", "id", TRANSFER))
            await conn.execute(
                insert(OutboxMessage).values(lane=PARTICIPANT, chat_id=HANA_USER, method=method, payload=payload)
            )
        await api.wait_for_messages(HANA_USER, 1, within=OTHERS_POLL - 3.0)


async def test_an_idle_sender_asks_the_database_nothing_while_nothing_changes(
    world: AsyncEngine, api: FakeBotApi, bot: Bot
) -> None:
    """Idle, on SQLite, it stats the database file and its WAL once a second and asks the outbox only when they
    changed (or after OTHERS_POLL): an idle bot costs next to no CPU. Its `idle` (how often it looked before,
    and still does while messages wait) is short here, so that a look per `idle` would show."""
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    sender = ParticipantSender(bot, Outbox(world), AccountService(world), default_renderer())
    async with running(sender, idle=0.05):
        event.listen(world.sync_engine, "before_cursor_execute", seen)
        try:
            await asyncio.sleep(2.0)  # 40 times `idle`, two stats
        finally:
            event.remove(world.sync_engine, "before_cursor_execute", seen)
    assert statements == []
