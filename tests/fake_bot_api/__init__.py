"""A local fake Telegram Bot API server for end-to-end tests: real HTTP, real long polling, answers built from aiogram's
own types (and checked against python-telegram-bot's schema in `test_fake_bot_api.py`).

It serves `{url}/bot{token}/{method}` like api.telegram.org: JSON, form-encoded and multipart bodies; `getUpdates` with
`offset` / `limit` / `timeout` / `allowed_updates`; message ids counted per chat; the errors Telegram gives for broken
HTML, unknown chats and messages, "message is not modified", double-answered callback queries and over-long button
data. Tests push updates (`push_message`, `push_contact`, `push_callback`, `push_photo`, `push_document`, `push_voice`,
`push_album`, `push_edited`), wait for what the bot does (`wait_for`, `wait_for_messages`) and read every call it made
(`calls`, `sent`, `last_keyboard`). `fail_next` answers a method with an error (429 with `retry_after`, 403 "bot was
blocked by the user", 500, …) for the next N calls. A document pushed with `content` can be downloaded the way bots do:
`getFile`, then `GET {url}/file/bot{token}/{file_path}`.

Staff groups are forum supergroups (`add_forum_group`, with a members map that `getChatMember` answers from): the bot
creates topics (`createForumTopic`), posts into them (`message_thread_id`), copies messages between chats
(`copyMessage`, `copyMessages` — an album's parts stay one album), and members write there (`push_group_message`,
`push_group_photo`), join and leave (`push_chat_member`, the update an admin bot gets). `delete_topic` deletes a topic
the way a member would: later sends into it fail with Telegram's 400 "message thread not found". Every message in
every chat is kept (`history`, `topic_messages`), so copies work.

The parts: `server.py` (HTTP, and `FakeBotApi`, the one object a test holds), `world.py` (the state: users, chats,
topics, messages, files, pending updates, injected failures), `updates.py` (the updates tests push), `methods.py`
(the Bot API methods, Telegram's rules and errors), `assertions.py` (reading and waiting), `oracle.py`
(python-telegram-bot's check of every shape), `wire.py` (error answers, recorded calls, the wire form).
"""

from tests.fake_bot_api.oracle import check_with_ptb, ptb_message, ptb_result, ptb_update, unknown_fields
from tests.fake_bot_api.server import FakeBotApi
from tests.fake_bot_api.wire import (
    DEFAULT_TOKEN,
    ApiCall,
    ApiError,
    bad_request,
    blocked_by_user,
    server_error,
    too_many_requests,
)

__all__ = [
    "DEFAULT_TOKEN",
    "ApiCall",
    "ApiError",
    "FakeBotApi",
    "bad_request",
    "blocked_by_user",
    "check_with_ptb",
    "ptb_message",
    "ptb_result",
    "ptb_update",
    "server_error",
    "too_many_requests",
    "unknown_fields",
]
