"""Load on the whole bot: K simulated participants through a fake Bot API server, against a bare aiogram echo bot.

In one run, on a fresh SQLite demo database:
1. polling — `prakerja-bot run` (one process) and a bare aiogram echo bot, each driven by K participants in a closed
   loop (send, wait for the complete answer, send the next) through this file's fake Bot API server, for --seconds;
2. webhook — `prakerja-bot webhook` (--workers processes) and the echo bot behind aiogram's webhook handler, the same
   participants posting updates to them;
3. paced — our polling bot at a fixed --rate of updates a second (open loop), for the p99 reply latency;
4. notify — --notify N notifications queued in the outbox, drained by our bot's sender against a fake server that
   enforces Telegram's limits (30 messages a second overall, 1 a second per chat) and answers 429 beyond them.

The mix is FAQ questions and /status look-ups by participants linked to the demo personas. A reply's latency is from
the update being offered (queued for getUpdates, or posted) to the last message of its answer. Prints a table and
ends with one JSON line. Targets (2-core machine, issue 14): ≥ 500 updates/s polling, ≥ 70% of the echo bot's
throughput polling and ≥ 60% with one webhook worker, p99 < 50 ms at 200 updates/s, ≥ 95% of 30/s when draining with
no 429. Each run also reports the bot's CPU per update (all its threads, from /proc) and its Bot API requests per
update by method: the load generator and the fake server share the machine's cores with the bot, so the bot's CPU per
update is what decides the ratio.

    python bench/load.py                       # the full run (10,000 notifications: about 6 minutes more)
    python bench/load.py --quick               # a minute: short runs, 300 notifications
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

TOKEN = "123456:BENCH-token"
SECRET = "bench-secret-0123456789abcdef0123456789"  # 32+ characters: workers refuse shorter ones
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the benches that import this file use core/ from here, the project installed or not
    sys.path.insert(0, str(ROOT))
SCRIPT = Path(sys.executable).parent / "prakerja-bot"
ME = [sys.executable, str(Path(__file__).resolve())]  # this file, to start the echo bot
PERSONAS = 18  # `prakerja-bot demo`
# Linked like the participants (persona 1 + user % PERSONAS), one a persona: they ask each message to count its replies.
CALIBRATION_USERS = [9_000_000 + p - 1 + PERSONAS * 10 for p in range(1, PERSONAS + 1)]
READY_WITHIN = 120.0  # seconds for a bot process to serve: starting one takes half a minute on a crowded machine
QUESTIONS = (
    "kapan insentif cair",
    "lupa password akun prakerja",
    "cara memberi ulasan pelatihan",
    "bagaimana cara ganti nomor hp",
    "cara beli pelatihan",
    "survei evaluasi dapat uang berapa",
    "kenapa akun saya dicabut",
)
STATUS_SHARE = 0.3  # of the updates: /status look-ups; the rest are FAQ questions
TARGETS = {
    "polling_updates_per_s": 500,
    "ratio_to_echo": 0.70,
    "webhook_ratio_to_echo": 0.60,
    "paced_p99_ms": 50,
    "notify_fraction": 0.95,
}
err = Console(stderr=True, highlight=False, width=170)  # the table is wide; a log file is no terminal


# --- a lean fake Bot API server ---------------------------------------------------------------------------------
@dataclass
class Pending:
    offered: float
    expected: int
    got: int = 0
    done: asyncio.Future[float] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class LeanBotApi:
    """Just what the bots call, answered without models: getUpdates (long polling), sendMessage and the like.
    Replies complete the oldest pending update of their chat. With `limits`, sendMessage keeps Telegram's pace:
    30 a second overall (a token bucket), 1 a second per chat; beyond that a 429 with retry_after."""

    def __init__(self, limits: bool = False) -> None:
        self.url = ""
        self.limits = limits
        self.queue: deque[dict[str, Any]] = deque()
        self.pending: dict[int, deque[Pending]] = {}
        self.sent: list[tuple[float, int, str]] = []  # (when, chat, text)
        self.too_many = 0
        self.calls: Counter[str] = Counter()  # Bot API requests by method (getUpdates included)
        self.updates = itertools.count(1)
        self.message_ids = itertools.count(1)
        self._arrived = asyncio.Event()
        self._tokens, self._refilled = 30.0, time.monotonic()
        self._last_in_chat: dict[int, float] = {}
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> LeanBotApi:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._handle)
        app.router.add_get("/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port, backlog=1024).start()
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def offer(self, user: int, text: str, expected: int, queue: bool = True) -> tuple[dict[str, Any], Pending]:
        """A participant writes; the update is queued for getUpdates (or returned for posting)."""
        update_id = next(self.updates)
        person = {"id": user, "is_bot": False, "first_name": f"Peserta {user}", "language_code": "id"}
        message: dict[str, Any] = {
            "message_id": update_id,
            "date": int(time.time()),
            "chat": {"id": user, "type": "private", "first_name": person["first_name"]},
            "from": person,
            "text": text,
        }
        if text.startswith("/"):
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        update = {"update_id": update_id, "message": message}
        pending = Pending(time.perf_counter(), expected)
        self.pending.setdefault(user, deque()).append(pending)
        if queue:
            self.queue.append(update)
            self._arrived.set()
        return update, pending

    def reset(self) -> None:
        """Between runs: nothing left waiting from the previous bot."""
        self.pending.clear()
        self.queue.clear()
        self.calls.clear()

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"].lower()
        self.calls[method] += 1
        params: dict[str, Any] = dict(request.query)
        if request.can_read_body:
            if request.content_type == "application/json":
                params |= await request.json()
            else:
                params |= {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        if method == "getupdates":
            return _ok(await self._get_updates(params))
        if method == "getme":
            return _ok({"id": 123456, "is_bot": True, "first_name": "Bench", "username": "bench_bot"})
        if method == "sendmessage":
            return self._send_message(params)
        if method in ("editmessagetext", "editmessagereplymarkup"):
            return _ok(True)
        return _ok(True)

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        while self.queue and self.queue[0]["update_id"] < offset:
            self.queue.popleft()
        if not self.queue:
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), float(params.get("timeout") or 0))
        return list(itertools.islice(self.queue, 0, int(params.get("limit") or 100)))

    def _send_message(self, params: dict[str, Any]) -> web.Response:
        now = time.perf_counter()
        chat = int(params["chat_id"])
        if self.limits:
            clock = time.monotonic()
            self._tokens = min(30.0, self._tokens + (clock - self._refilled) * 30.0)
            self._refilled = clock
            if self._tokens < 1 or clock - self._last_in_chat.get(chat, -1e9) < 0.95:
                self.too_many += 1
                body = {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 1"}
                return web.json_response(body | {"parameters": {"retry_after": 1}}, status=429)
            self._tokens -= 1
            self._last_in_chat[chat] = clock
        text = str(params.get("text", ""))
        self.sent.append((now, chat, text))
        waiting = self.pending.get(chat)
        if waiting:
            head = waiting[0]
            head.got += 1
            if head.got >= head.expected:
                waiting.popleft()
                if not head.done.done():
                    head.done.set_result(now - head.offered)
        message = {
            "message_id": next(self.message_ids),
            "date": int(time.time()),
            "chat": {"id": chat, "type": "private"},
            "text": text,
        }
        return _ok(message)


def _ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far, all its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def metered(api: LeanBotApi, procs: list[subprocess.Popen[bytes]], running: Awaitable[Run]) -> Run:
    """A run with the bots' CPU (all their threads) and their Bot API requests during it."""
    before = sum(cpu_seconds(p.pid) for p in procs)
    run = await running  # it starts with api.reset(), which clears the request counts
    run.measured(sum(cpu_seconds(p.pid) for p in procs) - before, api.calls)
    return run


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- the bots under load ----------------------------------------------------------------------------------------
def environment(db: Path, api: str, **extra: str) -> dict[str, str]:
    cleared = ("REDIS_URL", "STAFF_CHAT_ID", "AGENT_IDS", "ADMIN_IDS", "WEBHOOK_URL")
    env = {k: v for k, v in os.environ.items() if k not in cleared}
    return (
        env
        | {
            "DATABASE_URL": f"sqlite+aiosqlite:///{db}",
            "BOT_TOKEN": TOKEN,
            "BOT_API_URL": api,
            "WEBHOOK_SECRET": SECRET,
            "PII_HASH_KEY": "bench-pii-key-0123456789abcdef0123456789",
            "DEFAULT_LOCALE": "id",
            # Each simulated participant writes as fast as the bot answers (4-5 a second on a quiet machine), which
            # the flood throttle rightly drops past a burst of 20: the throttle still runs, with room for that.
            "FLOOD_BURST": "1000",
            "FLOOD_RATE": "100",
            "PYTHONPATH": str(ROOT),
        }
        | extra
    )


