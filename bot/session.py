"""aiogram's HTTP session, sending a request without files as a plain urlencoded body.

aiohttp's FormData builds a multipart writer for every request, even one that ends up urlencoded, and that writer
draws a random boundary from the operating system (uuid4): in bench/load.py profiles that was a tenth of the bot's
event-loop time. The Bot API takes the same fields urlencoded; uploads still go as multipart.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.methods import TelegramMethod
from aiogram.types import InputFile
from aiohttp import FormData
from aiohttp.payload import BytesPayload

if TYPE_CHECKING:
    from aiogram import Bot

FORM = "application/x-www-form-urlencoded"


class UrlencodedSession(AiohttpSession):
    def build_form_data(self, bot: Bot, method: TelegramMethod[Any]) -> FormData:
        fields: dict[str, Any] = {}
        files: dict[str, InputFile] = {}
        for key, value in method.model_dump(warnings=False).items():
            prepared = self.prepare_value(value, bot=bot, files=files)
            if prepared:  # as aiogram does: unset and empty values are left out
                fields[key] = prepared.value if isinstance(prepared, Enum) else prepared  # ParseMode.HTML → HTML
        if files:
            return super().build_form_data(bot, method)
        # aiohttp sends any Payload as it is, with its content type; FormData is what the base class promises.
        body: Any = BytesPayload(urlencode(fields).encode(), content_type=FORM)
        return body  # type: ignore[no-any-return]
