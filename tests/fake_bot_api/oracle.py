"""python-telegram-bot as the oracle of the Bot API schema (DESIGN.md §5): everything the fake server emits, answers
or holds must parse with it, with no field it does not know."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import telegram

from tests.fake_bot_api.wire import dump

if TYPE_CHECKING:
    from tests.fake_bot_api.server import FakeBotApi

# Fields aiogram 3.31 already requires that python-telegram-bot 22 does not know yet (a newer Bot API version).
_NEWER_THAN_PTB = frozenset({".can_send_welcome_messages"})
_PTB_RESULTS: dict[str, Any] = {
    "ForumTopic": telegram.ForumTopic,
    "MessageId": telegram.MessageId,
    "File": telegram.File,
    **dict.fromkeys(
        (
            "ChatMemberOwner",
            "ChatMemberAdministrator",
            "ChatMemberMember",
            "ChatMemberLeft",
            "ChatMemberBanned",
        ),
        telegram.ChatMember,
    ),
}


def unknown_fields(obj: Any, path: str = "") -> list[str]:
    """Fields python-telegram-bot did not recognise (it keeps them in `api_kwargs`), anywhere in the object."""
    found: list[str] = []
    if isinstance(obj, telegram.TelegramObject):
        found += [f"{path}.{key}" for key in obj.api_kwargs]
        for name, value in obj._get_attrs(recursive=False).items():
            found += unknown_fields(value, f"{path}.{name}")
    elif isinstance(obj, list | tuple):
        for n, item in enumerate(obj):
            found += unknown_fields(item, f"{path}[{n}]")
    return found


def ptb_update(data: dict[str, Any]) -> Any:
    """`telegram.Update` parsed by python-telegram-bot; fails on a missing required or an unknown field."""
    update = telegram.Update.de_json(data, None)
    assert update is not None and update.update_id == data["update_id"]
    assert [f for f in unknown_fields(update) if not f.endswith(tuple(_NEWER_THAN_PTB))] == [], data
    return update


def ptb_message(data: dict[str, Any]) -> Any:
    message = telegram.Message.de_json(data, None)
    assert message is not None and message.message_id == data["message_id"]
    assert message.chat.id == data["chat"]["id"]
    assert unknown_fields(message) == [], data
    return message


def ptb_result(kind: str, data: dict[str, Any]) -> Any:
    """A non-message answer (ForumTopic, MessageId, a ChatMember) parsed by python-telegram-bot."""
    parsed = _PTB_RESULTS[kind].de_json(data, None)
    assert parsed is not None, (kind, data)
    assert [f for f in unknown_fields(parsed) if f not in _NEWER_THAN_PTB] == [], (kind, data)
    if isinstance(parsed, telegram.ChatMember):
        assert parsed.status == data["status"]
    return parsed


def check_with_ptb(api: FakeBotApi) -> None:
    """Every update the server emitted, every message it answered or holds (copies included) and every other answer
    parses with python-telegram-bot."""
    world = api.world
    for update in world.updates:
        ptb_update(update)
    for message in world.returned:
        ptb_message(message)
    for chat_id in {chat for chat, _ in world.history}:
        for stored in api.history(chat_id):
            ptb_message(dump(stored))
    for kind, data in world.results:
        ptb_result(kind, data)
