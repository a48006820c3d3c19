"""Automatic assignment: each waiting case goes to the online agent whose turn it is (round-robin: the one given a
case longest ago), while they hold fewer active cases than the capacity; the rest wait in the queue, oldest first, and
are given out as agents free up or come online. An agent away from the console longer than `away_after` gets their
automatically assigned cases taken back and given to others; cases someone claimed or was handed by a supervisor
stay theirs. Every step goes through core.cases (state change and topic notice in one transaction) and is audited.

One pass is `Assigner.run_once`; the web process runs it every few seconds as the only assigner across processes
(core.leader). Telegram-only agents have no console presence and are never given cases automatically."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.cases import CaseService
from core.cases.views import ACTIVE
from core.console.audit import AuditLog
from core.console.staff import StaffAccess
from core.db import make_sessionmaker
from core.hours import AssignmentPolicy
from core.models import Case

log = logging.getLogger(__name__)
ACTOR = "system:assignment"
QUEUE_PASS = 500  # waiting cases looked at per pass (oldest first); the next pass takes the rest


@dataclass
class Pass:
    """What one pass did: (case id, agent) pairs."""

    assigned: list[tuple[int, int]] = field(default_factory=list)
    released: list[tuple[int, int]] = field(default_factory=list)


Notice = Callable[[str, dict[str, object]], str]  # a staff text by key, rendered with its values


class Assigner:
    def __init__(
        self,
        engine: AsyncEngine,
        cases: CaseService,
        access: StaffAccess,
        audit: AuditLog,
        policy: AssignmentPolicy,
        notice: Notice,
        publish: Callable[[dict[str, object]], Awaitable[None]] | None = None,
    ) -> None:
        self.sessions = make_sessionmaker(engine)
        self.cases = cases
        self.access = access
        self.audit = audit
        self.policy = policy
        self.notice = notice
        self.publish = publish

    async def run_once(self, now: datetime | None = None) -> Pass:
        now = now or datetime.now(UTC)
        done = Pass()
        if not self.policy.automatic:
            return done
        online = await self.access.online_agents(now - self.policy.away_after, now)
        await self._release_away(online, done)
        if online:
            await self._assign_waiting(online, now, done)
        return done

    async def _release_away(self, online: list[int], done: Pass) -> None:
        async with self.sessions() as session:
            rows = (
                await session.execute(
                    select(Case.id, Case.claimed_by).where(
                        Case.status.in_(ACTIVE), Case.auto_assigned.is_(True), Case.claimed_by.not_in(online or [0])
                    )
                )
            ).all()
        for case_id, agent in rows:
            if agent is None:
                continue
            text = self.notice("staff_auto_released", {"case_id": case_id, "agent": agent})
            if await self.cases.release(case_id, agent, text):
                done.released.append((case_id, agent))
                await self._record("case.release", case_id, agent)

    async def _assign_waiting(self, online: list[int], now: datetime, done: Pass) -> None:
        async with self.sessions() as session:
            load_rows = (
                await session.execute(
                    select(Case.claimed_by, func.count())
                    .where(Case.status.in_(ACTIVE), Case.claimed_by.in_(online))
                    .group_by(Case.claimed_by)
                )
            ).all()
            last_rows = (
                await session.execute(
                    select(Case.claimed_by, func.max(Case.claimed_at))
                    .where(Case.auto_assigned.is_(True), Case.claimed_by.in_(online))
                    .group_by(Case.claimed_by)
                )
            ).all()
            waiting = (
                await session.scalars(
                    select(Case.id)
                    .where(Case.status.in_(ACTIVE), Case.claimed_by.is_(None))
                    .order_by(Case.opened_at, Case.id)
                    .limit(QUEUE_PASS)
                )
            ).all()
        load = {agent: 0 for agent in online} | {int(a): int(n) for a, n in load_rows if a is not None}
        never = datetime.min.replace(tzinfo=UTC)
        last = {agent: never for agent in online} | {int(a): t or never for a, t in last_rows if a is not None}
        for case_id in waiting:
            free = [agent for agent in online if load[agent] < self.policy.capacity]
            if not free:
                break  # everyone is full: the rest wait in the queue
            agent = min(free, key=lambda a: (last[a], a))
            text = self.notice("staff_auto_assigned", {"case_id": case_id, "assignee": agent})
            if await self.cases.assign_automatically(case_id, agent, text):
                load[agent] += 1
                last[agent] = now
                done.assigned.append((case_id, agent))
                await self._record("case.auto_assign", case_id, agent)

    async def _record(self, action: str, case_id: int, agent: int) -> None:
        await self.audit.record(ACTOR, action, f"case:{case_id}", {"agent": agent})
        if self.publish is not None:
            with contextlib.suppress(Exception):  # live updates are a convenience; the state is already saved
                await self.publish({"type": "case", "case_id": case_id, "kind": action})

    async def run(self, stop: asyncio.Event, every: float = 5.0) -> None:
        """A pass every `every` seconds until `stop`; a failed pass (the database away) is logged and retried."""
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception as exc:
                log.error("automatic assignment pass failed: %s", type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
