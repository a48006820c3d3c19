"""Drains the outbox into Telegram within its limits: ~20 messages and ~20 topic creations a minute per group.

Relays are late under load, never lost: a 429 pauses that chat for `retry_after`, a deleted topic is recreated and
its messages wait for the new one, a participant's texts queued close together are merged into one message, and an
album's parts go out as one album.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError, TelegramRetryAfter
from aiogram.methods import CopyMessages, CreateForumTopic, SendMessage

from core.cases import CaseService
from core.identity import redact
from core.outbox import STAFF, Outbox, OutboxItem

log = logging.getLogger(__name__)
MAX_TEXT = 4096
ALBUM_SETTLE_SECONDS = 1.5  # an album's parts arrive as separate updates; wait for all of them
TEXT_SETTLE_SECONDS = 1.0  # a participant's texts typed in quick succession go into the topic as one message


@dataclass
class TokenBucket:
    """`capacity` calls at once, refilled at `per_minute`; `pause_until` honours a 429's retry_after."""

    capacity: float
    per_minute: float
    tokens: float = -1.0
    updated: float = field(default_factory=time.monotonic)
    pause_until: float = 0.0

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = self.capacity

    def ready(self, now: float) -> bool:
        if now < self.pause_until:
            return False
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.per_minute / 60)
        self.updated = now
        return self.tokens >= 1

    def take(self) -> None:
        self.tokens -= 1


