"""Drains the outbox into Telegram within its limits: ~20 messages and ~20 topic creations a minute per group.

Relays are late under load, never lost: a 429 pauses that chat for `retry_after`, a network or server error waits
and goes again (for as long as it takes), a deleted topic is recreated and its messages wait for the new one, a topic
that cannot be created is tried again (and at once when the participant writes again), a participant's texts queued
close together are merged into one message, and an album's parts go out as one album. Only Telegram's refusal of a
message itself gives it up — and then the loss is reported in the topic, or to the participant when the staff group
itself refuses the bot.

The limits are rolling minutes counted from what was sent, so a restart or a new leader starts from what its
predecessor sent (the outbox's `sent_at`), not from a full allowance.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError, TelegramRetryAfter
from aiogram.methods import CopyMessages, CreateForumTopic, SendMessage

from bot.flows.staff import staff_renderer
from bot.send_errors import backoff, is_transient
from bot.texts import Renderer
from core.cases import CaseService
from core.identity import redact
from core.outbox import STAFF, Outbox, OutboxItem

log = logging.getLogger(__name__)
MAX_TEXT = 4096
ALBUM_SETTLE_SECONDS = 1.5  # an album's parts arrive as separate updates; wait for all of them
TEXT_SETTLE_SECONDS = 1.0  # a participant's texts typed in quick succession go into the topic as one message
PER_CHAT = 200  # pending items looked at per staff group and round: one group's backlog never hides another's
WINDOW = timedelta(minutes=1)
TOPIC_RETRY_FIRST, TOPIC_RETRY_CAP = 30.0, 600.0  # a topic Telegram refuses to create (rights, not a forum)
LOST_NOTICE = "staff_relay_lost"
RELAYS = ("relayText", "copyMessages")
_NOT_SENT = ("topic_user", "case_id", "media_group_id", "queued_at")
# Telegram's words when the bot may not post in the group at all: a report in the topic would fail the same way.
_GROUP_REFUSES = ("not enough rights", "chat not found", "chat_write_forbidden", "have no rights")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class SendWindow:
    """At most `limit` calls in any rolling `period`, and nothing before `pause_until` (a 429's retry_after)."""

    limit: int
    period: timedelta = WINDOW
    sent: deque[datetime] = field(default_factory=deque)
    pause_until: datetime | None = None

    def ready(self, now: datetime) -> bool:
        if self.pause_until is not None and now < self.pause_until:
            return False
        while self.sent and self.sent[0] <= now - self.period:
            self.sent.popleft()
        return len(self.sent) < self.limit

    def take(self, at: datetime) -> None:
        self.sent.append(at)


class StaffSender:
    def __init__(
        self,
        bot: Bot,
        outbox: Outbox,
        cases: CaseService,
        messages_per_minute: int = 20,
        topics_per_minute: int = 20,
        *,
        texts: Renderer | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.bot = bot
        self.outbox = outbox
        self.cases = cases
        self.messages_per_minute = messages_per_minute
        self.topics_per_minute = topics_per_minute
        self.texts = texts or staff_renderer()
        self.clock = clock
        self.windows: dict[tuple[int, str], SendWindow] = {}
        self.failures: dict[int, int] = {}  # outbox id → failures in a row, for the backoff (not the give-up budget)
        self._seeded = False

    def window(self, chat_id: int, kind: str) -> SendWindow:
        key = (chat_id, kind)
        if key not in self.windows:
            self.windows[key] = SendWindow(self.topics_per_minute if kind == "topic" else self.messages_per_minute)
        return self.windows[key]

    async def _seed(self) -> None:
        """Count what went out in the last minute (by whichever sender) against this one's limits."""
        now = self.clock()
        self.windows.clear()
        for chat_id, method, sent_at in sorted(await self.outbox.sent_since(STAFF, now - WINDOW), key=lambda r: r[2]):
            self.window(chat_id, _kind(method)).take(sent_at)
        self._seeded = True

    async def run(self, stop: asyncio.Event, idle: float = 0.3) -> None:
        self._seeded = False  # a new leader: its predecessor's sends count
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
        if not self._seeded:
            await self._seed()
        items = await self.outbox.pending(STAFF, per_chat=PER_CHAT)
        now = self.clock()
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
            kind = _kind(item.method)
            if not self.window(item.chat_id, kind).ready(self.clock()):
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
                if self._age(item) < TEXT_SETTLE_SECONDS:
                    if user is not None:
                        waiting_users.add(int(user))
                    else:
                        blocked_chats.add(item.chat_id)
                    continue
                group = self._merge_texts(item, items[index:])
            elif item.method == "copyMessages" and item.payload.get("media_group_id"):
                if self._age(item) < ALBUM_SETTLE_SECONDS:
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
                self.window(item.chat_id, kind).take(self.clock())
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
        """Make the call; True when the group is done with (sent, or given up and reported)."""
        call: Callable[[], Awaitable[Any]]
        payload = {k: v for k, v in item.payload.items() if k not in _NOT_SENT}
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

        elif item.method == "notice":  # named by its text key: rendered here, in the staff group's language
            try:
                notice = self.texts.render(payload["notice"], "id", **payload.get("context", {}))
            except Exception as exc:  # a bug, not Telegram's doing: keep it visibly failed
                await self._give_up(item, group, f"render: {exc}", report=False)
                return True

            async def call() -> Any:
                return await self.bot(
                    SendMessage(chat_id=item.chat_id, text=notice, message_thread_id=thread_id, parse_mode="HTML")
                )

        else:  # sendMessage and anything else shaped like it

            async def call() -> Any:
                return await self.bot(SendMessage(chat_id=item.chat_id, message_thread_id=thread_id, **payload))

        try:
            await call()
        except TelegramRetryAfter as exc:
            pause = self.clock() + timedelta(seconds=exc.retry_after)
            self.window(item.chat_id, _kind(item.method)).pause_until = pause
            await self.outbox.retry_later(item.id, exc.retry_after, "429", count_attempt=False, now=self.clock())
            return False
        except (TelegramBadRequest, TelegramForbiddenError) as exc:
            if item.method == "createForumTopic":
                # E.g. the bot may not manage topics: an admin can fix it, so try again (never give up), not in a
                # tight loop; the participant writing again brings the next try forward.
                log.error("staff sender: cannot create a topic in %s: %s", item.chat_id, redact(exc.message))
                delay = backoff(self._failed(item), TOPIC_RETRY_FIRST, TOPIC_RETRY_CAP)
                await self.outbox.retry_later(item.id, delay, exc.message, count_attempt=False, now=self.clock())
                return False
            lost = item.payload.get("topic_user")
            message = exc.message.lower()
            if isinstance(exc, TelegramBadRequest) and lost is not None and ("thread" in message or "topic" in message):
                # Someone deleted the participant's topic: make a new one; this message waits for it.
                await self.cases.topic_lost(int(lost))
                return False
            # Anything else (a message Telegram refuses, a staff group that refuses the bot) would block the whole
            # group's queue if retried for ever: given up, and reported.
            refused = isinstance(exc, TelegramForbiddenError) or any(w in message for w in _GROUP_REFUSES)
            await self._give_up(item, group, exc.message, group_refuses=refused)
            return True
        except Exception as exc:
            if is_transient(exc):  # the network, Telegram's servers, our database: late, never lost
                log.warning("staff sender: outbox %s will be retried: %s", item.id, redact(repr(exc)))
                delay = backoff(self._failed(item))
                await self.outbox.retry_later(item.id, delay, redact(repr(exc)), count_attempt=False, now=self.clock())
                return False
            # Neither Telegram's answer nor a network error (a bug?): a few tries, then given up and reported.
            log.warning("staff sender: outbox %s failed: %s", item.id, redact(repr(exc)))
            if await self.outbox.retry_later(item.id, 5 * (item.attempts + 1), redact(repr(exc)), now=self.clock()):
                return False
            await self._give_up(item, group, redact(repr(exc)))
            return True
        self.failures.pop(item.id, None)
        await self.outbox.mark_sent([i.id for i in group], now=self.clock())
        return True

    def _failed(self, item: OutboxItem) -> int:
        self.failures[item.id] = self.failures.get(item.id, 0) + 1
        return self.failures[item.id]

    def _age(self, item: OutboxItem) -> float:
        created = item.payload.get("queued_at")
        if not isinstance(created, int | float):
            return ALBUM_SETTLE_SECONDS
        return self.clock().timestamp() - created

    async def _give_up(
        self,
        item: OutboxItem,
        group: list[OutboxItem],
        reason: str,
        *,
        group_refuses: bool = False,
        report: bool = True,
    ) -> None:
        """Never silent: the agents are told in the topic what was lost; when the staff group refuses the bot (or the
        report itself cannot be posted), the participant is told that their message did not reach the agents."""
        log.error("staff sender: giving up on outbox %s: %s", [i.id for i in group], redact(reason))
        self.failures.pop(item.id, None)
        for i in group:
            await self.outbox.mark_failed(i.id, reason)
        if not report or item.case_id is None or item.payload.get("topic_user") is None:
            return  # a notice outside any case (/queue, a refusal): the log line is all there is to tell
        is_report = item.method == "notice" and item.payload.get("notice") == LOST_NOTICE
        relayed = item.method in RELAYS or (is_report and bool(item.payload.get("context", {}).get("relayed")))
        if group_refuses or is_report:
            if relayed:
                await self.cases.tell_participant(item.case_id, "relay_lost", {}, f"relay_lost:{item.id}")
            return
        what = "text" if item.method == "relayText" else "media" if item.method == "copyMessages" else "bot"
        excerpt = "\n".join(i.payload["text"] for i in group)[:300] if item.method == "relayText" else ""
        context = {"what": what, "reason": reason[:200], "excerpt": excerpt, "relayed": item.method in RELAYS}
        await self.cases.notice(item.case_id, LOST_NOTICE, context)


def _kind(method: str) -> str:
    """Which limit a call counts against: topic creations have their own."""
    return "topic" if method == "createForumTopic" else "message"
