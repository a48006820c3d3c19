"""Drains the outbox into Telegram within its limits: ~20 messages and ~20 topic creations a minute per group.

Relays are late under load, never lost: a 429 pauses that chat for `retry_after`, a network or server error waits
and goes again (for as long as it takes), a deleted topic is recreated and its messages wait for the new one, a topic
that cannot be created is tried again (and at once when the participant writes again), a participant's texts queued
close together are merged into one message, single photos and files queued back to back go ten a call, and an
album's parts go out as one album. A group's participants are served in turn, so one participant's burst never holds
up another's case card. Only Telegram's refusal of a message itself gives it up — and then the loss is reported in
the topic, or to the participant when the staff group itself refuses the bot.

The limits are rolling minutes counted from what was sent, so a restart or a new leader starts from what its
predecessor sent (the outbox's `sent_at`), not from a full allowance.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError, TelegramRetryAfter
from aiogram.methods import CopyMessage, CopyMessages, CreateForumTopic, SendMessage

from bot.flows.staff import staff_renderer
from bot.send_errors import backoff, is_transient
from bot.texts import Renderer
from core.cases import CaseService
from core.identity import redact
from core.limits import MESSAGE_TEXT
from core.outbox import (
    STAFF,
    CopyToTopic,
    CreateTopic,
    Doorbell,
    OutboundMessage,
    Outbox,
    OutboxItem,
    RelayText,
    StaffPost,
    TopicNotice,
)

log = logging.getLogger(__name__)
MAX_TEXT = MESSAGE_TEXT
ALBUM_SETTLE_SECONDS = 1.5  # an album's parts arrive as separate updates; wait for all of them
TEXT_SETTLE_SECONDS = 1.0  # a participant's texts typed in quick succession go into the topic as one message
PER_PARTY = 20  # pending items looked at per participant (and group) and round: a minute's worth; none hides another's
BURST_COPIES = 10  # a participant's single photos and files queued back to back go in one call, up to this many
WINDOW = timedelta(minutes=1)
TOPIC_RETRY_FIRST, TOPIC_RETRY_CAP = 30.0, 600.0  # a topic Telegram refuses to create (rights, not a forum)
LOST_NOTICE = "staff_relay_lost"
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

    def take(self, at: datetime, messages: int = 1) -> None:
        self.sent.extend([at] * messages)

    def room(self, now: datetime) -> int:
        """How many more messages fit in the rolling period now."""
        return self.limit - len(self.sent) if self.ready(now) else 0


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
        self.served: dict[tuple[int, int], int] = {}  # (group, participant) → when last served, for round-robin
        self._turn = 0
        self._seeded = False
        self.waiting = False  # the last look found messages waiting (a rate limit, a retry, a topic, a merge)

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
            self.window(chat_id, "topic" if method == "createForumTopic" else "message").take(sent_at)
        self._seeded = True

    async def run(self, stop: asyncio.Event, idle: float = 0.3) -> None:
        """Send until `stop`. A message queued in this process goes at once (its commit rings the doorbell); while
        messages wait it looks every `idle` seconds; with none, for messages queued by other processes, as
        `Outbox.pause` says."""
        self._seeded = False  # a new leader: its predecessor's sends count
        bell = Doorbell(STAFF)
        async with self.outbox.listening():
            while not stop.is_set():
                try:
                    sent = await self.drain_once()
                except Exception as exc:  # the sender must outlive a database hiccup; items stay pending
                    log.error("staff sender: %s", redact(repr(exc)))
                    sent, self.waiting = 0, True
                if not sent:
                    await self.outbox.pause(bell, stop, idle, waiting=self.waiting)

    async def drain_once(self) -> int:
        """Send what is due; returns how many outbox items were completed."""
        if not self._seeded:
            await self._seed()
        items = self._in_turn(await self.outbox.pending(STAFF, per_party=PER_PARTY))
        self.waiting = bool(items)  # pending() holds those waiting for a retry too
        now = self.clock()
        blocked_chats: set[int] = set()
        waiting_users: set[int] = set()
        done = 0
        index = 0
        while index < len(items):
            item = items[index]
            index += 1
            user = item.topic_user
            message = item.message
            creates_topic = isinstance(message, CreateTopic)
            if item.chat_id in blocked_chats or (user is not None and user in waiting_users and not creates_topic):
                # Keep each chat's and each topic's order: nothing overtakes a waiting item. A topic's creation is
                # what its messages wait for: it goes ahead of them (after a deleted topic it is queued after them).
                continue
            if item.waiting(now):
                if user is not None and not creates_topic:
                    waiting_users.add(user)  # its retry time has not come: the topic's later messages wait too
                continue
            if creates_topic and await self._topic_exists(item):
                await self.outbox.mark_sent([item.id])  # queued twice (a case reopened meanwhile): one topic only
                done += 1
                continue
            kind = _kind(message)
            if not self.window(item.chat_id, kind).ready(self.clock()):
                blocked_chats.add(item.chat_id)
                continue
            thread_id: int | None = None
            if user is not None and not creates_topic:
                topic = await self.cases.topic_of(user)
                if topic is None or topic[1] is None:
                    waiting_users.add(user)  # its topic is still being created
                    continue
                thread_id = topic[1]
            group = [item]
            if isinstance(message, RelayText | CopyToTopic):
                settle = TEXT_SETTLE_SECONDS if isinstance(message, RelayText) else ALBUM_SETTLE_SECONDS
                if (isinstance(message, RelayText) or message.media_group_id) and self._age(message) < settle:
                    if user is not None:
                        waiting_users.add(user)
                    else:
                        blocked_chats.add(item.chat_id)
                    continue
                group = self._merge(item, items[index:])
            ok = await self._send(item, group, thread_id)
            if ok:
                # Telegram counts messages, not calls: a copy of several messages takes that many.
                self.window(item.chat_id, kind).take(self.clock(), _messages(group))
                if user is not None:
                    self._turn += 1
                    self.served[item.chat_id, user] = self._turn
                done += len(group)
                consumed = {i.id for i in group}
                items = items[:index] + [i for i in items[index:] if i.id not in consumed]
            else:
                blocked_chats.add(item.chat_id)
        return done

    def _in_turn(self, items: list[OutboxItem]) -> list[OutboxItem]:
        """Round-robin between the participants of a group: each one's first waiting message, the one served longest
        ago first, then each one's second, … (one participant's 40 photos never hold another's case card back).
        Each participant's own order is kept; messages outside any topic count as one more participant."""
        position: dict[tuple[int, int | None], int] = {}
        ranked = []
        for item in items:
            party = (item.chat_id, item.topic_user)
            rank = position.get(party, 0)
            position[party] = rank + 1
            served = self.served.get((item.chat_id, item.topic_user), 0) if item.topic_user is not None else 0
            ranked.append(((rank, served, item.id), item))
        return [item for _, item in sorted(ranked, key=lambda pair: pair[0])]

    def _merge(self, first: OutboxItem, rest: list[OutboxItem]) -> list[OutboxItem]:
        """A participant's texts queued back to back become one message (up to Telegram's 4,096 characters); an
        album goes as one; single photos and files sent in a burst go in one call (up to an album's 10)."""
        message = first.message
        mine = [i for i in rest if i.chat_id == first.chat_id and i.topic_user == first.topic_user]
        if isinstance(message, CopyToTopic) and message.media_group_id:
            return [first] + [i for i in mine if _album(i) == message.media_group_id]
        group = [first]
        if isinstance(message, RelayText):
            length = len(message.text)
            for item in mine:
                if not isinstance(item.message, RelayText):
                    break  # a photo in between: the texts after it stay after it
                length += len(item.message.text) + 1
                if length > MAX_TEXT:
                    break
                group.append(item)
        elif isinstance(message, CopyToTopic) and message.caption is None:
            for item in mine:
                copy = item.message
                if (
                    not isinstance(copy, CopyToTopic)
                    or copy.media_group_id
                    or copy.caption is not None  # goes on its own, with its masked caption
                    or copy.from_chat_id != message.from_chat_id
                ):
                    break
                room = self.window(first.chat_id, "message").room(self.clock())
                if len(group) >= min(BURST_COPIES, room) or item.waiting(self.clock()):
                    break
                group.append(item)
        return group

    async def _topic_exists(self, item: OutboxItem) -> bool:
        """A queued topic creation that is no longer needed: the participant's topic exists, or moved elsewhere."""
        topic = await self.cases.topic_of(int(item.topic_user or 0))
        return topic is None or topic[0] != item.chat_id or topic[1] is not None

    async def _send(self, item: OutboxItem, group: list[OutboxItem], thread_id: int | None) -> bool:
        """Make the call; True when the group is done with (sent, or given up and reported)."""
        call: Callable[[], Awaitable[Any]]
        message = item.message
        match message:
            case CreateTopic(name):
                user = int(item.topic_user or 0)

                async def call() -> Any:
                    topic = await self.bot(CreateForumTopic(chat_id=item.chat_id, name=name))
                    await self.cases.topic_created(user, item.chat_id, topic.message_thread_id)

            case RelayText():
                text = "\n".join(i.message.text for i in group if isinstance(i.message, RelayText))

                async def call() -> Any:
                    return await self.bot(
                        SendMessage(chat_id=item.chat_id, text=text, message_thread_id=thread_id, parse_mode=None)
                    )

            case CopyToTopic(from_chat_id=from_chat):
                ids = sorted({m for i in group if isinstance(i.message, CopyToTopic) for m in i.message.message_ids})
                masked = [i.message.caption for i in group if isinstance(i.message, CopyToTopic) and i.message.caption]
                if masked and len(ids) == 1:  # one photo or file: copied with the masked caption in place of its own

                    async def call() -> Any:
                        return await self.bot(
                            CopyMessage(chat_id=item.chat_id, from_chat_id=from_chat, message_id=ids[0],
                                        message_thread_id=thread_id, caption=masked[0], parse_mode=None)
                        )  # fmt: skip

                elif masked:  # an album keeps its parts together: copied without captions, the masked one follows

                    async def call() -> Any:
                        copies = await self.bot(
                            CopyMessages(chat_id=item.chat_id, from_chat_id=from_chat, message_ids=ids,
                                         message_thread_id=thread_id, remove_caption=True)
                        )  # fmt: skip
                        await self.bot(
                            SendMessage(chat_id=item.chat_id, text="\n".join(masked), message_thread_id=thread_id,
                                        parse_mode=None)
                        )  # fmt: skip
                        return copies

                else:

                    async def call() -> Any:
                        return await self.bot(
                            CopyMessages(chat_id=item.chat_id, from_chat_id=from_chat, message_ids=ids,
                                         message_thread_id=thread_id)
                        )  # fmt: skip

            case TopicNotice(key, context):  # rendered here, in the staff group's language
                try:
                    notice = self.texts.render(key, "id", **context)
                except Exception as exc:  # a bug, not Telegram's doing: keep it visibly failed
                    await self._give_up(item, group, f"render: {exc}", report=False)
                    return True

                async def call() -> Any:
                    return await self.bot(
                        SendMessage(chat_id=item.chat_id, text=notice, message_thread_id=thread_id, parse_mode="HTML")
                    )

            case StaffPost(text_html, own_thread):
                # A post outside any case (/queue, a refusal) names its thread itself.
                where = thread_id if item.topic_user is not None else own_thread

                async def call() -> Any:
                    return await self.bot(
                        SendMessage(chat_id=item.chat_id, text=text_html, message_thread_id=where, parse_mode="HTML")
                    )

            case _:  # a participant's message in the staff lane: a bug, kept visibly failed
                await self._give_up(item, group, f"not a staff message: {type(message).__name__}", report=False)
                return True

        try:
            await call()
        except TelegramRetryAfter as exc:
            pause = self.clock() + timedelta(seconds=exc.retry_after)
            self.window(item.chat_id, _kind(message)).pause_until = pause
            await self.outbox.retry_later(item.id, exc.retry_after, "429", count_attempt=False, now=self.clock())
            return False
        except (TelegramBadRequest, TelegramForbiddenError) as exc:
            if isinstance(message, CreateTopic):
                # E.g. the bot may not manage topics: an admin can fix it, so try again (never give up), not in a
                # tight loop; the participant writing again brings the next try forward.
                log.error("staff sender: cannot create a topic in %s: %s", item.chat_id, redact(exc.message))
                delay = backoff(self._failed(item), TOPIC_RETRY_FIRST, TOPIC_RETRY_CAP)
                await self.outbox.retry_later(item.id, delay, exc.message, count_attempt=False, now=self.clock())
                return False
            lost = item.topic_user
            text = exc.message.lower()
            if isinstance(exc, TelegramBadRequest) and lost is not None and ("thread" in text or "topic" in text):
                # Someone deleted the participant's topic: make a new one; this message waits for it.
                await self.cases.topic_lost(lost)
                return False
            # Anything else (a message Telegram refuses, a staff group that refuses the bot) would block the whole
            # group's queue if retried for ever: given up, and reported.
            refused = isinstance(exc, TelegramForbiddenError) or any(w in text for w in _GROUP_REFUSES)
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

    def _age(self, message: RelayText | CopyToTopic) -> float:
        if not message.queued_at:
            return ALBUM_SETTLE_SECONDS
        return self.clock().timestamp() - message.queued_at

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
        if not report or item.case_id is None or item.topic_user is None:
            return  # a notice outside any case (/queue, a refusal): the log line is all there is to tell
        message = item.message
        relays = isinstance(message, RelayText | CopyToTopic)
        is_report = isinstance(message, TopicNotice) and message.key == LOST_NOTICE
        relayed = relays or (isinstance(message, TopicNotice) and is_report and bool(message.context.get("relayed")))
        if group_refuses or is_report:
            if relayed:
                await self.cases.tell_participant(item.case_id, "relay_lost", {}, f"relay_lost:{item.id}")
            return
        what = "text" if isinstance(message, RelayText) else "media" if isinstance(message, CopyToTopic) else "bot"
        texts = [i.message.text for i in group if isinstance(i.message, RelayText)]
        # The excerpt is what the agents need to ask again; the notice's row is scrubbed once it is posted.
        context = {"what": what, "reason": reason[:200], "excerpt": "\n".join(texts)[:300], "relayed": relays}
        await self.cases.notice(item.case_id, LOST_NOTICE, context)


def _messages(group: list[OutboxItem]) -> int:
    """How many messages a call posts: one, or one per copied message."""
    copies = [i.message for i in group if isinstance(i.message, CopyToTopic)]
    return len({m for copy in copies for m in copy.message_ids}) if copies else 1


def _album(item: OutboxItem) -> str | None:
    return item.message.media_group_id if isinstance(item.message, CopyToTopic) else None


def _kind(message: OutboundMessage) -> str:
    """Which limit a call counts against: topic creations have their own."""
    return "topic" if isinstance(message, CreateTopic) else "message"
