"""The Telegram transport: the Bot (pointed at BOT_API_URL), the Dispatcher with its routers and storage, polling."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

from aiogram import Bot, Dispatcher, methods
from aiogram.client.default import DefaultBotProperties
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.fsm.storage.base import BaseStorage
from aiogram.fsm.storage.memory import MemoryStorage, SimpleEventIsolation
from aiogram.fsm.storage.redis import RedisStorage
from aiogram.methods import GetUpdates
from aiogram.methods.base import Response
from aiogram.types import BotCommand, BotCommandScopeAllPrivateChats, ErrorEvent, Message, Update
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from bot.app import App
from bot.flows.commands import PARTICIPANT_COMMANDS
from bot.flows.types import Reply
from bot.handlers import admin, agent, console_login, participant
from bot.handlers.delivery import deliver
from bot.handlers.throttle import install_throttle
from bot.notifications import ParticipantSender
from bot.outbox_sender import StaffSender
from bot.session import UrlencodedSession
from bot.settings import Settings
from core.console.staff import StaffAccess
from core.db import close_sidecar, make_engine
from core.identity import redact
from core.leader import run_as_leader
from core.locales import LOCALES
from core.outbox import Outbox
from core.retention import Retention
from core.retry import through_blips
from core.updates import UpdateLedger

log = logging.getLogger(__name__)
INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (SQLAlchemyError, RedisError, OSError, TimeoutError)
STAFF_SENDER_LOCK, PARTICIPANT_SENDER_LOCK = 7_401_001, 7_401_002  # PostgreSQL advisory lock keys
RETENTION_LOCK = 7_401_003
POLL_TIMEOUT = 30  # seconds a getUpdates call waits for news when nothing is in hand
MAX_ATTEMPTS = 3  # an update whose handling raises this often is given up (logged), not retried forever
DONE_PATIENCE = 30.0  # seconds to keep trying to record a handled update through a database blip
FORGET_EVERY = 3600.0  # seconds between purges of the ledger's old rows
BUSY_POLL = 0.05  # seconds between getUpdates calls while updates are in hand


def make_bot(settings: Settings) -> Bot:
    if settings.bot_token is None:
        raise ValueError("BOT_TOKEN is not set")
    session = UrlencodedSession(api=TelegramAPIServer.from_base(settings.bot_api_url))
    return Bot(
        settings.bot_token.get_secret_value(),
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
    )


def make_storage(settings: Settings) -> BaseStorage:
    """Conversation state: Redis when configured (survives restarts, shared by workers), else process memory."""
    if settings.redis_url:
        return RedisStorage.from_url(settings.redis_url)
    return MemoryStorage()


def build_dispatcher(app: App, storage: BaseStorage | None = None) -> Dispatcher:
    settings = app.settings
    storage = storage or make_storage(settings)
    dp = Dispatcher(
        storage=storage,
        # One update at a time per chat: a double tap must not run the same step twice.
        events_isolation=storage.create_isolation() if isinstance(storage, RedisStorage) else SimpleEventIsolation(),
        conversation=app.conversation,
        app=app,
        staff=app.staff,
        staff_chat_ids=settings.staff_chat_id,
        agent_ids=settings.agent_ids,
        admin_flow=app.admin,
        admin_ids=frozenset(settings.admin_ids),
        console_access=StaffAccess(app.engine, settings.agent_ids, settings.admin_ids),
        web_url=settings.web_url,
    )
    dp.include_router(admin.router)
    dp.include_router(console_login.router)
    if app.staff is not None:
        dp.include_router(agent.router)
    dp.include_router(participant.router)
    install_throttle(dp, app.services.renderer, settings.default_locale)

    @dp.errors()
    async def on_error(event: ErrorEvent, reraise_infrastructure_errors: bool = False) -> bool:
        # Log without personal data; tell the participant something went wrong instead of going silent.
        log.error("update %s failed: %s", event.update.update_id, redact(repr(event.exception)))
        if reraise_infrastructure_errors and isinstance(event.exception, INFRASTRUCTURE_ERRORS):
            # Webhook mode: fail the request so Telegram redelivers once the database or Redis is back.
            raise event.exception
        message = event.update.message or (event.update.callback_query.message if event.update.callback_query else None)
        if isinstance(message, Message) and message.chat.type == "private" and message.bot is not None:
            text = app.services.renderer.render("error_generic", app.settings.default_locale)
            await deliver(message.bot, message.chat.id, [Reply(text)])
        return True

    return dp


async def set_command_menu(bot: Bot, app: App) -> None:
    renderer = app.services.renderer
    for locale in LOCALES:
        commands = [
            BotCommand(command=c, description=renderer.render(f"cmd_{c}", locale)) for c in PARTICIPANT_COMMANDS
        ]
        # The default menu (no language code) is Indonesian; English speakers' clients pick the "en" one.
        await bot.set_my_commands(
            commands, scope=BotCommandScopeAllPrivateChats(), language_code=None if locale == "id" else "en"
        )


@contextlib.asynccontextmanager
async def background_senders(bot: Bot, app: App) -> AsyncIterator[None]:
    """The staff relay queue and the participant notifications drain while the bot runs, and stop with it.

    With several workers, one of them (the holder of a database lock) runs each sender.
    """
    stop = asyncio.Event()
    outbox = Outbox(app.engine)
    cases = app.staff.cases if app.staff is not None else None
    notifications = ParticipantSender(bot, outbox, app.services.accounts, app.services.renderer, cases=cases)
    tasks = [asyncio.create_task(run_as_leader(app.engine, PARTICIPANT_SENDER_LOCK, notifications.run, stop))]
    if app.staff is not None:
        settings = app.settings
        staff = StaffSender(
            bot, outbox, app.staff.cases, settings.staff_messages_per_minute, settings.staff_topics_per_minute
        )
        tasks.append(asyncio.create_task(run_as_leader(app.engine, STAFF_SENDER_LOCK, staff.run, stop)))
    retention = Retention(app.engine, app.settings.retention_days)  # personal data kept no longer than needed
    tasks.append(asyncio.create_task(run_as_leader(app.engine, RETENTION_LOCK, retention.run, stop)))
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)


# The API calls of a participant's turn and of the relay. pydantic holds parametrised generic models only weakly, so
# after a garbage collection aiogram rebuilds `Response[...]` for a method on its next call (about 0.5 ms each time,
# measured in bench/load.py profiles); holding them keeps every call cheap.
_HOT_METHODS = (
    methods.GetUpdates,
    methods.SendMessage,
    methods.SendChatAction,
    methods.AnswerCallbackQuery,
    methods.EditMessageReplyMarkup,
    methods.CopyMessage,
    methods.SendMediaGroup,
    methods.SendPhoto,
    methods.SendDocument,
)
_PINNED: list[Any] = []


def settle_process() -> None:
    """Once the app is built and before updates arrive: pin aiogram's response models, and move everything made so
    far out of the garbage collector's sight (`gc.freeze`), so that its full collections stay short under load."""
    if not _PINNED:
        _PINNED.extend(Response[m.__returning__] for m in _HOT_METHODS)  # type: ignore[name-defined]
    gc.collect()
    gc.freeze()


