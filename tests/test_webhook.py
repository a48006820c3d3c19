"""Webhook mode: the installed `prakerja-bot webhook` as a real process behind its secret, against the fake Bot API.

Security (no or wrong secret → 401 and nothing handled, malformed → 400, oversized → 413, forged buttons), /healthz
and /metrics, each update_id handled once however often it is delivered, NIK and phone masked in the log, a graceful
stop that finishes the update in hand, and flood throttling (in process, with the production web app).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import aiohttp
import pytest
import pytest_asyncio
from aiogram.fsm.storage.base import DefaultKeyBuilder, StorageKey
from aiogram.fsm.storage.redis import RedisStorage
from aiohttp import web
from redis.asyncio import Redis
from redis.asyncio.lock import Lock as RedisLock
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import text as sql
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.handlers.throttle import TEMPLATE, Limits, MemoryRateLimiter, RedisRateLimiter
from bot.texts import default_renderer
from bot.webhook import MAX_BODY, LeasedRedisIsolation
from core.db import Database, make_sessionmaker
from core.leader import run_as_leader
from core.outbox import PARTICIPANT, Outbox, ParticipantNotification, enqueue
from core.updates import Claim, UpdateLedger
from tests.conftest import REDIS_URL
from tests.fake_bot_api import FakeBotApi
from tests.webhook_workers import (
    SECRET,
    SECRET_HEADER,
    TOKEN,
    TelegramDelivery,
    Worker,
    bot_env,
    free_port,
    run_cli,
    start_worker,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")


def text(key: str, locale: str = "id", **context: Any) -> str:
    return default_renderer().render(key, locale, **context)


def polite(locale: str = "id") -> str:
    renderer = default_renderer()
    return renderer.render(TEMPLATE, locale)


@dataclass
class Site:
    api: FakeBotApi
    worker: Worker
    db: Path
    tmp: Path

    def rows(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.db) as conn:
            return list(conn.execute(query, args))

    def ledger(self, update_id: int) -> list[tuple[Any, ...]]:
        return self.rows("SELECT status FROM processed_updates WHERE update_id = ?", update_id)

    async def post(
        self, body: bytes | dict[str, Any], secret: str | None = SECRET, url: str | None = None
    ) -> tuple[int, str]:
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers[SECRET_HEADER] = secret
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        async with (
            aiohttp.ClientSession() as session,
            session.post((url or self.worker.url) + "/webhook", data=data, headers=headers) as response,
        ):
            return response.status, await response.text()

    async def get(self, path: str, headers: dict[str, str] | None = None, url: str | None = None) -> tuple[int, str]:
        async with (
            aiohttp.ClientSession() as session,
            session.get((url or self.worker.url) + path, headers=headers or {}) as response,
        ):
            return response.status, await response.text()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("webhook")
    db = tmp / "webhook.db"
    await run_cli(["demo"], bot_env(f"sqlite+aiosqlite:///{db}"), tmp)
    return db


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def site(demo_db: Path) -> AsyncIterator[Site]:
    tmp = demo_db.parent
    async with FakeBotApi(TOKEN) as api:
        env = bot_env(f"sqlite+aiosqlite:///{demo_db}", api.url, METRICS_TOKEN=METRICS_TOKEN)
        worker = start_worker(env, tmp / "worker.log", tmp)
        try:
            await worker.wait_ready()
            yield Site(api, worker, demo_db, tmp)
        finally:
            await worker.stop()
    assert worker.process.returncode == 0, worker.log_text()[-2000:]


METRICS_TOKEN = "metrics-token-for-tests-0123456789"
_users = iter(range(8_100_001, 8_200_000))


def new_user() -> int:
    return next(_users)


async def settle(api: FakeBotApi, user: int, expected: int, within: float = 10.0) -> list[str]:
    """The bot's messages to `user` once `expected` arrived and nothing more came for a moment."""
    await api.wait_for_messages(user, expected, within)
    await asyncio.sleep(0.3)
    return api.sent(user)


