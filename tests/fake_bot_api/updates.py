"""The updates a test pushes, each built the way Telegram builds it — a participant's text, contact, photo, album,
file, voice note or edit; a member's message or photo in a staff group's topic, a member joining or leaving; a press
of a button — and queued in the world for the bot to fetch. Each returns the update's wire form (a press: the callback
query's id)."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

from aiogram.types import (
    CallbackQuery,
    ChatMemberUpdated,
    Contact,
    Document,
    InaccessibleMessage,
    Message,
    MessageEntity,
    Voice,
)

from tests.fake_bot_api.wire import Refused, dump
from tests.fake_bot_api.world import CAN_POST, World, chat_member

_COMMAND = re.compile(r"^/[A-Za-z0-9_]{1,32}(?:@\w+)?")


def command_entities(text: str) -> list[MessageEntity] | None:
    """The `bot_command` entity Telegram marks on a text that starts with a command."""
    if command := _COMMAND.match(text):
        return [MessageEntity(type="bot_command", offset=0, length=len(command.group(0)))]
    return None


class UpdateBuilders:
    """The `push_*` methods of the fake server (a part of `FakeBotApi`)."""

    world: World

    # --- a participant, in the private chat with the bot --------------------------------------------------------
    def _incoming(self, user_id: int, **content: Any) -> Message:
        world = self.world
        world.private.add(user_id)
        message = Message(
            message_id=world.next_message_id(user_id),
            date=datetime.now(UTC),
            chat=world.chat(user_id),
            from_user=world.user(user_id),
            **content,
        )
        world.history[user_id, message.message_id] = message
        return message

    def push_message(self, user_id: int, text: str) -> dict[str, Any]:
        return self.world.push(message=self._incoming(user_id, text=text, entities=command_entities(text)))

    def push_contact(self, user_id: int, phone: str, contact_user_id: int | None) -> dict[str, Any]:
        """A shared contact; Telegram sets `user_id` when the contact is a Telegram user (own: == user_id)."""
        contact = Contact(phone_number=phone, first_name=self.world.user(user_id).first_name, user_id=contact_user_id)
        return self.world.push(message=self._incoming(user_id, contact=contact))

    def push_photo(self, user_id: int, caption: str | None = None, media_group_id: str | None = None) -> dict[str, Any]:
        message = self._incoming(
            user_id, photo=self.world.photo(user_id), caption=caption, media_group_id=media_group_id
        )
        return self.world.push(message=message)

    def push_album(self, user_id: int, count: int = 2, caption: str | None = None) -> list[dict[str, Any]]:
        """An album: `count` photo messages sharing one `media_group_id`, each its own update (the caption on the
        first), exactly as Telegram delivers albums."""
        group_id = self.world.next_album_id()
        return [self.push_photo(user_id, caption if n == 0 else None, group_id) for n in range(count)]

    def push_document(
        self, user_id: int, file_name: str = "bukti.pdf", caption: str | None = None, content: bytes | None = None
    ) -> dict[str, Any]:
        """A file sent to the bot; with `content`, the bot can download it (getFile, then the file URL)."""
        n = self.world.next_file_number()
        document = Document(
            file_id=f"BQAD-{user_id}-{n}",
            file_unique_id=f"d{user_id}x{n}",
            file_name=file_name,
            mime_type="application/pdf" if file_name.endswith(".pdf") else "application/octet-stream",
            file_size=48_213 if content is None else len(content),
        )
        if content is not None:
            self.world.files[document.file_id] = content
        return self.world.push(message=self._incoming(user_id, document=document, caption=caption))

    def push_voice(self, user_id: int, duration: int = 3) -> dict[str, Any]:
        n = self.world.next_file_number()
        voice = Voice(
            file_id=f"AwAD-{user_id}-{n}",
            file_unique_id=f"v{user_id}x{n}",
            duration=duration,
            mime_type="audio/ogg",
            file_size=9_000,
        )
        return self.world.push(message=self._incoming(user_id, voice=voice))

    def push_edited(self, chat_id: int, message_id: int, text: str) -> dict[str, Any]:
        """The author of message `message_id` (a user's, in a private chat or a group) edits its text, or the caption
        of a photo or file."""
        world = self.world
        original = world.history.get((chat_id, message_id))
        assert original is not None and original.from_user is not None, f"no message {message_id} in chat {chat_id}"
        assert original.from_user.id != world.bot_user.id, "edits of the bot's own messages are not updates"
        if original.text is not None:
            data = dump(original) | {"text": text, "edit_date": int(time.time())}
            data.pop("entities", None)
            entities = command_entities(text)
            if entities:
                data["entities"] = [dump(e) for e in entities]
        else:
            data = dump(original) | {"caption": text, "edit_date": int(time.time())}
            data.pop("caption_entities", None)
        edited = Message.model_validate(data)
        world.history[chat_id, message_id] = edited
        return world.push(edited_message=edited)

    # --- a member, in a staff group -----------------------------------------------------------------------------
    def _group_incoming(self, chat_id: int, user_id: int, thread_id: int | None, **content: Any) -> Message:
        world = self.world
        group = world.groups[chat_id]
        assert group.members.get(user_id, "left") in CAN_POST, f"user {user_id} cannot post in chat {chat_id}"
        try:
            thread = world.thread_fields(chat_id, thread_id)
        except Refused as refused:
            raise AssertionError(f"topic {thread_id} of chat {chat_id}: {refused.error.description}") from None
        message = Message(
            message_id=world.next_message_id(chat_id),
            date=datetime.now(UTC),
            chat=group.chat,
            from_user=world.user(user_id),
            **thread,
            **content,
        )
        world.history[chat_id, message.message_id] = message
        return message

    def push_group_message(self, chat_id: int, user_id: int, text: str, thread_id: int | None = None) -> dict[str, Any]:
        """A member writes in the group: in topic `thread_id`, or in General when None."""
        message = self._group_incoming(chat_id, user_id, thread_id, text=text, entities=command_entities(text))
        return self.world.push(message=message)

    def push_group_photo(
        self,
        chat_id: int,
        user_id: int,
        thread_id: int | None = None,
        caption: str | None = None,
        media_group_id: str | None = None,
    ) -> dict[str, Any]:
        photo = self.world.photo(user_id)
        message = self._group_incoming(
            chat_id, user_id, thread_id, photo=photo, caption=caption, media_group_id=media_group_id
        )
        return self.world.push(message=message)

    def push_chat_member(self, chat_id: int, user_id: int, status: str) -> dict[str, Any]:
        """A member's status in the group changes (joins, leaves, is removed): the `chat_member` update Telegram
        sends an admin bot that asked for it in `allowed_updates`."""
        world = self.world
        old = world.groups[chat_id].members.get(user_id, "left")
        world.set_member(chat_id, user_id, status)
        user = world.user(user_id)
        change = ChatMemberUpdated(
            chat=world.groups[chat_id].chat,
            from_user=user,
            date=datetime.now(UTC),
            old_chat_member=chat_member(old, user),
            new_chat_member=chat_member(status, user),
        )
        return world.push(chat_member=change)

    # --- a press of a button ------------------------------------------------------------------------------------
    def push_callback(self, user_id: int, data: str, message_id: int, inaccessible: bool = False) -> str:
        """A press of a button on the bot's message `message_id` (as it is now); returns the callback query id.

        `inaccessible`: Telegram no longer sends the message itself (it is too old), only its chat and id.
        """
        world = self.world
        stored = world.bot_messages[user_id, message_id]
        message = InaccessibleMessage(chat=stored.chat, message_id=message_id, date=0) if inaccessible else stored
        query_id = world.next_callback_id()
        world.callbacks[query_id] = False
        query = CallbackQuery(
            id=query_id,
            from_user=world.user(user_id),
            chat_instance=f"-{7_000_000_000 + user_id}",
            message=message,
            data=data,
        )
        world.push(callback_query=query)
        return query_id
