"""Agents in the staff forum group: commands in case topics and two-way relay. Thin: parse → StaffDesk → deliver."""

from __future__ import annotations

import re
import time

from aiogram import Bot, F, Router
from aiogram.enums import ChatMemberStatus
from aiogram.exceptions import TelegramAPIError, TelegramForbiddenError
from aiogram.types import ChatMemberUpdated, Message

from bot.flows.staff import StaffDesk, StaffOutcome
from bot.handlers.delivery import deliver
from bot.handlers.filters import on_loop
from bot.handlers.relay import describe

router = Router(name=__name__)

_COMMAND = re.compile(r"^/([A-Za-z]+)(?:@\w+)?(?:\s+(.*))?$", re.DOTALL)  # "/Claim" is a command too, never relayed
_MEMBER = {ChatMemberStatus.CREATOR, ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.MEMBER}
_membership_cache: dict[tuple[int, int], tuple[bool, float]] = {}
# Saves a getChatMember call per agent message. Telegram tells the bot (an admin of the group) when a member leaves
# or is removed (chat_member updates, see `on_member_change`), but only the worker that gets that update hears of
# it: a removed member may act for at most this long on the others.
MEMBERSHIP_TTL = 60.0
STAFF_COMMANDS = frozenset({"claim", "note", "status", "canned", "close", "queue"})


async def in_staff_chat(message: Message, staff_chat_ids: list[int]) -> bool:
    return message.chat.id in staff_chat_ids


router.message.filter(in_staff_chat)
router.edited_message.filter(in_staff_chat)


@router.chat_member()
async def on_member_change(update: ChatMemberUpdated, staff_chat_ids: list[int]) -> None:
    """Someone joined, left or was removed: forget what we knew, so a removed member cannot act from the cache."""
    if update.chat.id in staff_chat_ids:
        _membership_cache.pop((update.chat.id, update.new_chat_member.user.id), None)


async def is_agent(bot: Bot, chat_id: int, user_id: int, agent_ids: list[int]) -> bool:
    """Listed agents only, when AGENT_IDS is set; otherwise any member of the staff group."""
    if agent_ids:
        return user_id in agent_ids
    cached = _membership_cache.get((chat_id, user_id))
    if cached is not None and cached[1] > time.monotonic():
        return cached[0]
    try:
        member = await bot.get_chat_member(chat_id, user_id)
        allowed = member.status in _MEMBER
    except TelegramAPIError:
        allowed = False
    _membership_cache[chat_id, user_id] = (allowed, time.monotonic() + MEMBERSHIP_TTL)
    return allowed


async def _post(staff: StaffDesk, message: Message, outcome: StaffOutcome) -> None:
    if outcome.topic_html:
        await staff.cases.post_to_staff_chat(message.chat.id, message.message_thread_id, outcome.topic_html)


@router.message(on_loop(F.text.regexp(_COMMAND).as_("command")))
@router.message(on_loop(F.caption.regexp(_COMMAND).as_("command")))  # a photo captioned "/note …" is a note too
async def on_command(
    message: Message, bot: Bot, staff: StaffDesk, agent_ids: list[int], command: re.Match[str]
) -> None:
    name, argument = command.group(1).lower(), command.group(2) or ""
    if name not in STAFF_COMMANDS:
        return  # e.g. "/start" in a topic: neither a staff command nor relayed (a participant never sees commands)
    assert message.from_user is not None
    agent = message.from_user
    if not await is_agent(bot, message.chat.id, agent.id, agent_ids):
        await staff.cases.post_to_staff_chat(message.chat.id, message.message_thread_id, staff.text("staff_not_agent"))
        return
    if name == "queue":
        for page in await staff.queue(message.chat.id):
            await staff.cases.post_to_staff_chat(message.chat.id, message.message_thread_id, page)
        return
    case = await staff.active_case(message.chat.id, message.message_thread_id if message.is_topic_message else None)
    if case is None:
        key = "staff_no_case" if message.is_topic_message else "staff_outside_topic"
        await staff.cases.post_to_staff_chat(message.chat.id, message.message_thread_id, staff.text(key))
        return
    match name:
        case "claim":
            outcome = await staff.claim(case, agent.id, agent.full_name)
        case "note" if message.text is None:
            kind, _, file_ids = describe(message)
            outcome = await staff.media_note(case, agent.id, kind, argument, file_ids, message.media_group_id)
        case "note":
            outcome = await staff.note(case, agent.id, argument)
        case "status":
            outcome = await staff.status(case)
        case "canned":
            outcome = staff.canned(case, argument)
        case _:
            outcome = await staff.close(case, agent.id, agent.full_name)
    delivered = outcome.to_participant is None or await _to_participant(
        bot, staff, message, case.telegram_user_id, outcome
    )
    if delivered or name == "close":  # the case is closed even when the participant cannot be told
        await _post(staff, message, outcome)