# --- security ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("secret", [None, "", "wrong-secret", SECRET + "x", SECRET[:-1]])
async def test_a_request_without_the_secret_is_refused_and_not_handled(site: Site, secret: str | None) -> None:
    user = new_user()
    update = site.api.push_message(user, "/help")
    status, _ = await site.post(update, secret=secret)
    assert status == 401
    await asyncio.sleep(0.3)
    assert site.api.sent(user) == []
    assert site.ledger(update["update_id"]) == []
    # Telegram's own delivery of the same update (with the secret) is then handled normally.
    assert (await site.post(update))[0] == 200
    assert len(await settle(site.api, user, 2)) == 2


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"", b"[]", b"null", b'{"update_id": "seven"}', b'{"message": {"text": "hi"}}', b"\xff\xfe"],
)
async def test_a_malformed_update_is_refused(site: Site, body: bytes) -> None:
    calls = len(site.api.calls)
    status, _ = await site.post(body)
    assert status == 400
    assert len(site.api.calls) == calls


async def test_an_oversized_body_is_refused_before_it_is_read(site: Site) -> None:
    user = new_user()
    update = site.api.push_message(user, "/help")
    padded = json.dumps(update | {"padding": "x" * MAX_BODY}).encode()
    assert len(padded) > MAX_BODY
    assert (await site.post(padded))[0] == 413
    assert (await site.post(padded, secret="wrong"))[0] == 401  # the secret is checked first
    await asyncio.sleep(0.3)
    assert site.api.sent(user) == []
    assert site.ledger(update["update_id"]) == []
    assert site.worker.alive()


async def test_forged_callback_data_reveals_nothing(site: Site) -> None:
    api, user = site.api, new_user()
    assert (await site.post(api.push_message(user, "/start")))[0] == 200
    await settle(api, user, 2)
    menu = api.last_keyboard(user)
    _, data = api.button(user, text("btn_menu_certificate"))
    nonce = data.split("|")[0]
    for forged in ("zzzz|s|certificate", f"{nonce}|e|1", f"{nonce}|x|y", "'; DROP TABLE participants; --"):
        query_id = api.push_callback(user, forged, menu.message_id)
        before = len(api.sent(user))
        assert (await site.post(api.updates[-1]))[0] == 200
        answer = api.answered(query_id)
        assert answer is not None
        assert (answer.params.get("text"), answer.params.get("show_alert")) == (text("button_expired"), True)
        assert api.sent(user)[before:] == []
    assert site.rows("SELECT count(*) FROM telegram_links WHERE telegram_user_id = ?", user) == [(0,)]


# --- exactly once -----------------------------------------------------------------------------------------------
async def test_a_duplicate_update_id_is_handled_once(site: Site) -> None:
    user = new_user()
    update = site.api.push_message(user, "/help")
    assert (await site.post(update))[0] == 200
    assert (await site.post(update))[0] == 200  # acknowledged, not handled again
    assert len(await settle(site.api, user, 2)) == 2
    assert site.ledger(update["update_id"]) == [("done",)]


async def test_a_redelivery_racing_the_first_delivery_is_handled_once(site: Site) -> None:
    """Telegram retries while the first delivery is still in hand: one is handled, the others are told to retry
    (503) or acknowledged once it is done; retrying like Telegram ends with every delivery acknowledged."""
    user = new_user()
    update = site.api.push_message(user, "/start")
    first = await asyncio.gather(*(site.post(update) for _ in range(8)))
    assert {status for status, _ in first} <= {200, 503}
    assert 200 in {status for status, _ in first}
    async with TelegramDelivery(site.worker.url) as telegram:
        assert await asyncio.gather(*(telegram.deliver(update) for _ in range(4))) == [200] * 4
    texts = await settle(site.api, user, 2)
    assert texts == [text("welcome", name=None), text("menu")]
    assert site.ledger(update["update_id"]) == [("done",)]


async def test_many_users_many_redeliveries(site: Site) -> None:
    users = [new_user() for _ in range(30)]
    updates = [site.api.push_message(u, q) for u in users for q in ("/help", "/start")]
    async with TelegramDelivery(site.worker.url, concurrency=20) as telegram:
        statuses = await asyncio.gather(*(telegram.deliver(u) for u in updates + updates[::3]))
    assert set(statuses) == {200}
    await site.api.wait_for(lambda: all(len(site.api.sent(u)) >= 4 for u in users), 20, "4 replies each")
    await asyncio.sleep(0.3)
    expected = sorted([text("help"), text("menu"), text("welcome", name=None), text("menu")])
    assert {u: sorted(site.api.sent(u)) for u in users} == dict.fromkeys(users, expected)
    ids = [u["update_id"] for u in updates]
    marks = ",".join("?" * len(ids))
    assert site.rows(f"SELECT status, count(*) FROM processed_updates WHERE update_id IN ({marks})", *ids) == [
        ("done", len(ids))
    ]