async def run_polling(app: App) -> None:
    """Long polling that loses nothing: see `LedgerPolling`. SIGTERM/SIGINT finish the updates in hand first."""
    bot = make_bot(app.settings)
    dp = build_dispatcher(app)
    settle_process()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await bot.delete_webhook(drop_pending_updates=False)
        await set_command_menu(bot, app)
        # The ledger on connections of its own: recording an update as done may wait for a writer holding SQLite,
        # and must not hold a connection the next turns need meanwhile.
        ledger_engine = make_engine(app.settings.database_url)
        try:
            async with background_senders(bot, app):
                polling = LedgerPolling(bot, dp, UpdateLedger(ledger_engine, f"polling:{os.getpid()}"))
                await polling.run(stop)
        finally:
            close_sidecar(ledger_engine)
            await ledger_engine.dispose()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await dp.storage.close()
        await bot.session.close()


class LedgerPolling:
    """getUpdates with the webhook workers' ledger (core/updates.py): an update is recorded there once it is
    handled, and the offset — which tells Telegram to forget updates — only moves past updates that are done. A
    process killed mid-burst re-reads the rest on restart and skips those the ledger has as done. At least once,
    handled once. (Polling has one consumer — Telegram answers a second getUpdates with 409 — so it needs no claim
    before handling: a database busy with a writer then delays a turn's own work, not its start.)"""

    def __init__(self, bot: Bot, dp: Dispatcher, ledger: UpdateLedger, poll_timeout: int = POLL_TIMEOUT) -> None:
        self.bot = bot
        self.dp = dp
        self.ledger = ledger
        self.poll_timeout = poll_timeout
        self.offset = 0
        self.in_hand: dict[int, asyncio.Task[None]] = {}
        self.finished: set[int] = set()  # done, but above an update still in hand: the offset waits for it
        self.recording: set[int] = set()  # handled, being recorded as done
        self.tasks: set[asyncio.Task[None]] = set()
        self.failures: dict[int, int] = {}

    async def run(self, stop: asyncio.Event) -> None:
        allowed = self.dp.resolve_used_update_types()
        forgotten_at = 0.0
        stopping = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                # Something in hand: ask without waiting, so that the offset advances as soon as it is done.
                request = GetUpdates(
                    offset=self.offset or None,
                    timeout=0 if self.tasks else self.poll_timeout,
                    allowed_updates=allowed,
                )
                fetch = asyncio.create_task(self._fetch(request))
                await asyncio.wait({fetch, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if stop.is_set():
                    fetch.cancel()
                    break
                started = [await self._start(update) for update in fetch.result()]
                if not any(started) and self.tasks:
                    # Nothing new: ask again soon. The offset cannot move past what is in hand, so Telegram would
                    # answer a long poll at once with those; new updates must not wait for them either.
                    await asyncio.wait({*self.tasks, stopping}, timeout=BUSY_POLL, return_when="FIRST_COMPLETED")
                self._advance(fetch.result())
                if time.monotonic() - forgotten_at > FORGET_EVERY:
                    forgotten_at = time.monotonic()
                    with contextlib.suppress(Exception):
                        await self.ledger.forget_old()
        finally:
            stopping.cancel()
            if self.tasks:  # finish what is in hand; the offset is not confirmed, the ledger says what is done
                await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _fetch(self, request: GetUpdates) -> list[Update]:
        try:
            return await self.bot(request, request_timeout=self.poll_timeout + 30)
        except Exception as exc:  # Telegram or the network is down: try again in a moment
            log.error("getUpdates failed: %s", redact(repr(exc)))
            await asyncio.sleep(2.0)
            return []

    async def _start(self, update: Update) -> bool:
        """Start handling one update; False when it is in hand or already done (read from the ledger: a read, so
        that a database busy with a writer delays the turn's own work, not its start)."""
        update_id = update.update_id
        if update_id in self.in_hand or update_id in self.recording or update_id in self.finished:
            return False
        if update_id < self.offset:
            return False
        try:
            done = await self.ledger.is_done(update_id)
        except Exception as exc:  # the database is down: leave it unconfirmed, it is read again
            log.error("update %s: cannot read the ledger: %s", update_id, redact(repr(exc)))
            await asyncio.sleep(1.0)
            return False
        if done:
            self.finished.add(update_id)
            return False
        task = self.in_hand[update_id] = asyncio.create_task(self._handle(update))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return True

    async def _handle(self, update: Update) -> None:
        update_id = update.update_id
        try:
            await self.dp.feed_update(self.bot, update)
        except Exception as exc:
            self.failures[update_id] = self.failures.get(update_id, 0) + 1
            if self.failures[update_id] < MAX_ATTEMPTS:
                log.error("update %s failed, will retry: %s", update_id, redact(repr(exc)))
                self.in_hand.pop(update_id, None)
                return
            log.error("update %s failed %d times, given up: %s", update_id, MAX_ATTEMPTS, redact(repr(exc)))
        # Handled: recording it may wait for a writer holding the database; the loop goes on meanwhile.
        self.recording.add(update_id)
        self.in_hand.pop(update_id, None)
        try:
            await through_blips(lambda: self.ledger.record_done(update_id), DONE_PATIENCE)
            self.failures.pop(update_id, None)
            self.finished.add(update_id)
        except Exception as exc:  # not recorded: it is read and handled again (at least once)
            log.error("update %s handled but not recorded as done: %s", update_id, redact(repr(exc)))
        finally:
            self.recording.discard(update_id)

    def _advance(self, fetched: list[Update]) -> None:
        """Move the offset past every update that is done, up to the first one that is not."""
        pending = sorted(
            {u.update_id for u in fetched if u.update_id >= self.offset} | set(self.in_hand) | self.recording
        )
        for update_id in pending:
            if update_id not in self.finished:
                break
            self.offset = update_id + 1
        self.finished = {i for i in self.finished if i >= self.offset}
