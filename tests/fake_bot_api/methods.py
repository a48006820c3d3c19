"""The Bot API methods the fake server answers, on the world's state and with Telegram's rules and errors: sending
(text, photo, document, voice) and editing messages, copying them between chats (an album stays one album), forum
topics, chat members, files, commands, callback answers, and `getUpdates` with `offset` / `limit` / `timeout` /
`allowed_updates`. No HTTP here: `server.py` decodes the request and encodes the answer."""

from __future__ import annotations

import itertools
import re
import time
from datetime import UTC, datetime
from typing import Any

from aiogram.types import (
    Document,
    File,
    ForceReply,
    ForumTopic,
    ForumTopicCreated,
    InlineKeyboardMarkup,
    Message,
    MessageEntity,
    MessageId,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Voice,
)
from pydantic import ValidationError

from tests.fake_bot_api.wire import ApiError, Refused, bad_request, dump
from tests.fake_bot_api.world import World, chat_member
from tests.html_check import MAX_TEXT, parse_telegram_html

CALLBACK_DATA_BYTES = 64
MAX_CAPTION = 1024
TOPIC_ICON_COLORS = (7322096, 16766590, 13338331, 9367192, 16749490, 16478047)  # the six Telegram allows
_CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
# What a copy takes over from its source: the content, never the service part or the author.
_COPIED = (
    "text",
    "entities",
    "caption",
    "caption_entities",
    "photo",
    "document",
    "voice",
    "video",
    "audio",
    "animation",
    "sticker",
    "video_note",
    "contact",
    "location",
)
_UPLOAD = re.compile(r"^<file (.*)>$")
_BOT_COMMAND = re.compile(r"^[a-z0-9_]{1,32}$")


