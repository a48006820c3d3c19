"""Webhook workers: `/webhook` (secret checked, each update_id handled once, 200 only after the work is committed),
`/healthz` and `/metrics`. Run N of them behind a load balancer on PostgreSQL and Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.fsm.storage.base import BaseEventIsolation, KeyBuilder, StorageKey
from aiogram.fsm.storage.redis import RedisStorage
from aiogram.types import Update
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import LockError, LockNotOwnedError, RedisError
from sqlalchemy import func, select, text

from bot.app import App
from bot.metrics import CASES_OPEN, OUTBOX_DEPTH, REGISTRY, UPDATE_SECONDS, UPDATES
from bot.telegram import background_senders, build_dispatcher, make_bot, set_command_menu, settle_process
from core.identity import redact
from core.models import Case, CaseStatus
from core.outbox import PARTICIPANT, STAFF, Outbox
from core.retry import through_blips
from core.updates import Claim, UpdateLedger

log = logging.getLogger(__name__)
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_BODY = 1024 * 1024  # Telegram's updates are far smaller; anything bigger is not from Telegram
APP_KEY = web.AppKey("app", App)
DONE_PATIENCE = 30.0  # seconds to keep trying to record a handled update (a database restart takes a few)
CHAT_LOCK_TTL = 10.0  # a worker killed mid-update frees its chats after this long (aiogram's default: 60 s)
CHAT_LOCK_WAIT = 30.0  # a chat busy longer than this: 5xx, Telegram retries later


class LeasedRedisIsolation(BaseEventIsolation):
    """One update at a time per chat across workers: a Redis lock with a short TTL, kept alive while the update is in
    hand. A lock lost on release (Redis restarted meanwhile) is logged, not raised: the update's work is done and
    failing it now would make Telegram redeliver it and the participant get the replies twice."""

    def __init__(self, redis: Redis, key_builder: KeyBuilder, ttl: float = CHAT_LOCK_TTL) -> None:
        self.redis = redis
        self.key_builder = key_builder
        self.ttl = ttl

    @contextlib.asynccontextmanager
    async def lock(self, key: StorageKey) -> AsyncIterator[None]:
        lock = self.redis.lock(
            self.key_builder.build(key, "lock"), timeout=self.ttl, sleep=0.01, blocking_timeout=CHAT_LOCK_WAIT
        )
        if not await lock.acquire():
            raise LockError("chat is busy in another worker")
        keeper = asyncio.create_task(self._keep(lock))
        try:
            yield
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            try:
                await lock.release()
            except RedisError as exc:
                log.warning("chat lock not released (it expires by itself): %s", redact(repr(exc)))

    async def _keep(self, lock: Any) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3)
            try:
                await lock.reacquire()
            except LockNotOwnedError:
                log.warning("chat lock lost while an update was in hand")
                return
            except RedisError:
                continue

    async def close(self) -> None:
        pass


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class WebhookHandler:
    def __init__(self, app: App, bot: Bot, dp: Dispatcher, secret: str, ledger: UpdateLedger) -> None:
        self.app = app
        self.bot = bot
        self.dp = dp
        self.secret = secret.encode()
        self.ledger = ledger
        self.in_flight = 0

    async def webhook(self, request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, self.secret):
            UPDATES.labels(outcome="unauthorized").inc()
            return web.Response(status=401, text="unauthorized")
        try:
            data = await request.json()
            update = Update.model_validate(data, context={"bot": self.bot})
        except web.HTTPRequestEntityTooLarge:
            raise
        except (ValueError, ValidationError):
            UPDATES.labels(outcome="malformed").inc()
            return web.Response(status=400, text="malformed update")
        started = time.perf_counter()
        self.in_flight += 1
        try:
            return await self._handle_once(update)
        finally:
            self.in_flight -= 1
            UPDATE_SECONDS.observe(time.perf_counter() - started)

    async def _handle_once(self, update: Update) -> web.Response:
        try:
            claim = await self.ledger.claim(update.update_id)
        except Exception as exc:  # the database is down: Telegram retries a 5xx later
            log.error("update %s: cannot claim: %s", update.update_id, redact(repr(exc)))
            UPDATES.labels(outcome="unavailable").inc()
            return web.Response(status=503, text="unavailable")
        if claim is Claim.DONE:
            UPDATES.labels(outcome="duplicate").inc()
            return web.Response(text="ok")
        if claim is Claim.BUSY:
            UPDATES.labels(outcome="busy").inc()
            return web.Response(status=503, text="in progress elsewhere")
        keeper = asyncio.create_task(self._keep_claim(update.update_id))
        try:
            await self.dp.feed_update(self.bot, update)
        except Exception as exc:
            log.error("update %s failed: %s", update.update_id, redact(repr(exc)))
            with contextlib.suppress(Exception):
                await self.ledger.release(update.update_id)
            UPDATES.labels(outcome="failed").inc()
            return web.Response(status=500, text="failed")
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
        try:
            await self._mark_done(update.update_id)
        except Exception as exc:  # handled, but not recorded: a redelivery after the lease would repeat the replies
            log.error("update %s handled but not recorded as done: %s", update.update_id, redact(repr(exc)))
            UPDATES.labels(outcome="unrecorded").inc()
            return web.Response(status=503, text="unavailable")
        UPDATES.labels(outcome="handled").inc()
        return web.Response(text="ok")

    async def _keep_claim(self, update_id: int) -> None:
        """Renew the claim while the update is in hand, so that only a dead worker's claims run out."""
        while True:
            await asyncio.sleep(self.ledger.lease.total_seconds() / 3)
            with contextlib.suppress(Exception):
                await self.ledger.renew(update_id)

    async def _mark_done(self, update_id: int) -> None:
        """The replies are out: keep trying to record that through a database blip (a restart takes seconds)."""
        await through_blips(lambda: self.ledger.done(update_id), DONE_PATIENCE)

    async def healthz(self, request: web.Request) -> web.Response:
        try:
            async with self.app.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as exc:
            return web.json_response({"status": "unavailable", "database": redact(str(exc))[:200]}, status=503)
        return web.json_response({"status": "ok", "in_flight": self.in_flight})

    async def metrics(self, request: web.Request) -> web.Response:
        with contextlib.suppress(Exception):  # metrics must answer even when the database does not
            outbox = Outbox(self.app.engine)
            for lane in (STAFF, PARTICIPANT):
                OUTBOX_DEPTH.labels(lane=lane).set(await outbox.pending_count(lane))
            async with self.app.engine.connect() as conn:
                open_cases = await conn.scalar(
                    select(func.count()).select_from(Case).where(Case.status != CaseStatus.CLOSED)
                )
            CASES_OPEN.set(open_cases or 0)
        return web.Response(body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})


