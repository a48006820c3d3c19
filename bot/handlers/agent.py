"""Agents in the staff forum group. Thin: who may act is the `IsAgent` filter (the app's AgentRoster), what a
message means is parsed here, and everything else — the command switch, replies, delivery — is the staff flow's."""

from __future__ import annotations

import re
from typing import Any

from aiogram import Bot, F, Router
from aiogram.enums import ChatMemberStatus
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Filter
from aiogram.types import ChatMemberUpdated, Message

from bot.flows.commands import STAFF_COMMANDS
from bot.flows.staff import Agent, Place, StaffDesk
from bot.handlers.filters import on_loop
from bot.handlers.relay import chat_message

router = Router(name=__name__)

_COMMAND = re.compile(r"^/([A-Za-z]+)(?:@\w+)?(?:\s+(.*))?$", re.DOTALL)  # "/Claim" is a command too, never relayed
_MEMBER = {ChatMemberStatus.CREATOR, ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.MEMBER}


async def in_staff_chat(message: Message, staff_chat_ids: list[int]) -> bool:
    return message.chat.id in staff_chat_ids


router.message.filter(in_staff_chat)
router.edited_message.filter(in_staff_chat)


def member_lookup(bot: Bot) -> Any:
    async def is_member(chat_id: int, user_id: int) -> bool:
        try:
            member = await bot.get_chat_member(chat_id, user_id)
        except TelegramAPIError:
            return False
        return member.status in _MEMBER

    return is_member


class IsAgent(Filter):
    """The author may act as an agent here (the app's roster decides; it asks Telegram when no list is set)."""

    def __init__(self, expected: bool = True) -> None:
        self.expected = expected

    async def __call__(self, message: Message, bot: Bot, staff: StaffDesk) -> bool:
        author = message.from_user
        if author is None or author.is_bot:
            return False
        return await staff.roster.allows(message.chat.id, author.id, member_lookup(bot)) == self.expected


@router.chat_member()
async def on_member_change(update: ChatMemberUpdated, staff: StaffDesk, staff_chat_ids: list[int]) -> None:
    """Someone joined, left or was removed: forget what we knew, so a removed member cannot act from the cache."""
    if update.chat.id in staff_chat_ids:
        staff.roster.forget(update.chat.id, update.new_chat_member.user.id)


def _place(message: Message) -> Place:
    return Place(message.chat.id, message.message_thread_id, bool(message.is_topic_message))


def _agent(message: Message) -> Agent:
    assert message.from_user is not None
    return Agent(message.from_user.id, message.from_user.full_name)


def _staff_command(message: Message) -> re.Match[str] | None:
    found = _COMMAND.match(message.text or message.caption or "")
    return found if found and found.group(1).lower() in STAFF_COMMANDS else None


@router.message(on_loop(F.text.regexp(_COMMAND) | F.caption.regexp(_COMMAND)), IsAgent())
async def on_command(message: Message, staff: StaffDesk) -> None:
    # A photo captioned "/note …" is a note too; "/start" in a topic is neither a staff command nor relayed.
    command = _staff_command(message)
    if command is not None:
        name, argument = command.group(1).lower(), command.group(2) or ""
        await staff.command(_place(message), _agent(message), name, argument, chat_message(message))


@router.message(on_loop(F.text.regexp(_COMMAND) | F.caption.regexp(_COMMAND)), IsAgent(expected=False))
async def on_stranger_command(message: Message, staff: StaffDesk) -> None:
    if _staff_command(message) is not None and message.from_user is not None and not message.from_user.is_bot:
        await staff.not_an_agent(_place(message))


@router.message(on_loop(F.is_topic_message), IsAgent())
async def on_topic_message(message: Message, staff: StaffDesk) -> None:
    """An agent writing in a case topic: the participant receives it under the bot's name."""
    relayed = chat_message(message)
    if not message.forum_topic_created and relayed.kind != "other":
        await staff.agent_message(_place(message), _agent(message), relayed)


@router.message(on_loop(F.is_topic_message), IsAgent(expected=False))
async def on_stranger_message(message: Message, staff: StaffDesk) -> None:
    author = message.from_user
    if author is None or author.is_bot or message.forum_topic_created or chat_message(message).kind == "other":
        return
    await staff.cases.post_to_staff_chat(
        message.chat.id,
        message.message_thread_id,
        staff.text("staff_not_delivered", blocked=False, error=staff.text("staff_not_agent")),
    )


@router.edited_message(on_loop(F.is_topic_message & (F.text | F.caption)), IsAgent())
async def on_topic_edit(message: Message, staff: StaffDesk) -> None:
    """An agent corrects a message: the participant's copy is corrected too (not one edited into a command)."""
    if _COMMAND.match(message.text or message.caption or ""):
        return
    entities = message.entities if message.text is not None else message.caption_entities
    dumped = [e.model_dump(exclude_none=True) for e in entities or []]
    await staff.agent_edit(_place(message), message.message_id, message.text, message.caption, dumped)
