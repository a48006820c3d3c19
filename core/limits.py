"""The chat channel's limits, in one place (Telegram's Bot API: https://core.telegram.org/bots/api).

They live in `core/` because the case service cuts stored texts and topic names to them; the front ends use the
same names.
"""

from __future__ import annotations

MESSAGE_TEXT = 4096  # characters of one message's text, counted after its HTML is parsed
CAPTION = 1024  # characters of a photo's or file's caption
CALLBACK_DATA = 64  # bytes of a button's data
TOPIC_NAME = 128  # characters of a forum topic's name
TELEGRAM_DOWNLOAD_LIMIT = 20 * 1024 * 1024  # bytes a bot may download through getFile
