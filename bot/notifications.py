"""Sends participants their notifications and agents' messages from the outbox, within Telegram's limits.

About 30 messages a second overall and 1 a second per chat, paced evenly so that Telegram never answers 429; if it
does, everything waits `retry_after`; a network or server error waits and goes again, for as long as it takes. A
participant who blocked the bot is marked and skipped from then on; an agent's message that cannot reach them is
reported in the case's topic. Each message is marked "sending" before the call and "sent" after it; after a crash,
"sending" ones go again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError, TelegramRetryAfter
from aiogram.methods import CopyMessage, CopyMessages, EditMessageCaption, EditMessageText, SendMessage
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, MessageEntity

from bot.send_errors import backoff, is_transient
from bot.texts import Renderer
from core.accounts import AccountService
from core.cases import CaseService
from core.identity import redact
from core.locales import known
from core.outbox import (
    PARTICIPANT,
    AgentCopy,
    AgentEdit,
    AgentText,
    BotReply,
    Doorbell,
    Outbox,
    OutboxItem,
    ParticipantNotification,
)
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
        *,
        cases: CaseService | None = None,
    ) -> None:
        self.bot = bot
        self.outbox = outbox
        self.accounts = accounts
        self.renderer = renderer
        self.cases = cases  # agents' messages: reported in the topic when they cannot be delivered
        self.failures: dict[int, int] = {}  # outbox id → transient failures in a row, for the backoff
        self.interval = 1.0 / per_second
        self.per_chat_interval = per_chat_interval
        self.next_slot = 0.0
        self.pause_until = 0.0
        self.last_to_chat: dict[int, float] = {}
        self.sent = 0
        self.held = False  # the last look left due messages waiting (a chat's pace, an album settling)

    async def run(self, stop: asyncio.Event, idle: float = 0.5) -> None:
        """Send until `stop`. A message queued in this process goes at once (its commit rings the doorbell); while
        messages wait here it looks every `idle` seconds; with nothing waiting, only when a retry comes due or, for
        messages queued by other processes, as `Outbox.pause` says."""
        bell = Doorbell(PARTICIPANT)
        await self.outbox.recover_sending(PARTICIPANT)
        async with self.outbox.listening():
            while not stop.is_set():
                try:
                    sent = await self.drain_once(stop)
                except Exception as exc:  # keep going through a database hiccup; items stay pending
                    log.error("participant sender: %s", redact(repr(exc)))
                    sent, self.held = 0, True
                if not sent:
                    await self.outbox.pause(bell, stop, idle, waiting=self.held)

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
            album = item.message.media_group_id if isinstance(item.message, AgentCopy) else None
            if isinstance(item.message, AgentCopy) and album:
                if time.time() - item.message.queued_at < ALBUM_SETTLE_SECONDS:
                    held.add(item.chat_id)  # the album's other parts may still be on their way
                    continue
                group = [i for i in items if i.chat_id == item.chat_id and _album(i) == album]
                consumed.update(i.id for i in group)
            await self._pace()
            if await self._send(item, group):
                done += len(group)
            else:
                held.add(item.chat_id)
        self.held = bool(held) or (stop is not None and stop.is_set())
        return done

    async def _pace(self) -> None:
        """Even spacing at the global rate (a burst would risk a 429), and any pause Telegram asked for."""
        now = time.monotonic()
        wait_until = max(self.next_slot, self.pause_until)
        if wait_until > now:
            await asyncio.sleep(wait_until - now)
            now = time.monotonic()
        self.next_slot = max(now, self.next_slot) + self.interval

    def text_for(self, notification: ParticipantNotification) -> str:
        locale = known(notification.locale)
        return self.renderer.render(f"notify_{notification.kind}", locale, **notification.context)

    async def _send(self, item: OutboxItem, group: list[OutboxItem]) -> bool:
        ids = [i.id for i in group]
        call: Any
        message_ids: list[int] = []
        match item.message:
            case AgentCopy(from_chat_id=from_chat, media_group_id=album):  # an agent's message, an album as one
                message_ids = sorted(
                    {m for i in group if isinstance(i.message, AgentCopy) for m in i.message.message_ids}
                )
                if album and await self._is_note(item, album):
                    # A part was captioned "/note …" (maybe handled by another worker after this part was queued).
                    for i in ids:
                        await self.outbox.mark_failed(i, "internal note: not relayed")
                    return True
                if album or len(message_ids) > 1:
                    call = CopyMessages(chat_id=item.chat_id, from_chat_id=from_chat, message_ids=message_ids)
                else:
                    call = CopyMessage(chat_id=item.chat_id, from_chat_id=from_chat, message_id=message_ids[0])
            case AgentText(text_html, buttons):
                keyboard = [
                    [InlineKeyboardButton(text=label, callback_data=data) for label, data in row] for row in buttons
                ]
                markup = InlineKeyboardMarkup(inline_keyboard=keyboard) if keyboard else None
                call = SendMessage(chat_id=item.chat_id, text=text_html, reply_markup=markup)
            case BotReply(text_html):
                call = SendMessage(chat_id=item.chat_id, text=text_html)
            case AgentEdit() as edit:
                call = await self._edit(item, edit)
                if call is None:  # its copy never reached the participant (that was reported): nothing to correct
                    await self._mark_sent(ids)
                    return True
            case ParticipantNotification() as notification:
                try:
                    text = self.text_for(notification)
                except Exception as exc:  # a notification that cannot be rendered is a bug: keep it, visibly failed
                    await self.outbox.mark_failed(item.id, f"render: {exc}")
                    return True
                call = SendMessage(chat_id=item.chat_id, text=text)
            case _:  # a staff message in this lane: a bug, kept visibly failed
                await self.outbox.mark_failed(item.id, f"not a participant message: {type(item.message).__name__}")
                return True
        if not await self.outbox.mark_sending(ids):
            return True  # another sender has it, or sent it already
        self.last_to_chat[item.chat_id] = time.monotonic()
        try:
            result = await self.bot(call)
        except TelegramRetryAfter as exc:
            self.pause_until = time.monotonic() + exc.retry_after
            for i in ids:
                await self.outbox.retry_later(i, exc.retry_after, "429", count_attempt=False)
            return False
        except TelegramForbiddenError as exc:  # blocked by the participant, or the account is deleted
            for i in ids:
                await self.outbox.mark_failed(i, exc.message)
            await self.accounts.mark_blocked(item.chat_id)
            await self._report(item, blocked=True, error=exc.message)
            return True
        except TelegramBadRequest as exc:  # e.g. chat not found: retrying will not help
            for i in ids:
                await self.outbox.mark_failed(i, exc.message)
            await self._report(item, blocked=False, error=exc.message)
            return True
        except Exception as exc:
            error = redact(repr(exc))
            log.warning("participant sender: outbox %s: %s", ids, error)
            if is_transient(exc):  # the network or Telegram's servers: late, never lost
                self.failures[item.id] = failures = self.failures.get(item.id, 0) + 1
                for i in ids:
                    await self.outbox.retry_later(i, backoff(failures), error, count_attempt=False)
                return False
            kept = [await self.outbox.retry_later(i, 5 * (item.attempts + 1), error) for i in ids]
            if not all(kept):  # out of tries: the rest of the album goes with it, and the agents are told
                for i in ids:
                    await self.outbox.mark_failed(i, error)
                await self._report(item, blocked=False, error=error)
                return True
            return False
        self.failures.pop(item.id, None)
        await self._mark_sent(ids)
        # The copies' ids, for mirroring edits: they come back in order (a part that was gone breaks the pairing).
        copied = result if isinstance(result, list) else [result] if isinstance(call, CopyMessage) else []
        if self.cases and item.case_id is not None and copied and len(copied) == len(message_ids):
            copies = {source: copy.message_id for source, copy in zip(message_ids, copied, strict=True)}
            await self.cases.copies_made(item.case_id, copies)
        self.sent += 1
        return True

    async def _is_note(self, item: OutboxItem, album: str) -> bool:
        return (
            self.cases is not None and item.case_id is not None and await self.cases.album_is_note(item.case_id, album)
        )

    async def _edit(self, item: OutboxItem, edit: AgentEdit) -> EditMessageText | EditMessageCaption | None:
        """The correction of the participant's copy (sent after the copy itself: this lane keeps a chat's order)."""
        if self.cases is None or item.case_id is None:
            return None
        copy_id = await self.cases.relayed_copy(item.case_id, edit.source_message_id)
        if copy_id is None:
            return None
        entities = [MessageEntity(**e) for e in edit.entities] or None
        if edit.text is not None:
            return EditMessageText(
                chat_id=item.chat_id, message_id=copy_id, text=edit.text, entities=entities, parse_mode=None
            )
        return EditMessageCaption(
            chat_id=item.chat_id, message_id=copy_id, caption=edit.caption, caption_entities=entities, parse_mode=None
        )

    async def _report(self, item: OutboxItem, blocked: bool, error: str) -> None:
        """An agent's message that did not reach the participant: the agents are told in the case's topic."""
        agents = isinstance(item.message, AgentCopy | AgentText | AgentEdit)
        if self.cases is not None and item.case_id is not None and agents:
            await self.cases.notice(item.case_id, "staff_not_delivered", {"blocked": blocked, "error": error})

    async def _mark_sent(self, item_ids: list[int], patience: float = 60.0) -> None:
        """The message is out: record it through a database blip, or a restart would send it again."""
        await through_blips(lambda: self.outbox.mark_sent(item_ids), patience)


def _album(item: OutboxItem) -> str | None:
    return item.message.media_group_id if isinstance(item.message, AgentCopy) else None