# --- operations -------------------------------------------------------------------------------------------------
async def test_healthz_and_metrics(site: Site) -> None:
    status, body = await site.get("/healthz")
    assert status == 200
    assert json.loads(body)["status"] == "ok"
    await site.post(site.api.push_message(new_user(), "/help"), secret="nope")
    for wrong in ({}, {"Authorization": "Bearer nope"}, {"Authorization": METRICS_TOKEN}):
        assert (await site.get("/metrics", wrong))[0] == 401  # METRICS_TOKEN guards it on the public port
    status, metrics = await site.get("/metrics", {"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert status == 200
    for needle in (
        'prakerja_updates_total{outcome="handled"}',
        'prakerja_updates_total{outcome="unauthorized"}',
        "prakerja_update_seconds_bucket",
        'prakerja_outbox_pending{lane="participant"}',
        "prakerja_cases_open",
    ):
        assert needle in metrics


async def test_nik_and_phone_never_reach_the_log(site: Site) -> None:
    user, nik, phone = new_user(), "3171234567890001", "081298765432"
    update = site.api.push_message(user, f"nik saya {nik} hp {phone} sertifikat belum muncul")
    assert (await site.post(update))[0] == 200
    await settle(site.api, user, 1)
    await site.post(b'{"update_id": 1, "message": {"text": "' + nik.encode() + b'"}}')  # a rejected one, too
    log = site.worker.log_text()
    assert nik not in log and phone not in log and phone[1:] not in log


# --- graceful shutdown ------------------------------------------------------------------------------------------
class SlowBotApi:
    """Sits between the worker and the fake Bot API; when armed, holds the next sendMessage until released."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.url = ""
        self.armed = False
        self.holding = asyncio.Event()
        self.release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> SlowBotApi:
        self._session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release.set()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._session is not None
        body = await request.read()
        if self.armed and request.path.lower().endswith("/sendmessage"):
            self.armed = False
            self.holding.set()
            await self.release.wait()
        headers = {"Content-Type": request.headers.get("Content-Type", "application/octet-stream")}
        async with self._session.request(
            request.method, self.target + request.path_qs, data=body, headers=headers
        ) as r:
            return web.Response(status=r.status, body=await r.read(), content_type="application/json")


async def test_sigterm_finishes_the_update_in_hand(site: Site) -> None:
    api, user = site.api, new_user()
    async with SlowBotApi(api.url) as slow:
        env = bot_env(f"sqlite+aiosqlite:///{site.db}", slow.url)
        worker = start_worker(env, site.tmp / "graceful.log", site.tmp)
        try:
            await worker.wait_ready()
            slow.armed = True
            update = api.push_message(user, "/help")
            in_flight = asyncio.create_task(site.post(update, url=worker.url))
            await asyncio.wait_for(slow.holding.wait(), 10)  # the worker is sending the first reply
            worker.process.send_signal(signal.SIGTERM)
            await asyncio.sleep(1.0)
            assert worker.alive(), "the worker quit with an update in hand"
            slow.release.set()
            assert await asyncio.wait_for(in_flight, 20) == (200, "ok")
            assert await asyncio.to_thread(worker.process.wait, 30) == 0
        finally:
            await worker.stop()
    assert api.sent(user) == [text("help"), text("menu")]
    assert site.ledger(update["update_id"]) == [("done",)]
    log = worker.log_text()
    assert "Traceback" not in log and " ERROR " not in log
    # After the stop nothing listens there any more: Telegram's next delivery goes to another worker.
    with pytest.raises(aiohttp.ClientConnectionError):
        await site.post(api.push_message(user, "/help"), url=worker.url)


# --- flood throttling -------------------------------------------------------------------------------------------
async def test_memory_bucket_allows_a_burst_then_the_rate_and_warns_once_per_burst() -> None:
    now = [0.0]
    limiter = MemoryRateLimiter(Limits(burst=3, rate=1, quiet=5), clock=lambda: now[0])

    async def hits(n: int) -> list[tuple[bool, bool]]:
        verdicts = [await limiter.hit(42) for _ in range(n)]
        return [(v.allowed, v.warn) for v in verdicts]

    assert await hits(5) == [(True, False)] * 3 + [(False, True), (False, False)]
    now[0] = 1.0
    assert await hits(2) == [(True, False), (False, False)]  # one token back; the same burst: no second warning
    now[0] = 20.0
    assert await hits(4) == [(True, False)] * 3 + [(False, True)]  # quiet long enough: a new burst is told again
    assert (await limiter.hit(43)).allowed  # users have buckets of their own


@pytest.mark.skipif(not REDIS_URL, reason="REDIS_URL is not set")
async def test_redis_bucket_is_shared_and_warns_once() -> None:
    storage = RedisStorage.from_url(REDIS_URL)
    try:
        await storage.redis.flushdb()
        limits = Limits(burst=3, rate=0.01, quiet=5)
        first, second = RedisRateLimiter(storage.redis, limits), RedisRateLimiter(storage.redis, limits)
        verdicts = [await (first if n % 2 else second).hit(42) for n in range(6)]  # two workers, one bucket
        assert [(v.allowed, v.warn) for v in verdicts] == [(True, False)] * 3 + [(False, True)] + [(False, False)] * 2
        assert (await first.hit(43)).allowed
    finally:
        await storage.redis.flushdb()
        await storage.close()


@pytest.mark.parametrize(
    "shared", [False, pytest.param(True, marks=pytest.mark.skipif(not REDIS_URL, reason="no Redis"))]
)
async def test_a_participant_flooding_50_messages_a_second_is_throttled_politely(tmp_path: Path, shared: bool) -> None:
    """A worker with the throttle (buckets in its memory, or shared in Redis) against 50 messages in a second: the
    burst is answered, the rest is acknowledged and dropped with one polite word; others are not held up."""
    limits = Limits(burst=20, rate=2, quiet=1.5)
    demo_db = tmp_path / "throttle.db"  # a fresh fake server counts update ids from the start again
    url = f"sqlite+aiosqlite:///{demo_db}"
    await run_cli(["demo"], bot_env(url), tmp_path)
    redis = RedisStorage.from_url(REDIS_URL).redis if shared else None
    if redis is not None:
        await redis.flushdb()
    async with FakeBotApi(TOKEN) as api:
        env = bot_env(url, api.url) | ({"REDIS_URL": REDIS_URL} if shared else {})
        env |= {"FLOOD_BURST": str(limits.burst), "FLOOD_RATE": str(limits.rate), "FLOOD_QUIET": str(limits.quiet)}
        worker = start_worker(env, tmp_path / "throttle.log", tmp_path)
        try:
            await worker.wait_ready()
            user, calm = new_user(), new_user()
            async with TelegramDelivery(worker.url, concurrency=50) as telegram:
                started = time.monotonic()
                deliveries = []
                for _ in range(50):  # 50 messages in one second
                    deliveries.append(asyncio.create_task(telegram.deliver(api.push_message(user, "/help"))))
                    await asyncio.sleep(0.02)
                calm_one = await telegram.deliver(api.push_message(calm, "/help"))  # someone else meanwhile
                assert await asyncio.gather(*deliveries) == [200] * 50  # dropped ones are acknowledged, not retried
                elapsed = time.monotonic() - started
                assert calm_one == 200
                await asyncio.sleep(0.3)
                sent = api.sent(user)
                helped = sent.count(text("help"))
                assert sent.count(polite()) == 1
                assert limits.burst <= helped <= limits.burst + limits.rate * elapsed + 1
                assert sent.count(text("menu")) == helped
                assert api.sent(calm) == [text("help"), text("menu")]

                await asyncio.sleep(limits.quiet + 1)  # quiet for a while: back to normal
                assert await telegram.deliver(api.push_message(user, "/help")) == 200
                await asyncio.sleep(0.3)
                assert api.sent(user)[len(sent) :] == [text("help"), text("menu")]
        finally:
            await worker.stop()
            if redis is not None:
                await redis.flushdb()
                await redis.aclose()
    assert worker.errors() == []


# --- the pieces under exactly-once (in process, on SQLite and, when available, PostgreSQL) ----------------------
@pytest.mark.asyncio(loop_scope="function")
async def test_the_ledger_hands_a_dead_workers_update_over_once_its_lease_runs_out(db: Database) -> None:
    lease = timedelta(seconds=15)
    alive, dead = UpdateLedger(db, "alive", lease), UpdateLedger(db, "dead", lease)
    t0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    assert await dead.claim(1, now=t0) is Claim.NEW
    assert await alive.claim(1, now=t0 + timedelta(seconds=14)) is Claim.BUSY
    assert await dead.renew(1, now=t0 + timedelta(seconds=10))  # still working on it
    assert await alive.claim(1, now=t0 + timedelta(seconds=24)) is Claim.BUSY
    assert await alive.claim(1, now=t0 + timedelta(seconds=26)) is Claim.NEW  # no renewal for 16 s: taken over
    assert not await dead.renew(1)  # the claim is no longer the dead worker's
    await alive.done(1)
    assert await dead.claim(1) is Claim.DONE
    assert await alive.claim(2) is Claim.NEW
    await alive.release(2)  # handling failed: the retry is handled afresh
    assert await dead.claim(2) is Claim.NEW


@pytest.mark.asyncio(loop_scope="function")
async def test_an_outbox_item_is_taken_for_sending_once(engine: AsyncEngine) -> None:
    outbox = Outbox(engine)
    async with make_sessionmaker(engine).begin() as session:
        row = enqueue(session, 42, ParticipantNotification("certificate_issued", "id"))
    assert await outbox.mark_sending([row.id]) == [row.id]
    assert await outbox.mark_sending([row.id]) == []  # a second sender does not get it
    await outbox.mark_sent([row.id])
    assert await outbox.mark_sending([row.id]) == []
    assert await outbox.recover_sending(PARTICIPANT) == 0


@pytest.mark.asyncio(loop_scope="function")
async def test_a_leader_whose_lock_connection_dies_stops_before_anyone_else_leads(pg_engine: AsyncEngine) -> None:
    """After a database restart the advisory lock is free for all: the old leader must stop its work."""
    key = 7_499_001
    stop = asyncio.Event()
    active, runs, most = 0, 0, 0
    changed = asyncio.Event()

    async def work(halt: asyncio.Event) -> None:
        nonlocal active, runs, most
        active, runs = active + 1, runs + 1
        most = max(most, active)
        changed.set()
        try:
            await halt.wait()
        finally:
            active -= 1
            changed.set()

    async def until(predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(15):
            while not predicate():
                changed.clear()
                await changed.wait()

    # The stand-by asks for the lock every 50 ms: it gets it right after the kill, before the old leader's next check.
    leaders = [
        asyncio.create_task(run_as_leader(pg_engine, key, work, stop, check_every=0.2, retry_every=0.05))
        for _ in range(2)
    ]
    try:
        await until(lambda: runs == 1)
        async with pg_engine.connect() as conn:  # what a restart does to the lock's connection
            await conn.execute(
                sql("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND objid = :key"),
                {"key": key},
            )
            await conn.commit()
        await until(lambda: runs == 2)
        assert (active, most) == (1, 1)
    finally:
        stop.set()
        await asyncio.gather(*leaders)
    assert active == 0


async def test_metrics_only_with_a_token_or_on_their_own_address(demo_db: Path) -> None:
    tmp = demo_db.parent
    metrics_port = free_port()
    env = bot_env(f"sqlite+aiosqlite:///{demo_db}", METRICS_HOST="127.0.0.1", METRICS_PORT=str(metrics_port))
    async with FakeBotApi(TOKEN) as api:
        worker = start_worker(env | {"BOT_API_URL": api.url}, tmp / "metrics-worker.log", tmp)
        try:
            await worker.wait_ready()
            site = Site(api, worker, demo_db, tmp)
            assert (await site.get("/metrics"))[0] == 404  # not on the port the internet reaches
            status, metrics = await site.get("/metrics", url=f"http://127.0.0.1:{metrics_port}")
            assert status == 200 and "prakerja_updates_total" in metrics
            assert (await site.get("/healthz", url=f"http://127.0.0.1:{metrics_port}"))[0] == 404
        finally:
            await worker.stop()


# --- poison updates: 400 (no retry fixes them), logged once, never handled ------------------------------------------
@pytest.mark.parametrize(
    "body",
    [
        b"[" * 50_000 + b"]" * 50_000,
        b'{"update_id": 1, "message": ' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_001,
        json.dumps({"update_id": 2**63}).encode(),
        json.dumps({"update_id": -1}).encode(),
        json.dumps(
            {"update_id": 2**70, "message": {"message_id": 1, "date": 0, "chat": {"id": 1, "type": "private"}}}
        ).encode(),
    ],
    ids=["deep-array", "deep-object", "id-2^63", "id-negative", "id-2^70"],
)
async def test_a_poison_update_is_refused_with_400_and_logged_once(site: Site, body: bytes) -> None:
    before = site.worker.log_text().count("refused an update")
    for _ in range(3):  # Telegram redelivers
        status, _ = await site.post(body)
        assert status == 400
    assert site.worker.log_text().count("refused an update") == before + 1
    assert (await site.get("/healthz"))[0] == 200  # the worker is fine


async def test_a_nul_character_is_refused_before_it_reaches_the_database(site: Site) -> None:
    user = new_user()
    update = site.api.push_message(user, "sertifikat\u0000 belum muncul")
    status, _ = await site.post(update)
    assert status == 400
    assert site.ledger(update["update_id"]) == []
    update = site.api.push_message(user, "ok")
    update["message"]["from"]["first_name"] = "Bu\x00di"
    assert (await site.post(update))[0] == 400


# --- slow and idle connections are cut off --------------------------------------------------------------------------
async def closed_by_server(site: Site, send: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", site.worker.port)
    try:
        writer.write(send)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 60)  # b"" once the server closes it
    finally:
        writer.close()


async def test_slow_headers_and_idle_connections_are_closed(site: Site) -> None:
    assert await closed_by_server(site, b"") == b""  # connected, never sent a byte
    assert await closed_by_server(site, b"POST /webhook HTTP/1.1\r\nHost: x\r\n") == b""  # headers never end
    # A kept-alive connection that sends nothing after its request is closed too.
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    answered = await closed_by_server(site, request)
    assert answered.startswith(b"HTTP/1.1 200")


class _SwallowingLock(RedisLock):
    """redis-py's lock, with a renewal that swallows the cancellation arriving mid-call and fails instead (as a
    client library may when the cancel lands while it waits for a pooled connection)."""

    def reacquire(self) -> Awaitable[Literal[True]]:
        return self._slow_reacquire()

    async def _slow_reacquire(self) -> Literal[True]:
        try:
            await asyncio.sleep(0.05)
            return await super().reacquire()
        except asyncio.CancelledError:
            raise RedisConnectionError("No connection available.") from None


class _SwallowingRedis(Redis):
    def lock(self, name: Any, *args: Any, **kwargs: Any) -> Any:
        return super().lock(name, *args, **(kwargs | {"lock_class": _SwallowingLock}))


@pytest.mark.skipif(not REDIS_URL, reason="REDIS_URL is not set")
async def test_a_chat_lock_is_released_even_when_its_renewal_swallows_the_cancel() -> None:
    """The keeper that renews a chat lock must stop once the update is done, whatever its renewal call does with the
    cancel: one that went on for ever held the update and kept the chat locked (bench/scaling.py, 300 participants)."""
    redis = _SwallowingRedis.from_url(REDIS_URL)
    try:
        isolation = LeasedRedisIsolation(redis, DefaultKeyBuilder(), ttl=0.3)  # renewed every 0.1 s
        key = StorageKey(bot_id=1, chat_id=77, user_id=77)
        name = DefaultKeyBuilder().build(key, "lock")

        async def update() -> None:
            async with isolation.lock(key):
                await asyncio.sleep(0.12)  # the update is done while its lock's renewal is in flight

        handled = asyncio.create_task(update())
        await asyncio.wait([handled], timeout=5)
        if not handled.done():
            await redis.delete(name)  # let the runaway keeper stop (its renewal fails) before failing the test
            await handled
            pytest.fail("the update never left its chat lock: the keeper went on renewing it")
        await handled
        assert not await redis.exists(name)
    finally:
        await redis.aclose()
