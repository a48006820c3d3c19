"""Sends participants their notifications from the outbox, within Telegram's limits.

About 30 messages a second overall and 1 a second per chat, paced evenly so that Telegram never answers 429; if it
does, everything waits `retry_after`. A participant who blocked the bot is marked and skipped from then on. Each
message is marked "sending" before the call and "sent" after it; after a crash, "sending" ones go again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError, TelegramRetryAfter
from aiogram.methods import CopyMessages, SendMessage

from bot.texts import Renderer
from core.accounts import AccountService
from core.identity import redact
from core.outbox import PARTICIPANT, Outbox, OutboxItem
from core.retry import through_blips

log = logging.getLogger(__name__)
ALBUM_SETTLE_SECONDS = 1.5  # an album's parts arrive as separate updates; wait for all of them


class ParticipantSender:
    def __init__(
        self,
        bot: Bot,
        outbox: Outbox,
        accounts: AccountService,
        renderer: Renderer,
        per_second: float = 30.0,
        per_chat_interval: float = 1.0,
    ) -> None:
        self.bot = bot
        self.outbox = outbox
        self.accounts = accounts
        self.renderer = renderer
        self.interval = 1.0 / per_second
        self.per_chat_interval = per_chat_interval
        self.next_slot = 0.0
        self.pause_until = 0.0
        self.last_to_chat: dict[int, float] = {}
        self.sent = 0

    async def run(self, stop: asyncio.Event, idle: float = 0.5) -> None:
        await self.outbox.recover_sending(PARTICIPANT)
        while not stop.is_set():
            try:
                sent = await self.drain_once(stop)
            except Exception as exc:  # keep going through a database hiccup; items stay pending
                log.error("participant sender: %s", redact(repr(exc)))
                sent = 0
            if not sent:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), idle)

    async def drain_once(self, stop: asyncio.Event | None = None) -> int:
        items = await self.outbox.due(PARTICIPANT, limit=300)
        done = 0
        held: set[int] = set()
        consumed: set[int] = set()
        for item in items:
            if stop is not None and stop.is_set():
                break
            if item.id in consumed:
                continue
            now = time.monotonic()
            if item.chat_id in held or now - self.last_to_chat.get(item.chat_id, -1e9) < self.per_chat_interval:
                held.add(item.chat_id)  # keeps this chat's order: its later messages wait too
                continue
            group = [item]
            album = item.payload.get("media_group_id")
            if item.method == "copyMessages" and album:
                if time.time() - float(item.payload.get("queued_at", 0)) < ALBUM_SETTLE_SECONDS:
                    held.add(item.chat_id)  # the album's other parts may still be on their way
                    continue
                group = [i for i in items if i.chat_id == item.chat_id and i.payload.get("media_group_id") == album]
                consumed.update(i.id for i in group)
            await self._pace()
            if await self._send(item, group):
                done += len(group)
            else:
                held.add(item.chat_id)
        return done

    async def _pace(self) -> None:
        """Even spacing at the global rate (a burst would risk a 429), and any pause Telegram asked for."""
        now = time.monotonic()
        wait_until = max(self.next_slot, self.pause_until)
        if wait_until > now:
            await asyncio.sleep(wait_until - now)
            now = time.monotonic()
        self.next_slot = max(now, self.next_slot) + self.interval

    def text_for(self, item: OutboxItem) -> str:
        payload = item.payload
        locale = payload.get("locale", "id")
        return self.renderer.render(f"notify_{payload['kind']}", locale if locale in ("id", "en") else "id",
                                    **payload.get("context", {}))  # fmt: skip

    async def _send(self, item: OutboxItem, group: list[OutboxItem]) -> bool:
        ids = [i.id for i in group]
        call: Any
        if item.method == "copyMessages":  # an agent's album, relayed as one
            message_ids = sorted({m for i in group for m in i.payload["message_ids"]})
            call = CopyMessages(
                chat_id=item.chat_id, from_chat_id=item.payload["from_chat_id"], message_ids=message_ids
            )
        else:
            try:
                text = self.text_for(item)
            except Exception as exc:  # a notification that cannot be rendered is a bug: keep it, visibly failed
                await self.outbox.mark_failed(item.id, f"render: {exc}")
                return True
            call = SendMessage(chat_id=item.chat_id, text=text)
        if not await self.outbox.mark_sending(ids):
            return True  # another sender has it, or sent it already
        self.last_to_chat[item.chat_id] = time.monotonic()
        try:
            await self.bot(call)
        except TelegramRetryAfter as exc:
            self.pause_until = time.monotonic() + exc.retry_after
            for i in ids:
                await self.outbox.retry_later(i, exc.retry_after, "429", count_attempt=False)
            return False
        except TelegramForbiddenError as exc:  # blocked by the participant, or the account is deleted
            for i in ids:
                await self.outbox.mark_failed(i, exc.message)
            await self.accounts.mark_blocked(item.chat_id)
            return True
        except TelegramBadRequest as exc:  # e.g. chat not found: retrying will not help
            for i in ids:
                await self.outbox.mark_failed(i, exc.message)
            return True
        except Exception as exc:
            log.warning("participant sender: outbox %s: %s", ids, redact(repr(exc)))
            for i in ids:
                await self.outbox.retry_later(i, 5 * (item.attempts + 1), redact(repr(exc)))
            return False
        await self._mark_sent(ids)
        self.sent += 1
        return True

    async def _mark_sent(self, item_ids: list[int], patience: float = 60.0) -> None:
        """The message is out: record it through a database blip, or a restart would send it again."""
        await through_blips(lambda: self.outbox.mark_sent(item_ids), patience)
