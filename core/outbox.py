"""The durable outbox: Bot API calls written in the same transaction as the change they report, sent later.

Core only records what to send and its fate; the Telegram senders (bot/outbox_sender.py, bot/notifications.py) make
the calls. Each kind of message is one frozen dataclass below; `encode`/`decode` are the one place that turns them
into a row's `method` and JSON `payload` and back, and the senders match on the type.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import math
import os
import time
import weakref
from collections.abc import AsyncIterator, Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, event, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.orm import Session

from core.db import make_sessionmaker, sqlite_path
from core.identity import redact
from core.models import OutboxMessage, OutboxStatus

log = logging.getLogger(__name__)

STAFF = "staff"
PARTICIPANT = "participant"
# Failures we cannot classify (neither Telegram's refusal nor a network or server error) are counted: after this many
# the item is given up. Transient failures (network, 5xx, 429) are never counted: they wait and go again.
MAX_ATTEMPTS = 8
# An idle sender and messages queued by other processes (the CLI's `notify`, an import, the web console's agents,
# other workers): a message queued in the sender's own process rings its `Doorbell` at commit and goes at once. On
# SQLite an idle sender asks the outbox only when the database file or its WAL changed since its last look (a stat
# every SQLITE_STAT_EVERY seconds, on the same beat for every sender of the process: one wake-up of the loop, which
# costs ~0.2 ms of CPU on this project's machine), and at least every OTHERS_POLL seconds (a write the stat could not
# tell apart). On PostgreSQL every worker queues and only the leader sends: a commit that queued messages NOTIFYs
# CHANNEL with their lanes, the senders' process LISTENs on one connection and rings its doorbells, and an idle sender
# looks every OTHERS_POLL seconds anyway (rows written without `enqueue`); without that connection, every `idle`.
SQLITE_STAT_EVERY = 1.0
OTHERS_POLL = 5.0
CHANNEL = "prakerja_outbox"


# --- what can be sent -----------------------------------------------------------------------------------------------
# Into a staff group. Those with a `topic_user` (on the row) go into that participant's topic, once it exists.
@dataclass(frozen=True)
class CreateTopic:
    """A participant's forum topic (plain-text name)."""

    name: str


@dataclass(frozen=True)
class RelayText:
    """A participant's text for their topic; texts queued close together are merged by the sender."""

    text: str
    queued_at: float
    edit_of: int | None = None  # an edit's message id: a newer edit of it replaces this one while it waits


@dataclass(frozen=True)
class CopyToTopic:
    """A participant's media (one message, or an album's part) copied into their topic."""

    from_chat_id: int
    message_ids: tuple[int, ...]
    queued_at: float
    media_group_id: str | None = None
    # The caption agents see instead of the participant's own, when redaction masked something in it (a NIK, a card
    # or phone number, a birth date): a copy would otherwise carry the raw caption into the staff group.
    caption: str | None = None


@dataclass(frozen=True)
class TopicNotice:
    """A bot notice named by its text key: core holds no wording, the sender renders it in the staff language."""

    key: str
    context: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StaffPost:
    """Ready HTML: a case card, a command's answer. Outside any topic it goes to `thread_id` (or the group)."""

    text_html: str
    thread_id: int | None = None


# To a participant's private chat.
@dataclass(frozen=True)
class ParticipantNotification:
    """`notify_{kind}` rendered in the participant's language (a certificate, a transfer, a lost relay)."""

    kind: str
    locale: str
    context: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BotReply:
    """The bot's own answer, rendered when the change that caused it was stored (a case opened): queued with that
    change, it goes out once even when Telegram delivers the participant's message again after a failure."""

    text_html: str


@dataclass(frozen=True)
class AgentCopy:
    """An agent's message (or an album's part) copied from the topic, under the bot's name."""

    from_chat_id: int
    message_ids: tuple[int, ...]
    queued_at: float
    media_group_id: str | None = None


@dataclass(frozen=True)
class AgentText:
    """A text on an agent's behalf (a canned reply, the satisfaction question), with its buttons (label, data)."""

    text_html: str
    buttons: tuple[tuple[tuple[str, str], ...], ...] = ()


@dataclass(frozen=True)
class AgentEdit:
    """An agent corrected a message: the participant's copy of `source_message_id` gets the new text or caption
    (the copy's id is looked up when it is sent, after the copy itself)."""

    source_message_id: int
    text: str | None
    caption: str | None
    entities: tuple[dict[str, Any], ...] = ()