class StaffSender:
    def __init__(
        self,
        bot: Bot,
        outbox: Outbox,
        cases: CaseService,
        messages_per_minute: float = 20,
        topics_per_minute: float = 20,
    ) -> None:
        self.bot = bot
        self.outbox = outbox
        self.cases = cases
        self.messages_per_minute = messages_per_minute
        self.topics_per_minute = topics_per_minute
        self.buckets: dict[tuple[int, str], TokenBucket] = {}

    def bucket(self, chat_id: int, kind: str) -> TokenBucket:
        key = (chat_id, kind)
        if key not in self.buckets:
            rate = self.topics_per_minute if kind == "topic" else self.messages_per_minute
            self.buckets[key] = TokenBucket(capacity=rate, per_minute=rate)
        return self.buckets[key]

    async def run(self, stop: asyncio.Event, idle: float = 0.3) -> None:
        while not stop.is_set():
            try:
                sent = await self.drain_once()
            except Exception as exc:  # the sender must outlive a database hiccup; items stay pending
                log.error("staff sender: %s", redact(repr(exc)))
                sent = 0
            if not sent:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), idle)

    async def drain_once(self) -> int:
        """Send what is due; returns how many outbox items were completed."""
        items = await self.outbox.pending(STAFF, limit=200)
        now = datetime.now(UTC)
        blocked_chats: set[int] = set()
        waiting_users: set[int] = set()
        done = 0
        index = 0
        while index < len(items):
            item = items[index]
            index += 1
            user = item.payload.get("topic_user")
            creates_topic = item.method == "createForumTopic"
            if item.chat_id in blocked_chats or (user is not None and user in waiting_users and not creates_topic):
                # Keep each chat's and each topic's order: nothing overtakes a waiting item. A topic's creation is
                # what its messages wait for: it goes ahead of them (after a deleted topic it is queued after them).
                continue
            if item.waiting(now):
                if user is not None and not creates_topic:
                    waiting_users.add(int(user))  # its retry time has not come: the topic's later messages wait too
                continue
            if creates_topic and await self._topic_exists(item):
                await self.outbox.mark_sent([item.id])  # queued twice (a case reopened meanwhile): one topic only
                done += 1
                continue
            kind = "topic" if creates_topic else "message"
            if not self.bucket(item.chat_id, kind).ready(time.monotonic()):
                blocked_chats.add(item.chat_id)
                continue
            thread_id: int | None = None
            if user is not None and item.method != "createForumTopic":
                topic = await self.cases.topic_of(int(user))
                if topic is None or topic[1] is None:
                    waiting_users.add(int(user))  # its topic is still being created
                    continue
                thread_id = topic[1]
            group = [item]
            if item.method == "relayText":
                if _age(item) < TEXT_SETTLE_SECONDS:
                    if user is not None:
                        waiting_users.add(int(user))
                    else:
                        blocked_chats.add(item.chat_id)
                    continue
                group = self._merge_texts(item, items[index:])
            elif item.method == "copyMessages" and item.payload.get("media_group_id"):
                if _age(item) < ALBUM_SETTLE_SECONDS:
                    if user is not None:
                        waiting_users.add(int(user))
                    else:
                        blocked_chats.add(item.chat_id)
                    continue
                group = [
                    i for i in items[index - 1 :] if i.payload.get("media_group_id") == item.payload["media_group_id"]
                ]
            ok = await self._send(item, group, thread_id)
            if ok:
                self.bucket(item.chat_id, kind).take()
                done += len(group)
                consumed = {i.id for i in group}
                items = items[:index] + [i for i in items[index:] if i.id not in consumed]
            else:
                blocked_chats.add(item.chat_id)
        return done

    def _merge_texts(self, first: OutboxItem, rest: list[OutboxItem]) -> list[OutboxItem]:
        """A participant's texts queued back to back become one message (up to Telegram's 4,096 characters)."""
        group = [first]
        length = len(first.payload["text"])
        for item in rest:
            if item.chat_id != first.chat_id or item.payload.get("topic_user") != first.payload.get("topic_user"):
                continue  # other topics' messages do not stand in the way
            if item.method != "relayText":
                break  # a photo in between: the texts after it stay after it
            length += len(item.payload["text"]) + 1
            if length > MAX_TEXT:
                break
            group.append(item)
        return group

    async def _topic_exists(self, item: OutboxItem) -> bool:
        """A queued topic creation that is no longer needed: the participant's topic exists, or moved elsewhere."""
        topic = await self.cases.topic_of(int(item.payload["topic_user"]))
        return topic is None or topic[0] != item.chat_id or topic[1] is not None

    async def _send(self, item: OutboxItem, group: list[OutboxItem], thread_id: int | None) -> bool:
        call: Callable[[], Awaitable[Any]]
        payload = {
            k: v for k, v in item.payload.items() if k not in ("topic_user", "case_id", "media_group_id", "queued_at")
        }
        if thread_id is None:  # a notice outside any case (/queue, a refusal) names its topic itself
            thread_id = payload.pop("message_thread_id", None)
        payload.pop("message_thread_id", None)
        if item.method == "createForumTopic":
            user = int(item.payload["topic_user"])

            async def call() -> Any:
                topic = await self.bot(CreateForumTopic(chat_id=item.chat_id, name=payload["name"]))
                await self.cases.topic_created(user, item.chat_id, topic.message_thread_id)

        elif item.method == "relayText":
            text = "\n".join(i.payload["text"] for i in group)

            async def call() -> Any:
                return await self.bot(
                    SendMessage(chat_id=item.chat_id, text=text, message_thread_id=thread_id, parse_mode=None)
                )

        elif item.method == "copyMessages":
            ids = sorted({m for i in group for m in i.payload["message_ids"]})

            async def call() -> Any:
                return await self.bot(
                    CopyMessages(
                        chat_id=item.chat_id,
                        from_chat_id=payload["from_chat_id"],
                        message_ids=ids,
                        message_thread_id=thread_id,
                    )
                )

        else:  # sendMessage and anything else shaped like it

            async def call() -> Any:
                return await self.bot(SendMessage(chat_id=item.chat_id, message_thread_id=thread_id, **payload))

        try:
            await call()
        except TelegramRetryAfter as exc:
            bucket = self.bucket(item.chat_id, "topic" if item.method == "createForumTopic" else "message")
            bucket.pause_until = time.monotonic() + exc.retry_after
            await self.outbox.retry_later(item.id, exc.retry_after, "429", count_attempt=False)
            return False
        except TelegramBadRequest as exc:
            if item.method == "createForumTopic":
                # E.g. the bot may not manage topics: try again later (an admin can fix it), not in a tight loop.
                log.error("staff sender: cannot create a topic in %s: %s", item.chat_id, redact(exc.message))
                await self.outbox.retry_later(item.id, 30 * (item.attempts + 1), exc.message)
                return False
            lost = item.payload.get("topic_user")
            if lost is not None and ("thread" in exc.message.lower() or "topic" in exc.message.lower()):
                # Someone deleted the participant's topic: make a new one; this message waits for it.
                await self.cases.topic_lost(int(lost))
                return False
            # Anything else (a notice for a topic that is gone, a message Telegram refuses) would block the whole
            # group's queue if retried for ever.
            await self._give_up(group, exc.message)
            return True
        except TelegramForbiddenError as exc:  # the bot was removed from the staff group
            await self._give_up(group, exc.message)
            return True
        except Exception as exc:
            log.warning("staff sender: outbox %s failed: %s", item.id, redact(repr(exc)))
            await self.outbox.retry_later(item.id, 5 * (item.attempts + 1), redact(repr(exc)))
            return False
        await self.outbox.mark_sent([i.id for i in group])
        return True

    async def _give_up(self, group: list[OutboxItem], reason: str) -> None:
        log.error("staff sender: giving up on outbox %s: %s", [i.id for i in group], redact(reason))
        for i in group:
            await self.outbox.mark_failed(i.id, reason)


def _age(item: OutboxItem) -> float:
    created = item.payload.get("queued_at")
    if not isinstance(created, (int, float)):
        return ALBUM_SETTLE_SECONDS
    return datetime.now(UTC).timestamp() - created
