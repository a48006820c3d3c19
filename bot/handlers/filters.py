"""Filters that run on the event loop.

aiogram runs any synchronous filter in a worker thread (`asyncio.to_thread`), and a magic filter (`F.text`, …) is
synchronous: every filter of every router an update passes cost a thread hop, several per update. `on_loop` keeps a
magic filter's meaning (including `.as_(name)` results) and makes it a coroutine.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram.types import TelegramObject
from magic_filter import MagicFilter


def on_loop(magic: MagicFilter) -> Callable[[TelegramObject], Awaitable[Any]]:
    async def check(event: TelegramObject) -> Any:
        return magic.resolve(event)

    return check
