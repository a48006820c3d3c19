"""Keeping personal data no longer than needed (UU PDP 27/2022): after the retention period (RETENTION_DAYS, 30 by
default) the outbox's finished rows are deleted, the text of participants' questions is blanked (the rows stay, for
the statistics), and the messages of cases closed that long ago are deleted with the cases' cards.

Outbox rows already keep none of the message once sent (core/outbox.py scrubs them); this is the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import make_sessionmaker
from core.identity import redact
from core.models import Case, CaseMessage, CaseStatus, FaqAnswer, ProcessedUpdate
from core.outbox import Outbox

log = logging.getLogger(__name__)
DEFAULT_DAYS = 30
EVERY = timedelta(hours=1)  # how often a running bot purges


@dataclass(frozen=True)
class Purged:
    outbox_rows: int
    questions: int
    case_messages: int
    cards: int
    update_bodies: int = 0  # polled updates never finished (their body waits for a restart that never came)


class Retention:
    def __init__(self, engine: AsyncEngine, days: int = DEFAULT_DAYS) -> None:
        if days < 1:
            raise ValueError("the retention period is at least one day")
        self.sessions = make_sessionmaker(engine)
        self.outbox = Outbox(engine)
        self.period = timedelta(days=days)

    async def purge(self, now: datetime | None = None) -> Purged:
        """One pass: everything older than the period is deleted or blanked; returns how much."""
        cutoff = (now or datetime.now(UTC)) - self.period
        outbox_rows = await self.outbox.purge(cutoff)
        async with self.sessions.begin() as session:
            questions = await session.execute(
                update(FaqAnswer).where(FaqAnswer.asked_at < cutoff, FaqAnswer.question != "").values(question="")
            )
            old_cases = select(Case.id).where(Case.status == CaseStatus.CLOSED, Case.closed_at < cutoff)
            messages = await session.execute(delete(CaseMessage).where(CaseMessage.case_id.in_(old_cases)))
            cards = await session.execute(
                update(Case)
                .where(Case.status == CaseStatus.CLOSED, Case.closed_at < cutoff, Case.card_html.is_not(None))
                .values(card_html=None)
            )
            bodies = await session.execute(
                update(ProcessedUpdate)
                .where(ProcessedUpdate.claimed_at < cutoff, ProcessedUpdate.payload.is_not(None))
                .values(payload=None)
            )
        return Purged(outbox_rows, _count(questions), _count(messages), _count(cards), _count(bodies))

    async def run(self, stop: asyncio.Event, every: timedelta = EVERY) -> None:
        """Purge now and then while the bot runs (one worker: the caller runs it as the leader)."""
        while not stop.is_set():
            try:
                purged = await self.purge()
                if any(vars(purged).values()):
                    log.info("retention: purged %s", vars(purged))
            except Exception as exc:  # a database hiccup: the next pass catches up
                log.error("retention: %s", redact(repr(exc)))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every.total_seconds())


def _count(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
