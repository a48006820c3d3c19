"""aiogram's HTTP session, lean on the hot path: requests without files go as one JSON body, and a reply whose result
nobody reads is checked for success without being parsed into aiogram's models.

aiogram builds a multipart FormData for every request (aiohttp draws a random boundary from the operating system for
each), and urlencoding instead quotes the text byte by byte in Python; json.dumps does it in C, and the Bot API takes
JSON bodies like any other. Uploads still go as multipart. Parsing a sent message back into a `Message` (pydantic
validation of the whole object, with its chat and entities) was a fifth of a reply's cost in bench/load.py profiles;
`send_unread` skips it when the sender does not use the result (an error is raised as aiogram raises it).
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.methods import Response, TelegramMethod
from aiogram.types import InputFile
from aiohttp import FormData
from aiohttp.payload import BytesPayload

if TYPE_CHECKING:
    from aiogram import Bot

JSON = "application/json"
_UNREAD: ContextVar[bool] = ContextVar("unread", default=False)
_SENT: Response[Any] = Response[bool](ok=True, result=True)  # what an unread request returns on success


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

    def check_response(self, bot: Bot, method: TelegramMethod[Any], status_code: int, content: str) -> Response[Any]:
        if _UNREAD.get() and HTTPStatus.OK <= status_code <= HTTPStatus.IM_USED:
            with contextlib.suppress(ValueError):
                data = self.json_loads(content)
                if isinstance(data, dict) and data.get("ok") is True:
                    return _SENT
        return super().check_response(bot, method, status_code, content)


async def send_unread(bot: Bot, method: TelegramMethod[Any]) -> None:
    """Make a request whose result the caller does not use: on success nothing is parsed; a failure raises the
    same exception as `bot(method)` (with another session, it is just `bot(method)`)."""
    token = _UNREAD.set(True)
    try:
        await bot(method)
    finally:
        _UNREAD.reset(token)
