"""The fake server itself: `FakeBotApi` serves `{url}/bot{token}/{method}` and `{url}/file/bot{token}/{file_path}`
over real HTTP (aiohttp, a free port on 127.0.0.1), decodes parameters from the query string, JSON, form-encoded
and multipart bodies like Telegram, records every call, answers injected failures first and hands the rest to
`BotApiMethods`. It is also the one object a test holds: the update builders and the assertions are its methods."""

from __future__ import annotations

import json
import re
import socket
from types import TracebackType
from typing import Any

from aiogram.types import Chat, User
from aiohttp import web

from tests.fake_bot_api.assertions import Assertions
from tests.fake_bot_api.methods import BotApiMethods
from tests.fake_bot_api.updates import UpdateBuilders
from tests.fake_bot_api.wire import DEFAULT_TOKEN, ApiCall, ApiError, Refused, bad_request
from tests.fake_bot_api.world import World

_JSON_FIELDS = frozenset(
    {
        "reply_markup",
        "allowed_updates",
        "commands",
        "scope",
        "link_preview_options",
        "entities",
        "caption_entities",
        "reply_parameters",
        "media",
        "results",
        "message_ids",
    }
)
_INT_FIELDS = frozenset(
    {
        "chat_id",
        "message_id",
        "offset",
        "limit",
        "timeout",
        "user_id",
        "message_thread_id",
        "cache_time",
        "reply_to_message_id",
        "from_chat_id",
        "icon_color",
        "duration",
    }
)
_BOOL_FIELDS = frozenset(
    {
        "show_alert",
        "disable_notification",
        "drop_pending_updates",
        "protect_content",
        "disable_web_page_preview",
        "allow_sending_without_reply",
        "remove_caption",
    }
)


class FakeBotApi(UpdateBuilders, Assertions):
    """Start with `async with FakeBotApi() as api:`; point the bot at `api.url`."""

    def __init__(self, token: str = DEFAULT_TOKEN, bot_name: str = "Prakerja Helpdesk Test") -> None:
        self.token = token
        self.bot_user = User(
            id=int(token.split(":")[0]),
            is_bot=True,
            first_name=bot_name,
            username="prakerja_test_bot",
            can_join_groups=True,
            can_read_all_group_messages=False,
            supports_inline_queries=False,
        )
        self.url = ""
        self.world = World(self.bot_user)
        self._methods = BotApiMethods(self.world)
        self._runner: web.AppRunner | None = None

    # --- lifecycle --------------------------------------------------------------------------------------------
    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        site = web.SockSite(self._runner, sock)
        await site.start()
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"

    async def stop(self) -> None:
        self.world.closing = True
        self.world.notify()  # long polls answer at once
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeBotApi:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # --- the world, as tests see it -----------------------------------------------------------------------------
    @property
    def calls(self) -> list[ApiCall]:
        """Every request the bot made, in order."""
        return self.world.calls

    @property
    def updates(self) -> list[dict[str, Any]]:
        """Every update pushed, in order."""
        return self.world.updates

    @property
    def returned(self) -> list[dict[str, Any]]:
        """Every Message object answered to the bot."""
        return self.world.returned

    @property
    def results(self) -> list[tuple[str, dict[str, Any]]]:
        """Answers that are not messages: (type name, data)."""
        return self.world.results

    @property
    def commands(self) -> dict[tuple[str, str], list[dict[str, str]]]:
        """The bot's command menus: (scope type, language) → commands."""
        return self.world.commands

    def user(self, user_id: int, first_name: str | None = None, language_code: str = "id") -> User:
        return self.world.user(user_id, first_name, language_code)

    def add_forum_group(
        self, chat_id: int, title: str = "Prakerja Staff", members: dict[int, str] | None = None
    ) -> Chat:
        return self.world.add_forum_group(chat_id, title, members)

    def set_member(self, chat_id: int, user_id: int, status: str) -> None:
        self.world.set_member(chat_id, user_id, status)

    def topics(self, chat_id: int) -> dict[int, str]:
        return self.world.topics(chat_id)

    def delete_topic(self, chat_id: int, thread_id: int) -> None:
        self.world.delete_topic(chat_id, thread_id)

    def fail_next(self, method: str, error: ApiError, times: int = 1, chat_id: int | None = None) -> None:
        self.world.fail_next(method, error, times, chat_id)

    def press(self, chat_id: int, label: str) -> str:
        """Press the button labelled `label` on the latest keyboard; returns the callback query id."""
        message_id, data = self.button(chat_id, label)
        return self.push_callback(chat_id, data, message_id)

    # --- HTTP ---------------------------------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        method = request.match_info["method"]
        try:
            params = await _read_params(request)
        except ValueError as exc:
            return web.json_response(bad_request(str(exc)).body(), status=400)
        call = ApiCall(method, params)
        self.world.calls.append(call)
        self.world.notify()  # a test may wait for the call itself (a long poll answers much later)
        try:
            if (injected := self.world.injected(method, call.chat_id)) is not None:
                raise Refused(injected)
            call.result = await self._methods.answer(method.lower(), params)
        except Refused as refused:
            call.error = refused.error
            return web.json_response(refused.error.body(), status=refused.error.error_code)
        finally:
            self.world.notify()
        return web.json_response({"ok": True, "result": call.result})

    async def _download(self, request: web.Request) -> web.Response:
        """`GET /file/bot{token}/{file_path}`: the bytes, as Telegram serves them (no JSON)."""
        if request.match_info["token"] != self.token:
            return web.Response(status=401)
        path = request.match_info["path"]
        self.world.calls.append(ApiCall("download", {"file_path": path}))
        self.world.notify()
        content = self.world.files.get(path.removeprefix("documents/"))
        return web.Response(status=404) if content is None else web.Response(body=content)


async def _read_params(request: web.Request) -> dict[str, Any]:
    """Telegram takes parameters from the query string, JSON, form-encoded or multipart bodies alike."""
    raw: dict[str, Any] = dict(request.query)
    if request.method == "POST" and request.can_read_body:
        if request.content_type == "application/json":
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("JSON body must be an object")
            raw |= body
        elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            for key, value in (await request.post()).items():
                raw[key] = value if isinstance(value, str) else f"<file {getattr(value, 'filename', key)}>"
    return {key: _decode(key, value) for key, value in raw.items()}


def _decode(key: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if key in _JSON_FIELDS:
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            raise ValueError(f"can't parse {key} JSON object") from None
    if key in _INT_FIELDS and re.fullmatch(r"-?\d+", value):
        return int(value)
    if key in _BOOL_FIELDS and value in ("true", "false", "True", "False", "1", "0"):
        return value in ("true", "True", "1")
    return value