@contextlib.asynccontextmanager
async def process(
    command: list[str], env: dict[str, str], log: Path, ready: str | None = None
) -> AsyncIterator[subprocess.Popen[bytes]]:
    """A bot process for the block, stopped after it (`stop_process`); `ready`: a URL answering below 500 once it
    serves, awaited first (`wait_ready`)."""
    proc = await asyncio.to_thread(_spawn, command, env, log)
    try:
        if ready:
            await wait_ready(proc, ready, log)
        yield proc
    finally:
        await stop_process(proc)


async def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (the bot finishes the updates in hand), SIGKILL if it has not gone within 20 s."""
    proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.to_thread(proc.wait, 20)
    except subprocess.TimeoutExpired:
        proc.kill()
        await asyncio.to_thread(proc.wait, 10)


def _spawn(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(command, env=env, cwd=log.parent, stdout=out, stderr=subprocess.STDOUT)


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-1500:]


async def wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path, within: float = READY_WITHIN) -> None:
    """Until `url` (a /healthz) answers below 500; the log's tail in the error if the process exits or never does."""
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(url) as response:
                    if response.status < 500:
                        return
            await asyncio.sleep(0.2)
    raise RuntimeError(
        f"{log.name}: not serving after {within:.0f} s (exit code {proc.poll()}): {await asyncio.to_thread(tail, log)}"
    )