OutboundMessage = (
    CreateTopic
    | RelayText
    | CopyToTopic
    | TopicNotice
    | StaffPost
    | ParticipantNotification
    | BotReply
    | AgentCopy
    | AgentText
    | AgentEdit
)
STAFF_KINDS = (CreateTopic, RelayText, CopyToTopic, TopicNotice, StaffPost)


def encode(message: OutboundMessage) -> tuple[str, dict[str, Any]]:
    """(method, payload) for the row. The method names are those rows had before the types (still readable)."""
    match message:
        case CreateTopic(name):
            return "createForumTopic", {"name": name}
        case RelayText(text, queued_at, edit_of):
            return "relayText", {"text": text, "queued_at": queued_at} | ({"edit_of": edit_of} if edit_of else {})
        case CopyToTopic(from_chat, ids, queued_at, album) | AgentCopy(from_chat, ids, queued_at, album):
            payload: dict[str, Any] = {"from_chat_id": from_chat, "message_ids": list(ids), "queued_at": queued_at}
            if isinstance(message, CopyToTopic) and message.caption is not None:
                payload["caption"] = message.caption
            return "copyMessages", payload | ({"media_group_id": album} if album else {})
        case TopicNotice(key, context):
            return "notice", {"notice": key, "context": context}
        case StaffPost(text_html, thread_id):
            payload = {"text": text_html, "parse_mode": "HTML"}
            return "sendMessage", payload | ({"message_thread_id": thread_id} if thread_id is not None else {})
        case ParticipantNotification(kind, locale, context):
            return "notify", {"kind": kind, "locale": locale, "context": context}
        case BotReply(text_html):
            return "botReply", {"text": text_html}
        case AgentText(text_html, buttons):
            return "agentText", {"text": text_html, "buttons": [[list(b) for b in row] for row in buttons]}
        case AgentEdit(source, text, caption, entities):
            return "agentEdit", {"source": source, "text": text, "caption": caption, "entities": list(entities)}
    raise TypeError(f"not an outbox message: {message!r}")


def decode(lane: str, method: str, payload: dict[str, Any]) -> OutboundMessage:
    """The message a row holds (rows written before the types carried `topic_user` and `case_id` in the payload)."""
    match method:
        case "createForumTopic":
            return CreateTopic(str(payload["name"]))
        case "relayText":
            edit_of = payload.get("edit_of")
            return RelayText(str(payload["text"]), float(payload.get("queued_at") or 0), edit_of)
        case "copyMessages":
            ids = tuple(int(m) for m in payload["message_ids"])
            args = (
                int(payload["from_chat_id"]),
                ids,
                float(payload.get("queued_at") or 0),
                payload.get("media_group_id"),
            )
            return CopyToTopic(*args, payload.get("caption")) if lane == STAFF else AgentCopy(*args)
        case "notice":
            return TopicNotice(str(payload["notice"]), dict(payload.get("context") or {}))
        case "sendMessage":
            return StaffPost(str(payload["text"]), payload.get("message_thread_id"))
        case "notify":
            return ParticipantNotification(str(payload["kind"]), str(payload.get("locale") or "id"),
                                           dict(payload.get("context") or {}))  # fmt: skip
        case "botReply":
            return BotReply(str(payload["text"]))
        case "agentText":
            rows = tuple(tuple((str(label), str(data)) for label, data in row) for row in payload.get("buttons", []))
            return AgentText(str(payload["text"]), rows)
        case "agentEdit":
            entities = tuple(dict(e) for e in payload.get("entities") or [])
            return AgentEdit(int(payload["source"]), payload.get("text"), payload.get("caption"), entities)
    raise ValueError(f"unknown outbox method {method!r}")


def lane_of(message: OutboundMessage) -> str:
    return STAFF if isinstance(message, STAFF_KINDS) else PARTICIPANT


@dataclass(frozen=True)
class OutboxItem:
    id: int
    lane: str
    chat_id: int
    message: OutboundMessage
    case_id: int | None
    attempts: int
    not_before: datetime | None = None  # set while a failed send waits for its retry
    topic_user: int | None = None  # a staff message for this participant's topic

    def waiting(self, now: datetime) -> bool:
        if self.not_before is None:
            return False
        return self.not_before > now


def _item(row: OutboxMessage) -> OutboxItem:
    payload = row.payload or {}
    topic_user = row.topic_user if row.topic_user is not None else payload.get("topic_user")
    case_id = row.case_id if row.case_id is not None else payload.get("case_id")
    message = decode(row.lane, row.method, payload)
    return OutboxItem(row.id, row.lane, row.chat_id, message, case_id, row.attempts, row.not_before, topic_user)


