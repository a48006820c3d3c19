"""/login in a private chat: a staff member gets a one-time link to the web console (valid 10 minutes, usable once).

The Dispatcher's workflow data provides `console_access` (core.console.staff.StaffAccess) and `web_url`.
"""

from __future__ import annotations

import html
import re

from aiogram import F, Router
from aiogram.types import Message

from bot.handlers.filters import on_loop
from bot.web.texts import text
from core.console.staff import StaffAccess

_LOGIN = re.compile(r"^/login(?:@\w+)?(?:\s|$)")


async def claims(message: Message) -> bool:
    """/login, typed or as a caption: this router's (the participant router declines it)."""
    return _LOGIN.match(message.text or message.caption or "") is not None


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
    router.message.register(on_login, claims)
    return router


router = make_router()
