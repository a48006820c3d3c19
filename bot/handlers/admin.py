"""Admin commands in private chats: parse → the admin flow → send its replies, documents and photos. Nothing else.

It catches only the admin command names (`claims`, which the participant router declines), everything else falls
through. The Dispatcher's workflow data provides `admin_flow` (AdminFlow) and `admin_ids` (frozenset[int]).
"""

from __future__ import annotations

import re

from aiogram import Bot, F, Router
from aiogram.types import BufferedInputFile, Message

from bot.flows.admin import MAX_DOCUMENT_BYTES, AdminFlow, AdminOutcome
from bot.flows.commands import ADMIN_COMMANDS
from bot.flows.types import EventKind, Incoming
from bot.handlers.delivery import deliver
from bot.handlers.filters import on_loop

_NAMES = "|".join(sorted(ADMIN_COMMANDS, key=len, reverse=True))
_ADMIN_COMMAND = re.compile(rf"^/({_NAMES})(?:@\w+)?(?:\s+(.*))?$", re.DOTALL | re.IGNORECASE)


async def claims(message: Message) -> bool:
    """An admin command, typed or as a document's caption: this router's, whoever sends it (non-admins are refused)."""
    if message.text is not None:
        return _ADMIN_COMMAND.match(message.text) is not None
    return message.document is not None and _ADMIN_COMMAND.match(message.caption or "") is not None


async def _send(bot: Bot | None, chat_id: int, outcome: AdminOutcome) -> None:
    await deliver(bot, chat_id, outcome.replies)
    if bot is None:
        return
    for item in outcome.attachments:
        upload = BufferedInputFile(item.data, filename=item.filename)
        if item.kind == "photo":
            await bot.send_photo(chat_id, upload, caption=item.caption or None)
        else:
            await bot.send_document(chat_id, upload, caption=item.caption or None)


def _event(message: Message, command: re.Match[str]) -> Incoming:
    assert message.from_user is not None
    return Incoming(EventKind.COMMAND, message.from_user.id, command.group(1).lower(), command.group(2) or "")


async def on_admin_command(
    message: Message, command: re.Match[str], admin_flow: AdminFlow, admin_ids: frozenset[int]
) -> None:
    event = _event(message, command)
    outcome = await admin_flow.handle(event) if event.user_id in admin_ids else admin_flow.refusal()
    await _send(message.bot, message.chat.id, outcome)


async def on_admin_document(
    message: Message, command: re.Match[str], admin_flow: AdminFlow, admin_ids: frozenset[int]
) -> None:
    """A YAML file with the caption `/faq_set ID`."""
    event = _event(message, command)
    assert message.document is not None
    if event.user_id not in admin_ids:
        outcome = admin_flow.refusal()
    elif (message.document.file_size or 0) > MAX_DOCUMENT_BYTES:
        outcome = admin_flow.document_too_large()
    else:
        assert message.bot is not None
        downloaded = await message.bot.download(message.document)
        data = downloaded.read() if downloaded is not None else b""
        outcome = await admin_flow.handle(event, data)
    await _send(message.bot, message.chat.id, outcome)


def make_router() -> Router:
    """A fresh router (a router belongs to one Dispatcher; tests build their own)."""
    admin = Router(name=__name__)
    admin.message.filter(on_loop(F.chat.type == "private"))
    admin.message.register(on_admin_command, on_loop(F.text.regexp(_ADMIN_COMMAND).as_("command")))
    admin.message.register(
        on_admin_document, on_loop(F.document), on_loop(F.caption.regexp(_ADMIN_COMMAND).as_("command"))
    )
    return admin


router = make_router()