class Doorbell:
    """Rung when a transaction of this process that queued a message in `lane` commits: an idle sender waits on it
    instead of asking the database over and over. Any thread may ring it; it is set on its loop's thread."""

    def __init__(self, lane: str) -> None:
        self.lane = lane
        self.loop = asyncio.get_running_loop()
        self.rung = asyncio.Event()
        _doorbells.add(self)

    def ring(self) -> None:
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if here is self.loop:
            self.rung.set()
        else:
            with contextlib.suppress(RuntimeError):  # its loop is closed: nobody waits
                self.loop.call_soon_threadsafe(self.rung.set)


_doorbells: weakref.WeakSet[Doorbell] = weakref.WeakSet()
_QUEUED = "outbox_lanes"  # Session.info key: the lanes this transaction queued messages in


def _ring(lanes: Collection[str] | None = None) -> None:
    """This process's doorbells of `lanes` (None: all of them)."""
    for bell in list(_doorbells):
        if lanes is None or bell.lane in lanes:
            bell.ring()


def _committed(session: Session) -> None:
    lanes = session.info.pop(_QUEUED, None)
    if lanes:
        _ring(lanes)


def _rolled_back(session: Session) -> None:
    session.info.pop(_QUEUED, None)


def _notify_other_processes(session: Session) -> None:
    lanes = session.info.get(_QUEUED)
    if lanes:
        notify_queued(session.connection(), lanes)


def notify_queued(conn: Connection, lanes: Iterable[str]) -> None:
    """In a transaction that queued messages on PostgreSQL: tell the sending process at commit (LISTEN, below)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_notify(:channel, :lanes)"), {"channel": CHANNEL, "lanes": ",".join(sorted(lanes))})


event.listen(Session, "before_commit", _notify_other_processes)
event.listen(Session, "after_commit", _committed)
event.listen(Session, "after_rollback", _rolled_back)


class _Listener:
    """PostgreSQL: one pooled connection held while the process's senders run, LISTENing on CHANNEL; a notification
    rings this process's doorbells of the lanes it names. `alive` turns false when the connection closes (the senders
    then look every `idle` seconds until the leader, which loses its lock with the server, restarts them)."""

    def __init__(self, conn: AsyncConnection, driver: Any) -> None:
        self.conn, self.alive = conn, True
        driver.add_termination_listener(self._closed)

    @classmethod
    async def open(cls, engine: AsyncEngine) -> _Listener:
        conn = await engine.connect()
        try:
            driver = (await conn.get_raw_connection()).driver_connection  # asyncpg's connection
            assert driver is not None
            listener = cls(conn, driver)
            await driver.add_listener(CHANNEL, listener._notified)
        except BaseException:
            await conn.invalidate()
            raise
        return listener

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        _ring(set(payload.split(",")))

    def _closed(self, _conn: Any) -> None:
        self.alive = False
        _ring()  # wake the senders: a pause started while listening waits OTHERS_POLL

    async def close(self) -> None:
        self.alive = False
        with contextlib.suppress(Exception):  # closed, not pooled: no LISTEN outlives its sender
            await self.conn.invalidate()


def enqueue(
    session: AsyncSession,
    chat_id: int,
    message: OutboundMessage,
    *,
    case_id: int | None = None,
    topic_user: int | None = None,
    dedupe_key: str | None = None,
) -> OutboxMessage:
    """Add to the caller's transaction: the message exists exactly when the change does."""
    method, payload = encode(message)
    row = OutboxMessage(
        lane=lane_of(message),
        chat_id=chat_id,
        method=method,
        payload=payload,
        case_id=case_id,
        topic_user=topic_user,
        dedupe_key=dedupe_key,
    )
    session.add(row)
    session.info.setdefault(_QUEUED, set()).add(row.lane)  # rings the lane's doorbells at commit
    return row


# What a row keeps once it is done with: nothing of the message itself (a participant's words, a card). The method,
# chat and times stay, for the senders' rate limits and the operator.
SCRUBBED: dict[str, Any] = {}


def _signature(path: os.PathLike[str]) -> tuple[int, int, int] | None:
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return stat.st_mtime_ns, stat.st_size, stat.st_ino


