"""Sending a flow's replies through Telegram: keyboards, the 4,096-character limit, and the typing indicator."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from aiogram import Bot
from aiogram.enums import ChatAction
from aiogram.methods import SendMessage
from aiogram.types import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)

from bot.flows.types import Reply
from bot.session import send_fields
from core.limits import MESSAGE_TEXT

MAX_MESSAGE = MESSAGE_TEXT
Markup = InlineKeyboardMarkup | ReplyKeyboardMarkup | ReplyKeyboardRemove | None


def markup_for(reply: Reply) -> Markup:
    if reply.buttons:
        return InlineKeyboardMarkup(
            inline_keyboard=[
                [InlineKeyboardButton(text=b.label, callback_data=b.data) for b in row] for row in reply.buttons
            ]
        )
    if reply.request_contact:
        return ReplyKeyboardMarkup(
            keyboard=[[KeyboardButton(text=reply.request_contact, request_contact=True)]],
            resize_keyboard=True,
            one_time_keyboard=True,
        )
    if reply.remove_keyboard:
        return ReplyKeyboardRemove()
    return None


def markup_fields(reply: Reply) -> dict[str, Any] | None:
    """`markup_for(reply)` as the JSON object aiogram sends for it (unset fields left out)."""
    if reply.buttons:
        return {"inline_keyboard": [[{"text": b.label, "callback_data": b.data} for b in row] for row in reply.buttons]}
    if reply.request_contact:
        return {
            "keyboard": [[{"text": reply.request_contact, "request_contact": True}]],
            "resize_keyboard": True,
            "one_time_keyboard": True,
        }
    if reply.remove_keyboard:
        return {"remove_keyboard": True}
    return None


def split_text(text: str, limit: int = MAX_MESSAGE) -> list[str]:
    """Cut at line breaks (our templates keep HTML tags within a line), hard-cut only a single overlong line."""
    if len(text) <= limit:
        return [text]
    chunks: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > limit:
            if current:
                chunks.append(current)
                current = ""
            chunks.append(line[:limit])
            line = line[limit:]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            chunks.append(current)
            current = line
        else:
            current = candidate
    if current:
        chunks.append(current)
    return chunks


async def deliver(bot: Bot | None, chat_id: int, replies: Sequence[Reply]) -> None:
    """Each reply as sendMessage requests built from its fields (no aiogram method model unless one fails)."""
    if bot is None:
        return
    for reply in replies:
        parts = split_text(reply.text)
        for n, part in enumerate(parts):
            # The keyboard goes with the last part, where the participant is reading.
            last = n == len(parts) - 1
            fields: dict[str, Any] = {"chat_id": chat_id, "text": part}
            markup = markup_fields(reply) if last else None
            if markup is not None:
                fields["reply_markup"] = markup
            await send_fields(bot, "sendMessage", fields, _message(chat_id, part, reply if last else None))


def _message(chat_id: int, text: str, reply: Reply | None) -> Callable[[], SendMessage]:
    """aiogram's model of the same request: built only to raise a failure as aiogram raises it."""
    return lambda: SendMessage(chat_id=chat_id, text=text, reply_markup=markup_for(reply) if reply else None)


TYPING_AFTER = 0.3  # seconds: a look-up answered sooner needs no indicator
# Turns in hand in this process past which the indicator is left out: the bot is saturated, every answer is late for
# the same reason, and one more request per turn would make them all later still.
TYPING_BUSY = 50


class _Turns:
    in_hand = 0  # turns inside typing_while now, in this process


@contextlib.asynccontextmanager
async def typing_while(
    bot: Bot | None, chat_id: int, enabled: bool, after: float = TYPING_AFTER
) -> AsyncIterator[None]:
    """Show "typing…" when a look-up takes long enough to be noticed (Telegram asks bots to use the indicator only
    then; a quick answer would be one more request for nothing), unless the process is saturated (`TYPING_BUSY`);
    never let the indicator fail the update.

    A timer, not a task per turn, waits for the moment; once the request is out it is awaited, never cancelled: a
    request cancelled in flight closes its connection, and the next request pays for a new one. Awaiting it also
    keeps it ahead of the answer."""
    loop = asyncio.get_running_loop()
    sending: list[asyncio.Task[bool]] = []

    def send() -> None:
        if bot is not None and _Turns.in_hand <= TYPING_BUSY:
            sending.append(loop.create_task(bot.send_chat_action(chat_id, ChatAction.TYPING)))

    timer = loop.call_later(after, send) if enabled and bot is not None else None
    _Turns.in_hand += 1
    try:
        yield
    finally:
        _Turns.in_hand -= 1
        if timer is not None:
            timer.cancel()
        if sending:
            with contextlib.suppress(Exception):
                await sending[0]