def build_web_app(app: App, bot: Bot, dp: Dispatcher, secret: str) -> web.Application:
    handler = WebhookHandler(app, bot, dp, secret, UpdateLedger(app.engine, worker_name()))
    web_app = web.Application(client_max_size=MAX_BODY)
    web_app[APP_KEY] = app
    web_app.router.add_post("/webhook", handler.webhook)
    web_app.router.add_get("/healthz", handler.healthz)
    web_app.router.add_get("/metrics", handler.metrics)
    return web_app


@contextlib.asynccontextmanager
async def webhook_runtime(app: App, set_webhook: bool) -> AsyncIterator[tuple[Bot, Dispatcher]]:
    settings = app.settings
    bot = make_bot(settings)
    dp = build_dispatcher(app)
    if isinstance(dp.storage, RedisStorage):
        dp.fsm.events_isolation = LeasedRedisIsolation(dp.storage.redis, dp.storage.key_builder)
    dp["reraise_infrastructure_errors"] = True  # a 5xx makes Telegram retry; a polite reply would lose the update
    try:
        if set_webhook:
            if not settings.webhook_url:
                raise ValueError("WEBHOOK_URL is not set")
            await bot.set_webhook(
                settings.webhook_url,
                secret_token=settings.require_webhook_secret(),
                allowed_updates=dp.resolve_used_update_types(),
            )
            await set_command_menu(bot, app)
        async with background_senders(bot, app):
            yield bot, dp
    finally:
        await dp.storage.close()
        await bot.session.close()


async def serve(app: App, host: str, port: int, set_webhook: bool) -> None:
    """Serve until SIGTERM/SIGINT; on shutdown the updates in hand are finished before the process exits."""
    settings = app.settings
    secret = settings.require_webhook_secret()
    async with webhook_runtime(app, set_webhook) as (bot, dp):
        web_app = build_web_app(app, bot, dp, secret)
        settle_process()
        runner = web.AppRunner(web_app, shutdown_timeout=30, handle_signals=True)
        await runner.setup()
        site = web.TCPSite(runner, host, port, reuse_port=True)
        await site.start()
        log.info("webhook worker %s listening on %s:%s", worker_name(), host, port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        import signal

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()  # stops accepting, waits for in-flight handlers, then closes
