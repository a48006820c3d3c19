"""aiogram's HTTP session, lean on the hot path: requests without files go as one JSON body.

aiogram builds a multipart FormData for every request (aiohttp draws a random boundary from the operating system for
each), and urlencoding instead quotes the text byte by byte in Python; json.dumps does it in C, and the Bot API takes
JSON bodies like any other. Uploads still go as multipart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.methods import TelegramMethod
from aiogram.types import InputFile
from aiohttp import FormData
from aiohttp.payload import BytesPayload

if TYPE_CHECKING:
    from aiogram import Bot

JSON = "application/json"


class JsonSession(AiohttpSession):
    def build_form_data(self, bot: Bot, method: TelegramMethod[Any]) -> FormData:
        fields: dict[str, Any] = {}
        files: dict[str, InputFile] = {}
        for key, value in method.model_dump(warnings=False).items():
            # Nested values (a keyboard) stay objects inside the one JSON document instead of JSON strings.
            prepared = self.prepare_value(value, bot=bot, files=files, _dumps_json=False)
            if prepared is not None and prepared != "":  # as aiogram does: unset and empty values are left out
                fields[key] = prepared
        if files:
            return super().build_form_data(bot, method)
        # aiohttp sends any Payload as it is, with its content type; FormData is what the base class promises.
        body: Any = BytesPayload(self.json_dumps(fields).encode(), content_type=JSON)
        return body  # type: ignore[no-any-return]