def echo_bot_main(mode: str, api: str, port: int) -> None:
    """The baseline: a bare aiogram bot that answers every message with its text (`--echo-bot MODE`)."""
    from aiogram import Bot, Dispatcher
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer
    from aiogram.types import Message
    from aiogram.webhook.aiohttp_server import SimpleRequestHandler

    bot = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(api)))
    dp = Dispatcher()

    @dp.message()
    async def echo(message: Message) -> None:
        await message.answer(message.text or "?")

    if mode == "polling":
        asyncio.run(dp.start_polling(bot, handle_signals=True))
        return
    app = web.Application()
    SimpleRequestHandler(dp, bot, handle_in_background=False, secret_token=SECRET).register(app, path="/webhook")

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


# --- participants -----------------------------------------------------------------------------------------------
@dataclass
class Run:
    name: str
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    timeouts: int = 0
    cpu_seconds: float | None = None  # the bot process's CPU (all its threads) during the run
    calls: Counter[str] = field(default_factory=Counter)  # its Bot API requests by method

    def measured(self, cpu_seconds: float, calls: Counter[str]) -> None:
        self.cpu_seconds, self.calls = cpu_seconds, Counter(calls)

    @property
    def updates_per_s(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    def figures(self) -> dict[str, Any]:
        return {
            "updates": len(self.latencies),
            "seconds": round(self.seconds, 2),
            "updates_per_s": round(self.updates_per_s, 1),
            "p50_ms": round(self.percentile(0.50), 1),
            "p99_ms": round(self.percentile(0.99), 1),
            "timeouts": self.timeouts,
        } | self._per_update()

    def _per_update(self) -> dict[str, Any]:
        n = len(self.latencies)
        if not n or self.cpu_seconds is None:
            return {}
        return {
            "cpu_ms_per_update": round(self.cpu_seconds / n * 1000, 3),
            "requests_per_update": {m: round(c / n, 3) for m, c in sorted(self.calls.items())},
        }


Poster = Callable[[dict[str, Any]], Any]


class Participants:
    """K Telegram users, each linked to a demo persona; what each message gets as answer (how many messages)."""

    def __init__(self, k: int, seed: int = 7) -> None:
        self.users = list(range(10_000_001, 10_000_001 + k))
        self.rng = random.Random(seed)
        self.replies: dict[tuple[int, str], int] = {}  # (persona, message) → messages in the answer

    @staticmethod
    def persona(user: int) -> int:
        return 1 + user % PERSONAS

    def next_message(self) -> str:
        return "/status" if self.rng.random() < STATUS_SHARE else self.rng.choice(QUESTIONS)

    def expected(self, user: int, message: str, echo: bool) -> int:
        return 1 if echo else self.replies[self.persona(user), message]


async def closed_loop(
    api: LeanBotApi,
    people: Participants,
    seconds: float,
    echo: bool,
    post: Poster | None,
    name: str,
    progress: Progress,
) -> Run:
    """Each participant: send, wait for the whole answer, send the next — for `seconds`."""
    run = Run(name)
    api.reset()
    task = progress.add_task(name, total=seconds)
    stop_at = time.perf_counter() + seconds
    started = time.perf_counter()

    async def participant(user: int) -> None:
        while time.perf_counter() < stop_at:
            message = people.next_message()
            update, pending = api.offer(user, message, people.expected(user, message, echo), queue=post is None)
            if post is not None:
                await post(update)
            try:
                run.latencies.append(await asyncio.wait_for(pending.done, 30))
            except TimeoutError:
                run.timeouts += 1
                api.pending[user].clear()

    async def ticker() -> None:
        while time.perf_counter() < stop_at:
            progress.update(task, completed=min(seconds, time.perf_counter() - started))
            await asyncio.sleep(0.2)

    ticking = asyncio.create_task(ticker())
    await asyncio.gather(*(participant(u) for u in people.users))
    run.seconds = time.perf_counter() - started
    ticking.cancel()
    progress.update(task, completed=seconds)
    return run


async def paced(api: LeanBotApi, people: Participants, rate: float, seconds: float, progress: Progress) -> Run:
    """Open loop: an update every 1/rate seconds from the participants in turn, however the bot keeps up."""
    run = Run(f"paced {rate:g}/s")
    api.reset()
    total = int(rate * seconds)
    task = progress.add_task(run.name, total=total)
    waits = []
    started = time.perf_counter()
    users = itertools.cycle(people.users)
    for n in range(total):
        delay = started + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        user = next(users)
        message = people.next_message()
        _, pending = api.offer(user, message, people.expected(user, message, echo=False))
        waits.append(pending.done)
        progress.update(task, completed=n + 1)
    for future in waits:
        try:
            run.latencies.append(await asyncio.wait_for(future, max(5.0, seconds)))
        except TimeoutError:
            run.timeouts += 1
    run.seconds = time.perf_counter() - started
    return run


def webhook_poster(session: aiohttp.ClientSession, urls: list[str]) -> Poster:
    turn = itertools.cycle(urls)

    async def post(update: dict[str, Any]) -> None:
        async with session.post(next(turn) + "/webhook", json=update, headers={SECRET_HEADER: SECRET}) as response:
            await response.read()

    return post


# --- set-up -----------------------------------------------------------------------------------------------------
def prepare_database(tmp: Path, users: list[int]) -> Path:
    db = tmp / "bench.db"
    env = environment(db, "http://127.0.0.1:9")
    done = subprocess.run(
        [str(SCRIPT), "demo", "--json"], env=env, cwd=tmp, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"prakerja-bot demo: {done.stderr[-1000:]}")
    with sqlite3.connect(db) as conn:  # linked, as if each had proved who they are
        conn.executemany(
            "INSERT INTO telegram_links (telegram_user_id, participant_id, locale) VALUES (?, ?, 'id')",
            [(u, Participants.persona(u)) for u in users],
        )
    return db


async def calibrate(api: LeanBotApi, people: Participants, post: Poster, at_once: bool = False) -> None:
    """How many messages our bot answers each message with, per persona of the participants (a webhook worker
    answers after sending): each message twice, the counts must agree. `at_once`: the personas in parallel (one after
    another takes half a minute on PostgreSQL)."""

    async def persona_replies(persona: int) -> None:
        user = CALIBRATION_USERS[persona - 1]
        assert Participants.persona(user) == persona
        for message in (*QUESTIONS, "/status"):
            counts = []
            for _ in range(2):
                before = len(api.sent)
                update, _ = api.offer(user, message, 10**6, queue=False)
                await post(update)
                counts.append(sum(1 for _, chat, _ in api.sent[before:] if chat == user))
            if counts[0] != counts[1] or not counts[0]:
                raise RuntimeError(f"persona {persona}, {message!r}: answers differ ({counts})")
            people.replies[persona, message] = counts[0]
        api.pending.pop(user, None)

    personas = sorted({Participants.persona(u) for u in people.users})
    if at_once:
        await asyncio.gather(*(persona_replies(p) for p in personas))
    else:
        for persona in personas:
            await persona_replies(persona)


def queue_notifications_rows(db: Path, n: int, chats: list[int]) -> None:
    """N outbox rows as core.notifications.queue_notifications writes them, round-robin over the chats."""
    rows = [
        (
            "participant",
            chats[i % len(chats)],
            "notify",
            json.dumps(
                {"kind": "certificate_issued", "locale": "id", "context": {"training": "Bench", "number": f"B{i}"}}
            ),
            f"certificate_issued:bench-{i}:{chats[i % len(chats)]}",
            "pending",
            0,
        )
        for i in range(n)
    ]
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT INTO outbox (lane, chat_id, method, payload, dedupe_key, status, attempts) VALUES (?,?,?,?,?,?,?)",
            rows,
        )


