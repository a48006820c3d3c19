"""The Telegram transport: the Bot (pointed at BOT_API_URL), the Dispatcher with its routers and storage, polling."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import math
import os
import signal
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from aiogram import Bot, Dispatcher, methods
from aiogram.client.default import DefaultBotProperties
from aiogram.client.telegram import TelegramAPIServer
from aiogram.dispatcher.middlewares.manager import MiddlewareManager
from aiogram.enums import ParseMode
from aiogram.fsm.storage.base import BaseStorage
from aiogram.fsm.storage.memory import MemoryStorage, SimpleEventIsolation
from aiogram.fsm.storage.redis import RedisStorage
from aiogram.methods import GetUpdates
from aiogram.methods.base import Response
from aiogram.types import BotCommand, BotCommandScopeAllPrivateChats, ErrorEvent, Message, Update
from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from bot.app import App
from bot.flows.commands import PARTICIPANT_COMMANDS
from bot.flows.types import Reply
from bot.handlers import admin, agent, console_login, participant
from bot.handlers.delivery import deliver
from bot.handlers.throttle import Limits, install_throttle
from bot.notifications import ParticipantSender
from bot.outbox_sender import StaffSender
from bot.session import JsonSession
from bot.settings import Settings
from core.console.staff import StaffAccess
from core.db import Database
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
MAX_IN_HAND = 500  # updates handled at once by a polling bot; getUpdates waits while this many are in hand
RETRY_PAUSE = 1.0  # seconds before a failed update's next attempt (times the attempt number)
# Seconds a handled update waits to be marked done together with the next polled batch's store (one ledger commit per
# batch instead of two); when no batch comes that soon, the flusher writes it on its own.
DONE_DELAY = 0.05


def make_bot(settings: Settings) -> Bot:
    if settings.bot_token is None:
        raise ValueError("BOT_TOKEN is not set")
    session = JsonSession(api=TelegramAPIServer.from_base(settings.bot_api_url))
    return Bot(
        settings.bot_token.get_secret_value(),
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
    )


# Redis connections a process may hold. Beyond them a command waits for one to come free: redis-py's default pool
# raises MaxConnectionsError past 100 instead, and a webhook worker with more than 100 updates in hand answered 500s
# (bench/scaling.py at 300 participants on PostgreSQL + Redis).
REDIS_CONNECTIONS = 100
REDIS_CONNECTION_WAIT = 30.0  # seconds, as long as an update may wait for its chat's lock (webhook.CHAT_LOCK_WAIT)


def make_storage(settings: Settings) -> BaseStorage:
    """Conversation state: Redis when configured (survives restarts, shared by workers), else process memory."""
    if settings.redis_url:
        pool = BlockingConnectionPool.from_url(
            settings.redis_url, max_connections=REDIS_CONNECTIONS, timeout=REDIS_CONNECTION_WAIT
        )
        return RedisStorage(Redis(connection_pool=pool))
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
    dp.include_router(participant.router)  # first: it declines what the routers below claim
    dp.include_router(admin.router)
    dp.include_router(console_login.router)
    if app.staff is not None:
        dp.include_router(agent.router)
    limits = Limits(settings.flood_burst, settings.flood_rate, settings.flood_quiet)
    install_throttle(dp, app.services.renderer, settings.default_locale, limits)
    lean_middleware_chains(dp)

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


class _LeanMiddlewareManager(MiddlewareManager):
    """aiogram chains an observer's middlewares around the next step anew for every event it passes (four times per
    update: the update's, the dispatcher's message observer with our throttle, the participant router's, the
    handler's), each time wrapping the step with `functools.wraps`, which copies its name, docstring and attribute
    dict. Same chain, same order, without the copying: nothing reads those attributes of the wrapper."""

    @staticmethod
    def wrap_middlewares(middlewares: Sequence[Any], handler: Callable[..., Any]) -> Callable[..., Any]:
        def handler_wrapper(event: Any, kwargs: dict[str, Any]) -> Any:
            return handler(event, **kwargs)

        middleware: Callable[..., Any] = handler_wrapper
        for m in reversed(middlewares):
            middleware = functools.partial(m, middleware)
        return middleware


def lean_middleware_chains(dp: Dispatcher) -> None:
    """Every observer of the dispatcher and its routers (included by now) builds its chains the lean way."""
    for router in dp.chain_tail:
        for observer in router.observers.values():
            for manager in (observer.middleware, observer.outer_middleware):
                if type(manager) is MiddlewareManager:
                    manager.__class__ = _LeanMiddlewareManager


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
        # The ledger on a Database of its own (connections, SQLite lanes): recording an update as done may wait for a
        # writer holding SQLite, and must not hold a connection or lane the next turns need meanwhile.
        async with Database.open(app.settings.database_url) as ledger_db, background_senders(bot, app):
            polling = LedgerPolling(bot, dp, UpdateLedger(ledger_db, f"polling:{os.getpid()}"))
            await polling.run(stop)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await dp.storage.close()
        await bot.session.close()


class LedgerPolling:
    """getUpdates with a durable inbox in the webhook workers' ledger (core/updates.py): each batch of polled updates
    is stored there in one transaction before the offset confirms it to Telegram, so the offset moves on at once and
    new updates never queue behind a slow one; an update is marked done (in batches) once handled, and its stored
    body is cleared. A process killed mid-burst handles, on restart, what the ledger still has open. At least once,
    handled once. (Polling has one consumer — Telegram answers a second getUpdates with 409 — so it needs no claims.)"""

    def __init__(self, bot: Bot, dp: Dispatcher, ledger: UpdateLedger, poll_timeout: int = POLL_TIMEOUT) -> None:
        self.bot = bot
        self.dp = dp
        self.ledger = ledger
        self.poll_timeout = poll_timeout
        self.offset = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self._done: list[int] = []  # handled, to be marked done by the flusher
        self.started: set[int] = set()  # handled in this run (or being handled), above the confirmed offset
        self._open: set[int] = set()  # in hand now
        # Update ids only grow: one above the ledger's highest when this run started was never seen by an earlier
        # run, so only updates up to here need the ledger read that says whether they are done already.
        self.seen_before: float = math.inf
        self._flusher: asyncio.Task[None] | None = None

    async def run(self, stop: asyncio.Event) -> None:
        allowed = self.dp.resolve_used_update_types()
        forgotten_at = 0.0
        stopping = asyncio.create_task(stop.wait())
        try:
            await self._resume()
            while not stop.is_set():
                while len(self.tasks) >= MAX_IN_HAND and not stop.is_set():
                    await asyncio.wait({*self.tasks, stopping}, return_when=asyncio.FIRST_COMPLETED)
                request = GetUpdates(offset=self.offset or None, timeout=self.poll_timeout, allowed_updates=allowed)
                fetch = asyncio.create_task(self._fetch(request))
                await asyncio.wait({fetch, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if stop.is_set():
                    fetch.cancel()
                    break
                await self._take(fetch.result())
                if time.monotonic() - forgotten_at > FORGET_EVERY:
                    forgotten_at = time.monotonic()
                    with contextlib.suppress(Exception):
                        await self.ledger.forget_old()
        finally:
            stopping.cancel()
            if self.tasks:  # finish what is in hand; what is not marked done is handled again on restart
                await asyncio.gather(*self.tasks, return_exceptions=True)
            if self._flusher is not None:
                await asyncio.gather(self._flusher, return_exceptions=True)
            await self._flush()

    async def _resume(self) -> None:
        """Handle what an earlier run stored and did not finish (it was killed, or stopped mid-burst)."""
        try:
            self.seen_before = await self.ledger.highest()
            stored = await self.ledger.open_payloads()
        except Exception as exc:
            log.error("cannot read the updates left open: %s", redact(repr(exc)))
            return
        for update_id, body in stored:
            try:
                update = Update.model_validate_json(body, context={"bot": self.bot})
            except ValueError:
                log.error("update %s: stored body unreadable, given up", update_id)
                self._mark_done(update_id)
                continue
            self.started.add(update_id)
            self._start(update)

    async def _take(self, updates: list[Update]) -> None:
        """Start the new updates at once (for those an earlier run may have seen, one read says which are done already:
        a database busy with a writer delays a turn's own work, not its start), then store the batch and confirm it:
        the next getUpdates carries the offset past it."""
        if not updates:
            return
        new = [u for u in updates if u.update_id not in self.started]
        maybe_done = [u.update_id for u in new if u.update_id <= self.seen_before]
        try:
            done = await self.ledger.done_among(maybe_done) if maybe_done else set()
        except Exception as exc:  # the database is down: not confirmed, so Telegram sends them again
            log.error("updates %s…: cannot read the ledger: %s", updates[0].update_id, redact(repr(exc)))
            await asyncio.sleep(1.0)
            return
        for update in new:
            if update.update_id not in done:
                self.started.add(update.update_id)
                self._start(update)
        bodies = [(u.update_id, u.model_dump_json(exclude_unset=True)) for u in updates if u.update_id not in done]
        handled, self._done = self._done, []  # marked done in the same transaction
        try:
            await self.ledger.receive(bodies, done=handled)
        except Exception as exc:  # not confirmed: Telegram sends them again, and `started` keeps them from a rerun
            log.error("updates %s…: cannot store them: %s", updates[0].update_id, redact(repr(exc)))
            self._done.extend(handled)
            self._flush_soon()
            await asyncio.sleep(1.0)
            return
        self.offset = max(self.offset, max(u.update_id for u in updates) + 1)
        self.started = {i for i in self.started if i >= self.offset} | {i for i in self.started if i in self._open}

    async def _fetch(self, request: GetUpdates) -> list[Update]:
        try:
            return await self.bot(request, request_timeout=self.poll_timeout + 30)
        except Exception as exc:  # Telegram or the network is down: try again in a moment
            log.error("getUpdates failed: %s", redact(repr(exc)))
            await asyncio.sleep(2.0)
            return []

    def _start(self, update: Update) -> None:
        self._open.add(update.update_id)
        task = asyncio.create_task(self._handle(update))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _handle(self, update: Update) -> None:
        update_id = update.update_id
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                await self.dp.feed_update(self.bot, update)
                break
            except Exception as exc:
                if attempt == MAX_ATTEMPTS:
                    log.error("update %s failed %d times, given up: %s", update_id, MAX_ATTEMPTS, redact(repr(exc)))
                    break
                log.error("update %s failed, will retry: %s", update_id, redact(repr(exc)))
                await asyncio.sleep(RETRY_PAUSE * attempt)
        self._open.discard(update_id)
        self._mark_done(update_id)

    def _mark_done(self, update_id: int) -> None:
        """Group commit: handled updates go with the next batch's store (`_take`), or after DONE_DELAY with the
        flusher; the updates handled while one flush is written form the next one."""
        self._done.append(update_id)
        self._flush_soon()

    def _flush_soon(self) -> None:
        if self._done and (self._flusher is None or self._flusher.done()):
            self._flusher = asyncio.create_task(self._flush(DONE_DELAY))

    async def _flush(self, delay: float = 0.0) -> None:
        if delay:
            await asyncio.sleep(delay)
        while self._done:
            batch, self._done = self._done, []
            try:
                await through_blips(functools.partial(self.ledger.done_many, batch), DONE_PATIENCE)
            except Exception as exc:  # not recorded: handled again after a restart (at least once)
                log.error("%d updates handled but not recorded as done: %s", len(batch), redact(repr(exc)))