async def _to_participant(bot: Bot, staff: StaffDesk, message: Message, user_id: int, outcome: StaffOutcome) -> bool:
    assert outcome.to_participant is not None and outcome.case is not None and message.from_user is not None
    try:
        await deliver(bot, user_id, [outcome.to_participant])
    except TelegramForbiddenError:
        await _not_delivered(staff, message, blocked=True)
        return False
    except TelegramAPIError as exc:
        await _not_delivered(staff, message, blocked=False, error=exc.message)
        return False
    await staff.cases.record_agent_message(
        outcome.case.id, message.from_user.id, "text", outcome.to_participant.text, message.chat.id,
        message.message_id, None,
    )  # fmt: skip
    return True


async def _not_delivered(staff: StaffDesk, message: Message, blocked: bool, error: str = "") -> None:
    text = staff.text("staff_not_delivered", blocked=blocked, error=error)
    await staff.cases.post_to_staff_chat(message.chat.id, message.message_thread_id, text)


@router.message(on_loop(F.is_topic_message))
async def on_topic_message(message: Message, bot: Bot, staff: StaffDesk, agent_ids: list[int]) -> None:
    """An agent writing in a case topic: the participant receives it under the bot's name."""
    author = message.from_user
    if author is None or author.is_bot or message.forum_topic_created or not _relayable(message):
        return
    if not await is_agent(bot, message.chat.id, author.id, agent_ids):
        await _not_delivered(staff, message, blocked=False, error=staff.text("staff_not_agent"))
        return
    case = await staff.active_case(message.chat.id, message.message_thread_id)
    if case is None:
        await staff.cases.post_to_staff_chat(message.chat.id, message.message_thread_id, staff.text("staff_no_case"))
        return
    kind, text, file_ids = describe(message)
    if message.media_group_id:
        part = (message.chat.id, message.message_id, message.media_group_id)
        await staff.album_part(case, author.id, kind, text, file_ids, *part)
        return
    try:
        copy = await bot.copy_message(case.telegram_user_id, message.chat.id, message.message_id)
    except TelegramForbiddenError:
        await _not_delivered(staff, message, blocked=True)
        return
    except TelegramAPIError as exc:
        await _not_delivered(staff, message, blocked=False, error=exc.message)
        return
    await staff.cases.record_agent_message(
        case.id, author.id, kind, text, message.chat.id, message.message_id, copy.message_id
    )


@router.edited_message(on_loop(F.is_topic_message & (F.text | F.caption)))
async def on_topic_edit(message: Message, bot: Bot, staff: StaffDesk, agent_ids: list[int]) -> None:
    """An agent corrects a message (its text, or a photo's caption): the participant's copy is corrected too."""
    if message.from_user is None or not await is_agent(bot, message.chat.id, message.from_user.id, agent_ids):
        return
    if _COMMAND.match(message.text or message.caption or ""):
        return  # edited into "/note …" (or another command): what is meant for the topic is not mirrored
    case = await staff.active_case(message.chat.id, message.message_thread_id)
    if case is None:
        return
    copy_id = await staff.cases.relayed_copy(case.id, message.message_id)
    if copy_id is None:
        return
    try:
        if message.text is not None:
            await bot.edit_message_text(
                text=message.text,
                chat_id=case.telegram_user_id,
                message_id=copy_id,
                entities=message.entities,
                parse_mode=None,
            )
        else:
            await bot.edit_message_caption(
                caption=message.caption,
                chat_id=case.telegram_user_id,
                message_id=copy_id,
                caption_entities=message.caption_entities,
                parse_mode=None,
            )
    except TelegramAPIError as exc:
        await _not_delivered(staff, message, blocked=isinstance(exc, TelegramForbiddenError), error=exc.message)


def _relayable(message: Message) -> bool:
    return describe(message)[0] != "other"
