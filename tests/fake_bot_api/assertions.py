"""What a test reads from the fake server and waits for: the calls the bot made, the texts it sent, its messages as
they are now (after edits), the buttons on them, the answers to callback queries; `wait_for` sleeps until a condition
holds, woken by every call and push, and fails with the last calls after a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable

from aiogram.types import InlineKeyboardMarkup, Message

from tests.fake_bot_api.wire import ApiCall
from tests.fake_bot_api.world import World


class Assertions:
    """The reading and waiting methods of the fake server (a part of `FakeBotApi`)."""

    world: World

    # --- calls --------------------------------------------------------------------------------------------------
    def calls_to(self, method: str, chat_id: int | None = None) -> list[ApiCall]:
        return [
            c
            for c in self.world.calls
            if c.method.lower() == method.lower() and (chat_id is None or c.chat_id == chat_id)
        ]

    def sent_calls(self, chat_id: int) -> list[ApiCall]:
        """Successful sendMessage calls to the chat, in order."""
        return [c for c in self.calls_to("sendMessage", chat_id) if c.ok]

    def sent(self, chat_id: int) -> list[str]:
        """The HTML texts the bot sent to the chat, in order."""
        return [str(c.params["text"]) for c in self.sent_calls(chat_id)]

    def answered(self, query_id: str) -> ApiCall | None:
        for call in self.calls_to("answerCallbackQuery"):
            if call.params.get("callback_query_id") == query_id:
                return call
        return None

    # --- messages -----------------------------------------------------------------------------------------------
    def messages(self, chat_id: int) -> list[Message]:
        """The bot's messages in the chat as they are now (after edits), in order."""
        found = [m for (chat, _), m in self.world.bot_messages.items() if chat == chat_id]
        return sorted(found, key=lambda m: m.message_id)

    def message(self, chat_id: int, message_id: int) -> Message:
        return self.world.bot_messages[chat_id, message_id]

    def history(self, chat_id: int) -> list[Message]:
        """Every message in the chat as it is now — the bot's, its copies, and what people wrote — in order."""
        return sorted((m for (chat, _), m in self.world.history.items() if chat == chat_id), key=lambda m: m.message_id)

    def topic_messages(self, chat_id: int, thread_id: int) -> list[Message]:
        """The bot's messages (sent and copied) in a forum topic, without the topic's creation message."""
        return [
            m
            for m in self.messages(chat_id)
            if m.message_thread_id == thread_id and m.forum_topic_created is None and m.message_id != thread_id
        ]

    def last_keyboard(self, chat_id: int) -> Message:
        """The latest bot message that still carries an inline keyboard."""
        for message in reversed(self.messages(chat_id)):
            if isinstance(message.reply_markup, InlineKeyboardMarkup):
                return message
        raise AssertionError(f"no message with an inline keyboard in chat {chat_id}: {self.sent(chat_id)}")

    def button(self, chat_id: int, label: str, message: Message | None = None) -> tuple[int, str]:
        """(message id, callback data) of the button whose text contains `label` on the latest keyboard."""
        message = message or self.last_keyboard(chat_id)
        assert isinstance(message.reply_markup, InlineKeyboardMarkup)
        for row in message.reply_markup.inline_keyboard:
            for button in row:
                if label in button.text and button.callback_data is not None:
                    return message.message_id, button.callback_data
        labels = [b.text for row in message.reply_markup.inline_keyboard for b in row]
        raise AssertionError(f"no button {label!r} on message {message.message_id}: {labels}")

    # --- waiting ------------------------------------------------------------------------------------------------
    async def wait_for(self, predicate: Callable[[], bool], within: float = 5.0, what: str = "condition") -> None:
        """Wait until `predicate()` holds (checked after every call and push); AssertionError after `within` s."""
        deadline = time.monotonic() + within
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                recent = [(c.method, str(c.params.get("text", ""))[:60]) for c in self.world.calls[-8:]]
                raise AssertionError(f"timed out after {within}s waiting for {what}; last calls: {recent}")
            await self.world.next_change(remaining)

    async def wait_for_messages(self, chat_id: int, n: int, within: float = 5.0) -> list[str]:
        """Wait until the bot has sent at least `n` messages to the chat in all; returns all its texts."""
        await self.wait_for(lambda: len(self.sent(chat_id)) >= n, within, f"{n} messages to chat {chat_id}")
        return self.sent(chat_id)

    async def wait_for_call(self, method: str, chat_id: int | None = None, n: int = 1, within: float = 5.0) -> ApiCall:
        """Wait for the `n`-th call of `method` (to `chat_id`, if given) and return it."""
        await self.wait_for(lambda: len(self.calls_to(method, chat_id)) >= n, within, f"{n}× {method}")
        return self.calls_to(method, chat_id)[n - 1]
