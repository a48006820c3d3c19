"""Which failed Bot API calls are worth trying again, and how long to wait: shared by both outbox senders.

A relay may be late, never lost: a network error, a Telegram server error (5xx) or a 429 says nothing about the
message, so it waits and goes again, for as long as it takes. Only Telegram's refusal of the message itself (400, 403)
is final.
"""

from __future__ import annotations

from aiogram.exceptions import (
    ClientDecodeError,
    TelegramEntityTooLarge,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from sqlalchemy.exc import SQLAlchemyError

TRANSIENT_FIRST = 1.0  # seconds before the first retry after a transient failure; doubled each time …
TRANSIENT_CAP = 60.0  # … up to this


def is_transient(exc: BaseException) -> bool:
    """Network, server (5xx), rate limit, an unreadable answer (a proxy's error page), or our database."""
    if isinstance(exc, TelegramEntityTooLarge):  # aiogram files it under network errors; it is the file's fault
        return False
    return isinstance(
        exc,
        TelegramNetworkError | TelegramServerError | TelegramRetryAfter | ClientDecodeError | SQLAlchemyError | OSError,
    )


def backoff(failures: int, first: float = TRANSIENT_FIRST, cap: float = TRANSIENT_CAP) -> float:
    """The wait after the `failures`-th failure in a row (1, 2, 3…): doubling, capped."""
    return min(first * 2.0 ** max(failures - 1, 0), cap)
