"""Three `prakerja-bot webhook` workers behind a round-robin proxy, on a scratch PostgreSQL database and Redis.

Thousands of updates from hundreds of participants arrive concurrently, some twice (possibly at different workers):
each is handled once, each participant gets exactly the replies one worker gives, no case opens twice. Then the
faults: a worker SIGKILLed mid-load, PostgreSQL restarted mid-load, Redis restarted mid-load, and the notification
sender SIGKILLed mid-outbox — nothing lost, nothing repeated.

Runs when DATABASE_URL points at PostgreSQL and REDIS_URL is set (as in .ci/run). It restarts the machine's
PostgreSQL and Redis, and always leaves both running.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import re
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
import pytest_asyncio
from redis.asyncio import Redis
from sqlalchemy import bindparam, func, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.telegram import PARTICIPANT_SENDER_LOCK
from core.db import make_engine
from core.models import Case, Interaction, OutboxMessage, ProcessedUpdate, TelegramLink
from core.notifications import Notification, NotificationKind, queue_notifications
from tests.conftest import PG_URL, REDIS_URL
from tests.fake_bot_api import FakeBotApi
from tests.webhook_workers import TOKEN, RoundRobinProxy, TelegramDelivery, Worker, bot_env, run_cli, start_worker

pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(not (PG_URL and REDIS_URL), reason="needs DATABASE_URL=postgresql://… and REDIS_URL"),
]

STAFF_CHAT = -1001500000001
WORKERS = 3
QUESTIONS = (
    "kapan insentif cair",
    "lupa password akun prakerja",
    "cara memberi ulasan pelatihan",
    "bagaimana cara ganti nomor hp",
    "kenapa akun saya dicabut",
    "berapa saldo pelatihan",
    "cara beli pelatihan",
    "survei evaluasi dapat uang berapa",
)
COMMANDS = ("/start", "/help")
AGENT_REQUEST = "tolong sambungkan ke agen manusia"
PG_VERSION = next(iter(sorted(os.listdir("/etc/postgresql"))), "15") if os.path.isdir("/etc/postgresql") else "15"


# --- the machine's services -------------------------------------------------------------------------------------
def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def redis_port() -> int:
    return make_url(REDIS_URL.replace("redis://", "redis+x://", 1)).port or 6379


def redis_up() -> bool:
    return _run("redis-cli", "-p", str(redis_port()), "ping").stdout.strip() == "PONG"


def start_redis() -> None:
    if not redis_up():
        _run("redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", str(redis_port()),
             "--save", "", "--appendonly", "no")  # fmt: skip
    for _ in range(100):
        if redis_up():
            return
        time.sleep(0.1)
    raise AssertionError("Redis did not come back")


def postgres_up() -> bool:
    return _run("pg_isready", "-h", "127.0.0.1", "-p", "5432", "-q").returncode == 0


def start_postgres() -> None:
    if not postgres_up():
        _run("pg_ctlcluster", "--skip-systemctl-redirect", PG_VERSION, "main", "start")
    for _ in range(300):
        if postgres_up():
            return
        time.sleep(0.1)
    raise AssertionError("PostgreSQL did not come back")


# --- the cluster ------------------------------------------------------------------------------------------------
@dataclass
class Cluster:
    api: FakeBotApi
    proxy: RoundRobinProxy
    engine: AsyncEngine
    env: dict[str, str]
    tmp: Path
    workers: list[Worker] = field(default_factory=list)
    expected: dict[str, Counter[str]] = field(default_factory=dict)  # message → the replies one worker gives
    agent_replies: int = 0

    def live(self) -> list[Worker]:
        return [w for w in self.workers if w.alive()]

    async def add_worker(self) -> Worker:
        worker = start_worker(self.env, self.tmp / f"worker-{len(self.workers)}.log", self.tmp)
        self.workers.append(worker)
        await worker.wait_ready()
        self.proxy.backends = [w.url for w in self.live()]
        return worker

    async def scalar(self, query: Any) -> Any:
        async with self.engine.connect() as conn:
            return await conn.scalar(query)

    async def rows(self, query: Any) -> list[Any]:
        async with self.engine.connect() as conn:
            return list((await conn.execute(query)).all())


_users = iter(range(9_100_001, 9_900_000))


async def calibrate(cluster: Cluster) -> None:
    """What one worker answers to each message, from a fresh chat; asked twice, to show it does not depend on
    the chat's state (so concurrent delivery in any order must give the same replies)."""
    api = cluster.api
    async with TelegramDelivery(cluster.workers[0].url) as telegram:
        for message in (*COMMANDS, *QUESTIONS):
            user = next(_users)
            replies: list[Counter[str]] = []
            for _ in range(2):
                before = len(api.sent(user))
                assert await telegram.deliver(api.push_message(user, message)) == 200
                await asyncio.sleep(0.05)  # the replies went out before the 200; nothing should follow
                replies.append(Counter(api.sent(user)[before:]))
            assert replies[0] == replies[1] and replies[0], (message, replies)
            cluster.expected[message] = Counter({t[:40]: n for t, n in replies[0].items()})
        user = next(_users)
        assert await telegram.deliver(api.push_message(user, AGENT_REQUEST)) == 200
        # The acknowledgement is queued with the case: the leader's outbox sender delivers it, after the 200.
        await api.wait_for_messages(user, 1, within=10)
        await asyncio.sleep(1.0)  # nothing should follow
        cluster.agent_replies = len(api.sent(user))
        assert cluster.agent_replies >= 1
        assert await cluster.scalar(select(func.count()).select_from(Case).where(Case.telegram_user_id == user)) == 1


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    tmp = tmp_path_factory.mktemp("multi")
    name = f"webhook_test_{os.getpid()}"
    admin = make_engine(PG_URL, isolation_level="AUTOCOMMIT")
    redis_url = REDIS_URL  # a scratch database, flushed before and after (tests/conftest.py)
    redis = Redis.from_url(redis_url)
    api = FakeBotApi(TOKEN)
    proxy = RoundRobinProxy([])
    cluster: Cluster | None = None
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
        await redis.flushdb()
        await run_cli(["migrate"], bot_env(url), tmp)
        await run_cli(["demo"], bot_env(url), tmp)  # on PostgreSQL: down to base, up again, seeded
        await api.start()
        api.add_forum_group(STAFF_CHAT, members={})
        await proxy.start()
        env = bot_env(url, api.url, REDIS_URL=redis_url, STAFF_CHAT_ID=str(STAFF_CHAT))
        cluster = Cluster(api, proxy, make_engine(url, pool_size=5), env, tmp)
        for _ in range(WORKERS):
            await cluster.add_worker()
        await calibrate(cluster)
        yield cluster
    finally:
        if cluster is not None:
            for worker in cluster.workers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGCONT)
                worker.kill()
            await cluster.engine.dispose()
        await proxy.stop()
        await api.stop()
        await asyncio.to_thread(start_redis)
        await asyncio.to_thread(start_postgres)
        with contextlib.suppress(Exception):
            await redis.flushdb()
        await redis.aclose()
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


