"""Live updates for the console: case changes fanned out to every connected browser (server-sent events).

A watcher notices what changed in the database — new cases, new messages, claims and closes, deliveries — whichever
process or bot worker made the change. With REDIS_URL one watcher across all web processes (a Redis lease) publishes
to a Redis channel that every process subscribes to; without it each process watches for its own browsers. Actions
taken in the console are published at once as well, so the agent who acted sees it without waiting for a tick."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.models import CaseMessage, Event, OutboxMessage

log = logging.getLogger(__name__)
CHANNEL = "prakerja:console:events"
LEASE_KEY = "prakerja:console:watcher"
QUEUE_SIZE = 256  # a browser that falls this far behind misses events, not the process's memory


class LocalFanout:
    """The browsers connected to this process, each with its own bounded queue."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[dict[str, Any]]] = set()

    def deliver(self, event: dict[str, Any]) -> None:
        for queue in list(self._queues):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(event)

    @contextlib.asynccontextmanager
    async def subscription(self) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self._queues.add(queue)
        try:
            yield queue
        finally:
            self._queues.discard(queue)

    @property
    def listeners(self) -> int:
        return len(self._queues)


class EventBus:
    def __init__(self, engine: AsyncEngine, redis_url: str | None, poll_every: float = 0.3) -> None:
        self.engine = engine
        self.redis_url = redis_url
        self.poll_every = poll_every
        self.local = LocalFanout()
        self._redis: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._me = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"

    async def start(self) -> None:
        if self.redis_url:
            from redis.asyncio import Redis

            self._redis = Redis.from_url(self.redis_url)
            self._tasks.append(asyncio.create_task(self._listen()))
        self._tasks.append(asyncio.create_task(self._watch()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def publish(self, event: dict[str, Any]) -> None:
        if self._redis is not None:
            await self._redis.publish(CHANNEL, json.dumps(event))
        else:
            self.local.deliver(event)

    async def _listen(self) -> None:
        while True:
            try:
                pubsub = self._redis.pubsub()
                await pubsub.subscribe(CHANNEL)
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self.local.deliver(json.loads(message["data"]))
            except asyncio.CancelledError:
                raise
            except Exception as error:  # Redis restarting: listen again shortly
                log.warning("console event subscription lost: %s", type(error).__name__)
                await asyncio.sleep(1)

    async def _leading(self) -> bool:
        if self._redis is None:
            return True
        lease = max(2, int(self.poll_every * 10))
        if await self._redis.set(LEASE_KEY, self._me, nx=True, ex=lease):
            return True
        holder = await self._redis.get(LEASE_KEY)
        if holder is not None and holder.decode() == self._me:
            await self._redis.expire(LEASE_KEY, lease)
            return True
        return False

    async def _marks(self) -> tuple[int, int, Any]:
        async with self.engine.connect() as conn:
            message = await conn.scalar(select(func.coalesce(func.max(CaseMessage.id), 0)))
            event = await conn.scalar(select(func.coalesce(func.max(Event.id), 0)).where(Event.entity == "cases"))
            sent = await conn.scalar(select(func.max(OutboxMessage.sent_at)))
        return int(message or 0), int(event or 0), sent

    async def _watch(self) -> None:
        marks: tuple[int, int, Any] | None = None
        while True:
            try:
                if await self._leading():
                    marks = await self._tick(marks)
                else:
                    marks = None
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("console watcher: %s", type(error).__name__)
            await asyncio.sleep(self.poll_every)

    async def _tick(self, marks: tuple[int, int, Any] | None) -> tuple[int, int, Any]:
        now = await self._marks()
        if marks is None:
            return now
        last_message, last_event, last_sent = marks
        if now[0] > last_message or now[1] > last_event:
            async with self.engine.connect() as conn:
                messages = (
                    (await conn.execute(select(CaseMessage.case_id).where(CaseMessage.id > last_message).distinct()))
                    .scalars()
                    .all()
                )
                events = (
                    await conn.execute(
                        select(Event.entity_id, Event.kind).where(Event.entity == "cases", Event.id > last_event)
                    )
                ).all()
            for case_id in messages:
                await self.publish({"type": "message", "case_id": int(case_id)})
            for entity_id, kind in events:
                await self.publish({"type": "case", "case_id": int(entity_id), "kind": kind})
        if now[2] != last_sent:
            await self.publish({"type": "delivery"})
        return now
