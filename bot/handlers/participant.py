"""Participants in private chats: parse the update → the conversation → send what it returns. Nothing else."""

from __future__ import annotations

import contextlib
import logging
import re
from dataclasses import replace
from typing import Any

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from redis.exceptions import RedisError

from bot.flows.conversation import Conversation
from bot.flows.staff import StaffDesk
from bot.flows.types import EventKind, Incoming
from bot.handlers import admin, console_login
from bot.handlers.delivery import deliver, typing_while
from bot.handlers.filters import on_loop
from bot.handlers.relay import chat_message
from core.identity import redact

log = logging.getLogger(__name__)
router = Router(name=__name__)


async def is_participant_message(message: Message) -> bool:
    """A private message that no staff router claims. This router comes first (nearly every update is a participant's)
    and declines the admin commands and /login, so aiogram does not walk the other routers for the rest."""
    return message.chat.type == "private" and not (await admin.claims(message) or await console_login.claims(message))


router.message.filter(is_participant_message)
router.callback_query.filter(on_loop(F.message.chat.type == "private"))
router.edited_message.filter(on_loop(F.chat.type == "private"))

_COMMAND = re.compile(r"^/([A-Za-z0-9_]{1,32})(?:@\w+)?(?:\s+(.*))?$", re.DOTALL)


async def _handle(
    message: Message, state: FSMContext, conversation: Conversation, event: Incoming, staff: StaffDesk | None
) -> None:
    stored = await state.get_data()
    async with typing_while(message.bot, message.chat.id, conversation.may_look_up(event, stored)):
        outcome = await conversation.handle(event, stored)
    await _save_state(state, outcome.state)
    if outcome.relay_case is not None and staff is not None:
        await staff.relay_from_participant(outcome.relay_case, chat_message(message))
    await deliver(message.bot, message.chat.id, outcome.replies)


async def _save_state(state: FSMContext, data: dict[str, Any]) -> None:
    """The turn's records are committed by now: a state that cannot be saved (Redis away) is logged, not raised,
    so that Telegram does not redeliver an update whose replies are already out."""
    try:
        await state.set_data(data)
    except RedisError as exc:
        log.warning("conversation state not saved: %s", redact(repr(exc)))


def _incoming(message: Message) -> Incoming | None:
    """What a participant's message is for the conversation: a shared contact, a command, text, or anything else
    (None without a sender). One handler tells them apart: a filtered handler per kind cost every update aiogram's
    filter calls for the kinds before its own."""
    user = message.from_user
    if user is None:
        return None
    name = user.full_name
    if message.contact is not None:
        contact = message.contact
        return Incoming(
            EventKind.CONTACT,
            user.id,
            contact_phone=contact.phone_number,
            contact_user_id=contact.user_id,
            display_name=name,
        )
    text = message.text
    if not text:  # no text (a photo, a sticker…), or an empty one
        return Incoming(EventKind.OTHER, user.id, display_name=name)
    command = _COMMAND.match(text)
    if command is not None:
        return Incoming(EventKind.COMMAND, user.id, command.group(1), command.group(2) or "", display_name=name)
    return Incoming(EventKind.TEXT, user.id, text, display_name=name, message_id=message.message_id)


@router.message()
async def on_message(
    message: Message, state: FSMContext, conversation: Conversation, staff: StaffDesk | None = None
) -> None:
    event = _incoming(message)
    if event is not None:
        await _handle(message, state, conversation, event, staff)


@router.edited_message(on_loop(F.text | F.caption))
async def on_edited(message: Message, staff: StaffDesk | None = None) -> None:
    """An edit matters only while a person reads along (the staff flow relays it then)."""
    if staff is not None and message.from_user is not None:
        edited = chat_message(message)
        await staff.participant_edited(message.from_user.id, replace(edited, kind="text"))


@router.callback_query()
async def on_button(callback: CallbackQuery, state: FSMContext, conversation: Conversation) -> None:
    event = Incoming(
        EventKind.BUTTON, callback.from_user.id, callback.data or "", display_name=callback.from_user.full_name
    )
    stored = await state.get_data()
    message = callback.message if isinstance(callback.message, Message) else None
    chat_id = message.chat.id if message else callback.from_user.id
    async with typing_while(callback.bot, chat_id, conversation.may_look_up(event, stored)):
        outcome = await conversation.handle(event, stored)
    await _save_state(state, outcome.state)
    await callback.answer(outcome.notice, show_alert=outcome.notice is not None)
    if outcome.notice is None and message is not None and message.reply_markup is not None:
        # The choice is made: take the buttons off the pressed message so it cannot be pressed twice.
        with contextlib.suppress(TelegramBadRequest):  # already edited, or too old to edit
            await message.edit_reply_markup(reply_markup=None)
    await deliver(callback.bot, chat_id, outcome.replies)
