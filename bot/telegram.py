"""The Telegram transport: the Bot (pointed at BOT_API_URL), the Dispatcher with its routers and storage, polling."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiogram import Bot, Dispatcher, methods
from aiogram.client.default import DefaultBotProperties
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.fsm.storage.base import BaseStorage
from aiogram.fsm.storage.memory import MemoryStorage, SimpleEventIsolation
from aiogram.fsm.storage.redis import RedisStorage
from aiogram.methods.base import Response
from aiogram.types import BotCommand, BotCommandScopeAllPrivateChats, ErrorEvent, Message
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from bot.app import App
from bot.flows.types import Reply
from bot.handlers import admin, agent, participant
from bot.handlers.delivery import deliver
from bot.handlers.throttle import install_throttle
from bot.notifications import ParticipantSender
from bot.outbox_sender import StaffSender
from bot.session import UrlencodedSession
from bot.settings import Settings
from core.identity import redact
from core.leader import run_as_leader
from core.outbox import Outbox
from core.retention import Retention

log = logging.getLogger(__name__)
INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (SQLAlchemyError, RedisError, OSError, TimeoutError)
STAFF_SENDER_LOCK, PARTICIPANT_SENDER_LOCK = 7_401_001, 7_401_002  # PostgreSQL advisory lock keys
RETENTION_LOCK = 7_401_003
COMMANDS = ("start", "status", "help", "lang", "cancel", "logout")


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
    )
    dp.include_router(admin.router)
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
    for locale in ("id", "en"):
        commands = [BotCommand(command=c, description=renderer.render(f"cmd_{c}", locale)) for c in COMMANDS]
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
    bot = make_bot(app.settings)
    dp = build_dispatcher(app)
    settle_process()
    try:
        await bot.delete_webhook(drop_pending_updates=False)
        await set_command_menu(bot, app)
        async with background_senders(bot, app):
            await dp.start_polling(bot, handle_signals=True, close_bot_session=True)
    finally:
        await dp.storage.close()
