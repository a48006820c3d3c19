"""Flood control for participants' private chats: a token bucket per Telegram user, in front of every handler.

A participant may burst (an album is up to 10 updates at once) and then write about `rate` messages a second; past
that, updates are dropped and the participant gets at most one polite reply per burst (a burst lasts until they have
been quiet for `quiet` seconds). The buckets live in Redis when REDIS_URL is set, so every worker shares them, else
in process memory. When Redis does not answer, the throttle lets the update through: it protects the bot, it must not
be the reason an update fails.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiogram import BaseMiddleware, Dispatcher
from aiogram.fsm.context import FSMContext
from aiogram.fsm.storage.base import BaseStorage
from aiogram.fsm.storage.redis import RedisStorage
from aiogram.types import CallbackQuery, Message, TelegramObject
from redis.asyncio import Redis
from redis.exceptions import RedisError

from bot.texts import Renderer
from core.identity import redact
from core.locales import LOCALES

log = logging.getLogger(__name__)

TEMPLATE = "throttled"  # knowledge/messages.yaml

KEY_PREFIX = "prakerja:throttle"


@dataclass(frozen=True)
class Limits:
    burst: float = 20.0  # updates at once (an album, a few quick taps)
    rate: float = 2.0  # updates a second after the burst
    quiet: float = 10.0  # seconds without a dropped update that end a burst (and allow the next polite reply)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    warn: bool = False  # dropped, and the first one of this burst: tell the participant once


class RateLimiter(Protocol):
    async def hit(self, user_id: int) -> Verdict: ...


class MemoryRateLimiter:
    """One process: buckets in a dict, trimmed of idle users now and then."""

    def __init__(self, limits: Limits = Limits(), clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.clock = clock
        self.buckets: dict[int, tuple[float, float, float]] = {}  # user → (tokens, updated at, warned until)
        self._hits = 0

    async def hit(self, user_id: int) -> Verdict:
        now = self.clock()
        limits = self.limits
        tokens, updated, warned_until = self.buckets.get(user_id, (limits.burst, now, 0.0))
        tokens = min(limits.burst, tokens + (now - updated) * limits.rate)
        if tokens >= 1:
            verdict = Verdict(True)
            tokens -= 1
        else:
            verdict = Verdict(False, warn=now >= warned_until)
            warned_until = now + limits.quiet
        self.buckets[user_id] = (tokens, now, warned_until)
        self._hits += 1
        if self._hits % 10_000 == 0:
            self._trim(now)
        return verdict

    def _trim(self, now: float) -> None:
        full_after = self.limits.burst / self.limits.rate
        for user_id, (_, updated, warned_until) in list(self.buckets.items()):
            if now - updated > full_after and now >= warned_until:
                del self.buckets[user_id]


# KEYS: bucket, warned. ARGV: burst, rate, quiet. Redis' own clock, so that workers' clocks never disagree.
_BUCKET_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local burst, rate, quiet = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]), tonumber(state[2])
if tokens == nil or at == nil then tokens, at = burst, now end
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local allowed, warn = 0, 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
elseif redis.call('SET', KEYS[2], '1', 'NX', 'PX', math.ceil(quiet * 1000)) then
  warn = 1
else
  redis.call('PEXPIRE', KEYS[2], math.ceil(quiet * 1000))
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst / rate + 1) * 1000))
return {allowed, warn}
"""


class RedisRateLimiter:
    """Every worker: the bucket is one Redis hash per user, updated atomically by a script."""

    def __init__(self, redis: Redis, limits: Limits = Limits()) -> None:
        self.redis = redis
        self.limits = limits
        self.script = redis.register_script(_BUCKET_SCRIPT)

    async def hit(self, user_id: int) -> Verdict:
        key = f"{KEY_PREFIX}:{user_id}"
        limits = self.limits
        allowed, warn = await self.script(keys=[key, f"{key}:warned"], args=[limits.burst, limits.rate, limits.quiet])
        return Verdict(bool(allowed), bool(warn))


def limiter_for(storage: BaseStorage, limits: Limits = Limits()) -> RateLimiter:
    """Redis when the conversation state is there (shared by workers), else this process's memory."""
    if isinstance(storage, RedisStorage):
        return RedisRateLimiter(storage.redis, limits)
    return MemoryRateLimiter(limits)


class FloodThrottle(BaseMiddleware):
    """Outer middleware on private messages, their edits and button presses (staff groups are not throttled)."""

    def __init__(self, limiter: RateLimiter, renderer: Renderer, default_locale: str = "id") -> None:
        self.limiter = limiter
        self.renderer = renderer
        self.default_locale = default_locale
        self.dropped = 0

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        user_id = self._participant(event)
        if user_id is None:
            return await handler(event, data)
        try:
            verdict = await self.limiter.hit(user_id)
        except (RedisError, OSError) as exc:
            log.warning("throttle: Redis unavailable, letting the update through: %s", redact(repr(exc)))
            return await handler(event, data)
        if verdict.allowed:
            return await handler(event, data)
        self.dropped += 1
        if isinstance(event, CallbackQuery):
            await event.answer()  # stop the button's spinner; the polite word goes to the chat below
        if verdict.warn:
            log.info("throttle: user %s is flooding; updates dropped until they slow down", user_id)
            await self._tell(event, user_id, data.get("state"))
        return None

    @staticmethod
    def _participant(event: TelegramObject) -> int | None:
        if isinstance(event, Message) and event.chat.type == "private" and event.from_user is not None:
            return event.from_user.id
        if isinstance(event, CallbackQuery) and isinstance(event.message, Message):
            return event.from_user.id if event.message.chat.type == "private" else None
        return None

    async def _tell(self, event: TelegramObject, chat_id: int, state: FSMContext | None) -> None:
        locale = self.default_locale
        if state is not None:
            try:
                stored = await state.get_data()
            except (RedisError, OSError):
                stored = {}
            if stored.get("locale") in LOCALES:
                locale = str(stored["locale"])
        text = self.renderer.render(TEMPLATE, locale)
        bot = event.bot
        if bot is not None:
            await bot.send_message(chat_id, text)


def install_throttle(
    dp: Dispatcher, renderer: Renderer, default_locale: str = "id", limits: Limits | None = None
) -> FloodThrottle:
    """Register the throttle on private messages, edits and button presses, once: a second call returns the first
    one (with `limits`, it gets a fresh limiter with them). Edits share the messages' bucket: 200 edits in a few
    seconds are a flood like 200 messages."""
    for middleware in dp.message.outer_middleware:
        if isinstance(middleware, FloodThrottle):
            if limits is not None:
                middleware.limiter = limiter_for(dp.storage, limits)
            return middleware
    throttle = FloodThrottle(limiter_for(dp.storage, limits or Limits()), renderer, default_locale)
    dp.message.outer_middleware(throttle)
    dp.edited_message.outer_middleware(throttle)
    dp.callback_query.outer_middleware(throttle)
    return throttle
