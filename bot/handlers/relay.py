"""What a Telegram message is, for relaying it in a case: its kind, text or caption, and file ids."""

from __future__ import annotations

from aiogram.types import Message

from core.cases import ChatMessage

MEDIA_KINDS = ("photo", "document", "voice", "video", "audio", "video_note", "animation", "sticker")


def describe(message: Message) -> tuple[str, str | None, list[str]]:
    """(kind, text or caption, file ids) — the largest size of a photo."""
    if message.text is not None:
        return "text", message.text, []
    if message.photo:
        return "photo", message.caption, [message.photo[-1].file_id]
    for kind in MEDIA_KINDS[1:]:
        media = getattr(message, kind, None)
        if media is not None:
            return kind, message.caption, [media.file_id]
    if message.contact is not None:
        return "contact", None, []
    return "other", message.caption, []


def chat_message(message: Message) -> ChatMessage:
    """The message as a case records and relays it."""
    kind, text, file_ids = describe(message)
    return ChatMessage(kind, text, file_ids, message.chat.id, message.message_id, message.media_group_id)
