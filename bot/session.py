"""aiogram's HTTP session, lean on the hot path: requests without files go as one JSON body, and a reply whose result
nobody reads is checked for success without being parsed into aiogram's models, and a participant's reply can go
from plain fields to JSON without aiogram's method model at all.

aiogram builds a multipart FormData for every request (aiohttp draws a random boundary from the operating system for
each), and urlencoding instead quotes the text byte by byte in Python; json.dumps does it in C, and the Bot API takes
JSON bodies like any other. Uploads still go as multipart. Parsing a sent message back into a `Message` (pydantic
validation of the whole object, with its chat and entities) was a fifth of a reply's cost in bench/load.py profiles;
`send_unread` skips it when the sender does not use the result (an error is raised as aiogram raises it).
Building the `SendMessage` model and dumping it back (pydantic validation, `model_dump`, aiogram's `prepare_value`
walking every field and the bot's defaults) was most of what is left of a request's own cost: `send_fields` posts
the fields as they are, with the bot's defaults prepared once, and builds the model only to raise an error as
aiogram would.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.exceptions import TelegramNetworkError
from aiogram.methods import Response, TelegramMethod
from aiogram.types import InputFile
from aiohttp import ClientError, FormData
from aiohttp.payload import BytesPayload

if TYPE_CHECKING:
    from aiogram import Bot

JSON = "application/json"
_UNREAD: ContextVar[bool] = ContextVar("unread", default=False)
_SENT: Response[Any] = Response[bool](ok=True, result=True)  # what an unread request returns on success


class JsonSession(AiohttpSession):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._defaults: dict[tuple[int, str], dict[str, Any]] = {}  # (bot, method) → its prepared default fields

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

    def _prepared(self, bot: Bot, method: TelegramMethod[Any]) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        for key, value in method.model_dump(warnings=False).items():
            prepared = self.prepare_value(value, bot=bot, files={}, _dumps_json=False)
            if prepared is not None and prepared != "":
                fields[key] = prepared
        return fields

    def defaults_for(self, bot: Bot, api_method: str, model: Callable[[], TelegramMethod[Any]]) -> dict[str, Any]:
        """The fields `api_method` gets from the bot's defaults (parse mode, link previews), as JSON values: those of
        `model()`, an instance of it, prepared once per bot and method (`model` is called only then: building it
        with its reply markup was 16 µs a reply)."""
        key = (id(bot), api_method)
        defaults = self._defaults.get(key)
        if defaults is None:
            method = model()
            explicit = method.model_dump(exclude_defaults=True, warnings=False)
            defaults = self._defaults[key] = {k: v for k, v in self._prepared(bot, method).items() if k not in explicit}
        return defaults

    async def send_fields(
        self, bot: Bot, api_method: str, fields: dict[str, Any], model: Callable[[], TelegramMethod[Any]]
    ) -> None:
        """POST `fields` (plain JSON values, no files) to `api_method`, whose result nobody reads. `model` builds the
        same request as aiogram's method, for its errors: a failure raises exactly what `bot(model())` raises."""
        session = await self.create_session()
        url = self.api.api_url(token=bot.token, method=api_method)
        body = BytesPayload(self.json_dumps(fields).encode(), content_type=JSON)
        try:
            # As aiogram passes it: aiohttp takes a number of seconds as the total timeout.
            async with session.post(url, data=body, timeout=self.timeout) as resp:  # type: ignore[arg-type]
                content = await resp.text()
        except TimeoutError as exc:
            raise TelegramNetworkError(method=model(), message="Request timeout error") from exc
        except ClientError as exc:
            raise TelegramNetworkError(method=model(), message=f"{type(exc).__name__}: {exc}") from exc
        if self._succeeded(resp.status, content):
            return
        super().check_response(bot, model(), resp.status, content)
        raise TelegramNetworkError(method=model(), message=f"unexpected answer: {content[:200]}")  # pragma: no cover

    def check_response(self, bot: Bot, method: TelegramMethod[Any], status_code: int, content: str) -> Response[Any]:
        if _UNREAD.get() and self._succeeded(status_code, content):
            return _SENT
        return super().check_response(bot, method, status_code, content)

    def _succeeded(self, status_code: int, content: str) -> bool:
        """A 2xx answer whose JSON says `"ok": true`, checked without parsing its result into aiogram's models."""
        if not HTTPStatus.OK <= status_code <= HTTPStatus.IM_USED:
            return False
        try:
            data = self.json_loads(content)
        except ValueError:
            return False
        return isinstance(data, dict) and data.get("ok") is True


async def send_fields(
    bot: Bot, api_method: str, fields: dict[str, Any], model: Callable[[], TelegramMethod[Any]]
) -> None:
    """Send a request given as plain JSON fields, its result unread (see `JsonSession.send_fields`); the bot's
    defaults are added as aiogram adds them. With another session, or request middlewares registered on this one,
    it is `send_unread(bot, model())`."""
    session = bot.session
    if not isinstance(session, JsonSession) or len(session.middleware):
        await send_unread(bot, model())
        return
    await session.send_fields(bot, api_method, session.defaults_for(bot, api_method, model) | fields, model)


async def send_unread(bot: Bot, method: TelegramMethod[Any]) -> None:
    """Make a request whose result the caller does not use: on success nothing is parsed; a failure raises the
    same exception as `bot(method)` (with another session, it is just `bot(method)`)."""
    token = _UNREAD.set(True)
    try:
        await bot(method)
    finally:
        _UNREAD.reset(token)