# --- the benchmark ----------------------------------------------------------------------------------------------
@contextlib.contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    """A run's scratch folder (its database, the processes' logs): removed after the run, kept and named if it
    failed — every run used to leave one in /tmp."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield tmp
    except BaseException:
        err.print(f"the run's database and logs are kept in {tmp}")
        raise
    shutil.rmtree(tmp, ignore_errors=True)


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    with scratch("prakerja-load-") as tmp:
        return await _bench(args, tmp)


async def _bench(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    people = Participants(args.participants)
    db = await asyncio.to_thread(prepare_database, tmp, people.users + CALIBRATION_USERS)
    results: dict[str, Any] = {"participants": args.participants, "seconds": args.seconds}
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
    )
    timeout = aiohttp.ClientTimeout(total=60)
    with progress:
        async with (
            LeanBotApi() as api,
            aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as http,
        ):
            # Webhook first: it also tells how many messages each answer has.
            ports = [free_port() for _ in range(args.workers)]
            urls = [f"http://127.0.0.1:{p}" for p in ports]
            async with contextlib.AsyncExitStack() as stack:
                workers = []
                for n, port in enumerate(ports):
                    command = [str(SCRIPT), "webhook", "--host", "127.0.0.1", "--port", str(port)]
                    workers.append(
                        await stack.enter_async_context(
                            process(command, environment(db, api.url), tmp / f"webhook-{n}.log", urls[n] + "/healthz")
                        )
                    )
                post = webhook_poster(http, urls)
                await calibrate(api, people, post)
                ours_hook = await metered(
                    api, workers, closed_loop(api, people, args.seconds, False, post, "webhook: ours", progress)
                )
            echo_port = free_port()
            echo_url = f"http://127.0.0.1:{echo_port}"
            command = [*ME, "--echo-bot", "webhook", "--api", api.url, "--port", str(echo_port)]
            async with process(
                command, environment(db, api.url), tmp / "echo-webhook.log", echo_url + "/healthz"
            ) as echo:
                post = webhook_poster(http, [echo_url])
                echo_hook = await metered(
                    api, [echo], closed_loop(api, people, args.seconds, True, post, "webhook: echo", progress)
                )

            async with process([str(SCRIPT), "run"], environment(db, api.url), tmp / "polling.log") as ours:
                await warm_up(api, people, ours)
                ours_poll = await metered(
                    api, [ours], closed_loop(api, people, args.seconds, False, None, "polling: ours", progress)
                )
                paced_run = await metered(api, [ours], paced(api, people, args.rate, args.paced_seconds, progress))
            command = [*ME, "--echo-bot", "polling", "--api", api.url]
            api.reset()
            async with process(command, environment(db, api.url), tmp / "echo-polling.log") as echo:
                await warm_up(api, people, echo, echo=True)
                echo_poll = await metered(
                    api, [echo], closed_loop(api, people, args.seconds, True, None, "polling: echo", progress)
                )

        results["polling"] = {
            "ours": ours_poll.figures(),
            "echo": echo_poll.figures(),
            "ratio": round(ours_poll.updates_per_s / echo_poll.updates_per_s, 3) if echo_poll.updates_per_s else 0,
            "cpu_ratio": cpu_ratio(ours_poll, echo_poll),
        }
        results["webhook"] = {
            "workers": args.workers,
            "ours": ours_hook.figures(),
            "echo": echo_hook.figures(),
            "ratio": round(ours_hook.updates_per_s / echo_hook.updates_per_s, 3) if echo_hook.updates_per_s else 0,
            "cpu_ratio": cpu_ratio(ours_hook, echo_hook),
        }
        results["paced"] = {"rate": args.rate} | paced_run.figures()
        if args.notify:
            results["notify"] = await drain(db, tmp, args.notify, progress)
    results["targets"] = {
        "polling_updates_per_s": results["polling"]["ours"]["updates_per_s"] >= TARGETS["polling_updates_per_s"],
        "ratio_to_echo": results["polling"]["ratio"] >= TARGETS["ratio_to_echo"],
        "webhook_ratio_to_echo": results["webhook"]["ratio"] >= TARGETS["webhook_ratio_to_echo"],
        "paced_p99_ms": results["paced"]["p99_ms"] < TARGETS["paced_p99_ms"] and not results["paced"]["timeouts"],
    }
    if args.notify:
        notify = results["notify"]
        results["targets"]["notify"] = notify["fraction_of_limit"] >= TARGETS["notify_fraction"] and not (
            notify["http_429"] or notify["missing"] or notify["duplicates"]
        )
    return results


def cpu_ratio(ours: Run, echo: Run) -> float | None:
    """The echo bot's CPU per update over ours: the throughput ratio the two would reach with the same share of the
    cores. On a shared machine each run gets a different share, so this varies far less between runs than `ratio`."""
    if not (ours.cpu_seconds and echo.cpu_seconds and ours.latencies and echo.latencies):
        return None
    return round((echo.cpu_seconds / len(echo.latencies)) / (ours.cpu_seconds / len(ours.latencies)), 3)


async def warm_up(api: LeanBotApi, people: Participants, proc: subprocess.Popen[bytes], echo: bool = False) -> None:
    """Until the polling bot answers a /status (its start-up is not measured): one update, waited for as long as a
    start takes (READY_WITHIN) while the process runs. (A new one offered every second piled up in the queue: a bot
    that took 15 s to start got them all at once, the participant's flood-throttle burst was spent before the run,
    and their next messages were dropped — 30 s timeouts.)"""
    user = people.users[0]
    _, pending = api.offer(user, "/status", people.expected(user, "/status", echo))
    deadline = time.monotonic() + READY_WITHIN
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(pending.done), 1.0)
            return
    raise RuntimeError(f"the polling bot does not answer (exit code {proc.poll()})")


async def drain(db: Path, tmp: Path, n: int, progress: Progress) -> dict[str, Any]:
    """N queued notifications, one process's sender, a server that keeps Telegram's limits."""
    chats = list(range(20_000_001, 20_000_001 + max(1, n // 5)))  # five each
    await asyncio.to_thread(queue_notifications_rows, db, n, chats)
    task = progress.add_task(f"notify: {n:,} queued", total=n)
    async with LeanBotApi(limits=True) as api:
        port = free_port()
        command = [str(SCRIPT), "webhook", "--host", "127.0.0.1", "--port", str(port)]
        async with process(command, environment(db, api.url), tmp / "notify.log", f"http://127.0.0.1:{port}/healthz"):
            stalled_since = time.monotonic()
            seen = 0
            while seen < n and time.monotonic() - stalled_since < 30:
                await asyncio.sleep(0.5)
                if len(api.sent) > seen:
                    seen, stalled_since = len(api.sent), time.monotonic()
                progress.update(task, completed=min(seen, n))
    stamps = [when for when, _, _ in api.sent]
    texts = Counter(text.split("<code>")[1].split("</code>")[0] for _, _, text in api.sent if "<code>" in text)
    span = stamps[-1] - stamps[0] if len(stamps) > 1 else 0.0
    rate = (len(stamps) - 1) / span if span else 0.0
    return {
        "messages": n,
        "delivered": len(texts),
        "missing": n - len(texts),
        "duplicates": sum(c - 1 for c in texts.values()),
        "msgs_per_s": round(rate, 2),
        "fraction_of_limit": round(rate / 30, 3),
        "http_429": api.too_many,
        "seconds": round(span, 1),
    }


def report(results: dict[str, Any]) -> None:
    table = Table(title=f"Load — {results['participants']} participants")
    for column in ("run", "updates", "updates/s", "p50 ms", "p99 ms", "timeouts", "CPU ms/update", "requests/update"):
        table.add_column(column, justify="right" if column != "run" else "left")
    rows = [
        ("polling: ours", results["polling"]["ours"]),
        ("polling: echo", results["polling"]["echo"]),
        (f"webhook ×{results['webhook']['workers']}: ours", results["webhook"]["ours"]),
        ("webhook: echo", results["webhook"]["echo"]),
        (f"paced {results['paced']['rate']:g}/s: ours", results["paced"]),
    ]
    for name, figures in rows:
        table.add_row(
            name,
            str(figures["updates"]),
            f"{figures['updates_per_s']:.1f}",
            f"{figures['p50_ms']:.1f}",
            f"{figures['p99_ms']:.1f}",
            str(figures["timeouts"]),
            f"{figures['cpu_ms_per_update']:.2f}" if "cpu_ms_per_update" in figures else "",
            ", ".join(f"{m} {n:.2f}" for m, n in figures.get("requests_per_update", {}).items()),
        )
    err.print(table)
    err.print(
        f"ours / echo: polling {results['polling']['ratio']:.1%}, webhook {results['webhook']['ratio']:.1%}"
        f" (targets ≥ {TARGETS['ratio_to_echo']:.0%}, ≥ {TARGETS['webhook_ratio_to_echo']:.0%});"
        f" by CPU per update: polling {results['polling']['cpu_ratio'] or 0:.1%},"
        f" webhook {results['webhook']['cpu_ratio'] or 0:.1%}"
    )
    if "notify" in results:
        n = results["notify"]
        err.print(
            f"notify: {n['delivered']:,}/{n['messages']:,} in {n['seconds']}s = {n['msgs_per_s']}/s "
            f"({n['fraction_of_limit']:.1%} of 30/s), 429s: {n['http_429']}, duplicates: {n['duplicates']}"
        )
    err.print("targets met: " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in results["targets"].items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--participants", "-k", type=int, default=300, help="simulated participants (default 300)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each closed-loop run")
    parser.add_argument("--rate", type=float, default=200.0, help="updates a second of the paced run")
    parser.add_argument("--paced-seconds", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=1, help="webhook worker processes (SQLite)")
    parser.add_argument("--notify", type=int, default=10_000, help="notifications to drain (0: skip)")
    parser.add_argument("--quick", action="store_true", help="short runs and 300 notifications")
    parser.add_argument("--echo-bot", choices=("polling", "webhook"), help=argparse.SUPPRESS)
    parser.add_argument("--api", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.echo_bot:
        echo_bot_main(args.echo_bot, args.api, args.port)
        return
    if args.quick:
        args.seconds, args.paced_seconds, args.notify = 3.0, 3.0, min(args.notify, 300)
    results = asyncio.run(bench(args))
    report(results)
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    main()
