"""The console's file proxy: a photo, document or voice note a participant sent in a case, fetched from Telegram by
the bot (getFile, then the file URL) for a signed-in agent. The browser never sees the bot token or a Telegram URL;
nothing is stored here."""

from __future__ import annotations

import mimetypes
import re
from dataclasses import dataclass

from aiogram import Bot
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.settings import Settings
from bot.telegram import make_bot
from bot.web.texts import ActionRefused
from core.db import make_sessionmaker
from core.limits import TELEGRAM_DOWNLOAD_LIMIT
from core.models import CaseMessage

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class MediaFile:
    content: bytes
    content_type: str
    name: str


class CaseMedia:
    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        self.sessions = make_sessionmaker(engine)
        self.settings = settings
        self._bot: Bot | None = None

    def _telegram(self) -> Bot:
        if self.settings.bot_token is None:
            raise ActionRefused("err_no_bot", 503)
        if self._bot is None:
            self._bot = make_bot(self.settings)
        return self._bot

    async def fetch(self, case_id: int, message_id: int, number: int) -> MediaFile:
        async with self.sessions() as session:
            message = await session.scalar(
                select(CaseMessage).where(CaseMessage.id == message_id, CaseMessage.case_id == case_id)
            )
        file_ids = list(message.file_ids or []) if message is not None else []
        if not 0 <= number < len(file_ids):
            raise ActionRefused("err_not_found", 404)
        bot = self._telegram()
        try:
            found = await bot.get_file(file_ids[number])
        except Exception as error:  # gone from Telegram, or Telegram is away
            raise ActionRefused("err_media_unavailable", 502) from error
        if found.file_path is None or (found.file_size or 0) > TELEGRAM_DOWNLOAD_LIMIT:
            raise ActionRefused("err_media_too_big", 413)
        try:
            data = await bot.download_file(found.file_path)
        except Exception as error:
            raise ActionRefused("err_media_unavailable", 502) from error
        if data is None:
            raise ActionRefused("err_media_unavailable", 502)
        name = _SAFE_NAME.sub("_", found.file_path.rsplit("/", 1)[-1])[:100] or "file"  # it goes into a header
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return MediaFile(data.read(), content_type, name)

    async def close(self) -> None:
        if self._bot is not None:
            await self._bot.session.close()
