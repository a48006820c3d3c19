"""Shared by the console tests: a console app on a real database, signed-in clients, cases opened through the same
use cases the bot uses."""

from __future__ import annotations

import re
import socket
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from bot.app import build_app
from bot.settings import Settings
from bot.web.app import make_web_app
from bot.web.context import WebContext, build_context
from core.cases.views import ChatMessage
from core.db import Database
from tests.harness import SCRIPT

AGENT, SUPERVISOR, ADMIN, STAFF_CHAT = 111, 222, 999, -1001234


@dataclass
class Console:
    context: WebContext
    client: httpx.AsyncClient

    async def sign_in(self, telegram_id: int) -> str:
        """Signs this client in by a one-time link; returns the session's CSRF token."""
        token = await self.context.access.issue_login_link(telegram_id)
        assert token is not None
        response = await self.client.post("/login", data={"t": token})
        assert response.status_code == 303, response.text
        page = await self.client.get("/inbox")
        found = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert found is not None
        return found.group(1)

    async def open_case(self, user_id: int, text: str, participant_id: int | None = None) -> int:
        cases = self.context.app.services.cases
        assert cases is not None
        opened = await cases.open_case(user_id, participant_id, "participant_asked", "id", "awaiting_pmo", [],
                                       "<b>card</b>", f"user {user_id}")  # fmt: skip
        await cases.relay_from_participant(opened.case, ChatMessage("text", text, [], user_id, 7))
        return opened.case.id


def settings_for(url: str, **more: object) -> Settings:
    return Settings(
        database_url=url, staff_chat_id=[STAFF_CHAT], agent_ids=[AGENT], admin_ids=[ADMIN],
        web_url="http://console.test", pii_hash_key="k" * 40, **more,  # type: ignore[arg-type]
    )  # fmt: skip


@asynccontextmanager
async def console(db: Database, redis_url: str | None = None, **more: object) -> AsyncIterator[Console]:
    settings = settings_for(db.url, redis_url=redis_url, **more)
    context = build_context(settings, build_app(settings, db))  # the test's database closes it
    app = make_web_app(context)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://console.test") as client:
        await context.events.start()
        try:
            yield Console(context, client)
        finally:
            await context.events.stop()
            await context.media.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_web(cwd: Path, env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    """`prakerja-bot web`, as an operator starts it; its log goes to web.log."""
    with (cwd / "web.log").open("wb") as log:
        return subprocess.Popen(
            [str(SCRIPT), "web", "--port", str(port)], env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT
        )
