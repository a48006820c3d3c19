"""Webhook workers: `/webhook` (secret checked, each update_id handled once, 200 only after the work is committed),
`/healthz` and `/metrics`. Run N of them behind a load balancer on PostgreSQL and Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
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
from aiohttp.typedefs import Handler
from aiohttp.web_protocol import RequestHandler
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
HEADER_TIMEOUT = 5.0  # a connection must deliver a request's headers this soon after it opens or sends its first byte
BODY_TIMEOUT = 10.0  # and its body (≤ 1 MB) this soon after the headers
IDLE_TIMEOUT = 15.0  # a kept-alive connection with no request for this long is closed
MAX_UPDATE_ID = 2**63 - 1  # the ledger's BIGINT; Telegram's ids are far below it
POISON_MEMORY = 1024  # refused bodies remembered so that Telegram's redeliveries are not logged again


class Refused(Exception):
    """A body no retry can fix: answered 400 (and logged once), never handled."""


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
            await _stop(keeper)
            try:
                await lock.release()
            except RedisError as exc:
                log.warning("chat lock not released (it expires by itself): %s", redact(repr(exc)))

    async def _keep(self, lock: Any) -> None:
        while not _asked_to_stop():
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
        self._in_hand: set[int] = set()  # updates claimed and being handled: their claims are renewed together
        self._renewer: asyncio.Task[None] | None = None
        self._refused: dict[bytes, None] = {}  # insertion-ordered: the oldest is forgotten first

    async def webhook(self, request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, self.secret):
            UPDATES.labels(outcome="unauthorized").inc()
            return web.Response(status=401, text="unauthorized")
        try:
            async with asyncio.timeout(BODY_TIMEOUT):
                body = await request.read()
        except TimeoutError:
            UPDATES.labels(outcome="slow").inc()
            return web.Response(status=408, text="request body too slow")
        try:
            update = self._parse(body)
        except Refused as exc:
            UPDATES.labels(outcome="malformed").inc()
            self._log_refused_once(body, str(exc))
            return web.Response(status=400, text="malformed update")
        started = time.perf_counter()
        self.in_flight += 1
        try:
            return await self._handle_once(update)
        finally:
            self.in_flight -= 1
            UPDATE_SECONDS.observe(time.perf_counter() - started)

    def _parse(self, body: bytes) -> Update:
        """The update, or `Refused` for what would fail on every redelivery: not JSON, nested too deep for the
        parser, not an update, an update_id the ledger cannot hold, a NUL character (PostgreSQL text refuses it)."""
        try:
            data = json.loads(body)
        except RecursionError:
            raise Refused("nested too deep") from None
        except ValueError:
            raise Refused("not JSON") from None
        try:
            update = Update.model_validate(data, context={"bot": self.bot})
        except RecursionError:
            raise Refused("nested too deep") from None
        except (ValueError, ValidationError):
            raise Refused("not an update") from None
        if not 0 <= update.update_id <= MAX_UPDATE_ID:
            raise Refused("update_id out of range")
        if b"\\u0000" in body and _holds_nul(data):  # strict JSON has a NUL in a string only as this escape
            raise Refused("NUL character")
        return update

    def _log_refused_once(self, body: bytes, reason: str) -> None:
        digest = hashlib.blake2b(body, digest_size=16).digest()
        if digest in self._refused:
            return
        self._refused[digest] = None
        if len(self._refused) > POISON_MEMORY:
            self._refused.pop(next(iter(self._refused)))
        log.warning("refused an update (%s, %d bytes): answered 400", reason, len(body))

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
        self._hold(update.update_id)
        try:
            await self.dp.feed_update(self.bot, update)
        except Exception as exc:
            log.error("update %s failed: %s", update.update_id, redact(repr(exc)))
            with contextlib.suppress(Exception):
                await self.ledger.release(update.update_id)
            UPDATES.labels(outcome="failed").inc()
            return web.Response(status=500, text="failed")
        finally:
            self._in_hand.discard(update.update_id)
        try:
            await self._mark_done(update.update_id)
        except Exception as exc:  # handled, but not recorded: a redelivery after the lease would repeat the replies
            log.error("update %s handled but not recorded as done: %s", update.update_id, redact(repr(exc)))
            UPDATES.labels(outcome="unrecorded").inc()
            return web.Response(status=503, text="unavailable")
        UPDATES.labels(outcome="handled").inc()
        return web.Response(text="ok")

    def _hold(self, update_id: int) -> None:
        self._in_hand.add(update_id)
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.create_task(self._renew_claims())

    async def _renew_claims(self) -> None:
        """Renew the claims of the updates in hand, so that only a dead worker's claims run out: all of them in one
        statement every lease / 3 (a task per update cost each update a task, its cancel and a wait). Ends once none
        is in hand; the next claim starts it again."""
        while self._in_hand:
            await asyncio.sleep(self.ledger.lease.total_seconds() / 3)
            if self._in_hand:
                with contextlib.suppress(Exception):
                    await self.ledger.renew_many(list(self._in_hand))

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
        token = self.app.settings.metrics_token
        if token is not None and request.get(METRICS_OPEN_KEY) is not True:
            scheme, _, given = request.headers.get("Authorization", "").partition(" ")
            if scheme != "Bearer" or not hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
                return web.Response(status=401, text="unauthorized", headers={"WWW-Authenticate": "Bearer"})
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
    """/webhook and /healthz; /metrics too when METRICS_TOKEN guards it (else it is served only on METRICS_HOST)."""
    handler = WebhookHandler(app, bot, dp, secret, UpdateLedger(app.db, worker_name()))
    web_app = web.Application(client_max_size=MAX_BODY, middlewares=[_request_in_hand])
    web_app[APP_KEY] = app
    web_app[HANDLER_KEY] = handler
    web_app.router.add_post("/webhook", handler.webhook)
    web_app.router.add_get("/healthz", handler.healthz)
    if app.settings.metrics_token is not None:
        web_app.router.add_get("/metrics", handler.metrics)
    return web_app


def build_metrics_app(webhook: WebhookHandler) -> web.Application:
    """/metrics alone, for METRICS_HOST:METRICS_PORT (an address only the monitoring network reaches)."""

    @web.middleware
    async def open_door(request: web.Request, handler: Handler) -> web.StreamResponse:
        request[METRICS_OPEN_KEY] = webhook.app.settings.metrics_token is None
        response: web.StreamResponse = await handler(request)
        return response

    metrics_app = web.Application(client_max_size=1024, middlewares=[open_door, _request_in_hand])
    metrics_app.router.add_get("/metrics", webhook.metrics)
    return metrics_app


HANDLER_KEY = web.AppKey("handler", WebhookHandler)
METRICS_OPEN_KEY = "prakerja.metrics_open"


class GuardedRequestHandler(RequestHandler):
    """aiohttp's connection handler with a deadline for a request's headers: a client that opens a connection (or
    starts a request) and then trickles or sends nothing is cut off after HEADER_TIMEOUT instead of holding a
    connection and a file descriptor for as long as it likes. Between requests, `keepalive_timeout` applies."""

    def __init__(self, *args: Any, header_timeout: float = HEADER_TIMEOUT, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timeout = header_timeout
        self._guard: asyncio.TimerHandle | None = None
        self._busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if not self._busy and self._guard is None:
            self._arm()  # the first byte of the next request on a kept-alive connection
        super().data_received(data)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def request_started(self) -> None:
        self._busy = True
        self._disarm()

    def request_finished(self) -> None:
        self._busy = False

    def _arm(self) -> None:
        self._guard = asyncio.get_running_loop().call_later(self._header_timeout, self._expired)

    def _disarm(self) -> None:
        if self._guard is not None:
            self._guard.cancel()
            self._guard = None

    def _expired(self) -> None:
        self._guard = None
        if not self._busy and self.transport is not None:
            self.transport.close()


@web.middleware
async def _request_in_hand(request: web.Request, handler: Handler) -> web.StreamResponse:
    protocol = request.protocol
    if isinstance(protocol, GuardedRequestHandler):
        protocol.request_started()
    try:
        response: web.StreamResponse = await handler(request)
        return response
    finally:
        if isinstance(protocol, GuardedRequestHandler):
            protocol.request_finished()


async def _listen(runner: web.AppRunner, host: str, port: int) -> asyncio.Server:
    """Like aiohttp's TCPSite, but each connection gets a `GuardedRequestHandler`."""
    server = runner.server
    assert server is not None
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: GuardedRequestHandler(server, loop=loop, keepalive_timeout=IDLE_TIMEOUT),
        host,
        port,
        reuse_port=True,
    )


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
        runners = [web.AppRunner(web_app, shutdown_timeout=30, handle_signals=True, keepalive_timeout=IDLE_TIMEOUT)]
        addresses = [(host, port)]
        if settings.metrics_host is not None and settings.metrics_port is not None:
            runners.append(web.AppRunner(build_metrics_app(web_app[HANDLER_KEY]), keepalive_timeout=IDLE_TIMEOUT))
            addresses.append((settings.metrics_host, settings.metrics_port))
        listeners: list[asyncio.Server] = []
        try:
            for runner, (where, at) in zip(runners, addresses, strict=True):
                await runner.setup()
                listeners.append(await _listen(runner, where, at))
            log.info("webhook worker %s listening on %s:%s", worker_name(), host, port)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            import signal

            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()
        finally:
            for listener in listeners:
                listener.close()  # stop accepting; the runners then finish the requests in hand
            for runner in runners:
                await runner.cleanup()


async def _stop(keeper: asyncio.Task[None]) -> None:
    """Cancel a keeper and wait until it has finished. Not `await keeper` under suppress(CancelledError): that would
    also swallow a cancel of the caller itself (a shutdown's) and so hide it."""
    keeper.cancel()
    await asyncio.wait([keeper])
    if not keeper.cancelled() and keeper.exception() is not None:
        log.warning("keeper failed: %s", redact(repr(keeper.exception())))


def _asked_to_stop() -> bool:
    """Whether this task was cancelled, even if the call in flight swallowed the CancelledError. A keeper that went on
    after its cancel never finished, and the update that awaited it held its chat lock (renewed by that same keeper)
    for good: bench/scaling.py at 300 participants left updates unanswered, with nothing logged."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _holds_nul(data: object) -> bool:
    """Whether any key or string in the (already parsed, so bounded) update holds a NUL character."""
    pending = [data]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False
