"""What tests and benchmarks share to run the bot as an operator does: the installed `prakerja-bot` script, a clean
environment, starting and stopping a bot process, and reading its replies. Test modules import this, never each
other."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.texts import default_renderer
from tests.fake_bot_api import ApiCall, FakeBotApi
from tests.logs import is_error_line

SCRIPT = Path(sys.executable).parent / "prakerja-bot"
TOKEN = "123456:TEST-token"
# Settings the bot must not pick up from the developer's or CI's environment.
_CLEARED = (
    "REDIS_URL",
    "BOT_TOKEN",
    "BOT_API_URL",
    "WEBHOOK_URL",
    "WEBHOOK_SECRET",
    "STAFF_CHAT_ID",
    "AGENT_IDS",
    "ADMIN_IDS",
)
PII_KEY = "test-pii-hash-key-0123456789abcdef0123456789"
# A bot's start-up before its first getUpdates is ~5 s of CPU (2026-12-04: 5.8–6.8 s measured, over half of it
# aiogram's import building its ~450 pydantic models; then our app's YAML, templates and FAQ matcher): a 2-core
# machine at load average 5+ with two bots starting at once stretches it past 30 s. Hence a long ceiling, which a
# bot that exits or stops using CPU ends at once (START_STALL): only a slow start gets the time, never a hang.
START_WITHIN = 180.0
START_STALL = 30.0  # seconds without 0.1 s more CPU, alive and not polling: hung (waiting on something)


def text(key: str, locale: str = "id", **context: Any) -> str:
    return default_renderer().render(key, locale, **context)


def environment(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _CLEARED}
    # A real key: `run` refuses the development placeholder on any database but the embedded demo one.
    defaults = {"DATABASE_URL": database_url, "DEFAULT_LOCALE": "id", "PYTHONUNBUFFERED": "1", "PII_HASH_KEY": PII_KEY}
    return env | defaults | extra


@dataclass
class RunningBot:
    api: FakeBotApi
    process: subprocess.Popen[bytes]
    log: Path
    database: Path | None = None  # its SQLite file

    def log_size(self) -> int:
        return self.log.stat().st_size

    def errors(self, since: int = 0) -> list[str]:
        """Errors the bot logged after byte `since` of its log."""
        with self.log.open("rb") as log:
            log.seek(since)
            lines = log.read().decode("utf-8", errors="replace").splitlines()
        return [line for line in lines if is_error_line(line)]

    def assert_healthy(self, since: int = 0) -> None:
        assert self.process.poll() is None, f"the bot exited: {self.log.read_text()[-2000:]}"
        assert self.errors(since) == []


def start_bot(cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`prakerja-bot run`, exactly as an operator starts it; its log goes to `log`."""
    with log.open("wb") as log_file:
        return subprocess.Popen(
            [str(SCRIPT), "run"], env=env | {"BOT_TOKEN": TOKEN}, cwd=cwd, stdout=log_file, stderr=subprocess.STDOUT
        )


async def wait_until_polling(
    api: FakeBotApi, process: subprocess.Popen[bytes], log: Path, polls: int = 0, within: float = START_WITHIN
) -> None:
    """Until the bot polls (more than `polls` getUpdates calls in all). Fails with its log's tail as soon as it exits
    or stalls (START_STALL), or after `within` seconds."""
    started = time.monotonic()
    progress_at, progress_cpu = started, process_cpu_seconds(process.pid) or 0.0
    while len(api.calls_to("getUpdates")) <= polls:
        if process.poll() is not None:
            raise AssertionError(f"the bot exited ({process.returncode}) before polling: {_tail(log)}")
        now, cpu = time.monotonic(), process_cpu_seconds(process.pid)
        if cpu is None or cpu >= progress_cpu + 0.1:  # (no /proc: the ceiling alone)
            progress_at, progress_cpu = now, cpu or 0.0
        if now - progress_at > START_STALL or now - started > within:
            raise AssertionError(
                f"the bot has not polled after {now - started:.0f} s ({progress_cpu:.1f} s of CPU, none in the last "
                f"{now - progress_at:.0f} s): {_tail(log)}"
            )
        await api.world.next_change(0.2)


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU of a process so far (Linux /proc; None where that cannot be read)."""
    with contextlib.suppress(OSError, IndexError, ValueError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return None


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:]


async def stop(process: subprocess.Popen[bytes], kill: bool = False) -> None:
    """End a bot process: politely (SIGTERM) unless `kill`, and by force if it does not go within 10 s."""
    if process.poll() is not None:
        return
    if kill:
        process.kill()
    else:
        process.terminate()
    try:
        await asyncio.to_thread(process.wait, 10)
    except subprocess.TimeoutExpired:
        process.kill()
        await asyncio.to_thread(process.wait, 10)


def keyboard_of(call: ApiCall) -> list[list[dict[str, Any]]]:
    markup = call.params.get("reply_markup") or {}
    rows: list[list[dict[str, Any]]] = markup.get("inline_keyboard", [])
    return rows
