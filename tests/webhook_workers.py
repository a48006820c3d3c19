"""Helpers for tests and benchmarks that run `prakerja-bot webhook` workers as real processes.

`start_worker` starts one (its log in a file), `Worker.wait_ready` waits for /healthz, `Worker.stop` sends SIGTERM
(SIGKILL after a timeout). `TelegramDelivery` posts updates the way Telegram does: with the secret header, again after
a 5xx or a broken connection, with growing pauses. `RoundRobinProxy` is the load balancer in front of N workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from tests.harness import START_STALL, START_WITHIN, process_cpu_seconds
from tests.logs import is_error_line

SCRIPT = Path(sys.executable).parent / "prakerja-bot"
ROOT = Path(__file__).resolve().parent.parent
TOKEN = "123456:TEST-token"
SECRET = "webhook-test-secret-8f3a-0123456789abcdef"  # workers refuse fewer than 32 characters
PII_KEY = "test-pii-hash-key-0123456789abcdef0123456789"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# Settings a worker must not pick up from the developer's or CI's environment.
_CLEARED = (
    "REDIS_URL",
    "BOT_TOKEN",
    "BOT_API_URL",
    "WEBHOOK_URL",
    "WEBHOOK_SECRET",
    "STAFF_CHAT_ID",
    "AGENT_IDS",
    "ADMIN_IDS",
    "DATABASE_URL",
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def bot_env(database_url: str, api_url: str = "", **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _CLEARED}
    env |= {"DATABASE_URL": database_url, "DEFAULT_LOCALE": "id", "PYTHONUNBUFFERED": "1", "BOT_TOKEN": TOKEN}
    env |= {"WEBHOOK_SECRET": SECRET, "PII_HASH_KEY": PII_KEY}
    if api_url:
        env["BOT_API_URL"] = api_url
    return env | extra


async def run_cli(args: Sequence[str], env: dict[str, str], cwd: Path, limit: float = 120) -> str:
    """`prakerja-bot ARGS`; fails the test with its stderr when it exits non-zero. Returns stdout."""
    done = await asyncio.to_thread(
        subprocess.run, [str(SCRIPT), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=limit
    )
    assert done.returncode == 0, f"prakerja-bot {' '.join(args)}: {done.stderr[-2000:]}"
    return done.stdout


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def errors(self) -> list[str]:
        return [line for line in self.log_text().splitlines() if is_error_line(line)]

    async def wait_ready(self, within: float = START_WITHIN) -> None:
        """Until /healthz answers. A start-up is all CPU (imports, the app's build: 6-7 s of it, over 30 s of wall
        time on a loaded 2-core box), so a worker still burning CPU gets up to `within`; one that exits fails at
        once, one alive but idle for START_STALL s is hung."""
        started = time.monotonic()
        progress_at, progress_cpu = started, process_cpu_seconds(self.pid) or 0.0
        async with aiohttp.ClientSession() as session:
            while True:
                assert self.alive(), f"worker exited ({self.process.returncode}): {self.log_text()[-3000:]}"
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.get(self.url + "/healthz", timeout=aiohttp.ClientTimeout(total=2)) as r:
                        if r.status == 200:
                            return
                now, cpu = time.monotonic(), process_cpu_seconds(self.pid)
                if cpu is None or cpu >= progress_cpu + 0.1:
                    progress_at, progress_cpu = now, cpu or 0.0
                if now - progress_at > START_STALL or now - started > within:
                    raise AssertionError(
                        f"worker on port {self.port} not ready after {now - started:.0f} s ({progress_cpu:.1f} s of "
                        f"CPU, none in the last {now - progress_at:.0f} s): {self.log_text()[-3000:]}"
                    )
                await asyncio.sleep(0.1)

    async def stop(self, within: float = 20.0) -> int | None:
        """SIGTERM (a graceful stop), then SIGKILL if it does not end in time. Returns the exit code."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self.process.wait, within)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def kill(self) -> None:
        if self.alive():
            self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)


def start_worker(env: dict[str, str], log: Path, cwd: Path, port: int | None = None) -> Worker:
    """`prakerja-bot webhook --host 127.0.0.1 --port PORT`, exactly as an operator starts it."""
    port = port or free_port()
    command = [str(SCRIPT)]
    with log.open("ab") as log_file:
        process = subprocess.Popen(
            [*command, "webhook", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=cwd,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    return Worker(process, port, log)


@dataclass
class DeliveryStats:
    statuses: Counter[int] = field(default_factory=Counter)  # every answer, 0 for a broken connection
    retries: int = 0
    latencies: list[float] = field(default_factory=list)  # first post to the final 200, per delivery


class TelegramDelivery:
    """Posts updates like Telegram: the secret header, and again after anything but a 2xx (growing pauses)."""

    def __init__(
        self,
        url: str,
        secret: str = SECRET,
        concurrency: int = 40,
        give_up_after: float = 90.0,
        first_pause: float = 0.1,
        max_pause: float = 1.0,
    ) -> None:
        self.url = url
        self.secret = secret
        self.limit = asyncio.Semaphore(concurrency)
        self.give_up_after = give_up_after
        self.first_pause = first_pause
        self.max_pause = max_pause
        self.stats = DeliveryStats()
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> TelegramDelivery:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=60)
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def post_once(self, update: dict[str, Any]) -> int:
        assert self._session is not None
        try:
            async with self._session.post(
                self.url + "/webhook", json=update, headers={SECRET_HEADER: self.secret}
            ) as response:
                await response.read()
                return response.status
        except (aiohttp.ClientError, TimeoutError):
            return 0

    async def deliver(self, update: dict[str, Any]) -> int:
        """Until a 2xx (or give_up_after seconds); returns the last status."""
        async with self.limit:
            started = time.monotonic()
            pause = self.first_pause
            while True:
                status = await self.post_once(update)
                self.stats.statuses[status] += 1
                if 200 <= status < 300:
                    self.stats.latencies.append(time.monotonic() - started)
                    return status
                if time.monotonic() - started > self.give_up_after:
                    return status
                self.stats.retries += 1
                await asyncio.sleep(pause)
                pause = min(pause * 2, self.max_pause)


class RoundRobinProxy:
    """The load balancer: each request goes to the next worker; a worker that refuses the connection or drops it is
    skipped for this request (the next one gets it), as a load balancer with passive health checks does."""

    def __init__(self, backends: list[str]) -> None:
        self.backends = list(backends)
        self._next = itertools.count()
        self.url = ""
        self.forwarded: Counter[str] = Counter()
        self.connection_failures = 0
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=60)
        )
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_route("*", "/{path:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        port = free_port()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def __aenter__(self) -> RoundRobinProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._session is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("content-type", SECRET_HEADER.lower())}
        backends = list(self.backends)
        start = next(self._next)
        for n in range(len(backends)):
            backend = backends[(start + n) % len(backends)]
            try:
                async with self._session.request(
                    request.method, backend + request.path_qs, data=body, headers=headers
                ) as response:
                    payload = await response.read()
                    self.forwarded[backend] += 1
                    return web.Response(status=response.status, body=payload)
            except (aiohttp.ClientError, TimeoutError):
                self.connection_failures += 1
                continue
        return web.Response(status=502, text="no worker answered")