# --- load -------------------------------------------------------------------------------------------------------
@dataclass
class Plan:
    messages: dict[int, list[str]]  # user → what they send
    updates: list[dict[str, Any]]
    redelivered: list[dict[str, Any]]
    agents: list[int]

    @property
    def update_ids(self) -> list[int]:
        return [u["update_id"] for u in self.updates]

    def user_of(self, update: dict[str, Any]) -> int:
        return int(update["message"]["chat"]["id"])


def plan(api: FakeBotApi, participants: int, per_participant: int, agents: int, seed: int) -> Plan:
    rng = random.Random(seed)
    messages: dict[int, list[str]] = {}
    updates = []
    for _ in range(participants):
        user = next(_users)
        sent = [*COMMANDS, *rng.choices(QUESTIONS, k=per_participant - len(COMMANDS))]
        rng.shuffle(sent)
        messages[user] = sent
        updates += [api.push_message(user, m) for m in sent]
    agent_users = [next(_users) for _ in range(agents)]
    for user in agent_users:
        messages[user] = [AGENT_REQUEST]
        updates.append(api.push_message(user, AGENT_REQUEST))
    redelivered = rng.sample(updates, len(updates) // 20)  # ~5% arrive twice
    redelivered += [u for u in updates if u["message"]["chat"]["id"] in agent_users[::2]]
    return Plan(messages, updates, redelivered, agent_users)


async def deliver(
    cluster: Cluster, load: Plan, fault: Callable[[], Awaitable[None]] | None = None, at: float = 0.3
) -> TelegramDelivery:
    """Every update (and the redeliveries) at once through the proxy, retried like Telegram; `fault` runs once the
    fraction `at` of them has been acknowledged."""
    deliveries = load.updates + load.redelivered
    random.Random(len(deliveries)).shuffle(deliveries)
    async with TelegramDelivery(cluster.proxy.url, concurrency=40, give_up_after=120) as telegram:
        reached = asyncio.Event()
        acknowledged = 0

        async def one(update: dict[str, Any]) -> int:
            nonlocal acknowledged
            status = await telegram.deliver(update)
            acknowledged += 1
            if acknowledged >= at * len(deliveries):
                reached.set()
            return status

        tasks = [asyncio.create_task(one(u)) for u in deliveries]
        if fault is not None:
            await reached.wait()
            await fault()
        statuses = await asyncio.gather(*tasks)
    assert Counter(statuses) == {200: len(deliveries)}
    return telegram


def expected_replies(cluster: Cluster, messages: list[str]) -> Counter[str]:
    total: Counter[str] = Counter()
    for message in messages:
        total += cluster.expected[message]
    return total


async def wait_for_replies(cluster: Cluster, load: Plan, within: float = 60.0) -> dict[int, Counter[str]]:
    api = cluster.api

    def counts() -> dict[int, int]:
        sent: Counter[int | None] = Counter(c.chat_id for c in api.calls if c.method == "sendMessage" and c.ok)
        return {user: sent[user] for user in load.messages}

    def need(user: int) -> int:
        messages = load.messages[user]
        return cluster.agent_replies if user in load.agents else sum(expected_replies(cluster, messages).values())

    def enough() -> bool:
        have = counts()
        return all(have[u] >= need(u) for u in load.messages)

    def collect() -> dict[int, Counter[str]]:
        replies: dict[int, Counter[str]] = {user: Counter() for user in load.messages}
        for call in api.calls:
            if call.method == "sendMessage" and call.ok and call.chat_id in replies:
                replies[call.chat_id][str(call.params["text"])[:40]] += 1
        return replies

    try:
        await api.wait_for(enough, within, "every participant's replies")
    except AssertionError:
        replies = collect()
        short = {u: (m, dict(replies[u])) for u, m in load.messages.items() if sum(replies[u].values()) < need(u)}
        raise AssertionError(f"{len(short)} chats short of replies, e.g. {list(short.items())[:3]}") from None
    await asyncio.sleep(0.5)  # anything more would be a duplicate
    return collect()


async def check_exactly_once(
    cluster: Cluster,
    load: Plan,
    replies: dict[int, Counter[str]],
    in_flight: dict[int, list[str]] | None = None,
    sender_killed: bool = False,
) -> None:
    """Every update handled once. `in_flight`: the chats whose updates (their messages) a killed worker had claimed —
    several per chat when some waited for the chat's lock behind the one in hand. `sender_killed`: a killed worker
    may have run the outbox's participant sender; a message it had handed to Telegram but not yet marked sent goes
    again after the takeover (at least once, never lost): a case's acknowledgement may arrive twice."""
    in_flight = in_flight or {}
    wrong = {}
    for user, messages in load.messages.items():
        if user in load.agents:
            got = sum(replies[user].values())
            if not cluster.agent_replies <= got <= cluster.agent_replies + (1 if sender_killed else 0):
                wrong[user] = replies[user]
            continue
        expected = expected_replies(cluster, messages)
        if user in in_flight:  # the dead worker may have sent part of those updates' replies before it died
            extra = replies[user] - expected
            if expected - replies[user] or extra - expected_replies(cluster, in_flight[user]):
                wrong[user] = replies[user]
        elif replies[user] != expected:
            wrong[user] = replies[user]
    assert wrong == {}, f"{len(wrong)} chats got other replies than one worker gives"

    ids = load.update_ids
    ledger = await cluster.rows(
        select(ProcessedUpdate.status, func.count())
        .where(ProcessedUpdate.update_id.in_(bindparam("ids", expanding=True)))
        .group_by(ProcessedUpdate.status)
        .params(ids=ids)
    )
    assert dict(ledger) == {"done": len(ids)}
    interactions = dict(
        await cluster.rows(
            select(Interaction.telegram_user_id, func.count())
            .where(Interaction.telegram_user_id.in_(bindparam("users", expanding=True)))
            .group_by(Interaction.telegram_user_id)
            .params(users=list(load.messages))
        )
    )
    doubled = {
        u: interactions.get(u, 0)
        for u, m in load.messages.items()
        if not len(m) <= interactions.get(u, 0) <= len(m) + len(in_flight.get(u, []))
    }
    assert doubled == {}, "interactions recorded other than once per update"
    cases = dict(
        await cluster.rows(
            select(Case.telegram_user_id, func.count())
            .where(Case.telegram_user_id.in_(bindparam("users", expanding=True)))
            .group_by(Case.telegram_user_id)
            .params(users=list(load.messages))
        )
    )
    assert cases == dict.fromkeys(load.agents, 1)  # no case opened twice, none for anyone else


# --- the tests --------------------------------------------------------------------------------------------------
async def test_2000_updates_from_200_participants_some_twice_each_handled_once(cluster: Cluster) -> None:
    load = plan(cluster.api, participants=200, per_participant=10, agents=20, seed=1)
    assert len(load.updates) == 2020 and len(load.redelivered) >= 100
    started = time.monotonic()
    telegram = await deliver(cluster, load)
    elapsed = time.monotonic() - started
    replies = await wait_for_replies(cluster, load)
    await check_exactly_once(cluster, load, replies)
    assert all(v > len(load.updates) / (WORKERS * 2) for v in cluster.proxy.forwarded.values())  # all took part
    print(f"\n2,020 updates (+{len(load.redelivered)} redelivered) in {elapsed:.1f}s: {telegram.stats.statuses}")


async def test_a_worker_killed_mid_load_the_rest_carry_on(cluster: Cluster) -> None:
    load = plan(cluster.api, participants=30, per_participant=10, agents=6, seed=2)
    victim = cluster.live()[0]
    in_flight: dict[int, list[str]] = {}

    async def kill() -> None:
        victim.process.kill()
        await asyncio.to_thread(victim.process.wait, 10)
        name = f"{socket.gethostname()}:{victim.pid}"[:64]
        claimed = await cluster.rows(
            select(ProcessedUpdate.update_id).where(
                ProcessedUpdate.worker == name, ProcessedUpdate.status == "processing"
            )
        )
        by_id = {u["update_id"]: u for u in load.updates}
        for (update_id,) in claimed:
            update = by_id[update_id]
            in_flight.setdefault(load.user_of(update), []).append(update["message"]["text"])

    try:
        telegram = await deliver(cluster, load, kill, at=0.3)
        replies = await wait_for_replies(cluster, load)
        await check_exactly_once(cluster, load, replies, in_flight, sender_killed=True)
        assert not victim.alive() and telegram.stats.retries > 0
    finally:
        await cluster.add_worker()  # the replacement, so that a failure here does not fail the tests that follow
    claims = sum(map(len, in_flight.values()))
    print(f"\nSIGKILL with {claims} updates claimed; deliveries: {telegram.stats.statuses}")


async def test_postgresql_restarted_mid_load(cluster: Cluster) -> None:
    load = plan(cluster.api, participants=30, per_participant=10, agents=6, seed=3)

    async def restart() -> None:
        done = await asyncio.to_thread(
            _run, "pg_ctlcluster", "--skip-systemctl-redirect", PG_VERSION, "main", "restart"
        )
        assert done.returncode == 0, done.stderr

    try:
        telegram = await deliver(cluster, load, restart, at=0.3)
    finally:
        await asyncio.to_thread(start_postgres)
    failed = sum(n for status, n in telegram.stats.statuses.items() if status != 200)
    assert failed > 0  # the restart was felt: 5xx, and Telegram's retries got through
    assert set(telegram.stats.statuses) <= {200, 500, 502, 503, 0}
    replies = await wait_for_replies(cluster, load)
    await check_exactly_once(cluster, load, replies)  # nothing half-written, nothing twice
    assert [w for w in cluster.workers if not w.alive()] == [cluster.workers[0]]  # only the one killed before
    print(f"\nPostgreSQL restart: deliveries {telegram.stats.statuses}")


async def test_redis_restarted_mid_load(cluster: Cluster) -> None:
    load = plan(cluster.api, participants=30, per_participant=10, agents=6, seed=4)

    async def restart() -> None:
        await asyncio.to_thread(_run, "redis-cli", "-p", str(redis_port()), "shutdown", "nosave")
        await asyncio.sleep(1.0)
        await asyncio.to_thread(start_redis)

    try:
        telegram = await deliver(cluster, load, restart, at=0.3)
    finally:
        await asyncio.to_thread(start_redis)
    assert sum(n for status, n in telegram.stats.statuses.items() if status != 200) > 0
    replies = await wait_for_replies(cluster, load)
    await check_exactly_once(cluster, load, replies)
    assert len(cluster.live()) == WORKERS
    print(f"\nRedis restart: deliveries {telegram.stats.statuses}")


async def sender_leader(cluster: Cluster) -> Worker:
    """The worker whose database connection holds the participant sender's advisory lock."""
    for _ in range(200):
        port = await cluster.scalar(
            text(
                "SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.objid = :key AND l.classid = 0 "
                "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            ).bindparams(key=PARTICIPANT_SENDER_LOCK)
        )
        for worker in cluster.live():
            if port and any(c.laddr and c.laddr.port == port for c in psutil.Process(worker.pid).net_connections()):
                return worker
        await asyncio.sleep(0.1)
    raise AssertionError("no worker leads the participant sender")


async def test_the_sender_killed_mid_outbox_loses_and_repeats_nothing(cluster: Cluster) -> None:
    api = cluster.api
    chats = [next(_users) for _ in range(100)]
    for user in chats:
        api.push_message(user, "/start")  # they wrote to the bot once (the update is not delivered: no matter)
    async with cluster.engine.begin() as conn:
        await conn.execute(
            insert(TelegramLink),
            [{"telegram_user_id": user, "participant_id": 1 + n % 18, "locale": "id"} for n, user in enumerate(chats)],
        )
        links = {n % 18 + 1 for n in range(len(chats))}
        notifications = [
            Notification(
                p,
                NotificationKind.CERTIFICATE_ISSUED,
                f"kill-{p}-{k}",
                {"training": "Kelas", "number": f"CERT-{p}-{k}"},
            )
            for k in range(2)
            for p in sorted(links)
        ]
        await conn.run_sync(queue_notifications, notifications)  # (its count is -1 on asyncpg's executemany)
        queued = await conn.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.lane == "participant", OutboxMessage.chat_id.in_(chats))
        )  # (earlier tests' cases left their acknowledgements in this lane)
    assert queued == 2 * len(chats)
    leader = await sender_leader(cluster)

    def arrived() -> list[Any]:
        return [c for c in api.calls if c.method == "sendMessage" and c.ok and "CERT-" in str(c.params["text"])]

    await api.wait_for(lambda: len(arrived()) >= queued // 3, 30, "a third of the notifications")
    # Kill it between two messages: frozen, it must have none handed to Telegram without the answer recorded.
    for _ in range(500):
        os.kill(leader.pid, signal.SIGSTOP)
        in_hand = await cluster.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == "sending")
        )
        if in_hand == 0:
            break
        os.kill(leader.pid, signal.SIGCONT)
        await asyncio.sleep(random.uniform(0.001, 0.01))
    leader.process.kill()
    await asyncio.to_thread(leader.process.wait, 10)
    sent_before = len(arrived())
    assert 0 < sent_before < queued
    await api.wait_for(lambda: len(arrived()) >= queued, 60, "every notification after the takeover")
    await asyncio.sleep(1.0)
    calls = arrived()
    texts = Counter((c.chat_id, re.findall(r"CERT-\d+-\d", str(c.params["text"]))[0]) for c in calls)
    assert len(texts) == queued and set(texts.values()) == {1}  # each exactly once
    statuses = await cluster.rows(
        select(OutboxMessage.status, func.count())
        .where(OutboxMessage.lane == "participant", OutboxMessage.chat_id.in_(chats))
        .group_by(OutboxMessage.status)
    )
    assert dict(statuses) == {"sent": queued}
    # Within Telegram's limits throughout, the takeover included: ≤ 30 a second, 1 a second per chat.
    times = sorted(c.at for c in calls)
    assert max(sum(1 for t in times[i:] if t - start < 1.0) for i, start in enumerate(times)) <= 31
    per_chat: dict[int | None, list[float]] = {}
    for call in calls:
        per_chat.setdefault(call.chat_id, []).append(call.at)
    gaps = [b - a for stamps in per_chat.values() for a, b in itertools.pairwise(stamps)]
    assert min(gaps) >= 0.9
    cluster.proxy.backends = [w.url for w in cluster.live()]
    print(f"\nsender killed after {sent_before}/{queued}; the rest came from the new leader")
