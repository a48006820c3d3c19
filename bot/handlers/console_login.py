"""/login in a private chat: a staff member gets a one-time link to the web console (valid 10 minutes, usable once).

The Dispatcher's workflow data provides `console_access` (core.console.staff.StaffAccess) and `web_url`.
"""

from __future__ import annotations

import html

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import Message

from bot.handlers.filters import on_loop
from bot.web.texts import text
from core.console.staff import StaffAccess


async def on_login(message: Message, console_access: StaffAccess, web_url: str) -> None:
    assert message.from_user is not None
    locale = "en" if (message.from_user.language_code or "").startswith("en") else "id"
    token = await console_access.issue_login_link(message.from_user.id)
    if token is None:
        await message.answer(html.escape(text("bot_login_refused", locale)))
        return
    link = f"{web_url.rstrip('/')}/login?t={token}"
    await message.answer(html.escape(text("bot_login_link", locale, link=link)))


def make_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(on_loop(F.chat.type == "private"))
    router.message.register(on_login, Command("login"))
    return router


router = make_router()