class BotApiMethods:
    """Answers one call: `answer` returns the result, or raises `Refused` with Telegram's error."""

    def __init__(self, world: World) -> None:
        self.world = world
        self._poll_generation = 0

    async def answer(self, method: str, params: dict[str, Any]) -> Any:
        """The result of `method` (lower-case); methods the fake does not model answer True."""
        match method:
            case "getme":
                return dump(self.world.bot_user)
            case "getupdates":
                return await self._get_updates(params)
            case "deletewebhook" | "setwebhook" | "close" | "logout":
                return True
            case "setmycommands":
                return self._set_my_commands(params)
            case "sendmessage":
                return self._send_message(params)
            case "editmessagetext":
                return self._edit(params, "text")
            case "editmessagecaption":
                return self._edit(params, "caption")
            case "editmessagereplymarkup":
                return self._edit(params, "markup")
            case "answercallbackquery":
                return self._answer_callback(params)
            case "sendphoto" | "senddocument" | "sendvoice":
                return self._send_media(method.removeprefix("send"), params)
            case "copymessage":
                return self._copy_message(params)
            case "copymessages":
                return self._copy_messages(params)
            case "createforumtopic":
                return self._create_forum_topic(params)
            case "deleteforumtopic":
                chat_id = self._require_chat(params)
                self.world.thread_fields(chat_id, params.get("message_thread_id") or -1)
                self.world.delete_topic(chat_id, int(params["message_thread_id"]))
                return True
            case "getchatmember":
                return self._get_chat_member(params)
            case "getfile":
                return self._get_file(params)
            case "sendchataction":
                chat_id = self._require_chat(params)
                self.world.thread_fields(chat_id, params.get("message_thread_id"))
                if params.get("action") not in _CHAT_ACTIONS:
                    raise Refused(bad_request("wrong parameter action in request"))
                return True
            case _:
                return True

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        world = self.world
        offset = int(params.get("offset") or 0)
        limit = min(max(int(params.get("limit") or 100), 1), 100)
        timeout = max(int(params.get("timeout") or 0), 0)
        if "allowed_updates" in params:
            world.allowed_updates = list(params["allowed_updates"]) or None
        if offset > 0:  # updates below the offset are confirmed: never sent again
            world.queue = [u for u in world.queue if u["update_id"] >= offset]
        elif offset < 0:
            world.queue = world.queue[offset:]
        self._poll_generation += 1
        generation = self._poll_generation
        deadline = time.monotonic() + timeout
        while True:
            if generation != self._poll_generation:
                raise Refused(
                    ApiError(409, "Conflict: terminated by other getUpdates request; make sure that only one bot "
                             "instance is running")
                )  # fmt: skip
            if world.allowed_updates is not None:
                allowed = set(world.allowed_updates)
                world.queue = [u for u in world.queue if allowed & (u.keys() - {"update_id"})]
            if world.queue or world.closing:
                return world.queue[:limit]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            await world.next_change(remaining)

    def _set_my_commands(self, params: dict[str, Any]) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list) or not commands or len(commands) > 100:
            raise Refused(bad_request("BOT_COMMANDS_TOO_MUCH" if commands else "commands must be non-empty"))
        for command in commands:
            if not _BOT_COMMAND.match(str(command.get("command", ""))):
                raise Refused(bad_request("BOT_COMMAND_INVALID"))
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise Refused(bad_request("BOT_COMMAND_DESCRIPTION_INVALID"))
        scope = params.get("scope") or {"type": "default"}
        self.world.commands[str(scope.get("type")), str(params.get("language_code") or "")] = commands
        return True

    def _require_chat(self, params: dict[str, Any], key: str = "chat_id") -> int:
        world = self.world
        chat_id = params.get(key)
        if isinstance(chat_id, int) and (chat_id in world.private or chat_id in world.groups):
            return chat_id
        if isinstance(chat_id, int) and world.knows_user(chat_id):  # known from a group, never wrote to the bot
            raise Refused(ApiError(403, "Forbidden: bot can't initiate conversation with a user"))
        raise Refused(bad_request("chat not found"))

    def _render(self, params: dict[str, Any]) -> tuple[str, list[MessageEntity] | None]:
        text = params.get("text")
        if not isinstance(text, str) or not text:
            raise Refused(bad_request("message text is empty"))
        parse_mode = params.get("parse_mode")
        if parse_mode == "HTML":
            try:
                plain, entities = parse_telegram_html(text)
            except ValueError as exc:
                raise Refused(ApiError(400, str(exc))) from None
        elif parse_mode in (None, ""):
            plain, entities = text, list(params.get("entities") or [])
        else:  # Markdown flavours are not modelled: the text is kept as sent
            plain, entities = text, []
        if not plain.strip():
            raise Refused(bad_request("message text is empty"))
        if len(plain) > MAX_TEXT:
            raise Refused(bad_request("message is too long"))
        return plain, [MessageEntity(**e) for e in entities] or None

    def _markup(self, params: dict[str, Any]) -> Any:
        raw = params.get("reply_markup")
        if raw is None:
            return None
        if not isinstance(raw, dict):
            raise Refused(bad_request("can't parse reply keyboard markup JSON object"))
        kinds: dict[str, Any] = {
            "inline_keyboard": InlineKeyboardMarkup,
            "keyboard": ReplyKeyboardMarkup,
            "remove_keyboard": ReplyKeyboardRemove,
            "force_reply": ForceReply,
        }
        kind = next((k for k in kinds if k in raw), None)
        if kind is None:
            raise Refused(bad_request("can't parse reply keyboard markup JSON object"))
        try:
            markup = kinds[kind].model_validate(raw)
        except ValidationError:
            raise Refused(bad_request("can't parse reply keyboard markup JSON object")) from None
        if isinstance(markup, InlineKeyboardMarkup):
            for row in markup.inline_keyboard:
                for button in row:
                    if not button.text:
                        raise Refused(bad_request("text buttons are unallowed in the inline keyboard"))
                    data = button.callback_data
                    if data is not None and not 1 <= len(data.encode()) <= CALLBACK_DATA_BYTES:
                        raise Refused(bad_request("BUTTON_DATA_INVALID"))
        return markup

    def _send_message(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = self._require_chat(params)
        plain, entities = self._render(params)
        return self._store(self._outgoing(chat_id, params, text=plain, entities=entities))

    def _outgoing(self, chat_id: int, params: dict[str, Any], **content: Any) -> Message:
        """A new message of the bot in the chat (in the topic `message_thread_id`, if given)."""
        world = self.world
        thread = world.thread_fields(chat_id, params.get("message_thread_id"))
        markup = self._markup(params)
        return Message(
            message_id=world.next_message_id(chat_id),
            date=datetime.now(UTC),
            chat=world.chat(chat_id),
            from_user=world.bot_user,
            **thread,
            **content,
            # Only inline keyboards belong to a message; reply keyboards live in the client.
            reply_markup=markup if isinstance(markup, InlineKeyboardMarkup) else None,
        )

    def _store(self, message: Message) -> dict[str, Any]:
        data = dump(self.world.keep(message))
        self.world.returned.append(data)
        return data

    def _result(self, obj: Any) -> dict[str, Any]:
        """A non-message answer (ForumTopic, MessageId, ChatMember…), kept for the python-telegram-bot check."""
        data = dump(obj)
        self.world.results.append((type(obj).__name__, data))
        return data

    def _caption(self, params: dict[str, Any]) -> dict[str, Any]:
        """`caption` and `caption_entities` of a media message, parsed like a text (1,024 characters at most)."""
        if not params.get("caption"):
            return {}
        plain, entities = self._render({"text": params["caption"], "parse_mode": params.get("parse_mode")})
        if len(plain) > MAX_CAPTION:
            raise Refused(bad_request("message caption is too long"))
        return {"caption": plain, "caption_entities": entities}

    def _send_media(self, kind: str, params: dict[str, Any]) -> dict[str, Any]:
        """sendPhoto / sendDocument / sendVoice with a file id or an upload (multipart)."""
        chat_id = self._require_chat(params)
        value = params.get(kind)
        if not isinstance(value, str) or not value:
            raise Refused(bad_request(f"there is no {kind} in the request"))
        if value.startswith("attach://"):  # the file is another part of the multipart body
            value = str(params.get(value.removeprefix("attach://"), ""))
            if not _UPLOAD.match(value):
                raise Refused(bad_request(f"there is no {kind} in the request"))
        upload = _UPLOAD.match(value)
        n = self.world.next_file_number()
        file_id = f"{kind}-{chat_id}-{n}" if upload else value
        content: dict[str, Any]
        if kind == "photo":
            content = {"photo": self.world.photo(chat_id, file_id)}
        elif kind == "document":
            name = upload.group(1) if upload else None
            content = {"document": Document(file_id=file_id, file_unique_id=f"u{chat_id}x{n}", file_name=name)}
        else:
            duration = int(params.get("duration") or 1)
            content = {"voice": Voice(file_id=file_id, file_unique_id=f"u{chat_id}x{n}", duration=duration)}
        return self._store(self._outgoing(chat_id, params, **content, **self._caption(params)))

    def _copy(self, source: Message, target: int, params: dict[str, Any], media_group_id: str | None) -> Message:
        """The copy of `source` in `target`: its content as a new message of the bot, no link to the original."""
        content = {name: getattr(source, name) for name in _COPIED if getattr(source, name) is not None}
        if not content:  # service messages (a topic's creation, someone joining…) have no content to copy
            raise Refused(bad_request("message can't be copied"))
        if "text" not in content:
            if params.get("remove_caption"):
                content.pop("caption", None)
                content.pop("caption_entities", None)
            elif "caption" in params:
                content.pop("caption", None)
                content.pop("caption_entities", None)
                content |= self._caption(params)
        copy = self._outgoing(target, params, **content, media_group_id=media_group_id)
        return self.world.keep(copy)

    def _source(self, params: dict[str, Any], message_id: Any) -> Message | None:
        from_chat = self._require_chat(params, "from_chat_id")
        return self.world.history.get((from_chat, message_id)) if isinstance(message_id, int) else None

    def _copy_message(self, params: dict[str, Any]) -> dict[str, Any]:
        target = self._require_chat(params)
        source = self._source(params, params.get("message_id"))
        if source is None:
            raise Refused(bad_request("message to copy not found"))
        return self._result(MessageId(message_id=self._copy(source, target, params, None).message_id))

    def _copy_messages(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Several messages in one call; the parts of an album stay together as one new album."""
        target = self._require_chat(params)
        ids = params.get("message_ids")
        if not isinstance(ids, list) or not 1 <= len(ids) <= 100 or not all(isinstance(i, int) for i in ids):
            raise Refused(bad_request("message_ids must be a list of 1-100 message identifiers"))
        if any(a >= b for a, b in itertools.pairwise(ids)):
            raise Refused(bad_request("message identifiers must be in strictly increasing order"))
        albums: dict[str, str] = {}
        copied: list[dict[str, Any]] = []
        for message_id in ids:
            source = self._source(params, message_id)
            if source is None:  # Telegram skips what it cannot find, and copies the rest
                continue
            album = None
            if source.media_group_id is not None:
                album = albums.setdefault(source.media_group_id, self.world.next_album_id())
            copy = self._copy(source, target, params, album)
            copied.append(self._result(MessageId(message_id=copy.message_id)))
        if not copied:
            raise Refused(bad_request("message to copy not found"))
        return copied

    def _create_forum_topic(self, params: dict[str, Any]) -> dict[str, Any]:
        world = self.world
        chat_id = self._require_chat(params)
        group = world.groups.get(chat_id)
        if group is None or not group.chat.is_forum:
            raise Refused(bad_request("the chat is not a forum"))
        name = params.get("name")
        if not isinstance(name, str) or not name.strip():
            raise Refused(bad_request("TOPIC_TITLE_EMPTY"))
        if len(name) > 128:
            raise Refused(bad_request("TOPIC_TITLE_TOO_LONG"))
        color = params.get("icon_color", TOPIC_ICON_COLORS[0])
        if color not in TOPIC_ICON_COLORS:
            raise Refused(bad_request("TOPIC_ICON_COLOR_INVALID"))
        # A topic is its creation message: the topic's message_thread_id is that message's id.
        thread_id = world.next_message_id(chat_id)
        created = Message(
            message_id=thread_id,
            date=datetime.now(UTC),
            chat=group.chat,
            from_user=world.bot_user,
            message_thread_id=thread_id,
            is_topic_message=True,
            forum_topic_created=ForumTopicCreated(name=name, icon_color=color),
        )
        world.keep(created)
        group.topics[thread_id] = name
        return self._result(ForumTopic(message_thread_id=thread_id, name=name, icon_color=color))

    def _get_chat_member(self, params: dict[str, Any]) -> dict[str, Any]:
        world = self.world
        chat_id = self._require_chat(params)
        user_id = params.get("user_id")
        if not isinstance(user_id, int):
            raise Refused(bad_request("invalid user_id specified"))
        if user_id == world.bot_user.id:
            status, user = "administrator", world.bot_user
        elif chat_id in world.groups:
            status, user = world.groups[chat_id].members.get(user_id, "left"), world.user(user_id)
        else:  # a private chat has the user and the bot
            status, user = ("member" if user_id == chat_id else "left"), world.user(user_id)
        return self._result(chat_member(status, user))

    def _get_file(self, params: dict[str, Any]) -> dict[str, Any]:
        file_id = params.get("file_id")
        if not isinstance(file_id, str) or file_id not in self.world.files:
            raise Refused(bad_request("invalid file_id"))
        size = len(self.world.files[file_id])
        return self._result(
            File(file_id=file_id, file_unique_id=f"u-{file_id}", file_size=size, file_path=f"documents/{file_id}")
        )

    def _edit(self, params: dict[str, Any], what: str) -> dict[str, Any]:
        chat_id = self._require_chat(params)
        message = self.world.bot_messages.get((chat_id, params.get("message_id") or 0))
        if message is None:
            raise Refused(bad_request("message to edit not found"))
        markup = self._markup(params)
        if markup is not None and not isinstance(markup, InlineKeyboardMarkup):
            raise Refused(bad_request("inline keyboard expected"))
        data = dump(message) | {"edit_date": int(time.time())}
        data.pop("reply_markup", None)
        if markup is not None:
            data["reply_markup"] = dump(markup)
        if what == "text":
            if message.text is None:
                raise Refused(bad_request("there is no text in the message to edit"))
            plain, entities = self._render(params)
            data.pop("entities", None)
            data["text"] = plain
            if entities:
                data["entities"] = [dump(e) for e in entities]
        elif what == "caption":
            if message.text is not None or message.forum_topic_created is not None:
                raise Refused(bad_request("there is no caption in the message to edit"))
            data.pop("caption", None)
            data.pop("caption_entities", None)
            caption = self._caption(params)
            if caption:
                data["caption"] = caption["caption"]
                if caption["caption_entities"]:
                    data["caption_entities"] = [dump(e) for e in caption["caption_entities"]]
        edited = Message.model_validate(data)
        unchanged = (message.text, message.entities, message.caption, message.caption_entities, message.reply_markup)
        if (edited.text, edited.entities, edited.caption, edited.caption_entities, edited.reply_markup) == unchanged:
            raise Refused(
                bad_request(
                    "message is not modified: specified new message content and reply markup are exactly the same "
                    "as a current content and reply markup of the message"
                )
            )
        return self._store(edited)

    def _answer_callback(self, params: dict[str, Any]) -> bool:
        query_id = str(params.get("callback_query_id", ""))
        callbacks = self.world.callbacks
        if callbacks.get(query_id, True):
            raise Refused(bad_request("query is too old and response timeout expired or query ID is invalid"))
        if len(str(params.get("text", ""))) > 200:
            raise Refused(bad_request("MESSAGE_TOO_LONG"))
        callbacks[query_id] = True
        return True
