"""Recording what already happened (a message sent, an update handled) must survive a database restart."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def through_blips(record: Callable[[], Awaitable[None]], patience: float) -> None:
    """Retry `record` with backoff for up to `patience` seconds; the last failure is raised."""
    deadline = time.monotonic() + patience
    delay = 0.1
    while True:
        try:
            await record()
            return
        except Exception:
            if time.monotonic() + delay > deadline:
                raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