class Outbox:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessions = make_sessionmaker(engine)
        self.is_sqlite = engine.dialect.name == "sqlite"
        self._listener: _Listener | None = None
        self._listening = 0  # senders of this Outbox inside `listening()`
        self._retries: dict[str, list[float]] = {}  # lane → when the retries this process scheduled come due (a heap)
        path = sqlite_path(str(engine.url)) if self.is_sqlite else None
        self._files = (path, path.with_name(path.name + "-wal")) if path is not None else None

    @contextlib.asynccontextmanager
    async def listening(self) -> AsyncIterator[None]:
        """Around a sender's run: on PostgreSQL, one LISTEN connection for every sender of this Outbox, so that
        messages other workers queue ring the doorbells here. Without it (the database refused) senders poll."""
        if self.is_sqlite:
            yield
            return
        self._listening += 1
        try:
            if self._listener is None or not self._listener.alive:
                try:
                    self._listener = await _Listener.open(self.engine)
                except Exception as exc:
                    log.warning("outbox: no LISTEN connection, the senders poll: %s", redact(repr(exc)))
            yield
        finally:
            self._listening -= 1
            if not self._listening and self._listener is not None:
                listener, self._listener = self._listener, None
                await listener.close()

    async def pause(self, bell: Doorbell, stop: asyncio.Event, idle: float, waiting: bool) -> None:
        """A sender's wait after a look that sent nothing. While messages wait (`waiting`): `idle` seconds. Otherwise
        until this process queues a message in the lane (the doorbell), a retry it scheduled comes due, or another
        process may have queued one: on SQLite that is when the database file or its WAL changed since the look (a
        stat every SQLITE_STAT_EVERY seconds: an idle bot asks nothing), on PostgreSQL when its NOTIFY arrives (without
        a live LISTEN connection: after `idle` seconds), or after OTHERS_POLL seconds anyway."""
        watch = not waiting and self._files is not None  # stat the files on a beat until OTHERS_POLL
        if watch:
            # Taken after the look: a write between its query and here waits for OTHERS_POLL at most.
            seen = self._stat()
            give_up = math.ceil((time.monotonic() + OTHERS_POLL) / SQLITE_STAT_EVERY) * SQLITE_STAT_EVERY
        elif not waiting and self._listener is not None and self._listener.alive:
            give_up = time.monotonic() + OTHERS_POLL
        else:
            give_up = time.monotonic() + idle
        # Two waiters for the whole pause, not two tasks per tick: each tick is a timer (and a stat).
        rang, stopped = asyncio.ensure_future(bell.rung.wait()), asyncio.ensure_future(stop.wait())
        try:
            while True:
                left, retry = give_up - time.monotonic(), self.retry_in(bell.lane)
                if left <= 0 or retry <= 0:
                    return
                beat = SQLITE_STAT_EVERY - time.monotonic() % SQLITE_STAT_EVERY if watch else left  # next whole beat
                done, _ = await asyncio.wait(
                    (rang, stopped), timeout=min(beat, left, retry), return_when=asyncio.FIRST_COMPLETED
                )
                if done or (watch and self._stat() != seen):
                    return
        finally:
            rang.cancel()
            stopped.cancel()
            bell.rung.clear()

    def _stat(self) -> tuple[tuple[int, int, int] | None, ...]:
        assert self._files is not None
        return tuple(_signature(f) for f in self._files)

    def retry_in(self, lane: str) -> float:
        """Seconds until the earliest retry that `retry_later` scheduled in this lane comes due (inf: none)."""
        times = self._retries.get(lane)
        if not times:
            return float("inf")
        now = time.monotonic()
        if times[0] <= now:
            while times and times[0] <= now:  # due now: the next look sees them
                heapq.heappop(times)
            return 0.0
        return times[0] - now

    async def due(self, lane: str, limit: int = 100, now: datetime | None = None) -> list[OutboxItem]:
        """Pending items whose time has come, oldest first (so a chat's messages keep their order)."""
        now = now or datetime.now(UTC)
        async with self.sessions() as session:
            rows = (
                await session.scalars(
                    select(OutboxMessage)
                    .where(
                        OutboxMessage.lane == lane,
                        OutboxMessage.status == OutboxStatus.PENDING,
                        or_(OutboxMessage.not_before.is_(None), OutboxMessage.not_before <= now),
                    )
                    .order_by(OutboxMessage.id)
                    .limit(limit)
                )
            ).all()
            return [_item(r) for r in rows]

    async def pending(self, lane: str, per_party: int = 100) -> list[OutboxItem]:
        """Every pending item, due or waiting for a retry, oldest first — at most `per_party` of each participant's
        topic in each chat (and of each chat's messages outside topics), so that one participant's backlog never
        hides another's messages. A sender that keeps each topic's order must see what waits, so that nothing
        queued later overtakes it (also after a restart)."""
        party = func.coalesce(OutboxMessage.topic_user, 0)
        rank = func.row_number().over(partition_by=(OutboxMessage.chat_id, party), order_by=OutboxMessage.id)
        ranked = (
            select(OutboxMessage.id, rank.label("rank"))
            .where(OutboxMessage.lane == lane, OutboxMessage.status == OutboxStatus.PENDING)
            .subquery()
        )
        async with self.sessions() as session:
            rows = (
                await session.scalars(
                    select(OutboxMessage)
                    .join(ranked, ranked.c.id == OutboxMessage.id)
                    .where(ranked.c.rank <= per_party)
                    .order_by(OutboxMessage.id)
                )
            ).all()
            return [_item(r) for r in rows]

    async def sent_since(self, lane: str, since: datetime) -> list[tuple[int, str, datetime]]:
        """(chat, method, sent at) of what went out after `since`: a new sender's rate limits start from what its
        predecessor sent, not from zero."""
        async with self.sessions() as session:
            rows = await session.execute(
                select(OutboxMessage.chat_id, OutboxMessage.method, OutboxMessage.sent_at).where(
                    OutboxMessage.lane == lane,
                    OutboxMessage.status == OutboxStatus.SENT,
                    OutboxMessage.sent_at >= since,
                )
            )
            return [(chat, method, at) for chat, method, at in rows.all() if at is not None]

    async def pending_count(self, lane: str | None = None) -> int:
        async with self.sessions() as session:
            query = select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == OutboxStatus.PENDING)
            if lane:
                query = query.where(OutboxMessage.lane == lane)
            return int(await session.scalar(query) or 0)

    async def mark_sending(self, ids: list[int]) -> list[int]:
        """Take pending items for sending; returns those taken (one another sender took or finished are left out)."""
        async with self.sessions.begin() as session:
            taken = await session.scalars(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(ids), OutboxMessage.status == OutboxStatus.PENDING)
                .values(status=OutboxStatus.SENDING)
                .returning(OutboxMessage.id)
            )
            return list(taken)

    async def recover_sending(self, lane: str) -> int:
        """After a crash: messages handed to Telegram without an answer go again (at least once, never lost)."""
        async with self.sessions.begin() as session:
            result = await session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.lane == lane, OutboxMessage.status == OutboxStatus.SENDING)
                .values(status=OutboxStatus.PENDING)
            )
            return int(getattr(result, "rowcount", 0) or 0)

    async def mark_sent(self, ids: list[int], now: datetime | None = None) -> None:
        async with self.sessions.begin() as session:
            await session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(ids))
                .values(status=OutboxStatus.SENT, sent_at=now or datetime.now(UTC), payload=SCRUBBED)
            )

    async def retry_later(
        self, item_id: int, delay: float, error: str, count_attempt: bool = True, now: datetime | None = None
    ) -> bool:
        """Try again after `delay` seconds. Only counted failures use up the MAX_ATTEMPTS budget; returns False when
        this one used it up and the item is given up (the caller reports the loss)."""
        async with self.sessions.begin() as session:
            row = await session.get(OutboxMessage, item_id)
            if row is None:
                return True
            if count_attempt:
                row.attempts += 1
            row.error = error[:300]
            if count_attempt and row.attempts >= MAX_ATTEMPTS:
                row.status, row.payload = OutboxStatus.FAILED, SCRUBBED
                return False
            row.status = OutboxStatus.PENDING
            row.not_before = (now or datetime.now(UTC)) + timedelta(seconds=delay)
            heapq.heappush(self._retries.setdefault(row.lane, []), time.monotonic() + max(delay, 0.0))
            return True

    async def mark_failed(self, item_id: int, error: str) -> None:
        async with self.sessions.begin() as session:
            await session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == item_id)
                .values(status=OutboxStatus.FAILED, error=error[:300], payload=SCRUBBED)
            )

    async def purge(self, before: datetime) -> int:
        """Retention: rows done with (sent, or given up) before `before` are deleted."""
        async with self.sessions.begin() as session:
            result = await session.execute(
                delete(OutboxMessage).where(
                    or_(
                        (OutboxMessage.status == OutboxStatus.SENT) & (OutboxMessage.sent_at < before),
                        (OutboxMessage.status == OutboxStatus.FAILED) & (OutboxMessage.created_at < before),
                    )
                )
            )
            return int(getattr(result, "rowcount", 0) or 0)
