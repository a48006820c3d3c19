"""What the fake Telegram knows: its users and chats, the staff forum groups with their members and topics, every
message in every chat, downloadable files, the updates not yet fetched, open callback queries, the failures a test
injected, and every call the bot made. The update builders, the Bot API methods and the readers all work on one
`World`; it wakes whoever waits for a change (a long poll, a test)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiogram.types import (
    Chat,
    ChatMemberAdministrator,
    ChatMemberBanned,
    ChatMemberLeft,
    ChatMemberMember,
    ChatMemberOwner,
    Message,
    PhotoSize,
    Update,
    User,
)

from tests.fake_bot_api.wire import ApiCall, ApiError, Refused, bad_request, dump

MEMBER_STATUSES = ("creator", "administrator", "member", "left", "kicked")
CAN_POST = frozenset({"creator", "administrator", "member"})


@dataclass
class Group:
    """A supergroup the bot administers: its members' statuses and its forum topics."""

    chat: Chat
    members: dict[int, str]
    topics: dict[int, str] = field(default_factory=dict)  # open topics: message_thread_id → name
    deleted: set[int] = field(default_factory=set)


@dataclass
class _Injected:
    error: ApiError
    remaining: int
    chat_id: int | None


class World:
    def __init__(self, bot_user: User) -> None:
        self.bot_user = bot_user
        self.calls: list[ApiCall] = []
        self.updates: list[dict[str, Any]] = []  # every update pushed, in order
        self.queue: list[dict[str, Any]] = []  # not yet confirmed by an `offset`
        self.returned: list[dict[str, Any]] = []  # every Message object answered to the bot
        self.results: list[tuple[str, dict[str, Any]]] = []  # answers that are not messages: (type name, data)
        self.commands: dict[tuple[str, str], list[dict[str, str]]] = {}  # (scope type, language) → commands
        # Update types Telegram sends when `allowed_updates` was never given: None, everything but chat_member /
        # message_reaction*, which our fake never produces.
        self.allowed_updates: list[str] | None = None
        self.bot_messages: dict[tuple[int, int], Message] = {}  # the bot's messages as they are now
        self.history: dict[tuple[int, int], Message] = {}  # every message in every chat, as it is now
        self.private: set[int] = set()  # users who started a private chat with the bot
        self.groups: dict[int, Group] = {}
        self.files: dict[str, bytes] = {}  # file_id → content, for getFile and the download
        self.callbacks: dict[str, bool] = {}  # callback query id → answered
        self.closing = False
        self._users: dict[int, User] = {}
        self._update_ids = itertools.count(700_000_001)
        self._callback_ids = itertools.count(4_000_000_000_000_000_001)
        self._message_ids: dict[int, itertools.count[int]] = {}
        self._file_numbers = itertools.count(1)
        self._album_ids = itertools.count(13_000_000_000_000_001)
        self._failures: dict[str, list[_Injected]] = {}
        self._waiters: list[asyncio.Future[None]] = []

    # --- people, chats and ids ----------------------------------------------------------------------------------
    def user(self, user_id: int, first_name: str | None = None, language_code: str = "id") -> User:
        if user_id not in self._users:
            self._users[user_id] = User(
                id=user_id, is_bot=False, first_name=first_name or f"Peserta {user_id}", language_code=language_code
            )
        return self._users[user_id]

    def knows_user(self, user_id: int) -> bool:
        return user_id in self._users

    def chat(self, chat_id: int) -> Chat:
        """A staff group, or the private chat with user `chat_id`."""
        if chat_id in self.groups:
            return self.groups[chat_id].chat
        user = self.user(chat_id)
        return Chat(id=chat_id, type="private", first_name=user.first_name)

    def next_message_id(self, chat_id: int) -> int:
        """Message ids are counted per chat, from 1."""
        return next(self._message_ids.setdefault(chat_id, itertools.count(1)))

    def next_file_number(self) -> int:
        return next(self._file_numbers)

    def next_album_id(self) -> str:
        return str(next(self._album_ids))

    def next_callback_id(self) -> str:
        return str(next(self._callback_ids))

    def photo(self, owner: int, file_id: str | None = None) -> list[PhotoSize]:
        """A photo as Telegram delivers it: several sizes of one picture, the largest last."""
        n = self.next_file_number()
        large = file_id or f"AgAD-large-{owner}-{n}"
        small = PhotoSize(
            file_id=f"AgAD-small-{owner}-{n}", file_unique_id=f"s{owner}x{n}", width=90, height=67, file_size=1200
        )
        return [small, PhotoSize(file_id=large, file_unique_id=f"l{owner}x{n}", width=1280, height=960)]

    # --- messages and updates -----------------------------------------------------------------------------------
    def keep(self, message: Message) -> Message:
        """A message of the bot, as it is now."""
        self.bot_messages[message.chat.id, message.message_id] = message
        self.history[message.chat.id, message.message_id] = message
        return message

    def push(self, **content: Any) -> dict[str, Any]:
        """An update for the bot to fetch (`message=…`, `callback_query=…`, …); returns its wire form."""
        update = dump(Update(update_id=next(self._update_ids), **content))
        self.updates.append(update)
        self.queue.append(update)
        self.notify()
        return update

    # --- staff groups -------------------------------------------------------------------------------------------
    def add_forum_group(
        self, chat_id: int, title: str = "Prakerja Staff", members: dict[int, str] | None = None
    ) -> Chat:
        """A forum supergroup the bot administers; `members` maps user ids to statuses (creator, administrator,
        member, left, kicked); anyone else is "left"."""
        assert chat_id < 0, "supergroup ids are negative (-100…)"
        chat = Chat(id=chat_id, type="supergroup", title=title, is_forum=True)
        self.groups[chat_id] = Group(chat, {})
        for user_id, status in (members or {}).items():
            self.set_member(chat_id, user_id, status)
        return chat

    def set_member(self, chat_id: int, user_id: int, status: str) -> None:
        assert status in MEMBER_STATUSES, status
        self.groups[chat_id].members[user_id] = status
        self.user(user_id)

    def topics(self, chat_id: int) -> dict[int, str]:
        """The group's open forum topics: message_thread_id → name."""
        return dict(self.groups[chat_id].topics)

    def delete_topic(self, chat_id: int, thread_id: int) -> None:
        """A member deletes the topic with its messages; sending into it fails from now on."""
        group = self.groups[chat_id]
        assert thread_id in group.topics, f"no open topic {thread_id} in chat {chat_id}"
        del group.topics[thread_id]
        group.deleted.add(thread_id)
        for store in (self.bot_messages, self.history):
            for key in [k for k, m in store.items() if k[0] == chat_id and m.message_thread_id == thread_id]:
                del store[key]

    def thread_fields(self, chat_id: int, thread_id: int | None) -> dict[str, Any]:
        """The fields of a message in a forum topic; 400 "message thread not found" for a deleted or unknown one."""
        if not thread_id:
            return {}
        group = self.groups.get(chat_id)
        if group is None or thread_id not in group.topics:
            raise Refused(bad_request("message thread not found"))
        # Messages in a topic answer the topic's creation message unless they reply to another one.
        return {
            "message_thread_id": thread_id,
            "is_topic_message": True,
            "reply_to_message": self.history.get((chat_id, thread_id)),
        }

    # --- injected failures --------------------------------------------------------------------------------------
    def fail_next(self, method: str, error: ApiError, times: int = 1, chat_id: int | None = None) -> None:
        """Answer the next `times` calls of `method` (to `chat_id`, if given) with `error`."""
        self._failures.setdefault(method.lower(), []).append(_Injected(error, times, chat_id))

    def injected(self, method: str, chat_id: int | None) -> ApiError | None:
        """The error a call of `method` to `chat_id` gets, if a test injected one (it counts as used)."""
        for injected in self._failures.get(method.lower(), []):
            if injected.remaining > 0 and (injected.chat_id is None or injected.chat_id == chat_id):
                injected.remaining -= 1
                return injected.error
        return None

    # --- waiting for a change -----------------------------------------------------------------------------------
    async def next_change(self, at_most: float) -> None:
        """Sleep until the next call or push, or `at_most` seconds."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(future, at_most)

    def notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for future in waiters:
            if not future.done():
                future.set_result(None)


def chat_member(status: str, user: User) -> Any:
    """The ChatMember object Telegram gives for a member with `status`."""
    match status:
        case "creator":
            return ChatMemberOwner(user=user, is_anonymous=False)
        case "administrator":
            return ChatMemberAdministrator(
                user=user,
                can_be_edited=False,
                is_anonymous=False,
                can_manage_chat=True,
                can_delete_messages=True,
                can_manage_video_chats=True,
                can_restrict_members=True,
                can_promote_members=False,
                can_change_info=True,
                can_invite_users=True,
                can_post_stories=False,
                can_edit_stories=False,
                can_delete_stories=False,
                can_send_welcome_messages=False,
                can_pin_messages=True,
                can_manage_topics=True,
            )
        case "member":
            return ChatMemberMember(user=user)
        case "kicked":
            return ChatMemberBanned(user=user, until_date=datetime.fromtimestamp(0, UTC))  # 0: banned for ever
        case _:
            return ChatMemberLeft(user=user)
